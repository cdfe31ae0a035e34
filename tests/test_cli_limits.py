"""The CLI at the edges the audit found: whole-row groups, bad files for verify, killed
rewrites, and a rewrite whose weights and activations reach the kernels' limits."""

import signal
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import make_session
from tmac_ort import cli, quantize
from test_exactness import error_bound


def float_matmul_model(w_kn: np.ndarray) -> onnx.ModelProto:
    K = w_kn.shape[0]
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"], name="proj")], "g",
                              [helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w_kn, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def lut_weight(path):
    from test_rewriter import lut_weight as unpack

    return unpack(onnx.load(path))


def test_group_size_minus_one_quantises_whole_rows(tmp_path, rng, capsys):
    """Issue F6: the documented -1 was refused."""
    src = tmp_path / "m.onnx"
    src.write_bytes(float_matmul_model(rng.standard_normal((96, 40)).astype(np.float32)).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "x.onnx"), "--group-size", "-1"]) == 0
    assert lut_weight(tmp_path / "x.onnx").group_size == 96
    capsys.readouterr()
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "y.onnx"), "--group-size", "-2"]) == 1
    assert "positive multiple of 8 (or -1 for whole rows), got -2" in capsys.readouterr().err


def test_a_constant_weight_column_with_positive_activations_through_the_cli(tmp_path, rng, kernel):
    """Issue F1 through the CLI's defaults (4 bits, group 128): a column of 0.5s read -42.5
    where the float model gives 63.9."""
    K, N = 256, 32
    w_kn = rng.standard_normal((K, N)).astype(np.float32)
    w_kn[:, 5] = 0.5
    src, out = tmp_path / "m.onnx", tmp_path / "m.lut.onnx"
    src.write_bytes(float_matmul_model(w_kn).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(out)]) == 0
    a = rng.uniform(0, 1, (3, K)).astype(np.float32)
    y = make_session(out, kernel=kernel).run(None, {"A": a})[0]
    qw = lut_weight(out)
    exact = a.astype(np.float64) @ qw.dequantize().T.astype(np.float64)
    assert (np.abs(y - exact) <= error_bound(a, qw, kernel)).all()
    np.testing.assert_allclose(y[:, 5], a.sum(axis=1) * 0.5, rtol=2e-2)


def bad_files(tmp_path, good: bytes):
    """Every kind of unreadable model the audit fed to verify."""
    files = {"garbage": b"not an onnx model", "empty": b"", "truncated": good[: len(good) // 3]}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(content)
    opset99 = onnx.load_from_string(good)
    opset99.opset_import[0].version = 99
    paths["opset99"] = tmp_path / "opset99.onnx"
    paths["opset99"].write_bytes(opset99.SerializeToString())
    external = onnx.load_from_string(good)
    paths["external"] = tmp_path / "external.onnx"
    onnx.save(external, paths["external"], save_as_external_data=True, all_tensors_to_one_file=True,
              location="external.onnx.data", size_threshold=0)
    data = tmp_path / "external.onnx.data"
    data.write_bytes(data.read_bytes()[:100])  # truncated external data
    paths["missing"] = tmp_path / "missing.onnx"
    return paths


@pytest.mark.parametrize("which", ["garbage", "empty", "truncated", "opset99", "external", "missing"])
@pytest.mark.parametrize("side", ["original", "rewritten"])
def test_verify_answers_bad_files_in_one_line(tmp_path, rng, capsys, which, side):
    """Issue F7: verify printed an 18-line traceback."""
    good = float_matmul_model(rng.standard_normal((64, 32)).astype(np.float32)).SerializeToString()
    (tmp_path / "good.onnx").write_bytes(good)
    bad = bad_files(tmp_path, good)[which]
    args = [str(tmp_path / "good.onnx"), str(bad)] if side == "rewritten" else [str(bad), str(tmp_path / "good.onnx")]
    assert cli.main(["verify", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tmac-ort: error:") and err.count("\n") == 1, err
    assert bad.name in err


KILL_DURING_SAVE = """
import os, signal, sys
import onnx_ir
save = onnx_ir.save
def save_then_die(*args, **kwargs):
    save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)   # as kill -9 after the model is written, before the rename
onnx_ir.save = save_then_die
from tmac_ort import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("folder", [False, True])
def test_a_killed_rewrite_leaves_nothing_behind_after_the_next_run(tmp_path, rng, folder):
    """Issue F8: kill -9 during the final save left a hidden .tmac-* folder for good."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(float_matmul_model(rng.standard_normal((256, 32)).astype(np.float32)).SerializeToString())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / ("lut" if folder else "m.onnx")
    args = ["rewrite", str(src if folder else src / "model.onnx"), "-o", str(target)]
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *args], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".tmac-")]  # the crash left one
    assert not target.exists()
    again = subprocess.run([sys.executable, "-m", "tmac_ort.cli", *args], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "left by an interrupted rewrite" in again.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == [target.name]


def test_a_float_matmul_whose_k_is_not_a_multiple_of_the_group_converts(tmp_path, rng, capsys):
    """K=576 at the default group 128 was skipped (exit 0, nothing said); now its last group is short."""
    w_kn = rng.standard_normal((576, 48)).astype(np.float32)
    src, out = tmp_path / "m.onnx", tmp_path / "m.lut.onnx"
    src.write_bytes(float_matmul_model(w_kn).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(out)]) == 0
    assert "converted      1  MatMul (float)" in capsys.readouterr().out
    qw = lut_weight(out)
    assert (qw.group_size, qw.scales.shape) == (128, (48, 5))
    a = rng.standard_normal((2, 576)).astype(np.float32)
    y = make_session(out).run(None, {"A": a})[0]
    assert (np.abs(y - a.astype(np.float64) @ qw.dequantize().T) <= error_bound(a, qw, None)).all()
    # the default quantiser's numbers for the padded last group
    expected = quantize.quantize(np.ascontiguousarray(w_kn.T), 4, 128, quantize.DEFAULT_METHOD)
    np.testing.assert_array_equal(qw.dequantize(), expected.dequantize())


def test_version(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"tmac-ort {importlib.metadata.version('tmac-ort')}"
