"""The onnx-level schema of com.tmac.LutGemm, so onnx.checker and onnx.shape_inference
understand rewritten models.  `register()` is idempotent."""

from __future__ import annotations

import onnx
from onnx import defs

from . import DOMAIN, OP_TYPE, OPSET_VERSION

_P = defs.OpSchema.FormalParameter
_OPTIONAL = defs.OpSchema.FormalParameterOption.Optional
_INT = defs.OpSchema.AttrType.INT


def _infer(ctx) -> None:
    a_type = ctx.get_input_type(0)
    if a_type is None or not a_type.HasField("tensor_type"):
        return
    n = ctx.get_attribute("N")
    out = onnx.TypeProto()
    out.tensor_type.elem_type = a_type.tensor_type.elem_type
    if a_type.tensor_type.HasField("shape"):
        dims = list(a_type.tensor_type.shape.dim)
        if not dims:
            raise onnx.shape_inference.InferenceError("LutGemm: A must have at least one dimension")
        for d in dims[:-1]:
            out.tensor_type.shape.dim.add().CopyFrom(d)
        out.tensor_type.shape.dim.add().dim_value = n.i
    ctx.set_output_type(0, out)


def _schema() -> defs.OpSchema:
    schema = defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        OPSET_VERSION,
        "Y = A @ dequantize(W)^T (+ bias) by table lookup over bit planes; see docs/packed-format.md.",
        inputs=[
            _P("A", "T", "activations [..., K]"),
            _P("packed_weights", "tensor(uint8)", "bit planes: layout 2 [N_pad/32 * K_pad/8, 32*bits] (K-chunked), layout 1 [N_pad/32, K_pad/8, 32*bits]"),
            _P("scales", "S", "per-group scales [N, ceil(K/group_size)]"),
            _P("zero_points", "tensor(uint8)", "integer zero points [N, ceil(K/group_size)]", param_option=_OPTIONAL),
            _P("offsets", "O", "float offsets [N, ceil(K/group_size)]: w = s*q + offset", param_option=_OPTIONAL),
            _P("bias", "T", "bias [N]", param_option=_OPTIONAL),
        ],
        outputs=[_P("Y", "T", "output [..., N]")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "activation type"),
                          ("S", ["tensor(float)", "tensor(float16)"], "scale type"),
                          ("O", ["tensor(float)", "tensor(float16)"], "offset type")],
        attributes=[
            defs.OpSchema.Attribute(name, _INT, doc)
            for name, doc in [
                ("K", "reduction size"),
                ("N", "output channels"),
                ("bits", "bits per weight, 1..4"),
                ("group_size", "weights per scale along K"),
                ("layout_version", "packed layout version (2: K-chunked; 1: tile by tile; 3: ternary triples)"),
            ]
        ],
    )
    schema.set_type_and_shape_inference_function(_infer)
    return schema


def register() -> None:
    if not defs.has(OP_TYPE, OPSET_VERSION, DOMAIN):
        defs.register_schema(_schema())
