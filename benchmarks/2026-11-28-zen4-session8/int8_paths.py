# Interleaved timing of three LutGemm paths on one 4096x4096 weight (group 128, symmetric):
# AVX2 lookups, the AVX2 int8 path of avx2-int8-path.patch, the AVX-512 int8 path.
#   python int8_paths.py 32,64,128,256 4,3 9 1
"""Interleaved timing of LutGemm paths on one weight: AVX2 lookups, AVX2 int8, AVX-512 int8 (1 thread)."""
import sys, time
import numpy as np
import tmac_ort
from tmac_ort import packing
from tmac_ort.nodes import make_lut_gemm_model

K, N = 4096, 4096
rng = np.random.default_rng(0)
w = rng.standard_normal((N, K)).astype(np.float32)
ms = [int(x) for x in sys.argv[1].split(",")]
bits_list = [int(x) for x in sys.argv[2].split(",")]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
cfg = {"session.intra_op.allow_spinning": "0"}
paths = {"avx2 lookups": ("avx2", 0), "avx2 int8": ("avx2", 1), "avx512vnni int8": ("avx512vnni", 1)}
print(f"K={K} N={N} group 128, {threads} thread(s), medians of {rounds} interleaved rounds (ms)")
for bits in bits_list:
    qw = packing.quantize_rtn(w, bits, 128, symmetric=True)
    model = make_lut_gemm_model(qw)
    sessions = {p: tmac_ort.make_session(model, threads, kernel=k, library=True, int8_min_rows=r, config=cfg) for p, (k, r) in paths.items()}
    for m in ms:
        a = rng.standard_normal((m, K)).astype(np.float32)
        times = {p: [] for p in paths}
        reps = max(1, int(64 / m))
        for r in range(rounds):
            for p, s in sessions.items():
                s.run(None, {s.get_inputs()[0].name: a})
                t0 = time.perf_counter()
                for _ in range(reps):
                    s.run(None, {s.get_inputs()[0].name: a})
                times[p].append((time.perf_counter() - t0) / reps * 1e3)
        med = {p: float(np.median(v)) for p, v in times.items()}
        base = med["avx2 lookups"]
        print(f"bits={bits} M={m:4d}: " + "  ".join(f"{p} {v:.3f} ({v / base:.2f}x)" for p, v in med.items()))
