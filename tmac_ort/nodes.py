"""Building LutGemm nodes and small LutGemm models (onnx_ir)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from . import DOMAIN, OP_TYPE, OPSET_VERSION
from .packing import LAYOUT_VERSION, TERNARY_LAYOUT, QuantizedWeight


def layout_for(w: QuantizedWeight, ternary_layout: int = LAYOUT_VERSION) -> int:
    """The layout a weight is written in: `ternary_layout` (3: base-3 triples, about 1.7 bits a
    weight) where the weight is ternary, else the bit planes of LAYOUT_VERSION."""
    return TERNARY_LAYOUT if ternary_layout == TERNARY_LAYOUT and w.ternary else LAYOUT_VERSION


def lut_gemm_attributes(w: QuantizedWeight, layout_version: int = LAYOUT_VERSION) -> dict[str, int]:
    return {
        "K": w.K,
        "N": w.N,
        "bits": w.bits,
        "group_size": w.group_size,
        "layout_version": layout_version,
    }


def constant_input_bytes(node: ir.Node, inputs: range) -> int | None:
    """Bytes of the node's inputs at `inputs` (absent optional ones count 0), or None when one
    of them is not a constant: what a quantised matmul stores for its weight."""
    values = [node.inputs[i] for i in inputs if i < len(node.inputs) and node.inputs[i] is not None]
    if any(v.const_value is None for v in values):
        return None
    return sum(v.const_value.nbytes for v in values)


def _fp16_if_exact(values: np.ndarray) -> np.ndarray | None:
    with np.errstate(over="ignore"):  # values beyond fp16 become inf, which is not exact
        half = values.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), values) else None


def stored_scales_and_offsets(w: QuantizedWeight) -> tuple[np.ndarray, np.ndarray | None]:
    """Scales and offsets in the type the file keeps them in: fp16 when every value of both is
    an exact fp16 number (the "mse" quantiser chooses such values), else float32.  The file
    holds exactly the numbers the quantiser (or the source model) chose; the kernel rounds
    them to fp16 in its own units (lut_gemm.cc), so fp16 is all the precision it uses."""
    scales = np.asarray(w.scales, np.float32)
    offsets = None if w.offsets is None else np.asarray(w.offsets, np.float32)
    half = [_fp16_if_exact(v) for v in (scales, offsets) if v is not None]
    if all(h is not None for h in half):
        return half[0], (half[1] if offsets is not None else None)
    return scales, offsets


def lut_gemm_weight_inputs(w: QuantizedWeight, layout_version: int = LAYOUT_VERSION) -> list[tuple[str, np.ndarray] | None]:
    """LutGemm inputs 1-4 (packed_weights, scales, zero_points, offsets) as (name suffix, array),
    None for an absent optional input, trailing absences dropped.  Shared by every producer."""
    scales, offsets = stored_scales_and_offsets(w)
    inputs = [("lut_packed", w.pack(layout_version)), ("lut_scales", scales), None, None]
    if w.zero_points is not None:
        inputs[2] = ("lut_zero_points", w.zero_points)
    if offsets is not None:
        inputs[3] = ("lut_offsets", offsets)
    while inputs[-1] is None:
        inputs.pop()
    return inputs


def lut_gemm_initializers(w: QuantizedWeight, prefix: str, layout_version: int = LAYOUT_VERSION) -> list[ir.Value | None]:
    """The weight inputs of `lut_gemm_weight_inputs` as initializer values."""
    def const(suffix: str, array: np.ndarray) -> ir.Value:
        value = ir.Value(name=f"{prefix}.{suffix}", const_value=ir.tensor(array, name=f"{prefix}.{suffix}"))
        value.shape = ir.Shape(array.shape)
        value.type = ir.TensorType(ir.DataType.from_numpy(array.dtype))
        return value

    return [None if item is None else const(*item) for item in lut_gemm_weight_inputs(w, layout_version)]


def make_lut_gemm_model(
    w: QuantizedWeight,
    leading_dims: tuple = ("M",),
    dtype=np.float32,
    bias: np.ndarray | None = None,
    layout_version: int = LAYOUT_VERSION,
) -> onnx.ModelProto:
    """A one-node model Y = LutGemm(A, w) with A of shape [*leading_dims, K] (layout 3 for a
    ternary w on request)."""
    elem = ir.DataType.from_numpy(np.dtype(dtype))
    a = ir.Value(name="A", shape=ir.Shape([*leading_dims, w.K]), type=ir.TensorType(elem))
    y = ir.Value(name="Y", shape=ir.Shape([*leading_dims, w.N]), type=ir.TensorType(elem))
    inputs = [a, *lut_gemm_initializers(w, "W", layout_version)]
    initializers = [v for v in inputs[1:] if v is not None]
    if bias is not None:
        while len(inputs) < 5:
            inputs.append(None)
        b = np.asarray(bias, dtype=dtype)
        bias_value = ir.Value(name="bias", const_value=ir.tensor(b, name="bias"))
        bias_value.shape = ir.Shape(b.shape)
        bias_value.type = ir.TensorType(elem)
        inputs.append(bias_value)
        initializers.append(bias_value)
    node = ir.Node(DOMAIN, OP_TYPE, inputs, attributes=[ir.AttrInt64(k, v) for k, v in lut_gemm_attributes(w, layout_version).items()],
                   outputs=[y], name="lut_gemm")
    graph = ir.Graph([a], [y], nodes=[node], initializers=initializers, opset_imports={"": 21, DOMAIN: OPSET_VERSION},
                     name="lut_gemm")
    return ir.serde.serialize_model(ir.Model(graph, ir_version=10, producer_name="tmac-ort"))
