"""`tmac-ort verify`: perplexity, KL divergence and top-1 agreement of language models over a
text, --tolerance as the exit status, and the output statistics of other models.

The language model is a bigram table (Gather -> MatMul -> logits) with a word-level
tokenizer.json; the references are computed here in float64 from the two sessions' logits."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import make_session
from tmac_ort import cli, verify

TEXT = " ".join(["the cat sat on the mat and the dog sat on the log"] * 40)


def write_language_model(folder, rng, vocab_size=64, dim=96):
    """A bigram language model with a word-level tokenizer.json beside it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted(set(TEXT.split()))
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    embedding = rng.standard_normal((vocab_size, dim)).astype(np.float32)
    head = (rng.standard_normal((dim, vocab_size)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Gather", ["embedding", "input_ids"], ["h"], name="embed"),
             helper.make_node("MatMul", ["h", "head"], ["logits"], name="lm_head")]
    graph = helper.make_graph(
        nodes, "bigram",
        [helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", onnx.TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", "sequence", vocab_size])],
        [numpy_helper.from_array(embedding, "embedding"), numpy_helper.from_array(head, "head")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture
def language_models(tmp_path, rng):
    original = write_language_model(tmp_path / "fp32", rng)
    rewritten = tmp_path / "lut" / "model.onnx"
    assert cli.main(["rewrite", str(original), "-o", str(rewritten), "--bits", "2", "--group-size", "32"]) == 0
    return original, rewritten


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def expected_statistics(original, rewritten, tokenizer_path, tokens, context):
    from tokenizers import Tokenizer

    ids = np.array(Tokenizer.from_file(str(tokenizer_path)).encode(TEXT).ids[:tokens])
    nll_o, nll_r, kl, agree = [], [], [], []
    s_o, s_r = make_session(original), make_session(rewritten)
    for start in range(0, len(ids) - 1, context):
        window = ids[start:start + context]
        if len(window) < 2:
            continue
        feed = {"input_ids": window[None], "attention_mask": np.ones_like(window)[None]}
        lo = log_softmax(s_o.run(None, feed)[0][0, :-1])
        lr = log_softmax(s_r.run(None, feed)[0][0, :-1])
        nxt = window[1:]
        nll_o += list(-lo[np.arange(len(nxt)), nxt])
        nll_r += list(-lr[np.arange(len(nxt)), nxt])
        kl += list((np.exp(lo) * (lo - lr)).sum(-1))
        agree += list(lo.argmax(-1) == lr.argmax(-1))
    return np.exp(np.mean(nll_o)), np.exp(np.mean(nll_r)), np.mean(kl), np.mean(agree), len(kl)


def test_statistics_match_an_independent_computation(language_models):
    original, rewritten = language_models
    windows = verify.text_windows(TEXT, original.parent / "tokenizer.json", 300, 64)
    stats = verify.next_token_statistics(make_session(original), make_session(rewritten), windows, None)
    ppl_o, ppl_r, kl, agree, count = expected_statistics(original, rewritten, original.parent / "tokenizer.json",
                                                         300, 64)
    assert stats["tokens"] == count
    np.testing.assert_allclose([stats["perplexity_original"], stats["perplexity_rewritten"], stats["kl"]],
                               [ppl_o, ppl_r, kl], rtol=1e-9)
    assert stats["top1_agreement"] == agree
    assert stats["kl"] > 1e-4  # 2-bit weights do change the distribution


def test_a_model_against_itself_has_zero_divergence(language_models, tmp_path, capsys):
    original, _ = language_models
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    assert cli.main(["verify", str(original), str(original), "--text", str(text), "--tolerance", "0"]) == 0
    out = capsys.readouterr().out
    assert "KL divergence  0.00000 nats/token" in out and "top-1 agreement 100.00%" in out
    assert "pass: mean KL divergence 0 <= tolerance 0" in out


def test_tolerance_sets_the_exit_status(language_models, tmp_path, capsys):
    original, rewritten = language_models
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    args = ["verify", str(original), str(rewritten), "--text", str(text), "--tokens", "200", "--context", "50"]
    assert cli.main(args) == 0  # no tolerance: a report only
    out = capsys.readouterr().out
    assert "perplexity     original" in out and "windows of <= 50" in out
    kl = float(out.split("KL divergence")[1].split()[0])
    assert cli.main([*args, "--tolerance", str(kl * 2)]) == 0
    assert "pass:" in capsys.readouterr().out
    assert cli.main([*args, "--tolerance", str(kl / 2)]) == 1
    assert "FAIL: mean KL divergence" in capsys.readouterr().out


def test_the_default_text_is_pythons_own(language_models, capsys):
    original, rewritten = language_models
    assert cli.main(["verify", str(original), str(rewritten), "--tokens", "64"]) == 0
    assert "pydoc_data.topics (Python's standard library)" in capsys.readouterr().out


@pytest.mark.parametrize("problem,message", [
    ("no tokenizer", "no tokenizer.json beside"),
    ("missing text", "no such file"),
    ("bad tolerance", "--tolerance must be a non-negative number"),
    ("one token", "--tokens and --context must be at least 2"),
])
def test_bad_verify_input_is_one_line(language_models, tmp_path, capsys, problem, message):
    original, rewritten = language_models
    args = ["verify", str(original), str(rewritten)]
    if problem == "no tokenizer":
        (original.parent / "tokenizer.json").unlink()
        (rewritten.parent / "tokenizer.json").unlink(missing_ok=True)
    elif problem == "missing text":
        args += ["--text", str(tmp_path / "nothing.txt")]
    elif problem == "bad tolerance":
        args += ["--tolerance", "-1"]
    else:
        args += ["--tokens", "1"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_other_models_compare_outputs_with_a_tolerance(tmp_path, rng, capsys):
    from test_rewriter import float_model

    src = tmp_path / "m.onnx"
    src.write_bytes(float_model({"fc": rng.standard_normal((128, 64)).astype(np.float32)}).SerializeToString())
    assert cli.main(["rewrite", str(src), "-o", str(tmp_path / "o.onnx")]) == 0
    capsys.readouterr()
    assert cli.main(["verify", str(src), str(tmp_path / "o.onnx"), "--tolerance", "0.1"]) == 0
    out = capsys.readouterr().out
    nmse = float(out.split("nmse")[1].split()[0])
    assert 0 < nmse < 0.1 and "pass: largest NMSE of an output" in out
    assert cli.main(["verify", str(src), str(tmp_path / "o.onnx"), "--tolerance", str(nmse / 2)]) == 1


def test_verify_inputs_take_the_kv_head_size_from_a_genai_config(tmp_path):
    """genai models name the KV-cache head size symbolically ('kv_cache_dim'); verify must not guess it."""
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"head_size": 64}}}))

    class Input:
        def __init__(self, name, shape, type_):
            self.name, self.shape, self.type = name, shape, type_

    class Session:
        def get_inputs(self):
            return [Input("input_ids", ["batch_size", "sequence_length"], "tensor(int64)"),
                    Input("past_key_values.0.key", ["batch_size", 3, "past_sequence_length", "kv_cache_dim"],
                          "tensor(float)")]

    feed = verify.make_inputs(Session(), seq_len=5, head_size=verify.genai_head_size(tmp_path / "model.onnx"))
    assert feed["input_ids"].shape == (1, 5) and feed["past_key_values.0.key"].shape == (1, 3, 0, 64)


def test_a_broken_tokenizer_is_one_line(language_models, capsys):
    original, rewritten = language_models
    (original.parent / "tokenizer.json").write_text("{not json")
    assert cli.main(["verify", str(original), str(rewritten)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot tokenize with it" in err


def test_folders_are_compared_by_their_model(language_models, capsys):
    original, rewritten = language_models
    assert cli.main(["verify", str(original.parent), str(rewritten.parent), "--tokens", "64"]) == 0
    assert "KL divergence" in capsys.readouterr().out
    (original.parent / "other.onnx").write_bytes(original.read_bytes())
    original.rename(original.parent / "third.onnx")
    assert cli.main(["verify", str(original.parent), str(rewritten.parent)]) == 1
    assert "2 .onnx models in this folder; name one" in capsys.readouterr().err
