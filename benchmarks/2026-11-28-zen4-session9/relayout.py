"""Copies a model folder with every LutGemm node's planes rewritten to another packed layout
(1: tile by tile, 2: K-chunk by K-chunk), everything else the same: the A/B of the two
layouts end to end (onnxruntime-genai, `recipe.py _stage bench`).

    python relayout.py SRC_FOLDER DST_FOLDER 2
"""

import shutil
import sys
from pathlib import Path

import onnx
from onnx import numpy_helper

from tmac_ort import packing


def relayout(src: Path, dst: Path, version: int) -> int:
    model = onnx.load(src / "model.onnx")
    inits = {init.name: init for init in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "LutGemm":
            continue
        attrs = {a.name: a for a in node.attribute}
        old = attrs["layout_version"].i
        if old == version:
            continue
        K, N, bits, group = (attrs[k].i for k in ("K", "N", "bits", "group_size"))
        init = inits[node.input[1]]
        q = packing.unpack(numpy_helper.to_array(init), bits, K, N, group)
        init.CopyFrom(numpy_helper.from_array(packing.pack(q, bits, group, version), init.name))
        attrs["layout_version"].i = version
        changed += 1
    dst.mkdir(parents=True, exist_ok=False)
    for f in src.iterdir():
        if f.name not in ("model.onnx", "model.onnx.data"):
            shutil.copy2(f, dst / f.name)
    onnx.save(model, dst / "model.onnx", save_as_external_data=True, location="model.onnx.data",
              size_threshold=1024)
    return changed


if __name__ == "__main__":
    src, dst, version = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    print(f"{relayout(src, dst, version)} LutGemm nodes rewritten to layout {version} in {dst}")
