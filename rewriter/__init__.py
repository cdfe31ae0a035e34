"""Graph rewriter: quantised and float MatMul patterns -> com.tmac.LutGemm.

One onnxscript rewrite rule per source pattern (see the modules beside this one);
`rewrite_model` applies them all to an onnx_ir model in place and reports what it did.
Installed as `tmac_ort.rewriter`.
"""

from __future__ import annotations

from collections import Counter

import onnx_ir as ir
from onnx_ir.passes import common as common_passes
from onnxscript.rewriter import pattern

from tmac_ort import DOMAIN, OPSET_VERSION

from .common import RewriteOptions, RewriteReport
from .dequantize_matmul import DequantizeLinearMatMulToLutGemm
from .float_matmul import FloatGemmToLutGemm, FloatMatMulToLutGemm
from .matmul_nbits import MatMulNBitsToLutGemm

RULES = (MatMulNBitsToLutGemm, DequantizeLinearMatMulToLutGemm, FloatMatMulToLutGemm, FloatGemmToLutGemm)


def _op_counts(model: ir.Model) -> Counter:
    return Counter(
        f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        for node in ir.traversal.RecursiveGraphIterator(model.graph)
    )


def rewrite_model(model: ir.Model, options: RewriteOptions | None = None, progress=None) -> RewriteReport:
    """Replaces every supported MatMul pattern of `model` (in place) by LutGemm."""
    options = options or RewriteOptions()
    report = RewriteReport(ops_before=_op_counts(model))
    rules = [rule_class.rule(options, report, progress) for rule_class in RULES if rule_class.enabled(options)]
    pattern.RewriteRuleSet(rules).apply_to_model(model)
    common_passes.RemoveUnusedNodesPass()(model)
    common_passes.RemoveUnusedOpsetsPass()(model)
    if report.converted:
        model.opset_imports[DOMAIN] = OPSET_VERSION
    report.ops_after = _op_counts(model)
    return report


__all__ = ["RewriteOptions", "RewriteReport", "rewrite_model", "RULES"]
