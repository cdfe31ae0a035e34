"""Packed layouts 1 and 2 (docs/packed-format.md): the same weights give the same outputs.

Layout 2 only reorders the steps (K-chunk by K-chunk), and the kernels add a tile's blocks in
the same order either way, so every kernel's outputs must match bit for bit; models written
with layout 1 keep working.  That holds on several threads too: one row of layout 2 is split
between them by tiles, each tile's chunks summed in order by one thread (LutGemm::RunTables).
Accuracy against the references is test_exactness's (which packs layout 2)."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import make_session, reference_gemm
from tmac_ort import nodes, packing


def as_layout_1(model: onnx.ModelProto, w: packing.QuantizedWeight) -> onnx.ModelProto:
    v1 = onnx.ModelProto()
    v1.CopyFrom(model)
    (node,) = v1.graph.node
    for attr in node.attribute:
        if attr.name == "layout_version":
            attr.i = 1
    for i, init in enumerate(v1.graph.initializer):
        if init.name == node.input[1]:
            v1.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.pack(layout_version=1), init.name))
    return v1


@pytest.mark.parametrize("bits,group,K", [(2, 32, 2200), (4, 128, 1304), (3, 1024, 2200), (1, 96, 1000)])
@pytest.mark.parametrize("M", [1, 5])
@pytest.mark.parametrize("threads", [1, 2])
def test_layout_1_and_2_give_identical_outputs(kernel, rng, bits, group, K, M, threads):
    N = 300
    w = packing.quantize_rtn(rng.standard_normal((N, K)).astype(np.float32), bits, group, symmetric=False)
    model = nodes.make_lut_gemm_model(w)
    assert {a.name: a.i for a in model.graph.node[0].attribute}["layout_version"] == 2
    a = rng.standard_normal((M, K)).astype(np.float32)
    y2 = make_session(model, threads, kernel=kernel).run(None, {"A": a})[0]
    y1 = make_session(as_layout_1(model, w), threads, kernel=kernel).run(None, {"A": a})[0]
    np.testing.assert_array_equal(y1, y2)
    # and both are the kernel's arithmetic (the references read q, not the packed bytes)
    np.testing.assert_allclose(y2, reference_gemm(kernel)(a, w), rtol=1e-4, atol=1e-4 * np.abs(y2).max())
