"""Float MatMul / Gemm with a constant weight -> quantisation (tmac_ort.quantize) -> LutGemm.

Weights that are already ternary ({-s, 0, +s} per row) are packed exactly as bits=2 with
zero point 1."""

from __future__ import annotations

import numpy as np

from tmac_ort.quantize import exact_ternary, quantize

from .common import LutGemmRule, Skip, constant_array, geometry_problem


class FloatMatMulToLutGemm(LutGemmRule):
    pattern_name = "MatMul (float)"
    option_key = "float"
    keeps_source_quantization = False

    def pattern(self, op, a, w):
        return op.MatMul(a, w, _outputs=["y"])

    def plan(self, node, w, **_):
        return self.float_plan(node, constant_array(w))

    def float_plan(self, node, w_kn: np.ndarray | None, bias=None):
        if w_kn is None:
            raise Skip("weight is not constant")
        if w_kn.ndim != 2 or w_kn.dtype not in (np.float32, np.float16):
            raise Skip(f"weight is {w_kn.dtype} of rank {w_kn.ndim}; expected a 2-D float matrix")
        if not np.isfinite(w_kn).all():
            raise Skip("weight holds a NaN or an infinity")
        K, N = w_kn.shape
        bits = self.options.bits_of(node.name)
        # -1, or a group longer than the row: one group per row; else the last group may be short
        group = K if self.options.group_size == -1 or self.options.group_size >= K else self.options.group_size

        def build():  # (the expensive part: rewrite() only)
            w_nk = np.ascontiguousarray(w_kn.T.astype(np.float32))
            ternary = exact_ternary(w_nk)
            return ternary if ternary is not None else quantize(w_nk, bits, group, self.options.method,
                                                                  self.options.symmetric)

        # exact ternary rows are packed as whole-row groups: valid whatever the group option says
        if (why := geometry_problem(K, N, bits, group)) and exact_ternary(w_kn.T.astype(np.float32)) is None:
            raise Skip(why)
        return build, bias


class FloatGemmToLutGemm(FloatMatMulToLutGemm):
    pattern_name = "Gemm (float)"

    def pattern(self, op, a, w):
        return op.Gemm(a, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["y"])

    def plan(self, node, w, **_):
        attr = lambda k, d: node.attributes[k].value if k in node.attributes else d  # noqa: E731
        if attr("transA", 0) != 0 or attr("alpha", 1.0) != 1.0 or attr("beta", 1.0) != 1.0:
            raise Skip("transA, alpha or beta is not the default")
        w_arr = constant_array(w)
        if w_arr is not None and attr("transB", 0):
            w_arr = w_arr.T
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if bias is not None and (bias.shape is None or len(bias.shape) != 1):
            raise Skip("bias C is not a 1-D vector")
        return self.float_plan(node, w_arr, bias)
