"""`tmac-ort inspect`: the quantised layers of a model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .convert import load_model, model_size


def describe(path: Path) -> str:
    model = load_model(path)
    rows, ops = [], Counter()
    for node in model.graph.all_nodes():
        ops[node.op_type] += 1
        a = {k: v.value for k, v in node.attributes.items() if isinstance(v.value, int)}
        if node.op_type == "LutGemm":
            rows.append((node.name, "LutGemm", a.get("bits"), a.get("group_size"), a.get("K"), a.get("N")))
        elif node.op_type == "MatMulNBits":
            rows.append((node.name, "MatMulNBits", a.get("bits"), a.get("block_size"), a.get("K"), a.get("N")))
        elif node.op_type == "MatMul" and node.inputs[1] is not None and node.inputs[1].const_value is not None:
            shape = node.inputs[1].const_value.shape
            rows.append((node.name, f"MatMul {node.inputs[1].const_value.dtype.name}", None, None, shape[0], shape[-1]))
    lines = [f"{path}: {model_size(path) / 1e6:.1f} MB, {sum(ops.values())} nodes"]
    lines.append(f"  {'node':40s} {'kind':18s} {'bits':>4} {'group':>6} {'K':>6} {'N':>7}")
    for name, kind, bits, group, K, N in rows:
        lines.append(f"  {name[:40]:40s} {kind:18s} {bits or '-':>4} {group or '-':>6} {K:>6} {N:>7}")
    lines.append("  op types: " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    return "\n".join(lines)
