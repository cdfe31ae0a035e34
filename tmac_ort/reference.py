"""Numpy references for LutGemm.

`build_tables` and `lut_gemm` reproduce the kernel's arithmetic (block exponents, int8
tables, integer lookups, fp16 per-group scales in per-channel power-of-two units, fp32
accumulation, the non-finite rule) so the C++ kernels can be checked tightly, and
`quantize_int8` and `int8_gemm` the int8 path that kernels with a dot product take for prefill;
`matmul_dequantized` is the exact math the op approximates (A @ dequantize(W)^T).
docs/packed-format.md states the arithmetic.
"""

from __future__ import annotations

import numpy as np

from .packing import LAYOUT_VERSION, QUAD_K, TERNARY_LAYOUT, TRIPLE_K, TRIPLE_TABLE_BYTES, Geometry, QuantizedWeight

MIN_BLOCK_EXPONENT = -125  # 2^-E stays a normal float (tables.h)
MAX_BLOCK_EXPONENT = 126
MIN_CHANNEL_EXPONENT = -126  # a subnormal scale is then exact in fp16 (lut_kernel.h)


def _exponent(x: np.ndarray) -> np.ndarray:
    """E with x in [2^(E-1), 2^E) (frexp's exponent); 0 for x = 0."""
    return np.frexp(x)[1].astype(np.int64)


