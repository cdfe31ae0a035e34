"""Median time of one-token steps (empty KV cache) of a model through onnxruntime with a given
op library, 1 thread, and how much of the process sits on 2 MB pages.

    python one_token_steps.py LIBRARY MODEL.onnx STEPS [--in-memory]

--in-memory gives InferenceSession the model's bytes (weights and all), so ORT keeps the
initializers in its heap, as it does for a single-file model; without it external data stays
memory-mapped from its file, one mapping per initializer.  TMAC_ORT_HUGE_PAGES=0 in the
environment turns the op's huge-page advice off (huge-pages-smollm2.log alternates both).
"""

import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from tmac_ort.verify import genai_head_size, make_inputs

library, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.register_custom_ops_library(library)
session = ort.InferenceSession(onnx.load(path).SerializeToString() if "--in-memory" in sys.argv else path, options)
feed = make_inputs(session, seq_len=1, head_size=genai_head_size(Path(path)))
for _ in range(5):
    session.run(None, feed)
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    session.run(None, feed)
    times.append(time.perf_counter() - t0)
huge = sum(int(line.split()[1]) for line in open("/proc/self/smaps") if line.startswith("AnonHugePages:"))
rss = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS"))
print(f"{1e3 * np.median(times):.3f} ms  AnonHugePages {huge} kB  RSS {rss} kB")
