"""Peak memory of loading a rewritten model, against its file size.

    python benchmarks/memory.py                    # Llama-3.2-1B's matmul shapes, 4 bits, group 32
    python benchmarks/memory.py --bits 2 --layers 4

The model is every matmul of a Llama-3.2-1B-shaped decoder (16 layers of q, k, v, o, gate,
up, down, and the 128256-token lm_head) as a chain of LutGemm nodes with random weights,
quantised by the default method ("mse": fp16 scales and offsets).  A fresh process imports
onnxruntime, creates the session and runs one token; its peak resident memory above the
same process without a session is what loading costs.  A session that held two copies of
the weights would show about twice the file size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HIDDEN, INTERMEDIATE, KV, VOCAB, LAYERS = 2048, 8192, 512, 128256, 16


def layer_shapes(layers: int) -> list[tuple[str, int, int]]:
    """(name, K, N) of the matmuls, in order."""
    shapes = []
    for i in range(layers):
        shapes += [(f"l{i}.q", HIDDEN, HIDDEN), (f"l{i}.k", HIDDEN, KV), (f"l{i}.v", HIDDEN, KV),
                   (f"l{i}.o", HIDDEN, HIDDEN), (f"l{i}.gate", HIDDEN, INTERMEDIATE),
                   (f"l{i}.up", HIDDEN, INTERMEDIATE), (f"l{i}.down", INTERMEDIATE, HIDDEN)]
    return shapes + [("lm_head", HIDDEN, VOCAB)]


def random_weight(rng, K: int, N: int, bits: int, group: int):
    """What "mse" stores, without the search: q, and fp16 scales and offsets."""
    from tmac_ort.packing import QuantizedWeight

    n_groups = -(-K // group)
    scales = rng.uniform(0.005, 0.02, (N, n_groups)).astype(np.float16).astype(np.float32)
    offsets = (-scales * ((1 << bits) - 1) / 2).astype(np.float16).astype(np.float32)
    q = rng.integers(0, 1 << bits, (N, K), dtype=np.uint8)
    return QuantizedWeight(q, scales, bits, group, offsets=offsets)


def build(path: Path, layers: int, bits: int, group: int) -> None:
    """Each LutGemm reads the previous output where K matches; the others read the input A
    (k, v, gate, up read the hidden state; down reads up's output)."""
    import onnx_ir as ir

    from tmac_ort import DOMAIN, OP_TYPE, OPSET_VERSION
    from tmac_ort.nodes import lut_gemm_attributes, lut_gemm_initializers

    rng = np.random.default_rng(0)
    a = ir.Value(name="A", shape=ir.Shape([1, HIDDEN]), type=ir.TensorType(ir.DataType.FLOAT))
    nodes, initializers, outputs, wide = [], [], [], None
    for name, K, N in layer_shapes(layers):
        w = random_weight(rng, K, N, bits, group)
        weights = lut_gemm_initializers(w, name)
        initializers += [v for v in weights if v is not None]
        source = wide if K == INTERMEDIATE else a
        y = ir.Value(name=f"{name}.y", shape=ir.Shape([1, N]), type=ir.TensorType(ir.DataType.FLOAT))
        nodes.append(ir.Node(DOMAIN, OP_TYPE, [source, *weights], outputs=[y], name=name,
                             attributes=[ir.AttrInt64(k, v) for k, v in lut_gemm_attributes(w).items()]))
        if name.endswith(".up"):
            wide = y
        if name.endswith(".down") or name == "lm_head":
            outputs.append(y)
    graph = ir.Graph([a], outputs, nodes=nodes, initializers=initializers,
                     opset_imports={"": 21, DOMAIN: OPSET_VERSION}, name="memory")
    ir.save(ir.Model(graph, ir_version=10), str(path), external_data=path.name + ".data")


def peak_rss_child(path: Path | None) -> int:
    """Peak RSS (bytes) of a fresh process that imports onnxruntime and, with a path, loads
    and runs the model once."""
    code = f"""
import numpy as np, onnxruntime as ort, tmac_ort
path = {str(path) if path else None!r}
if path:
    s = ort.InferenceSession(path, tmac_ort.session_options(1))
    s.run(None, {{"A": np.ones((1, {HIDDEN}), np.float32)}})
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over fork + exec)
print(next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""
    # (run outside the source tree: `-c` imports from the working directory first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return int(done.stdout.split()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=LAYERS)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=32)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        build(path, args.layers, args.bits, args.group_size)
        file_bytes = path.stat().st_size + (path.parent / (path.name + ".data")).stat().st_size
        weights = sum(K * N for _, K, N in layer_shapes(args.layers))
        baseline = peak_rss_child(None)
        loaded = peak_rss_child(path)
    cost = loaded - baseline
    print(f"Llama-3.2-1B matmul shapes, {args.layers} layers + lm_head: {weights / 1e9:.2f} G weights, "
          f"{args.bits} bits, group {args.group_size}")
    print(f"file {file_bytes / 1e6:.0f} MB; peak RSS {loaded / 1e6:.0f} MB, without a session {baseline / 1e6:.0f} MB; "
          f"loading costs {cost / 1e6:.0f} MB = {cost / file_bytes:.2f}x the file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
