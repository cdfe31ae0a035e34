"""What every rule shares: options, the report, name filters, emitting a LutGemm node."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from tmac_ort import DOMAIN, OP_TYPE, OPSET_VERSION
from tmac_ort.nodes import layout_for, lut_gemm_attributes, lut_gemm_weight_inputs
from tmac_ort.packing import LAYOUT_VERSION, TERNARY_LAYOUT, Geometry, QuantizedWeight
from tmac_ort.quantize import DEFAULT_METHOD, METHODS


@dataclass
class RewriteOptions:
    """Options of `tmac-ort rewrite`.

    bits / group_size / method / symmetric apply where weights are quantised here (float
    MatMul/Gemm; method: tmac_ort.quantize.METHODS, symmetric for "rtn" only); MatMulNBits and
    DequantizeLinear sources keep their own quantisation, losslessly.
    include / exclude are regular expressions on node names (exclude wins);
    bits_for maps a node-name regex to the bit count for those nodes (mixed precision).
    patterns selects the source patterns by the rules' option keys (rewriter.PATTERN_KEYS:
    "matmul_nbits", "dequantize_matmul", "float"); None = all.
    ternary_layout: 3 writes ternary weights (three levels at 2 bits) as base-3 triples, 1.67
    bits a weight, read by the avx512vnni (AVX-512 VBMI) and NEON kernels and run by the
    portable kernel on AVX2-only CPUs; 2 (default) as two bit planes, fast everywhere.
    """

    bits: int = 4
    group_size: int = 128
    symmetric: bool = True
    method: str = DEFAULT_METHOD
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    bits_for: dict[str, int] = field(default_factory=dict)
    patterns: tuple[str, ...] | None = None
    ternary_layout: int = LAYOUT_VERSION

    def __post_init__(self):
        if self.ternary_layout not in (LAYOUT_VERSION, TERNARY_LAYOUT):
            raise ValueError(f"--ternary-layout must be {LAYOUT_VERSION} (bit planes) or {TERNARY_LAYOUT} (triples), "
                             f"got {self.ternary_layout}")
        if self.bits not in (1, 2, 3, 4):
            raise ValueError(f"--bits must be 1, 2, 3 or 4, got {self.bits}")
        if self.group_size != -1 and (self.group_size <= 0 or self.group_size % 8):
            raise ValueError(f"--group-size must be a positive multiple of 8 (or -1 for whole rows), got {self.group_size}")
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for regex in [*self.include, *self.exclude, *self.bits_for]:
            try:
                re.compile(regex)
            except re.error as e:
                raise ValueError(f"bad regular expression {regex!r}: {e}") from None
        for regex, bits in self.bits_for.items():
            if bits not in (1, 2, 3, 4):
                raise ValueError(f"bits for {regex!r} must be 1..4, got {bits}")

    def excluded(self, name: str) -> str | None:
        """Why the node `name` is left alone by the user's filters, or None."""
        if any(re.search(r, name) for r in self.exclude):
            return "excluded by --exclude"
        if self.include and not any(re.search(r, name) for r in self.include):
            return "not matched by --include"
        return None

    def bits_of(self, name: str) -> int:
        for regex, bits in self.bits_for.items():
            if re.search(regex, name):
                return bits
        return self.bits