def _blocks_scaled(a: np.ndarray, geo: Geometry):
    """Rows a[M, K] padded to K_pad with NaN and infinities as 0, and per block the largest |a|
    and E (clamped so 2^-E is normal; 0 for an all-zero block): (block_of_k, max_abs, E,
    the rows times 2^-E of their block)."""
    a = np.asarray(a, dtype=np.float32)
    padded = np.zeros((a.shape[0], geo.K_pad), dtype=np.float32)
    padded[:, : geo.K] = np.where(np.isfinite(a), a, np.float32(0))
    # (layout 3's 252-k blocks may end at K below K_pad: the padding, all zeros, joins the last)
    block_of_k = np.minimum(np.arange(geo.K_pad) // geo.block_k, geo.n_blocks - 1)
    max_abs = np.zeros((a.shape[0], geo.n_blocks), dtype=np.float32)
    np.maximum.at(max_abs, (slice(None), block_of_k), np.abs(padded))
    exponent = np.clip(_exponent(max_abs), MIN_BLOCK_EXPONENT, MAX_BLOCK_EXPONENT)
    exponent[max_abs == 0] = 0
    scaled = np.ldexp(padded, -exponent[:, block_of_k]).astype(np.float32)  # exact
    return block_of_k, max_abs, exponent, scaled


def _table_steps(largest: np.ndarray, scaled: np.ndarray, block_of_k: np.ndarray, exponent: np.ndarray):
    """What both table builders finish with, from each block's largest quad or triple sum
    `largest` [M, n_blocks] (in block units): 127 / largest (0 for an all-zero block), and the
    half steps and block sums in units of 2^R[m] with R [M] the row's largest E."""
    with np.errstate(divide="ignore"):
        inv = np.where(largest > 0, np.float32(127) / largest, np.float32(0)).astype(np.float32)
    block_sum = np.zeros(largest.shape, dtype=np.float32)
    np.add.at(block_sum, (slice(None), block_of_k), scaled)
    row_exponent = exponent.max(axis=1)
    to_row = exponent - row_exponent[:, None]
    half_scale = np.ldexp(largest / np.float32(254), to_row).astype(np.float32)
    return inv, half_scale, np.ldexp(block_sum, to_row).astype(np.float32), row_exponent


def build_tables(a: np.ndarray, geo: Geometry):
    """Tables of activation rows a[M, K]: int8 [M, K_pad/4, 16], half steps and block sums
    [M, n_blocks] in units of 2^R[m], and R [M].

    Each block is scaled by 2^-E (E: its largest finite |a| lies in [2^(E-1), 2^E)); entry i
    of the table of quad (a0..a3) is sum_j (bit j of i ? a_j : -a_j) over the quantisation
    step max_quad(sum |a_j|) / 127 of its block, rounded half to even.  NaN and infinities
    count as 0 (`lut_gemm` adds their products).  R[m] is the row's largest E.
    """
    M = len(a)
    block_of_k, _, exponent, scaled = _blocks_scaled(a, geo)
    v = scaled.reshape(M, -1, QUAD_K)
    abs_sum = (np.abs(v[..., 0]) + np.abs(v[..., 1])) + (np.abs(v[..., 2]) + np.abs(v[..., 3]))  # QuadAbsSum's order
    block_of_quad = np.arange(v.shape[1]) // (geo.block_k // QUAD_K)
    max_quad = np.zeros((M, geo.n_blocks), dtype=np.float32)
    np.maximum.at(max_quad, (slice(None), block_of_quad), abs_sum)
    inv, half_scale, block_sum, row_exponent = _table_steps(max_quad, scaled, block_of_k, exponent)
    tables = np.zeros((M, v.shape[1], 16), dtype=np.int8)
    inv_q = inv[:, block_of_quad]
    for i in range(8):
        e = np.where(i & 1, v[..., 0], -v[..., 0]) + np.where(i & 2, v[..., 1], -v[..., 1])
        e = (e + np.where(i & 4, v[..., 2], -v[..., 2])) - v[..., 3]
        q = np.clip(np.rint(e * inv_q), -127, 127).astype(np.int8)
        tables[..., i] = q
        tables[..., 15 - i] = -q
    return tables, half_scale, block_sum, row_exponent


def build_triple_tables(a: np.ndarray, geo: Geometry):
    """Layout 3's tables of activation rows a[M, K]: int8 [M, k_steps, 4 triples, 32], half
    steps and block sums [M, n_blocks] in units of 2^R[m], and R [M].

    Blocks are scaled by 2^-E as for `build_tables`; entry e (0..26) of the table of triple
    (a0, a1, a2) is ((d0 - 1) a0 + (d1 - 1) a1) + (d2 - 1) a2 with d_i the base-3 digits of e,
    over the step max_triple((|a0| + |a1|) + |a2|) / 127 of its block, rounded half to even;
    entries 27-31 are 0.  Positions that pad a block count as activation 0.
    """
    M = len(a)
    block_of_k, _, exponent, scaled = _blocks_scaled(a, geo)
    at = geo.triple_k()  # [k_steps, 4, 3]
    with_zero = np.concatenate([scaled, np.zeros((M, 1), np.float32)], axis=1)
    v = with_zero[:, np.where(at < 0, geo.K_pad, at)]  # [M, k_steps, 4, 3]
    abs_sum = (np.abs(v[..., 0]) + np.abs(v[..., 1])) + np.abs(v[..., 2])
    block_of_step = np.repeat(np.arange(geo.n_blocks), [geo.triple_steps_of_block(b) for b in range(geo.n_blocks)])
    max_triple = np.zeros((M, geo.n_blocks), dtype=np.float32)
    np.maximum.at(max_triple, (slice(None), block_of_step), abs_sum.max(axis=2))
    inv, half_scale, block_sum, row_exponent = _table_steps(max_triple, scaled, block_of_k, exponent)
    tables = np.zeros((M, len(at), 4, TRIPLE_TABLE_BYTES), dtype=np.int8)
    inv_s = inv[:, block_of_step][..., None]
    for e in range(27):
        c = [np.float32((e // 3**i) % 3 - 1) for i in range(TRIPLE_K)]
        value = (c[0] * v[..., 0] + c[1] * v[..., 1]) + c[2] * v[..., 2]
        tables[..., e] = np.clip(np.rint(value * inv_s), -127, 127).astype(np.int8)
    return tables, half_scale, block_sum, row_exponent


def is_symmetric(w: QuantizedWeight, layout_version: int = LAYOUT_VERSION) -> bool:
    """No constant term to store: every zero point the default 2^(bits-1) (then it is exactly
    -s/2), or for layout 3 every zero point given and 1 (then it is 0)."""
    if w.offsets is not None:
        return False
    if layout_version == TERNARY_LAYOUT:
        return w.zero_points is not None and bool(np.all(w.zero_points == 1))
    return w.zero_points is None or bool(np.all(w.zero_points == 1 << (w.bits - 1)))


def _stored_constant(w: QuantizedWeight, layout_version: int) -> np.ndarray | None:
    """The constant term the kernels store (fp16), in float32, or None where they store none:
    s (2^bits - 1) / 2 + o for offsets; layout 3 (weights s (t + 1) - s z, t the ternary digit
    the tables sum): s + o, or s (1 - z) for zero points (default 2), unless symmetric."""
    if layout_version == TERNARY_LAYOUT:
        if is_symmetric(w, layout_version):
            return None
        if w.offsets is not None:
            return w.scales + w.offsets
        z = w.zero_points if w.zero_points is not None else np.full(w.scales.shape, 1 << (w.bits - 1), np.uint8)
        return (w.scales * (np.float32(1) - z.astype(np.float32))).astype(np.float32)
    mid = np.float32(((1 << w.bits) - 1) / 2)
    return w.scales * mid + w.offsets if w.offsets is not None else None


def channel_units(w: QuantizedWeight, layout_version: int = LAYOUT_VERSION):
    """Scales and constants as the kernels keep them (PreparedWeights): s' = fp16 of s / 2^u[n],
    u the channel's unit (its largest |s|, or |constant| where that is stored, in [2^14, 2^15),
    u >= -126); the constant c' is -s'/2 (default zero points), s' ((2^bits - 1) / 2 - z) in
    fp32 (other zero points: exact), or fp16 of (s (2^bits - 1) / 2 + o) / 2^u (offsets); for
    layout 3, 0 or the fp16 constant of `_stored_constant`.  Returns (s', c', u)."""
    mid = np.float32(((1 << w.bits) - 1) / 2)
    constant = _stored_constant(w, layout_version)
    max_abs = np.abs(w.scales).max(axis=1)
    if constant is not None:
        max_abs = np.maximum(max_abs, np.abs(constant).max(axis=1))
    u = np.maximum(_exponent(max_abs) - 15, MIN_CHANNEL_EXPONENT)
    u[max_abs == 0] = 0

    def fp16(x):
        return np.ldexp(x.astype(np.float64), -u[:, None]).astype(np.float32).astype(np.float16).astype(np.float32)

    scales = fp16(w.scales)
    if constant is not None:
        return scales, fp16(constant), u
    if layout_version == TERNARY_LAYOUT:
        return scales, np.zeros_like(scales), u
    if is_symmetric(w):
        return scales, np.float32(-0.5) * scales, u
    return scales, (scales * (mid - w.zero_points.astype(np.float32))).astype(np.float32), u


def lut_gemm(a: np.ndarray, w: QuantizedWeight, bias: np.ndarray | None = None,
             layout_version: int = LAYOUT_VERSION) -> np.ndarray:
    """LutGemm exactly as the kernels compute it, up to fp32 summation order.  a: [M, K]."""
    geo = w.geometry
    a = np.asarray(a, dtype=np.float32)
    if layout_version == TERNARY_LAYOUT:
        return _triple_gemm(a, w, bias)
    tables, half_scale, block_sum, row_exponent = build_tables(a, geo)
    M, n_quads = tables.shape[:2]
    q = np.zeros((w.N, geo.K_pad), dtype=np.uint8)
    q[:, : w.K] = w.q
    quads = q.reshape(w.N, n_quads, QUAD_K)
    quad_idx = np.arange(n_quads)
    quads_per_block = geo.block_k // QUAD_K
    scales, constant, u = channel_units(w)
    y = np.zeros((M, w.N), dtype=np.float64)
    for b in range(geo.n_blocks):
        sl = slice(b * quads_per_block, min((b + 1) * quads_per_block, n_quads))
        total = np.zeros((M, w.N), dtype=np.int64)
        for p in range(w.bits):
            bits = (quads[:, sl] >> p) & 1
            idx = bits[..., 0] | (bits[..., 1] << 1) | (bits[..., 2] << 2) | (bits[..., 3] << 3)
            looked_up = tables[:, quad_idx[sl][None, :], idx]  # [M, N, quads]
            total += looked_up.astype(np.int64).sum(axis=2) << p
        g = geo.group_of_block(b)
        y += total * (scales[:, g][None, :] * half_scale[:, b][:, None]) + constant[:, g][None, :] * block_sum[:, b][:, None]
    return _output(y, row_exponent, u, a, w, bias)


def _triple_gemm(a: np.ndarray, w: QuantizedWeight, bias) -> np.ndarray:
    """Layout 3: per block and channel y' += 2 P s' half_step + c' block_sum, P the sum of the
    looked-up entries of the channel's triples (t = q - 1 summed by the tables)."""
    geo = w.geometry_of(TERNARY_LAYOUT)
    tables, half_scale, block_sum, row_exponent = build_triple_tables(a, geo)
    at = geo.triple_k()
    q = np.concatenate([w.q, np.ones((w.N, 1), np.uint8)], axis=1)[:, np.where(at < 0, w.K, at)].astype(np.int64)
    fields = q[..., 0] + 3 * q[..., 1] + 9 * q[..., 2]  # [N, k_steps, 4]
    scales, constant, u = channel_units(w, TERNARY_LAYOUT)
    y = np.zeros((len(a), w.N), dtype=np.float64)
    step0 = 0
    for b in range(geo.n_blocks):
        steps = slice(step0, step0 + geo.triple_steps_of_block(b))
        step0 = steps.stop
        s_idx = np.arange(steps.start, steps.stop)[:, None]
        looked_up = tables[:, s_idx, np.arange(4)[None, :], fields[:, steps]]  # [M, N, steps, 4]
        total = looked_up.astype(np.int64).sum(axis=(2, 3))
        g = geo.group_of_block(b)
        y += 2 * total * (scales[:, g][None, :] * half_scale[:, b][:, None]) + constant[:, g][None, :] * block_sum[:, b][:, None]
    return _output(y, row_exponent, u, a, w, bias)


def quantize_int8(a: np.ndarray, geo: Geometry):
    """Activation rows a[M, K] as the int8 path quantises them: values int8 [M, K_pad]; steps
    and sums of the finite activations [M, n_blocks] in units of 2^R[m]; integer sums of the
    values [M, n_blocks]; and R [M].

    Block b is scaled by 2^-E (as for tables), then multiplied by 127 / (its largest finite
    |a| times 2^-E) and rounded half to even; NaN and infinities count as 0.
    """
    M = len(a)
    block_of_k, max_abs, exponent, scaled = _blocks_scaled(a, geo)
    max_scaled = np.ldexp(max_abs, -exponent).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(max_scaled > 0, np.float32(127) / max_scaled, np.float32(0)).astype(np.float32)
    values = np.clip(np.rint((scaled * inv[:, block_of_k]).astype(np.float32)), -127, 127).astype(np.int8)
    value_sum = np.zeros((M, geo.n_blocks), dtype=np.int64)
    np.add.at(value_sum, (slice(None), block_of_k), values.astype(np.int64))
    block_sum = np.zeros((M, geo.n_blocks), dtype=np.float64)
    np.add.at(block_sum, (slice(None), block_of_k), scaled.astype(np.float64))
    row_exponent = exponent.max(axis=1)
    to_row = exponent - row_exponent[:, None]
    step = np.ldexp(max_scaled / np.float32(127), to_row).astype(np.float32)
    return values, step, np.ldexp(block_sum, to_row), value_sum, row_exponent


def int8_gemm(a: np.ndarray, w: QuantizedWeight, bias: np.ndarray | None = None,
              layout_version: int = LAYOUT_VERSION) -> np.ndarray:
    """LutGemm's int8 path (prefill on kernels with a dot product) exactly as the kernels compute
    it, up to fp32 summation order: per block and channel
    step * s' * (P - 2^(bits-1) value_sum) + (c' + s'/2) * block_sum with P = sum_k q values;
    layout 3 centres on 1 instead: step * s' * (P - value_sum) + c' * block_sum."""
    geo = w.geometry_of(layout_version)
    values, step, block_sum, value_sum, row_exponent = quantize_int8(a, geo)
    q = np.zeros((w.N, geo.K_pad), dtype=np.int64)
    q[:, : w.K] = w.q
    scales, constant, u = channel_units(w, layout_version)
    if layout_version == TERNARY_LAYOUT:
        offsets, centre = constant.astype(np.float64), 1
    else:
        offsets, centre = constant.astype(np.float64) + scales.astype(np.float64) / 2, 1 << (w.bits - 1)
    y = np.zeros((len(values), w.N), dtype=np.float64)
    for b in range(geo.n_blocks):
        sl = slice(b * geo.block_k, min((b + 1) * geo.block_k, geo.K_pad))
        centred = values[:, sl].astype(np.int64) @ q[:, sl].T - centre * value_sum[:, b][:, None]  # [M, N]
        g = geo.group_of_block(b)
        y += step[:, b][:, None] * scales[:, g][None, :] * centred + offsets[:, g][None, :] * block_sum[:, b][:, None]
    return _output(y, row_exponent, u, np.asarray(a, dtype=np.float32), w, bias)


def _output(y, row_exponent, u, a, w: QuantizedWeight, bias) -> np.ndarray:
    """y' (float64 sums in row and channel units) as the kernels store it: rounded to fp32,
    scaled by 2^(R[m] + u[n]) with one rounding, plus bias, plus the non-finite terms."""
    out = np.ldexp(y.astype(np.float32).astype(np.float64), row_exponent[:, None] + u[None, :])
    with np.errstate(over="ignore"):
        out = out.astype(np.float32)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32)
    return _add_non_finite_terms(a, w, out)


def _add_non_finite_terms(a: np.ndarray, w: QuantizedWeight, y: np.ndarray) -> np.ndarray:
    """y[m, n] += a[m, k] * w[n, k] (fp32) for every NaN or infinite a[m, k], as a float matmul."""
    rows, cols = np.nonzero(~np.isfinite(a))
    if rows.size:
        dequantized = w.dequantize()
        with np.errstate(invalid="ignore", over="ignore"):
            for m, k in zip(rows, cols):
                y[m] += a[m, k] * dequantized[:, k]
    return y


def matmul_dequantized(a: np.ndarray, w: QuantizedWeight, bias: np.ndarray | None = None) -> np.ndarray:
    """The exact product A @ dequantize(W)^T (+ bias), in float64."""
    y = np.asarray(a, dtype=np.float64) @ w.dequantize().astype(np.float64).T
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    return y


def relative_rms(actual, expected) -> float:
    """sqrt(mean((actual - expected)^2) / mean(expected^2)) in float64: the error measure of the
    tests, the demo and verify (whose NMSE is its square)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2) / max(np.mean(expected**2), 1e-300)))
