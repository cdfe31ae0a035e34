"""Quantising float weights: round-to-nearest, and a least-squares search.

`quantize(w, bits, group, method)` is what the float rules of the rewriter call:

- "rtn": round-to-nearest over the group's range (packing.quantize_rtn), what MatMulNBits'
  default quantiser does;
- "mse": per group, the scale s and offset o of w ~ s*q + o with the least squared error that
  a small search finds, without calibration data.  Several clipping ranges are tried (a
  slightly narrower range often rounds the bulk of a bell-shaped group better than the full
  one); for each, q and the least-squares (s, o) given q are alternated, and the best result
  per group is kept.  The group's full [min, max] range is one of the candidates, so the
  squared error is never above round-to-nearest's over that range (up to the fp16 rounding of
  s and o: tests/test_quantize.py).  It is the same family as llama.cpp's k-quant search,
  written here for LutGemm's float offsets.

The squared error of the weights is not what a model feels: on SmolLM2 "mse" is well ahead at
4 bits (the default) and behind round-to-nearest at 3 bits, group 128 (docs/quality.md).

"mse" returns scales and offsets that are exact fp16 values wherever they are within fp16's
range (q is assigned with the rounded values), so the file stores them as fp16 without
changing a single number the kernel computes with (nodes.stored_scales_and_offsets).
"""

from __future__ import annotations

import numpy as np

from .packing import Geometry, QuantizedWeight, padded_groups, quantize_rtn

METHODS = ("rtn", "mse")
DEFAULT_METHOD = "mse"

# Clipping candidates as fractions of the group's (min, max) range, and alternations of
# q <- round((w - o) / s) and (s, o) <- least squares per candidate.  Measured on three
# SmolLM2-135M layers at 2-4 bits, groups 32 and 128: 6 alternations instead of 3 lower the
# squared error by up to 2.5% (mean 0.9%); beyond that, 10 or 20 alternations, or 21
# candidates, lower it by < 1% more (mean 0.2-0.3%) for 1.6-3x the time.
CLIP_FRACTIONS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
ALTERNATIONS = 6
ROWS_PER_CHUNK = 256  # rows quantised together: the working set stays in cache


def round_to_fp16(values: np.ndarray) -> np.ndarray:
    """values rounded to the nearest fp16 number (subnormals included) where they are within
    fp16's range; values beyond it are left as they are (the tensor is then stored as fp32).
    A group's scale below fp16's normal range (2^-14) loses relative precision, but such a group
    only holds weights below ~1e-4 of a typical layer's; SmolLM2's 1-bit model kept a few and,
    before subnormals were allowed, stored whole tensors as fp32 for them (2.49 instead of 2.0
    bits per weight)."""
    values = np.asarray(values, dtype=np.float32)
    return np.where(np.abs(values) <= 65504, values.astype(np.float16).astype(np.float32), values)