@dataclass
class RewriteReport:
    converted: Counter = field(default_factory=Counter)  # pattern -> nodes converted
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (pattern, reason)
    ops_before: Counter = field(default_factory=Counter)
    ops_after: Counter = field(default_factory=Counter)
    kept_source_quantization: int = 0  # converted nodes whose source was quantised (lossless)
    converted_nodes: list[str] = field(default_factory=list)
    shared_weights: list[tuple[str, str, int]] = field(default_factory=list)  # node, initializer, bytes kept
    lut_gemm_weights: int = 0  # K * N summed over the model's LutGemm nodes
    lut_gemm_bytes: int = 0  # their packed planes, scales, zero points and offsets

    @property
    def bits_per_weight(self) -> float | None:
        return 8 * self.lut_gemm_bytes / self.lut_gemm_weights if self.lut_gemm_weights else None

    def skip(self, node: ir.Node, pattern_name: str, reason: str):
        # the first rule to skip a node is the most specific (RULES order): a later, more
        # general rule (float MatMul: "weight is not constant") must not hide its reason
        self.skipped.setdefault(node.name or f"<unnamed {node.op_type}>", (pattern_name, reason))
        return pattern.MatchResult().fail(reason)

    def add(self, node: ir.Node, pattern_name: str, kept_source_quantization: bool):
        self.converted[pattern_name] += 1
        self.kept_source_quantization += kept_source_quantization
        self.converted_nodes.append(node.name)
        self.skipped.pop(node.name, None)


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The numpy value of an initializer/constant input, or None."""
    if value is None:
        return None
    tensor = value.const_value
    if tensor is None and value.producer() is not None and value.producer().op_type == "Constant":
        attr = value.producer().attributes.get("value")
        tensor = attr.value if attr is not None else None
    return None if tensor is None else tensor.numpy()


def geometry_problem(K: int, N: int, bits: int, group: int) -> str | None:
    try:
        Geometry(K, N, bits, group)
    except ValueError as e:
        return str(e)
    return None


class Skip(Exception):
    """Raised by a rule's plan(): the node stays, for this reason."""


# What plan() returns: a function that builds the QuantizedWeight (the expensive part, run only
# when the node is rewritten), and the bias input or None.
Plan = tuple[Callable[[], QuantizedWeight], "ir.Value | None"]


class LutGemmRule(pattern.RewriteRuleClassBase):
    """Base of the rules.  A rule gives a `pattern` whose root output is named "y", and a
    `plan(node, **bindings)` that raises Skip(reason) or says how to build the weight; the base
    does the rest: the user's filters, recording skips with their reason, and emitting LutGemm.
    Nothing is kept between check() and rewrite(): rewrite() plans again from its bindings."""

    pattern_name = ""
    option_key = ""
    keeps_source_quantization = True  # False where the rule quantises float weights itself

    def __init__(self, options: RewriteOptions, report: RewriteReport, progress=None):
        super().__init__(name=self.pattern_name)
        self.options = options
        self.report = report
        self.progress = progress

    @classmethod
    def enabled(cls, options: RewriteOptions) -> bool:
        return options.patterns is None or cls.option_key in options.patterns

    def plan(self, node: ir.Node, **bindings) -> Plan:
        raise NotImplementedError

    def check(self, context, **bindings):
        node = context.root
        try:
            if why := self.options.excluded(node.name):
                raise Skip(why)
            self.plan(node, **bindings)
        except Skip as e:
            return self.report.skip(node, self.pattern_name, str(e))
        return True

    def rewrite(self, op, a, y, **bindings):
        node = y.producer()
        build, bias = self.plan(node, a=a, y=y, **bindings)
        w = build()
        self.report.add(node, self.pattern_name, self.keeps_source_quantization)
        if self.progress is not None:
            self.progress(node.name)
        out = emit_lut_gemm(op, a, w, node.name or "lut_gemm", bias, layout_for(w, self.options.ternary_layout))
        out.producer().name = node.name  # keep the layer's name for filters, profiles and reports
        return out


def emit_lut_gemm(op, a: ir.Value, w: QuantizedWeight, prefix: str, bias: ir.Value | None = None,
                  layout_version: int = LAYOUT_VERSION):
    """A LutGemm node with its packed initializers: Y = a @ dequantize(w)^T (+ bias)."""
    inputs = [a] + [None if item is None else op.initializer(ir.tensor(item[1], name=f"{prefix}.{item[0]}"))
                     for item in lut_gemm_weight_inputs(w, layout_version)]
    if bias is not None:
        inputs += [None] * (5 - len(inputs)) + [bias]
    return getattr(op, OP_TYPE)(*inputs, _domain=DOMAIN, _version=OPSET_VERSION,
                                **lut_gemm_attributes(w, layout_version))
