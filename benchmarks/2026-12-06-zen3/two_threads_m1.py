"""One-row GEMVs on one and two threads (pools that sleep, allow_spinning=0, as in tmac-ort
bench: spinning pools of the other sessions would take the second core): this build (layout
2: the storage order cut into one piece per thread) beside another build on layout 1 (tiles
split into 64 items), interleaved, medians.
    python two_threads_m1.py OTHER_LIBRARY [KxN] [ROUNDS] [BITS,BITS]
"""
import sys

import numpy as np

from tmac_ort import make_session, packing
from tmac_ort.bench.contenders import Contender
from tmac_ort.bench.harness import time_interleaved
from tmac_ort.nodes import make_lut_gemm_model

other = sys.argv[1]
K, N = (int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "4096x14336").split("x"))
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 11
bits_list = [int(b) for b in (sys.argv[4] if len(sys.argv) > 4 else "1,2,4").split(",")]
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
a = rng.standard_normal((1, K)).astype(np.float32)
print(f"K={K} N={N} M=1 group 128, medians of {rounds} interleaved rounds")
for bits in bits_list:
    qw = packing.quantize_rtn(w, bits, 128)
    l1, l2 = make_lut_gemm_model(qw, layout_version=1), make_lut_gemm_model(qw)
    cfg = {"session.intra_op.allow_spinning": "0"}
    cs = [Contender(f"this/l2 {t}t", [make_session(l2, t, config=cfg)], 0) for t in (2, 1)]
    cs += [Contender(f"other/l1 {t}t", [make_session(l1, t, library=other, config=cfg)], 0) for t in (2, 1)]
    times = time_interleaved(cs, a, rounds, 50)
    print(f"bits={bits}: " + "  ".join(f"{c.name} {t * 1e3:.3f}" for c, t in zip(cs, times)), flush=True)
