"""com.microsoft.MatMulNBits (bits 2 and 4) -> LutGemm, lossless: the same q, scales and zero
points (float zero points, as ORT's HQQ writes them, become offsets -s * z)."""

from __future__ import annotations

import numpy as np

from tmac_ort.matmul_nbits_format import from_matmul_nbits, shape_problem

from .common import LutGemmRule, Skip, constant_array, geometry_problem

ZERO_POINTS, G_IDX, BIAS = 3, 4, 5


class MatMulNBitsToLutGemm(LutGemmRule):
    pattern_name = "MatMulNBits"
    option_key = "matmul_nbits"

    def pattern(self, op, a, b, scales):
        return op.MatMulNBits(a, b, scales, _domain="com.microsoft", _allow_other_inputs=True,
                              _allow_other_attributes=True, _outputs=["y"])

    def plan(self, node, b, scales, **_):
        attrs = {k: node.attributes[k].as_int() for k in ("K", "N", "bits", "block_size") if k in node.attributes}
        if len(attrs) < 4:
            raise Skip("missing K/N/bits/block_size attributes")
        K, N, bits, block = attrs["K"], attrs["N"], attrs["bits"], attrs["block_size"]
        if bits not in (2, 4):
            raise Skip(f"bits={bits}: LutGemm converts 2- and 4-bit MatMulNBits (1-4 bits in general)")
        inputs = list(node.inputs) + [None] * (6 - len(node.inputs))
        if inputs[G_IDX] is not None:
            raise Skip("g_idx (act-order) is not supported")
        b_arr, s_arr = constant_array(b), constant_array(scales)
        zp_arr = constant_array(inputs[ZERO_POINTS])
        if b_arr is None or s_arr is None or (inputs[ZERO_POINTS] is not None and zp_arr is None):
            raise Skip("weights, scales or zero points are not constant")
        if zp_arr is not None and zp_arr.dtype != np.uint8 and not np.issubdtype(zp_arr.dtype, np.floating):
            raise Skip(f"zero points of type {zp_arr.dtype} are not supported")
        if why := geometry_problem(K, N, bits, block):
            raise Skip(why)
        if why := shape_problem(b_arr, s_arr, zp_arr, K, N, bits, block):
            raise Skip(why)
        return (lambda: from_matmul_nbits(b_arr, s_arr, zp_arr, K, N, bits, block)), inputs[BIAS]
