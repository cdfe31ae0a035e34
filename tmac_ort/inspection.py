"""`tmac-ort inspect`: the matmul layers of a model (or of every model in a folder), how each
is quantised and what it stores per weight."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx_ir as ir

from . import OP_TYPE
from .convert import load_model, model_size
from .nodes import constant_input_bytes


def _stored_bits(node: ir.Node, inputs: range, weights: int) -> float | None:
    """Bits per weight of the node's constant inputs in `inputs` (planes/blocks, scales, ...)."""
    stored = constant_input_bytes(node, inputs)
    return None if not weights or stored is None else 8 * stored / weights


def _ints(node: ir.Node) -> dict[str, int]:
    return {k: v.value for k, v in node.attributes.items() if isinstance(v.value, int)}


def layer_row(node: ir.Node) -> tuple | None:
    """(name, kind, bits, group, K, N, bits per weight) of a matmul layer, or None."""
    a = _ints(node)
    if node.op_type == OP_TYPE:
        K, N = a.get("K"), a.get("N")
        return node.name, OP_TYPE, a.get("bits"), a.get("group_size"), K, N, _stored_bits(node, range(1, 5), K * N)
    if node.op_type == "MatMulNBits":
        K, N = a.get("K"), a.get("N")
        return node.name, "MatMulNBits", a.get("bits"), a.get("block_size"), K, N, _stored_bits(node, range(1, 4), K * N)
    if node.op_type not in ("MatMul", "Gemm") or len(node.inputs) < 2 or node.inputs[1] is None:
        return None
    weight = node.inputs[1]
    producer = weight.producer()
    if producer is not None and producer.op_type == "DequantizeLinear" and producer.inputs[0].const_value is not None:
        q = producer.inputs[0].const_value
        K, N = q.shape[0], q.shape[-1]
        block = _ints(producer).get("block_size") or None
        bits = q.dtype.bitwidth
        return (node.name, f"DequantizeLinear {q.dtype.name.lower()}", bits, block, K, N,
                _stored_bits(producer, range(0, 3), K * N))
    if weight.const_value is not None and len(weight.const_value.shape) == 2:
        K, N = weight.const_value.shape
        if node.op_type == "Gemm" and a.get("transB"):
            K, N = N, K
        return node.name, f"{node.op_type} {weight.const_value.dtype.name.lower()}", None, None, K, N, None
    return None


def describe_model(path: Path) -> str:
    model = load_model(path)
    rows, ops = [], Counter()
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        ops[node.op_type] += 1
        if (row := layer_row(node)) is not None:
            rows.append(row)
    width = max([4, *(len(r[0] or "") for r in rows)])
    lines = [f"{path}: {model_size(path) / 1e6:.1f} MB, {sum(ops.values())} nodes"]
    if rows:
        lines.append(f"  {'node':{width}s}  {'kind':22s} {'bits':>4} {'group':>6} {'K':>6} {'N':>7} {'bits/weight':>11}")
    for name, kind, bits, group, K, N, per_weight in rows:
        stored = "-" if per_weight is None else f"{per_weight:.2f}"
        lines.append(f"  {name or '-':{width}s}  {kind:22s} {bits or '-':>4} {group or '-':>6} {K:>6} {N:>7} {stored:>11}")
    lines.append("  op types: " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    return "\n".join(lines)


def describe(path: Path) -> str:
    """One model, or every .onnx model of a folder (onnxruntime-genai, Optimum)."""
    path = Path(path)
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if not models:
            raise ValueError(f"{path}: no .onnx model in this folder")
        return "\n\n".join(describe_model(m) for m in models)
    return describe_model(path)
