"""Numpy references for LutGemm.

`build_tables` and `lut_gemm` reproduce the kernel's arithmetic (int8 tables, integer
lookups, fp16 per-group scales in power-of-two units, fp32 accumulation) so the C++ kernels can be checked tightly; `matmul_dequantized` is
the exact math the op approximates (A @ dequantize(W)^T).
"""

from __future__ import annotations

import math

import numpy as np

from .packing import QUAD_K, QuantizedWeight, Geometry


def build_tables(a: np.ndarray, geo: Geometry):
    """Tables of activation rows a[M, K]: int8 [M, K_pad/4, 16], half steps and block sums [M, n_blocks].

    Entry i of the table of quad (a0..a3) is sum_j (bit j of i ? a_j : -a_j) over the
    quantisation step max_quad(sum |a_j|) / 127 of its block, rounded half to even.
    """
    a = np.asarray(a, dtype=np.float32)
    M = a.shape[0]
    padded = np.zeros((M, geo.K_pad), dtype=np.float32)
    padded[:, : geo.K] = a
    v = padded.reshape(M, -1, QUAD_K)
    abs_sum = ((np.abs(v[..., 0]) + np.abs(v[..., 1])) + np.abs(v[..., 2])) + np.abs(v[..., 3])
    quads_per_block = geo.block_k // QUAD_K
    n_quads = v.shape[1]
    block_of_quad = np.arange(n_quads) // quads_per_block
    max_abs = np.zeros((M, geo.n_blocks), dtype=np.float32)
    np.maximum.at(max_abs, (slice(None), block_of_quad), abs_sum)
    with np.errstate(divide="ignore"):
        inv = np.where(max_abs > 0, np.float32(127) / max_abs, np.float32(0)).astype(np.float32)
    block_sum = np.zeros((M, geo.n_blocks), dtype=np.float32)
    np.add.at(block_sum, (slice(None), np.arange(geo.K_pad) // geo.block_k), padded)
    tables = np.zeros((M, n_quads, 16), dtype=np.int8)
    inv_q = inv[:, block_of_quad]
    for i in range(8):
        e = np.where(i & 1, v[..., 0], -v[..., 0]) + np.where(i & 2, v[..., 1], -v[..., 1])
        e = (e + np.where(i & 4, v[..., 2], -v[..., 2])) - v[..., 3]
        q = np.clip(np.rint(e * inv_q), -127, 127).astype(np.int8)
        tables[..., i] = q
        tables[..., 15 - i] = -q
    return tables, (max_abs / np.float32(254)).astype(np.float32), block_sum


def _constant_term(w: QuantizedWeight) -> np.ndarray:
    """s * (2^bits - 1) / 2 + o, with o = -s * z for zero points (see docs/packed-format.md).

    For the default zero point 2^(bits-1) this is exactly -s/2, which the kernels use as is.
    """
    mid = np.float32(((1 << w.bits) - 1) / 2)
    if w.offsets is not None:
        return w.scales * mid + w.offsets
    default_zero = np.float32(1 << (w.bits - 1))
    z = w.zero_points.astype(np.float32) if w.zero_points is not None else default_zero
    return np.where(z == default_zero, np.float32(-0.5) * w.scales, w.scales * mid - w.scales * z).astype(np.float32)


def as_fp16_units(x: np.ndarray) -> np.ndarray:
    """x as the kernels keep it: fp16 in units of a power of two that puts max |x| just under 2^15."""
    x = np.asarray(x, dtype=np.float32)
    finite = np.abs(x[np.isfinite(x)])
    max_abs = float(finite.max()) if finite.size else 0.0
    unit = np.float32(1.0) if max_abs == 0.0 else np.float32(math.ldexp(1.0, math.frexp(max_abs)[1] - 15))
    return (x / unit).astype(np.float16).astype(np.float32) * unit


def lut_gemm(a: np.ndarray, w: QuantizedWeight, bias: np.ndarray | None = None) -> np.ndarray:
    """LutGemm exactly as the kernels compute it, up to fp32 summation order.  a: [M, K]."""
    geo = w.geometry
    a = np.asarray(a, dtype=np.float32)
    tables, half_scale, block_sum = build_tables(a, geo)
    M, n_quads = tables.shape[:2]
    q = np.zeros((w.N, geo.K_pad), dtype=np.uint8)
    q[:, : w.K] = w.q
    quads = q.reshape(w.N, n_quads, QUAD_K)
    quad_idx = np.arange(n_quads)
    quads_per_block = geo.block_k // QUAD_K
    constant = as_fp16_units(_constant_term(w))
    scales = as_fp16_units(w.scales)
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
    if bias is not None:
        y += np.asarray(bias, dtype=np.float32)
    return y.astype(np.float32)


def matmul_dequantized(a: np.ndarray, w: QuantizedWeight, bias: np.ndarray | None = None) -> np.ndarray:
    """The exact product A @ dequantize(W)^T (+ bias), in float64."""
    y = np.asarray(a, dtype=np.float64) @ w.dequantize().astype(np.float64).T
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    return y
