"""What CLI users expect of `tmac-ort rewrite` and `inspect`: one rule for existing outputs,
a progress bar, a summary with bits per weight, a note when quantisation flags cannot apply,
inspect on folders and QDQ models with full names."""

import io
import json

import numpy as np
import onnx
import pytest
from onnx import helper

from tmac_ort import cli, packing
from test_rewriter import dq_matmul_model, float_model, matmul_nbits_model


@pytest.fixture
def float_file(tmp_path, rng):
    src = tmp_path / "m.onnx"
    src.write_bytes(float_model({"fc": rng.standard_normal((256, 64)).astype(np.float32)}).SerializeToString())
    return src


@pytest.fixture
def genai_folder(tmp_path, rng):
    folder = tmp_path / "genai"
    folder.mkdir()
    qw = packing.quantize_rtn(rng.standard_normal((64, 256)).astype(np.float32), 4, 32)
    (folder / "model.onnx").write_bytes(matmul_nbits_model(qw, name="a_layer_with_a_name_longer_than_forty_characters")
                                        .SerializeToString())
    (folder / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"session_options": {}}}}))
    return folder


def test_an_existing_output_file_is_refused_unless_forced(tmp_path, float_file, capsys):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"the user's file")
    assert cli.main(["rewrite", str(float_file), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; give another output path, or --force to replace it" in err
    assert out.read_bytes() == b"the user's file"
    assert cli.main(["rewrite", str(float_file), "-o", str(out), "--force"]) == 0
    assert [n.op_type for n in onnx.load(out).graph.node] == ["LutGemm"]


def test_an_existing_output_folder_is_refused_unless_forced(tmp_path, genai_folder, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["rewrite", str(genai_folder), "-o", str(out)]) == 1
    assert "--force to replace it" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert cli.main(["rewrite", str(genai_folder), "-o", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["genai_config.json", "libtmac_ort_ops.so", "model.onnx"]
    assert not list(tmp_path.glob(".tmac-*"))  # the replaced folder is gone, no temporary left
    assert cli.main(["rewrite", str(genai_folder), "-o", str(genai_folder), "--force"]) == 1
    assert "refusing to overwrite the input folder" in capsys.readouterr().err


def test_the_summary_gives_bits_per_weight(tmp_path, float_file, capsys):
    assert cli.main(["rewrite", str(float_file), "-o", str(tmp_path / "o.onnx"), "--bits", "2", "--group-size", "32"]) == 0
    # 2-bit planes + fp16 scale and offset per 32 weights ("mse": exact fp16 numbers)
    assert "LutGemm weights: 0.0 M at 3.00 bits per weight" in capsys.readouterr().out


def test_quantisation_flags_on_a_quantised_source_say_they_do_not_apply(tmp_path, genai_folder, capsys):
    assert cli.main(["rewrite", str(genai_folder / "model.onnx"), "-o", str(tmp_path / "o.onnx"), "--bits", "2",
                     "--method", "rtn"]) == 0
    err = capsys.readouterr().err
    assert "note: --bits, --method apply to float weights only; 1 already quantised node(s) kept their own" in err
    assert {a.name: a.i for a in onnx.load(tmp_path / "o.onnx").graph.node[0].attribute}["bits"] == 4
    assert cli.main(["rewrite", str(genai_folder / "model.onnx"), "-o", str(tmp_path / "p.onnx")]) == 0
    assert "note:" not in capsys.readouterr().err  # no flag given, nothing to say


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_bar_on_a_terminal_only(tmp_path, float_file, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main(["rewrite", str(float_file), "-o", str(tmp_path / "a.onnx")]) == 0
    assert "rewriting m.onnx" in terminal.getvalue() and "/1 [" in terminal.getvalue()  # the total, then ETA
    monkeypatch.undo()
    assert cli.main(["rewrite", str(float_file), "-o", str(tmp_path / "b.onnx")]) == 0
    assert "rewriting" not in capsys.readouterr().err  # a log file gets no bar


def test_inspect_a_folder_with_full_names(genai_folder, capsys):
    assert cli.main(["inspect", str(genai_folder)]) == 0
    out = capsys.readouterr().out
    assert "model.onnx" in out and "a_layer_with_a_name_longer_than_forty_characters" in out
    assert "MatMulNBits" in out


def test_inspect_a_qdq_model(tmp_path, rng, capsys):
    q = rng.integers(0, 16, (256, 64)).astype(np.uint8)
    scale = rng.uniform(0.01, 0.1, (8, 64)).astype(np.float32)
    path = tmp_path / "qdq.onnx"
    path.write_bytes(dq_matmul_model(q, scale, np.full((8, 64), 8, np.uint8), "uint4", 32).SerializeToString())
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "DequantizeLinear uint4" in out and "32" in out and "256" in out


def test_inspect_reports_lut_gemm_bits_per_weight(tmp_path, float_file, capsys):
    out = tmp_path / "o.onnx"
    assert cli.main(["rewrite", str(float_file), "-o", str(out), "--bits", "1", "--group-size", "32"]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", str(out)]) == 0
    assert "2.00" in capsys.readouterr().out  # bits per weight of the 1-bit layer (mse: fp16 scale and offset)


def test_inspect_a_missing_path_is_one_line(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1



def test_a_source_weight_that_other_nodes_read_is_reported(tmp_path, rng, capsys):
    """onnxruntime-genai ties the embedding to the lm_head's 4-bit blocks (GatherBlockQuantized):
    the rewritten file keeps them beside the LutGemm planes, and says so."""
    qw = packing.quantize_rtn(rng.standard_normal((2048, 1024)).astype(np.float32), 4, 32)
    model = matmul_nbits_model(qw, name="lm_head")
    blocks = model.graph.node[0].input[1]
    model.graph.node.append(onnx.helper.make_node("Identity", [blocks], ["tied"], name="embedding"))
    model.graph.output.append(onnx.helper.make_tensor_value_info("tied", onnx.TensorProto.UINT8, None))
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"note: lm_head's source weight {blocks} (1.0 MB) is also read by other nodes" in out
    assert blocks in {t.name for t in onnx.load(tmp_path / "o.onnx").graph.initializer}
    # without the second reader, nothing is kept and nothing is said
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(matmul_nbits_model(qw, name="lm_head").SerializeToString())
    capsys.readouterr()
    assert cli.main(["rewrite", str(plain), "-o", str(tmp_path / "q.onnx")]) == 0
    assert "note:" not in capsys.readouterr().out


def test_cli_rewrites_a_file_and_refuses_to_overwrite_it(tmp_path, rng, capsys):
    qw = packing.quantize_rtn(rng.standard_normal((192, 256)).astype(np.float32), 2, 32, symmetric=False)
    src = tmp_path / "m.onnx"
    src.write_bytes(matmul_nbits_model(qw).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "out.onnx")]) == 0
    out = capsys.readouterr().out
    assert "converted      1  MatMulNBits" in out and "com.tmac.LutGemm" in out
    assert [n.op_type for n in onnx.load(tmp_path / "out.onnx").graph.node] == ["LutGemm"]
    before = src.read_bytes()
    assert cli.main(["rewrite", str(src), "-o", str(src)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert cli.main(["inspect", str(tmp_path / "out.onnx")]) == 0
    assert "LutGemm" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", None])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, rng, capsys, content):
    src = tmp_path / "bad.onnx"
    if content is None:  # a truncated real model
        qw = packing.quantize_rtn(rng.standard_normal((64, 128)).astype(np.float32), 4, 32)
        content = matmul_nbits_model(qw).SerializeToString()[:200]
    src.write_bytes(content)
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "out.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tmac-ort: error:") and err.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]


def test_cli_dry_run_and_unknown_flags(tmp_path, rng, capsys):
    src = tmp_path / "m.onnx"
    src.write_bytes(float_model({"fc": rng.standard_normal((64, 32)).astype(np.float32)}).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--dry-run", "--group-size", "32"]) == 0
    assert "dry run" in capsys.readouterr().out and not (tmp_path / "o.onnx").exists()
    with pytest.raises(SystemExit) as e:
        cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--frobnicate"])
    assert e.value.code == 2
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--exclude", "fc"]) == 1
    captured = capsys.readouterr()
    assert "no node matched" in captured.err and not (tmp_path / "o.onnx").exists()
    assert "skipped        1  MatMul (float): excluded by --exclude: fc" in captured.out  # why, even when nothing converts
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--group-size", "32"]) == 0
    assert "converted      1  MatMul (float)" in capsys.readouterr().out


def test_cli_groups_skipped_nodes_by_reason(tmp_path, rng, capsys):
    """An LLM has dozens of activation x activation MatMuls: one row per reason, not one per node."""
    model = float_model({"fc": rng.standard_normal((64, 64)).astype(np.float32)})
    model.graph.input.append(helper.make_tensor_value_info("V", onnx.TensorProto.FLOAT, [64, 64]))
    x = model.graph.output[0].name
    for i in range(5):
        model.graph.node.append(helper.make_node("MatMul", [x, "V"], [f"att{i}"], name=f"attn{i}"))
        x = f"att{i}"
    model.graph.output[0].name = x
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--group-size", "32"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("  skipped")]
    assert len(rows) == 1 and "    5  MatMul (float): weight is not constant: attn0, attn1, ... (3 more" in rows[0]
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o2.onnx"), "--group-size", "32", "--verbose"]) == 0
    assert "attn4" in capsys.readouterr().out


def test_quantised_nodes_that_stay_get_a_warning(tmp_path, rng, capsys):
    qw = packing.quantize_rtn(rng.standard_normal((64, 128)).astype(np.float32), 4, 32)
    model = matmul_nbits_model(qw, name="four_bit")
    eight = onnx.NodeProto()
    eight.CopyFrom(model.graph.node[0])
    eight.name, eight.output[0] = "eight_bit", "Y8"
    next(a for a in eight.attribute if a.name == "bits").i = 8
    model.graph.node.append(eight)
    model.graph.output.append(helper.make_tensor_value_info("Y8", onnx.TensorProto.FLOAT, None))
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx")]) == 0
    captured = capsys.readouterr()
    assert "skipped        1  MatMulNBits: bits=8" in captured.out
    assert "warning: 1 quantised MatMul node(s) stay as they are" in captured.err
    assert sorted(n.op_type for n in onnx.load(tmp_path / "o.onnx").graph.node) == ["LutGemm", "MatMulNBits"]
