"""This build's lookups on layout 1 and layout 2 weights, beside an older build on layout 1,
interleaved in one process (tmac-ort bench's timing), M=1, 1 thread, group 128.
    python layouts_in_cache.py OLD_LIBRARY [KxN] [ROUNDS]
"""
import sys

import numpy as np

from tmac_ort import make_session, packing
from tmac_ort.bench.contenders import Contender
from tmac_ort.bench.harness import time_interleaved
from tmac_ort.nodes import make_lut_gemm_model

old = sys.argv[1]
K, N = (int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "4096x4096").split("x"))
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
a = rng.standard_normal((1, K)).astype(np.float32)
cfg = {"session.intra_op.allow_spinning": "0"}
print(f"K={K} N={N} M=1 group 128, 1 thread, medians of {rounds} interleaved rounds")
for bits in (1, 2, 3, 4):
    qw = packing.quantize_rtn(w, bits, 128)
    l1, l2 = make_lut_gemm_model(qw, layout_version=1), make_lut_gemm_model(qw, layout_version=2)
    cs = [Contender("this build, layout 2", [make_session(l2, 1, config=cfg)], 0),
          Contender("this build, layout 1", [make_session(l1, 1, config=cfg)], 0),
          Contender("old build, layout 1", [make_session(l1, 1, library=old, config=cfg)], 0)]
    times = time_interleaved(cs, a, rounds, 50)
    print(f"bits={bits}: " + "  ".join(f"{c.name} {t * 1e3:.3f} ms ({t / times[0]:.2f}x)" for c, t in zip(cs, times)),
          flush=True)
