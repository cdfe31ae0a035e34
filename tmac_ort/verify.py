"""`tmac-ort verify`: the original and rewritten models on the same inputs.

Language models (an `input_ids` input and a `logits` output, with a tokenizer.json beside the
model) are compared the way quantisations are compared: perplexity of each over a real
English text (default: the topic help of Python's standard library, `pydoc_data.topics`,
which every Python installation has), the KL divergence of the rewritten model's next-token
distributions from the original's, and top-1 agreement.  Other models: error statistics of
every output on random inputs.  `tolerance` makes either a pass/fail (the exit status).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .reference import relative_rms

_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
          "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def genai_head_size(model_path: Path) -> int | None:
    """onnxruntime-genai models name the KV-cache head size symbolically; their config has it."""
    config = Path(model_path).parent / "genai_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text()).get("model", {}).get("decoder", {}).get("head_size")


def make_inputs(session, seq_len: int = 8, seed: int = 0, head_size: int | None = None) -> dict[str, np.ndarray]:
    """Random activations; for LLM graphs a fixed prompt (token ids), an all-ones mask and empty past."""
    rng = np.random.default_rng(seed)
    feed = {}
    for inp in session.get_inputs():
        name = inp.name
        shape = []
        for i, d in enumerate(inp.shape):
            if isinstance(d, int) and d >= 0:
                shape.append(d)
            elif "past" in name and i == 2:
                shape.append(0)
            elif "past" in name and i == 3 and head_size:
                shape.append(head_size)
            elif i == 0:
                shape.append(1)
            else:
                shape.append(seq_len)
        dtype = _NUMPY.get(inp.type, np.float32)
        if "input_ids" in name:
            feed[name] = (np.arange(int(np.prod(shape))).reshape(shape) * 7919 % 1000 + 10).astype(dtype)
        elif "mask" in name:
            feed[name] = np.ones(shape, dtype)
        elif "position" in name:
            feed[name] = np.broadcast_to(np.arange(shape[-1]), shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            feed[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feed[name] = np.zeros(shape, dtype)
    return feed


def compare(original: np.ndarray, rewritten: np.ndarray) -> dict[str, float]:
    a, b = original.astype(np.float64), rewritten.astype(np.float64)
    out = {"max_abs_err": float(np.abs(a - b).max()) if a.size else 0.0,
           "nmse": relative_rms(b, a) ** 2 if a.size else 0.0}
    if a.ndim >= 2 and a.shape[-1] > 1000:  # logits: top-1 agreement per position
        out["top1_agreement"] = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return out


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def model_file(path: Path) -> Path:
    """A model file, or the model of a folder (onnxruntime-genai, Optimum): model.onnx, else
    its only .onnx file."""
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / "model.onnx").is_file():
        return path / "model.onnx"
    models = sorted(path.glob("*.onnx"))
    if len(models) != 1:
        raise ValueError(f"{path}: {'no' if not models else len(models)} .onnx models in this folder; name one")
    return models[0]


def open_session(path: Path, threads: int):
    """An InferenceSession with the op library, or ValueError in one line (missing, garbage,
    empty or truncated files, unsupported opsets, missing external data: ORT says which)."""
    from . import make_session

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return make_session(path, threads)
    except Exception as e:  # ORT raises its own exception types for every kind of bad model
        raise ValueError(f"{path}: onnxruntime cannot load it: {_first_line(e)}") from None


DEFAULT_TEXT_NAME = "pydoc_data.topics"


def default_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def find_tokenizer(*models: Path) -> Path | None:
    for model in models:
        candidate = Path(model).parent / "tokenizer.json"
        if candidate.is_file():
            return candidate
    return None


def is_language_model(session) -> bool:
    return any("input_ids" in i.name for i in session.get_inputs()) and \
        any(o.name == "logits" for o in session.get_outputs())


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _run(session, names, feed):
    try:
        return session.run(names, feed)
    except Exception as e:
        raise ValueError(f"running the models failed: {_first_line(e)}") from None


def next_token_statistics(s_orig, s_new, windows: list[np.ndarray], head_size: int | None) -> dict[str, float]:
    """Perplexities, mean KL(original || rewritten) and top-1 agreement over the windows of
    token ids, each run from an empty cache; each position predicts the next token."""
    nll_orig, nll_new, kl, agree = [], [], [], []
    for ids in windows:
        feed = make_inputs(s_orig, seq_len=len(ids), head_size=head_size)
        feed[next(n for n in feed if "input_ids" in n)] = ids.reshape(1, -1).astype(np.int64)
        lp_orig = log_softmax(_run(s_orig, ["logits"], feed)[0][0, :-1])
        lp_new = log_softmax(_run(s_new, ["logits"], feed)[0][0, :-1])
        target = ids[1:]
        rows = np.arange(len(target))
        nll_orig.append(-lp_orig[rows, target])
        nll_new.append(-lp_new[rows, target])
        kl.append((np.exp(lp_orig) * (lp_orig - lp_new)).sum(-1))
        agree.append(lp_orig.argmax(-1) == lp_new.argmax(-1))
    nll_orig, nll_new, kl, agree = (np.concatenate(v) for v in (nll_orig, nll_new, kl, agree))
    return {"tokens": float(len(kl)), "perplexity_original": float(np.exp(nll_orig.mean())),
            "perplexity_rewritten": float(np.exp(nll_new.mean())), "kl": float(kl.mean()),
            "kl_p95": float(np.percentile(kl, 95)), "top1_agreement": float(agree.mean())}


def text_windows(text: str, tokenizer: Path, tokens: int, context: int) -> list[np.ndarray]:
    from tokenizers import Tokenizer

    try:
        encoded = Tokenizer.from_file(str(tokenizer)).encode(text)
    except Exception as e:  # the tokenizers library raises its own exception types
        raise ValueError(f"{tokenizer}: cannot tokenize with it: {_first_line(e)}") from None
    ids = np.array(encoded.ids[:tokens], dtype=np.int64)
    if len(ids) < 2:
        raise ValueError("the text has fewer than 2 tokens")
    return [ids[i:i + context] for i in range(0, len(ids) - 1, context) if len(ids[i:i + context]) >= 2]


def _check(value: float, tolerance: float | None, what: str) -> int:
    if tolerance is None:
        return 0
    if value <= tolerance:
        print(f"pass: {what} {value:.4g} <= tolerance {tolerance:g}")
        return 0
    print(f"FAIL: {what} {value:.4g} > tolerance {tolerance:g}")
    return 1


def verify_language_model(s_orig, s_new, original: Path, rewritten: Path, text_path: Path | None, tokens: int,
                          context: int, tolerance: float | None) -> int:
    tokenizer = find_tokenizer(original, rewritten)
    if tokenizer is None:
        raise ValueError(f"no tokenizer.json beside {original} or {rewritten}: perplexity and KL over a text need one")
    if text_path is not None:
        if not Path(text_path).is_file():
            raise FileNotFoundError(f"{text_path}: no such file")
        text, source = Path(text_path).read_text(errors="replace"), str(text_path)
    else:
        text, source = default_text(), f"{DEFAULT_TEXT_NAME} (Python's standard library)"
    windows = text_windows(text, tokenizer, tokens, context)
    stats = next_token_statistics(s_orig, s_new, windows, genai_head_size(original))
    change = stats["perplexity_rewritten"] / stats["perplexity_original"] - 1
    print(f"text: {source}, {int(stats['tokens'])} predicted tokens in {len(windows)} windows of <= {context}")
    print(f"perplexity     original {stats['perplexity_original']:.4f}   rewritten {stats['perplexity_rewritten']:.4f}"
          f"   ({change:+.2%})")
    print(f"KL divergence  {stats['kl']:.5f} nats/token (mean), {stats['kl_p95']:.5f} (95th percentile)")
    print(f"top-1 agreement {stats['top1_agreement']:.2%}")
    return _check(stats["kl"], tolerance, "mean KL divergence")


def verify_outputs(s_orig, s_new, original: Path, rewritten: Path, tolerance: float | None) -> int:
    feed = make_inputs(s_orig, head_size=genai_head_size(original))
    names = [o.name for o in s_orig.get_outputs()]
    worst = 0.0
    for name, a, b in zip(names, _run(s_orig, names, feed), _run(s_new, names, feed)):
        stats = compare(a, b)
        worst = max(worst, stats["nmse"])
        print(f"{name:30s} " + "  ".join(f"{k} {v:.3e}" if k != "top1_agreement" else f"{k} {v:.1%}"
                                         for k, v in stats.items()))
    return _check(worst, tolerance, "largest NMSE of an output")


def verify(original: Path, rewritten: Path, threads: int = 1, text: Path | None = None, tokens: int = 1024,
           context: int = 256, tolerance: float | None = None) -> int:
    """Prints the comparison; returns 1 when `tolerance` is given and exceeded, else 0.

    tolerance: the largest mean KL divergence (nats/token) for language models, the largest
    NMSE of any output otherwise."""
    if tokens < 2 or context < 2:
        raise ValueError("--tokens and --context must be at least 2")
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"--tolerance must be a non-negative number, got {tolerance}")
    original, rewritten = model_file(original), model_file(rewritten)
    s_orig = open_session(original, threads)
    s_new = open_session(rewritten, threads)
    missing = [o.name for o in s_orig.get_outputs() if o.name not in {x.name for x in s_new.get_outputs()}]
    if missing:
        raise ValueError(f"{rewritten}: has no output {missing[0]!r} of {original}")
    if is_language_model(s_orig):
        return verify_language_model(s_orig, s_new, original, rewritten, text, tokens, context, tolerance)
    return verify_outputs(s_orig, s_new, original, rewritten, tolerance)
