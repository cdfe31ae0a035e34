"""`tmac-ort bench`: LutGemm against ONNX Runtime's MatMulNBits and fp32 MatMul.

Every configuration runs in one process with identical session options; the sessions of a
configuration are timed interleaved (round-robin, several rounds) and the median is kept.
Writes a markdown table, a CSV and (with matplotlib) a PNG plot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .contenders import contenders, group_dividing, llama_cpp_tq2_0_ms, ternary_contenders
from .harness import CacheEvictor, beyond_cache_bytes, read_bandwidth_gbs, time_interleaved
from .report import write_outputs

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (576, 1536), (1536, 576), (576, 49152)]  # K x N


def run_ternary(shape, threads: int, rounds: int, llama_cpp: str | None, kernels: tuple[str, ...] = (),
                stream: bool = False, other_libraries=()) -> None:
    """`stream`: weights from DRAM as when decoding (--stream); llama.cpp's own benchmark
    times its GEMV warm whatever this says."""
    K, N = shape
    rng = np.random.default_rng(0)
    cs, _ = ternary_contenders((rng.standard_normal((N, K)) * 0.02).astype(np.float32), threads, kernels,
                               beyond_cache_bytes() if stream else 0, other_libraries)
    a = rng.standard_normal((1, K)).astype(np.float32)
    samples = {c.name: [] for c in cs}
    if llama_cpp:
        samples["llama.cpp TQ2_0"] = []
    for _ in range(rounds):  # llama.cpp runs in its own process: alternate with ours, medians of each
        for c, t in zip(cs, time_interleaved(cs, a, 1, 50, stream=stream)):
            samples[c.name].append(t * 1e3)
        if llama_cpp:
            ms = llama_cpp_tq2_0_ms(llama_cpp, K, N)
            if ms is None:
                raise ValueError(f"llama.cpp test-backend-ops has no TQ2_0 case for K={K} N={N}")
            samples["llama.cpp TQ2_0"].append(ms)
    medians = {name: float(np.median(v)) for name, v in samples.items()}
    base = fastest_lut_gemm(medians)
    print(f"ternary K={K} N={N} M=1 threads={threads}{' streamed' if stream else ''}, medians of {rounds} rounds "
          f"(LutGemm: {base}, the fastest of its layouts here):")
    for name, ms in medians.items():
        print(f"  {name:34s} {ms:.3f} ms   LutGemm / this {medians[base] / ms:.2f}")


def fastest_lut_gemm(medians: dict[str, float]) -> str:
    """The LutGemm contender the ternary ratios are about: the fastest layout, as a user would
    pick (layout 3 runs the scalar kernel's code on a CPU whose kernel has no triple form:
    AVX2's triples took 53x the planes' time on Zen 3)."""
    return min((name for name in medians if name.startswith("LutGemm")), key=medians.__getitem__)


def run(shapes, ms, bits_list, threads_list, group_size, rounds, out_dir: Path, bandwidth: dict,
        other_libraries=(), timing: str = "warm", kernels: tuple[str, ...] = (), zero_points: bool = False):
    """`bandwidth`: measured read GB/s per thread count; `timing`: "warm", "cold" (--cold) or
    "stream" (--stream)."""
    rng = np.random.default_rng(0)
    evict = CacheEvictor() if timing == "cold" else None
    stream_bytes = beyond_cache_bytes() if timing == "stream" else 0
    rows = []
    for K, N in shapes:
        w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
        group = group_dividing(K, group_size)
        for threads in threads_list:
            for bits in bits_list:
                cs = contenders(w, bits, group, threads, other_libraries, kernels, zero_points, stream_bytes)
                for M in ms:
                    a = rng.standard_normal((M, K)).astype(np.float32)
                    times = time_interleaved(cs, a, rounds, 50, evict, stream=timing == "stream")
                    lut_time = times[0]
                    ort_quant = [t for c, t in zip(cs, times) if c.name.startswith("MatMulNBits")]
                    best_ort = min(ort_quant)
                    for c, t in zip(cs, times):
                        rows.append({
                            "K": K, "N": N, "M": M, "bits": bits, "threads": threads, "kernel": c.label(M),
                            "ms": t * 1e3, "gflops": 2 * M * N * K / t / 1e9,
                            "weight_gbs": c.weight_bytes / t / 1e9,
                            "bw_share": c.weight_bytes / t / 1e9 / bandwidth[threads],
                            "ratio_lut_vs_best_ort": lut_time / best_ort,
                            # the ratio of a kernel reading its weights at the read bandwidth
                            "ratio_at_read_bandwidth": c.weight_bytes / bandwidth[threads] / 1e9 / best_ort,
                        })
                    print(f"K={K:5d} N={N:5d} M={M:3d} bits={bits} threads={threads}: "
                          + "  ".join(f"{c.label(M)} {t * 1e3:.3f}ms" for c, t in zip(cs, times))
                          + f"  | LutGemm/best ORT {lut_time / best_ort:.2f}", flush=True)
    write_outputs(rows, out_dir, bandwidth, timing, zero_points)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `tmac-ort bench` (cli.py registers the subcommand)."""
    p.add_argument("--shapes", nargs="*", default=[f"{k}x{n}" for k, n in SHAPES], metavar="KxN",
                   help="weight shapes, reduction K by outputs N (default: Llama-8B's and SmolLM2's layers)")
    p.add_argument("--m", nargs="*", type=int, default=[1, 32, 128], help="activation rows (1: decode; default 1 32 128)")
    p.add_argument("--bits", nargs="*", type=int, default=[1, 2, 3, 4], help="LutGemm bits (default 1 2 3 4)")
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2], help="intra-op threads (default 1 2)")
    p.add_argument("--group-size", type=int, default=128, help="weights per scale (default 128)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the median is kept (default 7)")
    p.add_argument("--out", default="bench-results", help="folder for bench.md, bench.csv, bench.png")
    p.add_argument("--compare-library", nargs="*", default=[], metavar="SO",
                   help="other builds of libtmac_ort_ops.so to time side by side (named by their folder; a build that "
                        "reads only layout 1 gets the weights in layout 1)")
    p.add_argument("--ternary", action="store_true",
                   help="ternary weights, M=1, first shape and thread count only (add --llama-cpp to compare)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--cold", action="store_true",
                        help="empty the caches before every timed call (weights, code and all from DRAM), one call "
                             "per sample")
    timing.add_argument("--stream", action="store_true",
                        help="weights from DRAM as when decoding: each contender runs over copies of its weights "
                             "(four times the last-level cache in all), one after another; code stays cached")
    p.add_argument("--zero-points", action="store_true",
                   help="asymmetric weights with an integer zero point per group on every side (ORT's "
                        "quantiser's and onnxruntime-genai's int4 default) instead of symmetric ones")
    p.add_argument("--kernel", nargs="*", default=[], metavar="NAME",
                   help="LutGemm kernels of the registry to time side by side (default: the best this CPU has; "
                        "the first gives the ratios)")
    p.add_argument("--llama-cpp", metavar="TEST_BACKEND_OPS",
                   help="llama.cpp's test-backend-ops binary: adds its TQ2_0 GEMV to --ternary")


def run_command(args) -> int:
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in args.shapes]
    from .. import kernel_registry

    known = {k.name: k for k in kernel_registry()}
    for name in args.kernel:
        if name not in known or not known[name].available:
            why = known[name].unavailable if name in known else f"not in this build ({', '.join(known)})"
            raise ValueError(f"bench: kernel {name}: {why}")
    kernels = tuple(args.kernel)
    if args.ternary:
        if args.cold:
            raise ValueError("bench: --ternary times warm or --stream, not --cold")
        run_ternary(shapes[0], args.threads[0], args.rounds, args.llama_cpp, kernels, args.stream, args.compare_library)
        return 0
    bandwidth = {t: read_bandwidth_gbs(t) for t in sorted(set(args.threads))}
    print("read bandwidth " + ", ".join(f"{t} thread(s) {gbs:.1f} GB/s" for t, gbs in bandwidth.items()))
    run(shapes, args.m, args.bits, args.threads, args.group_size, args.rounds, Path(args.out), bandwidth,
        args.compare_library, "cold" if args.cold else "stream" if args.stream else "warm", kernels, args.zero_points)
    return 0
