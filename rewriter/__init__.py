"""Graph rewriter: quantised and float MatMul patterns -> com.tmac.LutGemm.

One onnxscript rewrite rule per source pattern (see the modules beside this one);
`rewrite_model` applies them all to an onnx_ir model in place and reports what it did.
Installed as `tmac_ort.rewriter` (the mapping is in pyproject.toml).
"""

from __future__ import annotations

from collections import Counter

import onnx_ir as ir
from onnx_ir.passes import common as common_passes
from onnxscript.rewriter import pattern

from tmac_ort import DOMAIN, OP_TYPE, OPSET_VERSION
from tmac_ort.nodes import constant_input_bytes

from .common import RewriteOptions, RewriteReport
from .dequantize_matmul import DequantizeLinearMatMulToLutGemm
from .float_matmul import FloatGemmToLutGemm, FloatMatMulToLutGemm
from .matmul_nbits import MatMulNBitsToLutGemm

# Adding a source pattern: a rule file beside this one (a LutGemmRule with pattern() and
# plan()), and its class here.  The order matters: the first rule to skip a node gives its
# reason (the most specific first).
RULES = (MatMulNBitsToLutGemm, DequantizeLinearMatMulToLutGemm, FloatMatMulToLutGemm, FloatGemmToLutGemm)
PATTERN_KEYS = tuple(dict.fromkeys(rule.option_key for rule in RULES))


def _op_counts(model: ir.Model) -> Counter:
    return Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in ir.traversal.RecursiveGraphIterator(model.graph)
    )


# the ops a rule starts from (a DequantizeLinear -> MatMul is counted by its MatMul)
CANDIDATE_OPS = ("MatMul", "Gemm", "MatMulNBits")


def count_candidates(model: ir.Model) -> int:
    """Nodes that a rule may convert: the total of a progress bar."""
    return sum(node.op_type in CANDIDATE_OPS for node in ir.traversal.RecursiveGraphIterator(model.graph))


def _lut_gemm_storage(model: ir.Model) -> tuple[int, int]:
    """(K * N, bytes of the weight inputs) summed over the LutGemm nodes."""
    weights = stored = 0
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.domain == DOMAIN and node.op_type == OP_TYPE:
            weights += node.attributes["K"].value * node.attributes["N"].value
            stored += constant_input_bytes(node, range(1, 5)) or 0
    return weights, stored


def _weight_initializers(model: ir.Model) -> dict[str, list[ir.Value]]:
    """The initializers each candidate node reads as its weight, directly or through a
    DequantizeLinear, by node name."""
    found = {}
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        if node.op_type in CANDIDATE_OPS and node.name and len(node.inputs) > 1 and node.inputs[1] is not None:
            values = [v for v in node.inputs[1:] if v is not None and v.is_initializer()]
            producer = node.inputs[1].producer()
            if producer is not None and producer.op_type == "DequantizeLinear":
                values += [v for v in producer.inputs if v is not None and v.is_initializer()]
            found[node.name] = values
    return found


def _still_shared(model: ir.Model, report: RewriteReport, sources: dict[str, list[ir.Value]]) -> list:
    """(node, initializer, bytes) for converted nodes whose source weight other nodes still read
    (a tied embedding: onnxruntime-genai's GatherBlockQuantized reads the lm_head's blocks), so
    the file keeps it beside the packed copy."""
    kept = model.graph.initializers
    return [(name, v.name, v.const_value.nbytes) for name in report.converted_nodes for v in sources.get(name, ())
            if v.name in kept and kept[v.name] is v and v.const_value is not None and v.const_value.nbytes >= 1 << 20]


def rewrite_model(model: ir.Model, options: RewriteOptions | None = None, progress=None) -> RewriteReport:
    """Replaces every supported MatMul pattern of `model` (in place) by LutGemm; `progress`, if
    given, is called with each converted node's name."""
    options = options or RewriteOptions()
    unknown = set(options.patterns or ()) - set(PATTERN_KEYS)
    if unknown:
        raise ValueError(f"unknown source pattern(s) {sorted(unknown)}; choose from {', '.join(PATTERN_KEYS)}")
    report = RewriteReport(ops_before=_op_counts(model))
    sources = _weight_initializers(model)
    rules = [rule_class.rule(options, report, progress) for rule_class in RULES if rule_class.enabled(options)]
    pattern.RewriteRuleSet(rules).apply_to_model(model)
    common_passes.RemoveUnusedNodesPass()(model)
    common_passes.RemoveUnusedOpsetsPass()(model)
    report.shared_weights = _still_shared(model, report, sources)
    if report.converted:
        model.opset_imports[DOMAIN] = OPSET_VERSION
    report.ops_after = _op_counts(model)
    report.lut_gemm_weights, report.lut_gemm_bytes = _lut_gemm_storage(model)
    return report


# pattern names of the rules that keep a quantised source's numbers
SOURCE_QUANTIZED_PATTERNS = tuple(rule.pattern_name for rule in RULES if rule.keeps_source_quantization)

__all__ = ["RewriteOptions", "RewriteReport", "rewrite_model", "count_candidates", "RULES", "PATTERN_KEYS"]
