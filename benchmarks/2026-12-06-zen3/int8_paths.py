"""Interleaved timing of the AVX2 kernel's two paths (lookups, int8) and ORT's MatMulNBits on
one K x N weight (symmetric), M rows, medians of interleaved rounds.
    python int8_paths.py M,M,... BITS,BITS,... [ROUNDS [THREADS [KxN [GROUP]]]]
"""
import sys
import time

import numpy as np

import tmac_ort
from tmac_ort import matmul_nbits_format, packing
from tmac_ort.nodes import make_lut_gemm_model

ms = [int(x) for x in sys.argv[1].split(",")]
bits_list = [int(x) for x in sys.argv[2].split(",")]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
K, N = (int(x) for x in (sys.argv[5] if len(sys.argv) > 5 else "4096x4096").split("x"))
group = int(sys.argv[6]) if len(sys.argv) > 6 else 128
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
cfg = {"session.intra_op.allow_spinning": "0"}
print(f"K={K} N={N} group {group}, {threads} thread(s), medians of {rounds} interleaved rounds (ms)")
for bits in bits_list:
    qw = packing.quantize_rtn(w, bits, group, symmetric=True)
    model = make_lut_gemm_model(qw)
    sessions = {p: tmac_ort.make_session(model, threads, kernel="avx2", library=True, int8_min_rows=r, config=cfg)
                for p, r in (("lookups", 0), ("int8", 1))}
    q_ort = qw if bits in (2, 4) else packing.quantize_rtn(w, {1: 2, 3: 4}[bits], group, symmetric=True)
    sessions[f"ORT {q_ort.bits}b acc4"] = tmac_ort.make_session(
        matmul_nbits_format.make_matmul_nbits_model(q_ort, accuracy_level=4), threads, library=False, config=cfg)
    for m in ms:
        a = rng.standard_normal((m, K)).astype(np.float32)
        times = {p: [] for p in sessions}
        reps = max(1, int(64 / m))
        for _ in range(rounds):
            for p, s in sessions.items():
                s.run(None, {"A": a})
                t0 = time.perf_counter()
                for _ in range(reps):
                    s.run(None, {"A": a})
                times[p].append((time.perf_counter() - t0) / reps * 1e3)
        med = {p: float(np.median(v)) for p, v in times.items()}
        base = med["lookups"]
        print(f"bits={bits} M={m:4d}: " + "  ".join(f"{p} {v:.3f} ({v / base:.2f}x)" for p, v in med.items()), flush=True)