def _grouped(w: np.ndarray, geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """w[N, K] as [N, n_groups, group] padded with zeros, and the mask of real elements."""
    groups = padded_groups(w, geo)
    mask = np.zeros(groups.shape[1] * groups.shape[2], dtype=np.float32)
    mask[:w.shape[1]] = 1
    return groups, np.broadcast_to(mask.reshape(1, *groups.shape[1:]), groups.shape)


def _assign(w, s, o, levels):
    safe = np.where(s > 0, s, 1.0)
    return np.clip(np.rint((w - o[..., None]) / safe[..., None]), 0, levels)


def _least_squares(w, q, mask, s, o):
    """(s, o) minimising sum(mask * (w - s*q - o)^2) per group; where every q is equal, s is
    kept and o is the mean residual."""
    n = mask.sum(-1)
    sq, sw = (q * mask).sum(-1), (w * mask).sum(-1)
    sqq, sqw = (q * q * mask).sum(-1), (q * w * mask).sum(-1)
    det = n * sqq - sq * sq
    ok = det > 1e-6 * np.maximum(n * sqq, 1e-30)
    s_new = np.where(ok, (n * sqw - sq * sw) / np.where(ok, det, 1), s)
    ok &= s_new > 0
    s_new = np.where(ok, s_new, s)
    o_new = (sw - s_new * sq) / np.maximum(n, 1)
    return s_new, o_new


def _squared_error(w, q, mask, s, o):
    return (((w - s[..., None] * q - o[..., None]) ** 2) * mask).sum(-1)


def _mse_chunk(w, mask, bits):
    levels = (1 << bits) - 1
    lo, hi = (np.where(mask > 0, w, np.inf).min(-1), np.where(mask > 0, w, -np.inf).max(-1))
    span = np.maximum(hi - lo, 0)
    best = None
    for fraction in CLIP_FRACTIONS:
        s = np.where(span > 0, span * fraction / levels, 1.0).astype(np.float32)
        # the full range exactly (fraction 1), else the clipped range centred
        o = lo if fraction == 1.0 else (lo + hi) / 2 - s * levels / 2
        for _ in range(ALTERNATIONS):
            q = _assign(w, s, o, levels)
            s, o = _least_squares(w, q, mask, s, o)
        s, o = round_to_fp16(s), round_to_fp16(o)
        q = _assign(w, s, o, levels)
        err = _squared_error(w, q, mask, s, o)
        if best is None:
            best = [err, s, o, q]
            continue
        better = err < best[0]
        best[0] = np.where(better, err, best[0])
        best[1] = np.where(better, s, best[1])
        best[2] = np.where(better, o, best[2])
        best[3] = np.where(better[..., None], q, best[3])
    return best[1], best[2], best[3]


def quantize_mse(w: np.ndarray, bits: int, group_size: int) -> QuantizedWeight:
    """The least-squares search described in the module docstring; offsets w = s*q + o."""
    w = np.asarray(w, dtype=np.float32)
    N, K = w.shape
    geo = Geometry(K, N, bits, group_size)
    scales = np.empty((N, geo.n_groups), np.float32)
    offsets = np.empty((N, geo.n_groups), np.float32)
    q = np.empty((N, geo.n_groups * group_size), np.uint8)
    for start in range(0, N, ROWS_PER_CHUNK):
        rows = slice(start, min(N, start + ROWS_PER_CHUNK))
        groups, mask = _grouped(w[rows], geo)
        s, o, q_rows = _mse_chunk(groups, mask, bits)
        scales[rows], offsets[rows] = s, o
        q[rows] = q_rows.reshape(q_rows.shape[0], -1)
    return QuantizedWeight(q[:, :K], scales, bits, group_size, offsets=offsets)


def exact_ternary(w_nk: np.ndarray) -> QuantizedWeight | None:
    """w[N, K] whose rows take only the values {-s, 0, +s}, as bits=2 / zero point 1, or None."""
    s = np.abs(w_nk).max(axis=1)
    if not (s > 0).all():
        return None
    ratio = w_nk / s[:, None]
    if not np.isin(ratio, (-1.0, 0.0, 1.0)).all():
        return None
    K = w_nk.shape[1]
    q = (ratio + 1).astype(np.uint8)
    return QuantizedWeight(q, s.reshape(-1, 1), 2, K, zero_points=np.ones((w_nk.shape[0], 1), np.uint8))


def quantize(w: np.ndarray, bits: int, group_size: int, method: str = DEFAULT_METHOD,
             symmetric: bool = True) -> QuantizedWeight:
    """W[N, K] quantised by `method` (METHODS); `symmetric` applies to "rtn" only."""
    if method == "rtn":
        return quantize_rtn(w, bits, group_size, symmetric)
    if method == "mse":
        return quantize_mse(w, bits, group_size)
    raise ValueError(f"unknown quantisation method {method!r}; choose one of {', '.join(METHODS)}")
