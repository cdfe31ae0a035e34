"""The LutGemm packed weight format (layout version 2; version 1 still read; version 3 for ternary
weights) and round-to-nearest quantisation.

docs/packed-format.md is the specification; this module is the one packer, and the C++
kernels (custom_ops/src/kernels/layout.h) read exactly what it writes.

Weights are stored as unsigned `bits`-bit integers q[n, k] with per-group scales and either
integer zero points (w = s * (q - z), MatMulNBits' math, default z = 2^(bits-1)) or float
offsets (w = s * q + o, e.g. GGUF Q4_1's d * q + m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYOUT_VERSION = 2  # what `pack` writes; the kernels read 1 and 2
TILE_N = 32  # output channels per tile
STEP_K = 8  # reduction elements per step (two quads)
QUAD_K = 4  # activations per lookup table
MAX_BLOCK_K = 256  # longest int16 accumulation run (and table-quantisation block)
CHUNK_K = 512  # layout 2: K per chunk, rounded down to whole blocks
TERNARY_LAYOUT = 3  # ternary weights as base-3 triples (5 bits per 3 weights), written on request
TRIPLE_K = 3  # activations per triple table
TRIPLE_STEP_K = 12  # layout 3: k per step (four triples)
TRIPLE_STEP_BYTES = 80  # layout 3: a tile's step, two halves of 64 five-bit fields
TRIPLE_TABLE_BYTES = 32  # entries per triple table (27 used)
TRIPLE_ROW_BLOCK_K = 252  # layout 3's blocks where the group is the whole row: 21 whole steps


@dataclass(frozen=True)
class Geometry:
    """Sizes derived from (K, N, bits, group_size); mirrors tmac::MakeGeometry.  `triples`:
    layout 3's, whose blocks are 252 k where the group is the whole row."""

    K: int
    N: int
    bits: int
    group_size: int
    triples: bool = False

    def __post_init__(self):
        K, N, bits, group = self.K, self.N, self.bits, self.group_size
        if bits not in (1, 2, 3, 4):
            raise ValueError(f"bits must be 1, 2, 3 or 4, got {bits}")
        if K <= 0 or N <= 0:
            raise ValueError(f"K and N must be positive, got K={K}, N={N}")
        if group <= 0:
            raise ValueError(f"group_size must be positive, got {group}")
        if group != K and group % STEP_K:
            raise ValueError(f"group_size {group} must be a multiple of {STEP_K} (or equal K)")
        if group > MAX_BLOCK_K and group % MAX_BLOCK_K and group != K:
            raise ValueError(f"group_size {group} above {MAX_BLOCK_K} must be a multiple of it (or equal K)")

    @property
    def K_pad(self) -> int:
        return -(-self.K // STEP_K) * STEP_K

    @property
    def N_pad(self) -> int:
        return -(-self.N // TILE_N) * TILE_N

    @property
    def n_tiles(self) -> int:
        return self.N_pad // TILE_N

    @property
    def k_steps(self) -> int:
        return self.K_pad // STEP_K

    @property
    def n_groups(self) -> int:
        """ceil(K / group_size): the last group may be shorter (K not a multiple of the group)."""
        return -(-self.K // self.group_size)

    @property
    def block_k(self) -> int:
        if self.triples and self.group_size == self.K:
            return TRIPLE_ROW_BLOCK_K
        if self.group_size <= MAX_BLOCK_K and self.group_size % STEP_K == 0:
            return self.group_size
        return MAX_BLOCK_K

    @property
    def n_blocks(self) -> int:
        return -(-(self.K if self.triples else self.K_pad) // self.block_k)

    @property
    def chunk_steps(self) -> int:
        """Steps per K-chunk of layout 2 (whole blocks; the last chunk may be shorter)."""
        return max(1, CHUNK_K // self.block_k) * self.block_k // STEP_K

    @property
    def triple_block_steps(self) -> int:
        """Layout 3: steps of 12 k per whole block (the block padded with zero weights)."""
        return -(-self.block_k // TRIPLE_STEP_K)

    def triple_steps_of_block(self, b: int) -> int:
        """Layout 3: steps of block b, its k below K in whole steps."""
        return -(-(min((b + 1) * self.block_k, self.K) - b * self.block_k) // TRIPLE_STEP_K)

    @property
    def triple_k_steps(self) -> int:
        """Layout 3: steps of a tile, every block's (the last block may be shorter)."""
        return (self.n_blocks - 1) * self.triple_block_steps + self.triple_steps_of_block(self.n_blocks - 1)

    @property
    def triple_chunk_steps(self) -> int:
        return max(1, CHUNK_K // self.block_k) * self.triple_block_steps

    def packed_shape(self, layout_version: int = LAYOUT_VERSION) -> tuple[int, ...]:
        """Layout 1: [tile][step][byte]; layout 2: [step in storage order][byte]; layout 3:
        [step of 12 k in storage order][80 bytes]."""
        step_bytes = TILE_N * self.bits
        if layout_version == 1:
            return (self.n_tiles, self.k_steps, step_bytes)
        if layout_version == TERNARY_LAYOUT:
            return (self.n_tiles * self.triple_k_steps, TRIPLE_STEP_BYTES)
        return (self.n_tiles * self.k_steps, step_bytes)

    def chunk_order(self, layout_version: int = LAYOUT_VERSION) -> np.ndarray:
        """The storage order of layouts 2 and 3 as indices into [tile * k_steps + step]: chunk by
        chunk, every tile's steps of the chunk (mirrors tmac::Geometry::step_offset)."""
        triples = layout_version == TERNARY_LAYOUT
        k_steps = self.triple_k_steps if triples else self.k_steps
        cs = self.triple_chunk_steps if triples else self.chunk_steps
        index = np.arange(self.n_tiles * k_steps).reshape(self.n_tiles, k_steps)
        return np.concatenate([index[:, c:c + cs].reshape(-1) for c in range(0, k_steps, cs)])

    def triple_k(self) -> np.ndarray:
        """Layout 3: the k of each weight of each step of a tile, [k_steps, 4 triples, 3], or -1
        where the position pads its block (at or beyond the block's end, or beyond K)."""
        rows = []
        for b in range(self.n_blocks):
            k0, end = b * self.block_k, min((b + 1) * self.block_k, self.K)
            k = k0 + np.arange(self.triple_steps_of_block(b) * TRIPLE_STEP_K).reshape(-1, 4, TRIPLE_K)
            rows.append(np.where(k < end, k, -1))
        return np.concatenate(rows)

    def group_of_block(self, b: int) -> int:
        return (b * self.block_k) // self.group_size


def _slot_map(bits: int):
    """For each byte of a step: (plane, channel) of its low and high nibble, and its quad (lane).

    Mirrors tmac::SlotOf: pair chunks hold planes (2p, 2p+1) of 16 channels in adjacent
    bytes; an odd top plane has one single chunk of 32 channels.
    """
    byte = np.arange(TILE_N * bits)
    chunk, i = byte // 32, byte % 16
    lane = (byte % 32) // 16
    in_pair = chunk < 2 * (bits // 2)
    plane = np.where(in_pair, 2 * (chunk // 2) + (i & 1), bits - 1)
    chan_lo = np.where(in_pair, 16 * (chunk % 2) + (i >> 1), (i & 1) * 8 + (i >> 1))
    chan_hi = chan_lo + np.where(in_pair, 8, 16)
    return plane, chan_lo, chan_hi, lane


def _nibble_sources(bits: int):
    """Indices into a step's nibbles laid out as [plane][channel][lane] for low/high nibbles."""
    plane, chan_lo, chan_hi, lane = _slot_map(bits)
    return plane * 2 * TILE_N + chan_lo * 2 + lane, plane * 2 * TILE_N + chan_hi * 2 + lane


def pack(q: np.ndarray, bits: int, group_size: int | None = None,
         layout_version: int = LAYOUT_VERSION) -> np.ndarray:
    """Packs q[N, K] (uint8 values < 2^bits) into layout 2 (n_tiles * k_steps, 32*bits), whose
    K-chunks hold whole blocks of `group_size` (default K), or layout 1 (n_tiles, k_steps,
    32*bits), or, for ternary q (bits 2, values 0..2), layout 3 (`pack_triples`)."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"q must be 2-D [N, K], got shape {q.shape}")
    if layout_version == TERNARY_LAYOUT:
        return pack_triples(q, bits, group_size)
    if layout_version not in (1, 2):
        raise ValueError(f"layout_version must be 1, 2 or 3, got {layout_version}")
    N, K = q.shape
    geo = Geometry(K, N, bits, group_size or K)
    if q.size and int(q.max()) >= (1 << bits):
        raise ValueError(f"q holds values >= 2^{bits}")
    padded = np.zeros((geo.N_pad, geo.K_pad), dtype=np.uint8)
    padded[:N, :K] = q
    quads = padded.reshape(geo.N_pad, geo.K_pad // QUAD_K, QUAD_K)
    # nibbles[plane, n, quad]: bit j of the index is plane `plane` of weight k = 4*quad + j.
    nibbles = np.empty((bits, geo.N_pad, geo.K_pad // QUAD_K), dtype=np.uint8)
    for p in range(bits):
        plane = (quads >> p) & 1
        nibbles[p] = plane[..., 0] | (plane[..., 1] << 1) | (plane[..., 2] << 2) | (plane[..., 3] << 3)
    # -> [tile][step][plane][channel][lane], flattened per step.
    steps = nibbles.reshape(bits, geo.n_tiles, TILE_N, geo.k_steps, 2).transpose(1, 3, 0, 2, 4)
    steps = steps.reshape(geo.n_tiles, geo.k_steps, bits * TILE_N * 2)
    lo, hi = _nibble_sources(bits)
    packed = steps[..., lo] | (steps[..., hi] << 4)  # layout 1
    if layout_version == 1:
        return np.ascontiguousarray(packed)
    return np.ascontiguousarray(packed.reshape(geo.n_tiles * geo.k_steps, -1)[geo.chunk_order()])


def _triple_fields() -> tuple[np.ndarray, np.ndarray]:
    """Layout 3, one step of a tile: for each of its 128 fields (field 64h + l: half h, lane
    l = 4c + j), its channel 16h + c and triple j."""
    field = np.arange(2 * 64)
    half, lane = field // 64, field % 64
    return 16 * half + lane // 4, lane % 4


def pack_triples(q: np.ndarray, bits: int = 2, group_size: int | None = None) -> np.ndarray:
    """Layout 3 (docs/packed-format.md): ternary q[N, K] (values 0, 1, 2: w = s (q - z)) as one
    base-3 field d0 + 3 d1 + 9 d2 per three consecutive k of a block, five bits each, 64 fields
    (16 channels x 4 triples) to 40 bytes, LSB first; [step in storage order][80]."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"q must be 2-D [N, K], got shape {q.shape}")
    if bits != 2:
        raise ValueError(f"layout 3 holds ternary weights (bits=2), got bits={bits}")
    N, K = q.shape
    geo = Geometry(K, N, bits, group_size or K, triples=True)
    if q.size and int(q.max()) > 2:
        raise ValueError("layout 3 holds ternary weights: q must be 0, 1 or 2")
    padded = np.ones((geo.N_pad, K + 1), dtype=np.uint8)  # column K: a zero weight for padding
    padded[:N, :K] = q
    at = geo.triple_k()  # [k_steps, 4, 3], -1 for padding
    digits = padded[:, np.where(at < 0, K, at)]  # [N_pad, k_steps, 4, 3]
    fields = (digits[..., 0] + 3 * digits[..., 1] + 9 * digits[..., 2]).astype(np.uint8)
    channel, triple = _triple_fields()
    tiles = fields.reshape(geo.n_tiles, TILE_N, geo.triple_k_steps, 4)
    steps = tiles[:, channel, :, triple].transpose(1, 2, 0)  # [tile, step, 128 fields]
    bit_of = (steps[..., None] >> np.arange(5, dtype=np.uint8)) & 1  # [tile, step, 128, 5]
    packed = np.packbits(bit_of.reshape(geo.n_tiles, geo.triple_k_steps, 2, 320), axis=-1, bitorder="little")
    packed = packed.reshape(geo.n_tiles * geo.triple_k_steps, TRIPLE_STEP_BYTES)
    return np.ascontiguousarray(packed[geo.chunk_order(TERNARY_LAYOUT)])


def unpack_triples(packed: np.ndarray, K: int, N: int, group_size: int | None = None) -> np.ndarray:
    """Inverse of `pack_triples`: q[N, K].  Fields 27-31, which the packer never writes, read as
    13 (three zero weights), as the kernels read them."""
    geo = Geometry(K, N, 2, group_size or K, triples=True)
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.shape != geo.packed_shape(TERNARY_LAYOUT):
        raise ValueError(f"packed has shape {packed.shape}, expected {geo.packed_shape(TERNARY_LAYOUT)}")
    tile_major = np.empty_like(packed)
    tile_major[geo.chunk_order(TERNARY_LAYOUT)] = packed
    bit_of = np.unpackbits(tile_major.reshape(geo.n_tiles, geo.triple_k_steps, 2, 40), axis=-1, bitorder="little")
    steps = (bit_of.reshape(geo.n_tiles, geo.triple_k_steps, 128, 5) << np.arange(5, dtype=np.uint8)).sum(axis=-1)
    steps = np.where(steps > 26, 13, steps).astype(np.uint8)
    channel, triple = _triple_fields()
    fields = np.empty((geo.n_tiles, TILE_N, geo.triple_k_steps, 4), dtype=np.uint8)
    fields[:, channel, :, triple] = steps.transpose(2, 0, 1)
    fields = fields.reshape(geo.N_pad, geo.triple_k_steps, 4)
    q = np.ones((geo.N_pad, K + 1), dtype=np.uint8)
    at = geo.triple_k()
    for d in range(TRIPLE_K):
        keep = at[..., d] >= 0
        q[:, at[..., d][keep]] = ((fields // 3**d) % 3)[:, keep]
    return q[:N, :K]


def unpack(packed: np.ndarray, bits: int, K: int, N: int, group_size: int | None = None) -> np.ndarray:
    """Inverse of `pack` for any layout (told apart by the array's shape): returns q[N, K]."""
    geo = Geometry(K, N, bits, group_size or K)
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 2 and packed.ndim == 2 and packed.shape[1] == TRIPLE_STEP_BYTES:
        return unpack_triples(packed, K, N, group_size)
    layout_version = 1 if packed.ndim == 3 else 2
    if packed.shape != geo.packed_shape(layout_version):
        raise ValueError(f"packed has shape {packed.shape}, expected {geo.packed_shape(layout_version)}")
    if layout_version == 2:
        v1 = np.empty_like(packed)
        v1[geo.chunk_order()] = packed
        packed = v1.reshape(geo.packed_shape(1))
    steps = np.zeros((geo.n_tiles, geo.k_steps, bits * TILE_N * 2), dtype=np.uint8)
    lo, hi = _nibble_sources(bits)
    steps[..., lo] = packed & 15
    steps[..., hi] = packed >> 4
    nibbles = steps.reshape(geo.n_tiles, geo.k_steps, bits, TILE_N, 2).transpose(2, 0, 3, 1, 4)
    nibbles = nibbles.reshape(bits, geo.N_pad, geo.K_pad // QUAD_K)
    q = np.zeros((geo.N_pad, geo.K_pad // QUAD_K, QUAD_K), dtype=np.uint8)
    for p in range(bits):
        for j in range(QUAD_K):
            q[..., j] |= ((nibbles[p] >> j) & 1) << p
    return q.reshape(geo.N_pad, geo.K_pad)[:N, :K]


@dataclass
class QuantizedWeight:
    """q[N, K] with per-group scales [N, K/group] and zero points or offsets."""

    q: np.ndarray
    scales: np.ndarray
    bits: int
    group_size: int
    zero_points: np.ndarray | None = None
    offsets: np.ndarray | None = None

    def __post_init__(self):
        N, K = self.q.shape
        geo = Geometry(K, N, self.bits, self.group_size)
        shape = (N, geo.n_groups)
        self.q = np.asarray(self.q, dtype=np.uint8)
        self.scales = np.asarray(self.scales, dtype=np.float32).reshape(shape)
        if self.zero_points is not None and self.offsets is not None:
            raise ValueError("give zero_points or offsets, not both")
        if self.zero_points is not None:
            self.zero_points = np.asarray(self.zero_points, dtype=np.uint8).reshape(shape)
        if self.offsets is not None:
            self.offsets = np.asarray(self.offsets, dtype=np.float32).reshape(shape)

    @property
    def N(self) -> int:
        return self.q.shape[0]

    @property
    def K(self) -> int:
        return self.q.shape[1]

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.K, self.N, self.bits, self.group_size)

    def geometry_of(self, layout_version: int) -> Geometry:
        """The geometry of this weight packed in `layout_version` (layout 3's blocks differ)."""
        return Geometry(self.K, self.N, self.bits, self.group_size, triples=layout_version == TERNARY_LAYOUT)

    def per_element(self, values: np.ndarray) -> np.ndarray:
        """Per-group values [N, n_groups] repeated along K (the last group may be shorter)."""
        return np.repeat(values, self.group_size, axis=1)[:, : self.K]

    def dequantize(self) -> np.ndarray:
        """W[N, K] in float32, exactly as MatMulNBits computes it: s * (q - z) or s * q + o."""
        s = self.per_element(self.scales)
        q = self.q.astype(np.float32)
        if self.offsets is not None:
            return s * q + self.per_element(self.offsets)
        if self.zero_points is not None:
            z = self.per_element(self.zero_points).astype(np.float32)
        else:
            z = np.float32(1 << (self.bits - 1))
        return s * (q - z)

    def pack(self, layout_version: int = LAYOUT_VERSION) -> np.ndarray:
        return pack(self.q, self.bits, self.group_size, layout_version)

    @property
    def ternary(self) -> bool:
        """Three levels (bits 2, q in 0..2): layout 3 can hold it."""
        return self.bits == 2 and (self.q.size == 0 or int(self.q.max()) <= 2)


def padded_groups(w: np.ndarray, geo: Geometry) -> np.ndarray:
    """w[N, K] as [N, n_groups, group_size], a short last group padded with zeros."""
    N, K = w.shape
    padded = np.zeros((N, geo.n_groups * geo.group_size), dtype=np.float32)
    padded[:, :K] = w
    return padded.reshape(N, geo.n_groups, geo.group_size)


def quantize_rtn(w: np.ndarray, bits: int, group_size: int, symmetric: bool = True) -> QuantizedWeight:
    """Round-to-nearest quantisation of W[N, K] per group of `group_size` along K.

    Symmetric (bits >= 2): zero point 2^(bits-1); the group's largest-magnitude value maps
    exactly to q = 0, as onnxruntime's MatMulNBits quantiser does.  Symmetric 1-bit is sign
    binarisation w = +-mean|w| (stored as offsets).  Asymmetric: min/max range with integer
    zero points.
    """
    w = np.asarray(w, dtype=np.float32)
    N, K = w.shape
    geo = Geometry(K, N, bits, group_size)
    # a short last group is padded with zeros, which change neither its largest magnitude nor
    # its [min(w, 0), max(w, 0)] range
    groups = padded_groups(w, geo)
    levels = (1 << bits) - 1
    if symmetric and bits == 1:
        lengths = np.minimum(group_size, K - np.arange(geo.n_groups) * group_size)  # the last may be short
        alpha = (np.abs(groups).sum(axis=2) / lengths).astype(np.float32)
        q = (groups >= 0).astype(np.uint8)
        return QuantizedWeight(q.reshape(N, -1)[:, :K], 2 * alpha, bits, group_size, offsets=-alpha)
    if symmetric:
        idx = np.abs(groups).argmax(axis=2)[..., None]
        vmax = np.take_along_axis(groups, idx, axis=2)[..., 0]
        scales = vmax / -float(1 << (bits - 1))
        scales[scales == 0] = 1.0
        zero = np.full(scales.shape, 1 << (bits - 1), dtype=np.float32)
        q = np.clip(np.rint(groups / scales[..., None]) + zero[..., None], 0, levels)
        return QuantizedWeight(q.astype(np.uint8).reshape(N, -1)[:, :K], scales, bits, group_size)
    lo = np.minimum(groups.min(axis=2), 0)
    hi = np.maximum(groups.max(axis=2), 0)
    scales = (hi - lo) / levels
    scales[scales == 0] = 1.0
    zero = np.clip(np.rint(-lo / scales), 0, levels)
    q = np.clip(np.rint(groups / scales[..., None]) + zero[..., None], 0, levels)
    return QuantizedWeight(q.astype(np.uint8).reshape(N, -1)[:, :K], scales, bits, group_size,
                           zero_points=zero.astype(np.uint8))
