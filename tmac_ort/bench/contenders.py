"""What is timed: LutGemm (per kernel and library build), ORT's MatMulNBits variants, fp32 MatMul, ternary, llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Contender:
    name: str
    sessions: list  # one; for --stream several, each over its own copy of the same weights
    weight_bytes: int
    int8_min_rows: int = 0  # a LutGemm kernel with an int8 path takes it from this many rows

    @property
    def session(self):
        return self.sessions[0]

    def label(self, rows: int) -> str:
        """The name, with ' int8' when `rows` rows take the kernel's int8 path."""
        return self.name + (" int8" if self.int8_min_rows and rows >= self.int8_min_rows else "")


def _session(model, threads, extra_config=None, library: bool | str = False, kernel: str | None = None):
    from .. import make_session

    # Every session owns a thread pool; idle workers spinning in one session's pool would
    # steal the second core from the session being timed next.
    config = {"session.intra_op.allow_spinning": "0", **(extra_config or {})}
    return make_session(model, threads, kernel=kernel, library=library, config=config)


def copies_to_stream(weight_bytes: int, stream_bytes: int) -> int:
    """How many copies of `weight_bytes` of weights add up to `stream_bytes` (at least one)."""
    return max(1, -(-stream_bytes // max(1, int(weight_bytes))))


def contenders(w_nk: np.ndarray, bits: int, group: int, threads: int, other_libraries=(),
               kernels: tuple[str, ...] = (), zero_points: bool = False, stream_bytes: int = 0) -> list[Contender]:
    """LutGemm once per kernel of `kernels` (default: the best this CPU has; the first is the
    one the ratios use), other builds of the op, ORT's quantised kernels and fp32 MatMul.
    `zero_points`: asymmetric weights (an integer zero point per group, as ORT's quantiser and
    onnxruntime-genai's int4 make them) on both sides, else symmetric ones.
    `stream_bytes`: each contender gets enough sessions, each loading its own copy of the
    weights, to hold this many bytes of weights (at least one session)."""
    from onnx import helper, numpy_helper

    from .. import kernel_registry, matmul_nbits_format, packing, selected_kernel
    from ..nodes import make_lut_gemm_model

    out = []

    def add(name, make_session, nbytes, int8_min_rows=0):
        sessions = [make_session() for _ in range(copies_to_stream(nbytes, stream_bytes))]
        out.append(Contender(name, sessions, nbytes, int8_min_rows))

    qw = packing.quantize_rtn(w_nk, bits, group, symmetric=not zero_points)
    # what the kernel streams: the planes, an fp16 scale per group and a 4-bit zero point per
    # group where there are any (symmetric weights need no constant term; docs/packed-format.md)
    nbytes = qw.pack().nbytes + 2 * qw.scales.size + (qw.scales.size // 2 if zero_points else 0)
    model = make_lut_gemm_model(qw)
    int8_rows = {k.name: k.int8_rows(bits) for k in kernel_registry()}
    for kernel in kernels or (selected_kernel(),):
        add(f"LutGemm {bits}b {kernel}",
            lambda: _session(model, threads, library=True, kernel=kernel), nbytes, int8_rows[kernel])
    for library in other_libraries:  # A/B against another build of the op (ablations)
        other_model, layout_note = _model_another_build_reads(qw, threads, str(library))
        add(f"LutGemm {bits}b [{Path(library).parent.name}{layout_note}]",
            lambda: _session(other_model, threads, library=str(library)), nbytes)
    # ORT at the same bits, or the nearest it has (1 -> 2 bits, 3 -> 4 bits)
    ort_bits = {1: 2, 2: 2, 3: 4, 4: 4}[bits]
    q_ort = qw if ort_bits == bits else packing.quantize_rtn(w_nk, ort_bits, group, symmetric=not zero_points)
    nbytes = q_ort.q.size * ort_bits // 8 + q_ort.scales.nbytes + (q_ort.scales.size * ort_bits // 8 if zero_points else 0)
    for level in (0, 4):
        model = matmul_nbits_format.make_matmul_nbits_model(q_ort, accuracy_level=level)
        add(f"MatMulNBits {ort_bits}b acc{level}", lambda: _session(model, threads), nbytes)
    if ort_bits == 2 and w_nk.shape[0] % 128 == 0:  # the level-4 model, on ORT's LUT path
        add("MatMulNBits 2b LUT", lambda: _session(model, threads, {"mlas.use_lut_gemm": "1"}), nbytes)
    K = w_nk.shape[1]
    node = helper.make_node("MatMul", ["A", "W"], ["Y"])
    graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("A", 1, ["M", K])],
                              [helper.make_tensor_value_info("Y", 1, None)], [numpy_helper.from_array(w_nk.T.copy(), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    add("MatMul fp32", lambda: _session(model, threads), w_nk.nbytes)
    return out


def _model_another_build_reads(qw, threads: int, library: str):
    """The one-node model of `qw` in the newest layout the op build `library` reads, and a
    note naming the layout when that is not the newest: builds before the ninth session
    (the third session's, timed against on Zen 3) read layout 1 only."""
    import onnxruntime as ort

    from ..nodes import make_lut_gemm_model
    from ..packing import LAYOUT_VERSION

    model = make_lut_gemm_model(qw)
    ort.set_default_logger_severity(4)  # (ORT would log the refusal below as an error)
    try:
        _session(model, threads, library=library)
        return model, ""
    except Exception as e:  # the op refuses the layout at session creation, saying so
        if f"layout_version {LAYOUT_VERSION} is not supported" not in str(e):
            raise
    finally:
        ort.set_default_logger_severity(2)  # ORT's default, warnings and up
    return make_lut_gemm_model(qw, layout_version=1), ", layout 1"


def group_dividing(K: int, preferred: int) -> int:
    """`preferred`, else 64 or 32 (576 = 9 x 64): a group size that divides K."""
    for group in (preferred, 64, 32):
        if K % group == 0:
            return group
    raise SystemExit(f"K={K}: no group size of {preferred}, 64 or 32 divides it")


def ternary_contenders(w_nk: np.ndarray, threads: int, kernels: tuple[str, ...] = (),
                       stream_bytes: int = 0, other_libraries=()) -> tuple[list[Contender], np.ndarray]:
    """BitNet-style ternary weights (sign of w, zero where |w| is small, one scale per row):
    LutGemm packs them exactly with one group per row (what `tmac-ort rewrite` does on
    detecting them), as base-3 triples (layout 3) and as two bit planes (layout 2), also on
    other builds of the op; ORT gets the same values as 2-bit MatMulNBits (block 128).
    `stream_bytes`: as for `contenders`."""
    from .. import matmul_nbits_format, selected_kernel
    from ..nodes import make_lut_gemm_model
    from ..packing import TERNARY_LAYOUT, QuantizedWeight
    from ..quantize import exact_ternary

    scale = np.abs(w_nk).mean(axis=1, keepdims=True)
    ternary = (np.sign(w_nk) * (np.abs(w_nk) > 0.5 * scale) * scale).astype(np.float32)
    qw = exact_ternary(ternary)
    out = []

    def add(name, make_session, nbytes):
        out.append(Contender(name, [make_session() for _ in range(copies_to_stream(nbytes, stream_bytes))], nbytes))

    layouts = [(label, make_lut_gemm_model(qw, layout_version=layout), qw.pack(layout).nbytes)
               for layout, label in ((TERNARY_LAYOUT, "triples"), (2, "planes"))]
    for kernel in kernels or (selected_kernel(),):
        for label, model, nbytes in layouts:
            add(f"LutGemm ternary {label} {kernel}", lambda: _session(model, threads, library=True, kernel=kernel), nbytes)
    for library in other_libraries:  # A/B against another build of the op (ablations)
        for label, model, nbytes in layouts:
            add(f"LutGemm ternary {label} [{Path(library).parent.name}]",
                lambda: _session(model, threads, library=str(library)), nbytes)
    N, K = w_nk.shape
    block = group_dividing(K, 128)
    blocks = K // block
    q_ort = QuantizedWeight(qw.q, np.repeat(qw.scales, blocks, axis=1), 2, block,
                            zero_points=np.ones((N, blocks), np.uint8))
    nbytes = q_ort.q.size // 4 + q_ort.scales.nbytes
    model = matmul_nbits_format.make_matmul_nbits_model(q_ort, 4)
    add("MatMulNBits 2b acc4", lambda: _session(model, threads), nbytes)
    if N % 128 == 0:
        add("MatMulNBits 2b LUT", lambda: _session(model, threads, {"mlas.use_lut_gemm": "1"}), nbytes)
    return out, ternary


def llama_cpp_tq2_0_ms(test_backend_ops: str, K: int, N: int) -> float | None:
    """llama.cpp's TQ2_0 GEMV time from its own `test-backend-ops perf` (1 thread on a 2-core
    machine: it uses half the cores), or None when it has no case for this shape."""
    import re
    import subprocess

    done = subprocess.run([test_backend_ops, "perf", "-o", "MUL_MAT", "-b", "CPU",
                           "-p", f"type_a=tq2_0,type_b=f32,m={N},n=1,k={K},"], capture_output=True, text=True)
    found = re.search(r"([0-9.]+) us/run", done.stdout)
    return float(found.group(1)) / 1e3 if found else None
