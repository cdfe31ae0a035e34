"""One-row GEMVs on 2 threads (allow_spinning=0): several libraries side by side, interleaved medians.
    python m1_three.py KxN ROUNDS BITS,.. LIB..."""
import sys
import numpy as np
from tmac_ort import make_session, packing
from tmac_ort.bench.contenders import Contender
from tmac_ort.bench.harness import time_interleaved
from tmac_ort.nodes import make_lut_gemm_model

K, N = (int(x) for x in sys.argv[1].split("x"))
rounds = int(sys.argv[2])
bits_list = [int(b) for b in sys.argv[3].split(",")]
libs = sys.argv[4:]
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
a = rng.standard_normal((1, K)).astype(np.float32)
cfg = {"session.intra_op.allow_spinning": "0"}
print(f"K={K} N={N} M=1 group 128, 2 threads, medians of {rounds} interleaved rounds; libs: {libs}")
for bits in bits_list:
    m = make_lut_gemm_model(packing.quantize_rtn(w, bits, 128))
    cs = [Contender(f"lib{i}", [make_session(m, 2, library=lib, config=cfg)], 0) for i, lib in enumerate(libs)]
    times = time_interleaved(cs, a, rounds, 50)
    print(f"bits={bits}: " + "  ".join(f"{c.name} {t * 1e3:.3f} ({t / times[-1]:.2f})" for c, t in zip(cs, times)), flush=True)
