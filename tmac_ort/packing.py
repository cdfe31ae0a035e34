"""The LutGemm packed weight format (layout version 2; version 1 still read) and round-to-nearest
quantisation.

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


@dataclass(frozen=True)
class Geometry:
    """Sizes derived from (K, N, bits, group_size); mirrors tmac::MakeGeometry."""

    K: int
    N: int
    bits: int
    group_size: int

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
        if self.group_size <= MAX_BLOCK_K and self.group_size % STEP_K == 0:
            return self.group_size
        return MAX_BLOCK_K

    @property
    def n_blocks(self) -> int:
        return -(-self.K_pad // self.block_k)

    @property
    def chunk_steps(self) -> int:
        """Steps per K-chunk of layout 2 (whole blocks; the last chunk may be shorter)."""
        return max(1, CHUNK_K // self.block_k) * self.block_k // STEP_K

    def packed_shape(self, layout_version: int = LAYOUT_VERSION) -> tuple[int, ...]:
        """Layout 1: [tile][step][byte]; layout 2: [step in storage order][byte]."""
        step_bytes = TILE_N * self.bits
        if layout_version == 1:
            return (self.n_tiles, self.k_steps, step_bytes)
        return (self.n_tiles * self.k_steps, step_bytes)

    def chunk_order(self) -> np.ndarray:
        """Layout 2's storage order as indices into layout 1's [tile * k_steps + step]: chunk by
        chunk, every tile's steps of the chunk (mirrors tmac::Geometry::step_offset)."""
        index = np.arange(self.n_tiles * self.k_steps).reshape(self.n_tiles, self.k_steps)
        cs = self.chunk_steps
        return np.concatenate([index[:, c:c + cs].reshape(-1) for c in range(0, self.k_steps, cs)])

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
    32*bits)."""
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"q must be 2-D [N, K], got shape {q.shape}")
    if layout_version not in (1, 2):
        raise ValueError(f"layout_version must be 1 or 2, got {layout_version}")
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


def unpack(packed: np.ndarray, bits: int, K: int, N: int, group_size: int | None = None) -> np.ndarray:
    """Inverse of `pack` for either layout (told apart by the array's rank): returns q[N, K]."""
    geo = Geometry(K, N, bits, group_size or K)
    packed = np.asarray(packed, dtype=np.uint8)
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
