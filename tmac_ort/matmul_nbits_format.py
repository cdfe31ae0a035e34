"""onnxruntime's com.microsoft.MatMulNBits weight format, both ways.

B is (N, ceil(K/block), block*bits/8) uint8 with values LSB-first within each byte; scales
are (N, blocks); zero points, when present, are packed the same way per row:
(N, ceil(blocks*bits/8)) uint8, default 2^(bits-1).
"""

from __future__ import annotations

import numpy as np

from .packing import QuantizedWeight


def _pack_lsb_first(values: np.ndarray, bits: int) -> np.ndarray:
    """values[..., n] (n a multiple of 8/bits) -> bytes, LSB-first."""
    per_byte = 8 // bits
    v = values.reshape(*values.shape[:-1], -1, per_byte).astype(np.uint8)
    out = np.zeros(v.shape[:-1], dtype=np.uint8)
    for i in range(per_byte):
        out |= v[..., i] << (i * bits)
    return out


def _unpack_lsb_first(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    out = np.stack([(packed >> (i * bits)) & mask for i in range(per_byte)], axis=-1)
    return out.reshape(*packed.shape[:-1], -1)[..., :count].astype(np.uint8)


def to_matmul_nbits(w: QuantizedWeight):
    """(B, scales, zero_points or None) for MatMulNBits with block_size = w.group_size.

    Offsets (w = s*q + o) have no MatMulNBits equivalent and are refused.
    """
    if w.offsets is not None:
        raise ValueError("MatMulNBits has no float offsets; use integer zero points")
    if w.bits not in (2, 4, 8):
        raise ValueError(f"MatMulNBits stores 2, 4 or 8 bits, not {w.bits}")
    per_byte = 8 // w.bits
    n_blocks = w.geometry.n_groups
    if w.group_size % per_byte:
        raise ValueError("group_size must hold whole bytes")
    q = np.zeros((w.N, n_blocks * w.group_size), dtype=np.uint8)  # the last block padded, as ORT pads it
    q[:, : w.K] = w.q
    b = _pack_lsb_first(q.reshape(w.N, n_blocks, w.group_size), w.bits)
    zp = None
    if w.zero_points is not None:
        padded = np.zeros((w.N, -(-n_blocks // per_byte) * per_byte), dtype=np.uint8)
        padded[:, :n_blocks] = w.zero_points
        zp = _pack_lsb_first(padded, w.bits)
    return b, w.scales.astype(np.float32), zp


def shape_problem(b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, K: int, N: int, bits: int,
                  block_size: int) -> str | None:
    """Why B, scales or zero points do not hold what K, N, bits and block_size say, or None."""
    n_blocks = -(-K // block_size)
    expected = {"B": (b, N * n_blocks * (-(-block_size * bits // 8))), "scales": (scales, N * n_blocks)}
    if zero_points is not None:
        zp = np.asarray(zero_points)
        expected["zero points"] = (zp, N * n_blocks if np.issubdtype(zp.dtype, np.floating)
                                   else N * (-(-n_blocks * bits // 8)))
    for name, (array, size) in expected.items():
        if np.asarray(array).size != size:
            return f"{name} holds {np.asarray(array).size} values, expected {size} (K={K}, N={N}, block_size={block_size})"
    return None


def from_matmul_nbits(b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, K: int, N: int,
                      bits: int, block_size: int) -> QuantizedWeight:
    """QuantizedWeight with MatMulNBits' dequantised values (scales kept as float32; float
    zero points become offsets -s * z, equal to fp32 rounding).

    K need not be a multiple of block_size: the last block is padded in B and is the short
    last group of the QuantizedWeight.
    """
    if why := shape_problem(b, scales, zero_points, K, N, bits, block_size):
        raise ValueError(why)
    n_blocks = -(-K // block_size)
    q = _unpack_lsb_first(np.asarray(b, dtype=np.uint8).reshape(N, n_blocks, -1), bits, block_size)
    scales = np.asarray(scales, dtype=np.float32).reshape(N, n_blocks)
    zp = offsets = None
    if zero_points is not None:
        zp_arr = np.asarray(zero_points)
        if np.issubdtype(zp_arr.dtype, np.floating):
            # float zero points (ORT's HQQ): w = s * (q - z) = s * q + o with o = -s * z
            offsets = -scales * zp_arr.astype(np.float32).reshape(N, n_blocks)
        elif zp_arr.dtype == np.uint8:
            zp = _unpack_lsb_first(zp_arr.reshape(N, -1), bits, n_blocks)
        else:
            raise ValueError(f"zero points of type {zp_arr.dtype} are neither packed uint8 nor float")
    return QuantizedWeight(q.reshape(N, -1)[:, :K], scales, bits, block_size, zero_points=zp, offsets=offsets)


def make_matmul_nbits_model(w: QuantizedWeight, accuracy_level: int = 4, leading_dims=("M",), dtype=np.float32):
    """A one-node MatMulNBits model (com.microsoft) computing A @ dequantize(w)^T."""
    from onnx import helper, numpy_helper

    b, scales, zp = to_matmul_nbits(w)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(scales.astype(dtype), "scales")]
    inputs = ["A", "B", "scales"]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "zero_points"))
        inputs.append("zero_points")
    node = helper.make_node("MatMulNBits", inputs, ["Y"], domain="com.microsoft", K=w.K, N=w.N, bits=w.bits,
                            block_size=w.group_size, accuracy_level=accuracy_level)
    graph = helper.make_graph([node], "matmul_nbits", [helper.make_tensor_value_info("A", elem, [*leading_dims, w.K])],
                              [helper.make_tensor_value_info("Y", elem, [*leading_dims, w.N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return model
