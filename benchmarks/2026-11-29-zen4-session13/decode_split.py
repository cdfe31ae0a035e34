"""Where a decoded token's time goes, per model, and the fastest a token could be.

Run in the onnxruntime-genai environment under `perf record -k CLOCK_MONOTONIC -e cpu-clock`
(Linux perf, no hardware counters needed):

    perf record -k CLOCK_MONOTONIC -e cpu-clock -F 4000 -o split.perf \\
        ~/.cache/tmac-ort/envs/genai/bin/python decode_split.py run WORK MODEL... > split.json
    python3 decode_split.py split split.json split.perf

`run` alternates the models round by round (prompt 128 tokens, 64 decoded, one thread, as
`recipe.py bench`), records each decode phase's CLOCK_MONOTONIC window, the LutGemm bytes a
token streams (planes, and the fp16 scales and zero-point nibbles or fp16 constants the kernel
keeps: lut_kernel.h, PreparedWeights) and the one-thread read bandwidth (numpy, as `tmac-ort
bench`) between rounds.  `split` counts the perf samples inside each model's windows by
library (the lookup loops: the kernel's TileRows / Triple functions) and prints, per model,
the time per token in LutGemm and outside it, and the floor: the time outside LutGemm plus
its bytes read at the measured bandwidth.
"""

from __future__ import annotations

import collections
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def lut_gemm_stream_bytes(model_path: Path) -> int:
    """Bytes the LutGemm kernels read per call of every node: planes, fp16 scales, and either
    zero-point nibbles or fp16 constants (what the kernel keeps, whatever the file's types)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type != "LutGemm":
            continue
        planes = dims[node.input[1]]
        total += planes[0] * planes[1] if len(planes) == 2 else planes[0] * planes[1] * planes[2]
        n, groups = dims[node.input[2]]
        n_pad = (n + 31) // 32 * 32
        total += 2 * n_pad * groups  # fp16 scales
        if len(node.input) > 3 and node.input[3]:
            total += n_pad * groups // 2  # zero points as nibbles
        elif len(node.input) > 4 and node.input[4]:
            total += 2 * n_pad * groups  # fp16 constants
    return total


def read_bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(512 * (1 << 20) // 8)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def run(work: Path, names: list[str], rounds: int = 4) -> None:
    import onnxruntime_genai as og

    models = {}
    for name in names:
        config = og.Config(str(work / name))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": 1}}}}))
        models[name] = og.Model(config)
    result = {n: {"windows": [], "tok_s": [], "stream_bytes": lut_gemm_stream_bytes(work / n / "model.onnx")}
              for n in names}
    bandwidth = []

    def decode(model, record):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=192, min_length=192, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(list(range(1000, 1128)))
        generator.generate_next_token()
        t0, steps = time.clock_gettime(time.CLOCK_MONOTONIC), 0
        while not generator.is_done():
            generator.generate_next_token()
            steps += 1
        t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
        if record is not None:
            record["windows"].append([t0, t1])
            record["tok_s"].append(steps / (t1 - t0))

    for name in names:
        decode(models[name], None)  # warm-up
    for _ in range(rounds):
        bandwidth.append(read_bandwidth_gbs())
        for name in names:
            decode(models[name], result[name])
    print(json.dumps({"models": result, "read_gbs": bandwidth}))


def split(result_file: Path, perf_file: Path) -> None:
    data = json.loads(result_file.read_text())
    script = subprocess.run(["perf", "script", "-i", str(perf_file), "-F", "time,ip,sym,dso", "--ns"],
                            capture_output=True, text=True, check=True).stdout
    samples = []  # (time, class)
    for line in script.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        try:
            t = float(parts[0].rstrip(":"))
        except ValueError:
            continue
        rest = parts[-1]
        if "libtmac_ort_ops" in rest:
            kind = "LutGemm lookups" if ("TileRows" in rest or "Triple" in rest) else "LutGemm other"
        elif "libonnxruntime.so" in rest:
            kind = "onnxruntime"
        else:
            kind = "other"
        samples.append((t, kind))
    bandwidth = statistics.median(data["read_gbs"])
    print(f"read bandwidth (numpy, 1 thread, median of {len(data['read_gbs'])}): {bandwidth:.1f} GB/s")
    for name, r in data["models"].items():
        counts = collections.Counter(k for t, k in samples if any(a <= t <= b for a, b in r["windows"]))
        total = sum(counts.values())
        ms = 1e3 / statistics.median(r["tok_s"])
        share = {k: v / total for k, v in counts.items()}
        lut = ms * (share.get("LutGemm lookups", 0) + share.get("LutGemm other", 0))
        line = f"{name}: {statistics.median(r['tok_s']):.1f} tok/s ({ms:.2f} ms a token; " + ", ".join(
            f"{k} {v * ms:.2f} ms" for k, v in sorted(share.items(), key=lambda kv: -kv[1])) + ")"
        if r["stream_bytes"]:
            floor = ms - lut + r["stream_bytes"] / bandwidth / 1e6
            line += (f"; LutGemm reads {r['stream_bytes'] / 1e6:.1f} MB a token at {r['stream_bytes'] / lut / 1e6:.1f} GB/s;"
                     f" floor {floor:.2f} ms ({1e3 / floor:.0f} tok/s)")
        print(line)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(Path(sys.argv[2]), sys.argv[3:])
    else:
        split(Path(sys.argv[2]), Path(sys.argv[3]))
