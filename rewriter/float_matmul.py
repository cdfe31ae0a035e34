"""Float MatMul / Gemm with a constant weight -> quantisation (tmac_ort.quantize) -> LutGemm.

Weights that are already ternary ({-s, 0, +s} per row) are packed exactly as bits=2 with
zero point 1."""

from __future__ import annotations

import numpy as np

from tmac_ort.packing import QuantizedWeight
from tmac_ort.quantize import quantize

from .common import LutGemmRule, constant_array, geometry_problem


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


class FloatMatMulToLutGemm(LutGemmRule):
    pattern_name = "MatMul (float)"
    option_key = "float"
    keeps_source_quantization = False

    def pattern(self, op, a, w):
        return op.MatMul(a, w)

    def quantize(self, node, w_kn: np.ndarray, bias=None):
        skip = lambda reason: self.report.skip(node, self.pattern_name, reason)  # noqa: E731
        if why := self.options.excluded(node.name):
            return skip(why)
        if w_kn is None:
            return skip("weight is not constant")
        if w_kn.ndim != 2 or w_kn.dtype not in (np.float32, np.float16):
            return skip(f"weight is {w_kn.dtype} of rank {w_kn.ndim}; expected a 2-D float matrix")
        if not np.isfinite(w_kn).all():
            return skip("weight holds a NaN or an infinity")
        K, N = w_kn.shape
        w_nk = np.ascontiguousarray(w_kn.T.astype(np.float32))
        ternary = exact_ternary(w_nk)
        if ternary is not None:
            return self.accept(node, ternary, bias)
        bits = self.options.bits_of(node.name)
        # -1, or a group longer than the row: one group per row; else the last group may be short
        group = K if self.options.group_size == -1 or self.options.group_size >= K else self.options.group_size
        if why := geometry_problem(K, N, bits, group):
            return skip(why)
        return self.accept(node, quantize(w_nk, bits, group, self.options.method, self.options.symmetric), bias)

    def check(self, context, a, w, **_):
        return self.quantize(context.root, constant_array(w))


class FloatGemmToLutGemm(FloatMatMulToLutGemm):
    pattern_name = "Gemm (float)"

    def pattern(self, op, a, w):
        return op.Gemm(a, w, _allow_other_inputs=True, _allow_other_attributes=True)

    def check(self, context, a, w, **_):
        node = context.root
        attr = lambda k, d: node.attributes[k].value if k in node.attributes else d  # noqa: E731
        if attr("transA", 0) != 0 or attr("alpha", 1.0) != 1.0 or attr("beta", 1.0) != 1.0:
            return self.report.skip(node, self.pattern_name, "transA, alpha or beta is not the default")
        w_arr = constant_array(w)
        if w_arr is not None and attr("transB", 0):
            w_arr = w_arr.T
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if bias is not None and (bias.shape is None or len(bias.shape) != 1):
            return self.report.skip(node, self.pattern_name, "bias C is not a 1-D vector")
        return self.quantize(node, w_arr, bias)
