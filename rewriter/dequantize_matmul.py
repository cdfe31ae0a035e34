"""DequantizeLinear (blocked along K, or per output channel; int4/uint4/int2/uint2) -> MatMul
becomes LutGemm, lossless: w = s * (q - z) is kept exactly (signed q shifted to unsigned)."""

from __future__ import annotations

import numpy as np

from tmac_ort.packing import QuantizedWeight

from .common import LutGemmRule, Skip, constant_array, geometry_problem

BITS_OF = {"INT4": 4, "UINT4": 4, "INT2": 2, "UINT2": 2}


class DequantizeLinearMatMulToLutGemm(LutGemmRule):
    pattern_name = "DequantizeLinear+MatMul"
    option_key = "dequantize_matmul"

    def pattern(self, op, a, w_q, scale):
        return op.MatMul(a, op.DequantizeLinear(w_q, scale, _allow_other_inputs=True, _allow_other_attributes=True,
                                                _outputs=["w"]), _outputs=["y"])

    def plan(self, node, w_q, scale, w, **_):
        dq = w.producer()
        dtype = w_q.dtype.name if w_q.dtype is not None else "?"
        if dtype not in BITS_OF:
            raise Skip(f"{dtype} weights: LutGemm converts int4/uint4/int2/uint2")
        bits = BITS_OF[dtype]
        q = constant_array(w_q)
        s = constant_array(scale)
        zp_value = dq.inputs[2] if len(dq.inputs) > 2 else None
        zp = constant_array(zp_value) if zp_value is not None else None
        if q is None or s is None or (zp_value is not None and zp is None):
            raise Skip("quantised weight, scale or zero point is not constant")
        if q.ndim != 2:
            raise Skip(f"weight of rank {q.ndim}; expected [K, N]")
        K, N = q.shape
        axis = dq.attributes["axis"].as_int() if "axis" in dq.attributes else 1
        block = dq.attributes["block_size"].as_int() if "block_size" in dq.attributes else 0
        if block > 0 and axis == 0 and s.shape == (-(-K // block), N):  # the last block may be short
            group = block
        elif block == 0 and s.ndim == 1 and s.shape == (N,) and axis in (1, -1):
            group, s = K, s.reshape(1, N)
            zp = zp.reshape(1, N) if zp is not None else None
        else:
            raise Skip(f"scale layout (axis={axis}, block_size={block}, shape {s.shape}) is not blocked along K")
        if why := geometry_problem(K, N, bits, group):
            raise Skip(why)
        signed = dtype.startswith("INT")
        shift = (1 << (bits - 1)) if signed else 0
        q_u = (q.astype(np.int16) + shift).astype(np.uint8).T
        z = (zp.astype(np.int16) + shift).astype(np.uint8).T if zp is not None else np.full((N, s.shape[0]), shift, np.uint8)
        qw = QuantizedWeight(np.ascontiguousarray(q_u), s.astype(np.float32).T, bits, group, zero_points=z)
        return (lambda: qw), None
