"""One-row GEMVs, 2 threads (allow_spinning=0) and 1 thread: library A beside library B, same layout-2 weights, interleaved medians.
    python m1_ab.py LIB_A LIB_B [KxN] [ROUNDS] [BITS,..] [ITERS]"""
import sys
import numpy as np
from tmac_ort import make_session, packing
from tmac_ort.bench.contenders import Contender
from tmac_ort.bench.harness import time_interleaved
from tmac_ort.nodes import make_lut_gemm_model

lib_a, lib_b = sys.argv[1], sys.argv[2]
K, N = (int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "4096x14336").split("x"))
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 11
bits_list = [int(b) for b in (sys.argv[5] if len(sys.argv) > 5 else "1,2,4").split(",")]
iters = int(sys.argv[6]) if len(sys.argv) > 6 else 50
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
a = rng.standard_normal((1, K)).astype(np.float32)
print(f"K={K} N={N} M=1 group 128, medians of {rounds} interleaved rounds of {iters}")
cfg = {"session.intra_op.allow_spinning": "0"}
for bits in bits_list:
    m = make_lut_gemm_model(packing.quantize_rtn(w, bits, 128))
    cs = [Contender(f"{n} {t}t", [make_session(m, t, library=lib, config=cfg)], 0)
          for t in (2, 1) for n, lib in (("A", lib_a), ("B", lib_b))]
    times = time_interleaved(cs, a, rounds, iters)
    print(f"bits={bits}: " + "  ".join(f"{c.name} {t * 1e3:.3f}" for c, t in zip(cs, times))
          + f"   A/B 2t {times[0] / times[1]:.2f}  1t {times[2] / times[3]:.2f}", flush=True)
