"""`tmac-ort bench`: LutGemm against ONNX Runtime's MatMulNBits and fp32 MatMul.

Every configuration runs in one process with identical session options; the sessions of a
configuration are timed interleaved (round-robin, several rounds) and the median is kept.
Writes a markdown table, a CSV and (with matplotlib) a PNG plot.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (576, 1536), (1536, 576), (576, 49152)]  # K x N


def read_bandwidth_gbs(threads: int = 1, megabytes: int = 512) -> float:
    """DRAM read bandwidth of `threads` threads, each summing its share of a 512 MB array
    with numpy (which releases the GIL while it reduces); best of 5."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(megabytes * (1 << 20) // 8, dtype=np.float64)
    parts = np.array_split(a, threads)
    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(5):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = max(best, a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


class CacheEvictor:
    """Reads a buffer four times the size of the last-level cache, so the next call finds its
    weights in DRAM, as in decoding a model many times larger than the cache."""

    def __init__(self, megabytes: int | None = None):
        megabytes = megabytes or 4 * max(32, _last_level_cache_mb())
        self.buffer = np.ones(megabytes * (1 << 20) // 8, dtype=np.float64)

    def __call__(self) -> None:
        self.buffer.sum()


def _last_level_cache_mb() -> int:
    import os

    try:
        return max(int(os.sysconf("SC_LEVEL3_CACHE_SIZE")), int(os.sysconf("SC_LEVEL2_CACHE_SIZE"))) >> 20
    except (ValueError, OSError):
        return 32


@dataclass
class Contender:
    name: str
    session: object
    weight_bytes: int


def _session(model, threads, extra_config=None, library: str | None = None, kernel: str | None = None):
    import onnxruntime as ort

    from . import KERNEL_CONFIG_KEY

    options = ort.SessionOptions()
    if kernel:  # read when the library is registered
        options.add_session_config_entry(KERNEL_CONFIG_KEY, kernel)
    if library:
        options.register_custom_ops_library(library)
    # Every session owns a thread pool; idle workers spinning in one session's pool would
    # steal the second core from the session being timed next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in (extra_config or {}).items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def contenders(w_nk: np.ndarray, bits: int, group: int, threads: int, other_libraries=(),
               kernels: tuple[str, ...] = ()) -> list[Contender]:
    """LutGemm once per kernel of `kernels` (default: the best this CPU has; the first is the
    one the ratios use), other builds of the op, ORT's quantised kernels and fp32 MatMul."""
    from onnx import helper, numpy_helper

    from . import get_library_path, matmul_nbits, packing, selected_kernel
    from .model import make_lut_gemm_model

    out = []
    qw = packing.quantize_rtn(w_nk, bits, group, symmetric=True)
    # what the kernel streams: the planes and an fp16 scale per group (symmetric weights need
    # no constant term, see docs/packed-format.md)
    nbytes = qw.pack().nbytes + 2 * qw.scales.size
    model = make_lut_gemm_model(qw)
    for kernel in kernels or (selected_kernel(),):
        out.append(Contender(f"LutGemm {bits}b {kernel}",
                             _session(model, threads, library=get_library_path(), kernel=kernel), nbytes))
    for library in other_libraries:  # A/B against another build of the op (ablations)
        out.append(Contender(f"LutGemm {bits}b [{Path(library).parent.name}]",
                             _session(model, threads, library=str(library)), nbytes))
    # ORT at the same bits, or the nearest it has (1 -> 2 bits, 3 -> 4 bits)
    ort_bits = {1: 2, 2: 2, 3: 4, 4: 4}[bits]
    q_ort = qw if ort_bits == bits else packing.quantize_rtn(w_nk, ort_bits, group, symmetric=True)
    nbytes = q_ort.q.size * ort_bits // 8 + q_ort.scales.nbytes
    for level in (0, 4):
        model = matmul_nbits.make_matmul_nbits_model(q_ort, accuracy_level=level)
        out.append(Contender(f"MatMulNBits {ort_bits}b acc{level}", _session(model, threads), nbytes))
    if ort_bits == 2 and w_nk.shape[0] % 128 == 0:  # the level-4 model, on ORT's LUT path
        out.append(Contender("MatMulNBits 2b LUT", _session(model, threads, {"mlas.use_lut_gemm": "1"}), nbytes))
    K = w_nk.shape[1]
    node = helper.make_node("MatMul", ["A", "W"], ["Y"])
    graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("A", 1, ["M", K])],
                              [helper.make_tensor_value_info("Y", 1, None)], [numpy_helper.from_array(w_nk.T.copy(), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    out.append(Contender("MatMul fp32", _session(model, threads), w_nk.nbytes))
    return out


def group_dividing(K: int, preferred: int) -> int:
    """`preferred`, else 64 or 32 (576 = 9 x 64): a group size that divides K."""
    for group in (preferred, 64, 32):
        if K % group == 0:
            return group
    raise SystemExit(f"K={K}: no group size of {preferred}, 64 or 32 divides it")


def ternary_contenders(w_nk: np.ndarray, threads: int, kernels: tuple[str, ...] = ()) -> tuple[list[Contender], np.ndarray]:
    """BitNet-style ternary weights (sign of w, zero where |w| is small, one scale per row):
    LutGemm packs them exactly at 2 bits with one group per row (what `tmac-ort rewrite`
    does on detecting them); ORT gets the same values as 2-bit MatMulNBits (block 128)."""
    from . import get_library_path, matmul_nbits, selected_kernel
    from .model import make_lut_gemm_model
    from .packing import QuantizedWeight
    from .quantize import exact_ternary

    scale = np.abs(w_nk).mean(axis=1, keepdims=True)
    ternary = (np.sign(w_nk) * (np.abs(w_nk) > 0.5 * scale) * scale).astype(np.float32)
    qw = exact_ternary(ternary)
    out = [Contender(f"LutGemm ternary {kernel}",
                     _session(make_lut_gemm_model(qw), threads, library=get_library_path(), kernel=kernel),
                     qw.pack().nbytes) for kernel in kernels or (selected_kernel(),)]
    N, K = w_nk.shape
    block = group_dividing(K, 128)
    blocks = K // block
    q_ort = QuantizedWeight(qw.q, np.repeat(qw.scales, blocks, axis=1), 2, block,
                            zero_points=np.ones((N, blocks), np.uint8))
    nbytes = q_ort.q.size // 4 + q_ort.scales.nbytes
    model = matmul_nbits.make_matmul_nbits_model(q_ort, 4)
    out.append(Contender("MatMulNBits 2b acc4", _session(model, threads), nbytes))
    if N % 128 == 0:
        out.append(Contender("MatMulNBits 2b LUT", _session(model, threads, {"mlas.use_lut_gemm": "1"}), nbytes))
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


def run_ternary(shape, threads: int, rounds: int, llama_cpp: str | None, kernels: tuple[str, ...] = ()) -> None:
    K, N = shape
    rng = np.random.default_rng(0)
    cs, _ = ternary_contenders((rng.standard_normal((N, K)) * 0.02).astype(np.float32), threads, kernels)
    a = rng.standard_normal((1, K)).astype(np.float32)
    samples = {c.name: [] for c in cs}
    if llama_cpp:
        samples["llama.cpp TQ2_0"] = []
    for _ in range(rounds):  # llama.cpp runs in its own process: alternate with ours, medians of each
        for c, t in zip(cs, time_interleaved(cs, a, 1, 50)):
            samples[c.name].append(t * 1e3)
        if llama_cpp:
            ms = llama_cpp_tq2_0_ms(llama_cpp, K, N)
            if ms is None:
                raise SystemExit(f"llama.cpp test-backend-ops has no TQ2_0 case for K={K} N={N}")
            samples["llama.cpp TQ2_0"].append(ms)
    medians = {name: float(np.median(v)) for name, v in samples.items()}
    lut = medians[cs[0].name]
    print(f"ternary K={K} N={N} M=1 threads={threads}, medians of {rounds} rounds:")
    for name, ms in medians.items():
        print(f"  {name:22s} {ms:.3f} ms   LutGemm / this {lut / ms:.2f}")


def time_interleaved(cs: list[Contender], a: np.ndarray, rounds: int, iters: int, evict=None) -> list[float]:
    """Median seconds per run of each contender; each sample repeats a contender up to `iters`
    times, fewer for slow ones (about 5 ms a sample), so one pathological path cannot stall a run.
    With `evict` (a CacheEvictor) every sample is one run after the caches were emptied."""
    feed = {"A": a}
    reps = []
    for c in cs:
        t0 = time.perf_counter()
        c.session.run(None, feed)
        reps.append(1 if evict else max(1, min(iters, int(5e-3 / max(time.perf_counter() - t0, 1e-6)))))
    samples = [[] for _ in cs]
    for _ in range(rounds):
        for i, c in enumerate(cs):
            if evict:
                evict()
            else:
                c.session.run(None, feed)  # untimed: weights back in cache after the other contenders
            t0 = time.perf_counter()
            for _ in range(reps[i]):
                c.session.run(None, feed)
            samples[i].append((time.perf_counter() - t0) / reps[i])
    return [float(np.median(s)) for s in samples]


def run(shapes, ms, bits_list, threads_list, group_size, rounds, out_dir: Path, bandwidth: dict,
        other_libraries=(), cold: bool = False, kernels: tuple[str, ...] = ()):
    """`bandwidth`: measured read GB/s per thread count."""
    rng = np.random.default_rng(0)
    evict = CacheEvictor() if cold else None
    rows = []
    for K, N in shapes:
        w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
        group = group_dividing(K, group_size)
        for threads in threads_list:
            for bits in bits_list:
                cs = contenders(w, bits, group, threads, other_libraries, kernels)
                for M in ms:
                    a = rng.standard_normal((M, K)).astype(np.float32)
                    times = time_interleaved(cs, a, rounds, 50, evict)
                    lut_time = times[0]
                    ort_quant = [t for c, t in zip(cs, times) if c.name.startswith("MatMulNBits")]
                    best_ort = min(ort_quant)
                    for c, t in zip(cs, times):
                        rows.append({
                            "K": K, "N": N, "M": M, "bits": bits, "threads": threads, "kernel": c.name,
                            "ms": t * 1e3, "gflops": 2 * M * N * K / t / 1e9,
                            "weight_gbs": c.weight_bytes / t / 1e9,
                            "bw_share": c.weight_bytes / t / 1e9 / bandwidth[threads],
                            "ratio_lut_vs_best_ort": lut_time / best_ort,
                        })
                    print(f"K={K:5d} N={N:5d} M={M:3d} bits={bits} threads={threads}: "
                          + "  ".join(f"{c.name} {t * 1e3:.3f}ms" for c, t in zip(cs, times))
                          + f"  | LutGemm/best ORT {lut_time / best_ort:.2f}", flush=True)
    write_outputs(rows, out_dir, bandwidth, cold)
    return rows


def write_outputs(rows, out_dir: Path, bandwidth: dict, cold: bool = False):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    measured = ", ".join(f"{gbs:.1f} GB/s on {t} thread(s)" for t, gbs in sorted(bandwidth.items()))
    mode = ("cold: caches emptied before every timed call, weights come from DRAM" if cold else
            "warm: repeated calls, weights partly or wholly in the caches")
    lines = [f"Measured read bandwidth: {measured}.  Timing: {mode}.", "",
             "| K×N | M | bits | threads | LutGemm ms (kernel) | best ORT quantised ms (kernel) | fp32 MatMul ms | LutGemm / best ORT "
             "| LutGemm weight GB/s (share of read bandwidth) |",
             "|---|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r["K"], r["N"], r["M"], r["bits"], r["threads"])  # noqa: E731
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    for (K, N, M, bits, threads), rs in groups.items():
        lut = rs[0]  # the first kernel named (or the default)
        ort = min((r for r in rs if r["kernel"].startswith("MatMulNBits")), key=lambda r: r["ms"])
        fp32 = next(r for r in rs if r["kernel"] == "MatMul fp32")
        lines.append(f"| {K}×{N} | {M} | {bits} | {threads} | {lut['ms']:.3f} ({lut['kernel'].split()[-1]}) | {ort['ms']:.3f} ({ort['kernel']}) | "
                     f"{fp32['ms']:.3f} | **{lut['ratio_lut_vs_best_ort']:.2f}** | "
                     f"{lut['weight_gbs']:.1f} ({lut['bw_share']:.0%}) |")
    (out_dir / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'tmac-ort[bench]')")
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    labels = [f"{K}x{N}\nM{M} {b}b t{t}" for (K, N, M, b, t) in groups]
    ax.bar(range(len(groups)), [rs[0]["ratio_lut_vs_best_ort"] for rs in groups.values()])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(groups)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("LutGemm time / best ORT quantised time")
    fig.tight_layout()
    fig.savefig(out_dir / "bench.png", dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tmac-ort bench", description=__doc__)
    p.add_argument("--shapes", nargs="*", default=[f"{k}x{n}" for k, n in SHAPES], help="KxN")
    p.add_argument("--m", nargs="*", type=int, default=[1, 32, 128])
    p.add_argument("--bits", nargs="*", type=int, default=[1, 2, 3, 4])
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="bench-results")
    p.add_argument("--compare-library", nargs="*", default=[], metavar="SO",
                   help="other builds of libtmac_ort_ops.so to time side by side (named by their folder)")
    p.add_argument("--ternary", action="store_true",
                   help="ternary weights, M=1, first shape and thread count only (add --llama-cpp to compare)")
    p.add_argument("--cold", action="store_true",
                   help="empty the caches before every timed call (weights streamed from DRAM), one call per sample")
    p.add_argument("--kernel", nargs="*", default=[], metavar="NAME",
                   help="LutGemm kernels of the registry to time side by side (default: the best this CPU has; "
                        "the first gives the ratios)")
    p.add_argument("--llama-cpp", metavar="TEST_BACKEND_OPS",
                   help="llama.cpp's test-backend-ops binary: adds its TQ2_0 GEMV to --ternary")
    args = p.parse_args(argv)
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in args.shapes]
    from . import kernel_registry

    known = {k.name: k for k in kernel_registry()}
    for name in args.kernel:
        if name not in known or not known[name].available:
            why = known[name].unavailable if name in known else f"not in this build ({', '.join(known)})"
            raise SystemExit(f"tmac-ort bench: kernel {name}: {why}")
    kernels = tuple(args.kernel)
    if args.ternary:
        run_ternary(shapes[0], args.threads[0], args.rounds, args.llama_cpp, kernels)
        return 0
    bandwidth = {t: read_bandwidth_gbs(t) for t in sorted(set(args.threads))}
    print("read bandwidth " + ", ".join(f"{t} thread(s) {gbs:.1f} GB/s" for t, gbs in bandwidth.items()))
    run(shapes, args.m, args.bits, args.threads, args.group_size, args.rounds, Path(args.out), bandwidth,
        args.compare_library, args.cold, kernels)
    return 0
