"""Rewriting folders (onnxruntime-genai, Optimum): side files, the op library registered
relative to the folder, normal permissions, external data under any name."""

import json
import os

import numpy as np
import onnx
import pytest

from conftest import make_session
from tmac_ort import cli, packing
from tmac_ort.reference import relative_rms
from test_rewriter import matmul_nbits_model


def test_cli_rewrites_a_genai_folder_and_registers_the_library(tmp_path, rng):
    folder = tmp_path / "genai"
    folder.mkdir()
    qw = packing.quantize_rtn(rng.standard_normal((192, 256)).astype(np.float32), 4, 32)
    (folder / "model.onnx").write_bytes(matmul_nbits_model(qw).SerializeToString())
    (folder / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx",
                                                                             "session_options": {}}}}))
    (folder / "tokenizer.json").write_text("{}")
    assert cli.main(["rewrite", str(folder), "-o", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    config = json.loads((out / "genai_config.json").read_text())
    library = config["model"]["decoder"]["session_options"]["custom_ops_library"]
    # relative to the folder, so a moved folder still finds it; normal permissions
    assert library == "libtmac_ort_ops.so" and (out / library).exists() and (out / "tokenizer.json").exists()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert [n.op_type for n in onnx.load(out / "model.onnx").graph.node] == ["LutGemm"]
    assert cli.main(["rewrite", str(folder), "-o", str(out)]) == 1  # exists: refused


@pytest.mark.parametrize("data_name", ["model.onnx.data", "model.onnx_data"])  # genai's, and Optimum's for large exports
def test_folder_with_external_data_is_rewritten_into_a_self_contained_folder(tmp_path, rng, capsys, data_name):
    """A genai/Optimum folder keeps weights in an external file; the output must not point back
    into it, nor carry a stale copy of it."""
    folder = tmp_path / "src"
    folder.mkdir()
    qw = packing.quantize_rtn(rng.standard_normal((512, 4096)).astype(np.float32), 4, 32)  # 1.3 MB
    model = matmul_nbits_model(qw, bias=rng.standard_normal(512).astype(np.float32))
    onnx.save(model, folder / "model.onnx", save_as_external_data=True, location=data_name, size_threshold=0)
    source_bytes = sum(p.stat().st_size for p in folder.iterdir())
    a = rng.standard_normal((3, 4096)).astype(np.float32)
    expected = make_session(folder / "model.onnx").run(None, {"A": a})[0]
    assert cli.main(["rewrite", str(folder), "-o", str(tmp_path / "out")]) == 0
    assert f"size: {source_bytes / 1e6:.1f} MB ->" in capsys.readouterr().out
    for item in folder.iterdir():
        item.unlink()  # nothing of the source may be needed any more
    out = tmp_path / "out" / "model.onnx"
    assert sorted(p.name for p in out.parent.iterdir()) == ["libtmac_ort_ops.so", "model.onnx", "model.onnx.data"]
    got = make_session(out).run(None, {"A": a})[0]
    assert relative_rms(got, expected) < 0.02
