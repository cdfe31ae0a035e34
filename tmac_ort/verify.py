"""`tmac-ort verify`: the original and rewritten models on the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
           "nmse": float(np.mean((a - b) ** 2) / max(np.mean(a**2), 1e-30)) if a.size else 0.0}
    if a.ndim >= 2 and a.shape[-1] > 1000:  # logits: top-1 agreement per position
        out["top1_agreement"] = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return out


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def open_session(path: Path, threads: int):
    """An InferenceSession with the op library, or ValueError in one line (missing, garbage,
    empty or truncated files, unsupported opsets, missing external data: ORT says which)."""
    import onnxruntime as ort

    from . import session_options

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for every kind of bad model
        raise ValueError(f"{path}: onnxruntime cannot load it: {_first_line(e)}") from None


def verify(original: Path, rewritten: Path, threads: int = 1) -> int:
    s_orig = open_session(original, threads)
    s_new = open_session(rewritten, threads)
    feed = make_inputs(s_orig, head_size=genai_head_size(original))
    names = [o.name for o in s_orig.get_outputs()]
    missing = [n for n in names if n not in {o.name for o in s_new.get_outputs()}]
    if missing:
        raise ValueError(f"{rewritten}: has no output {missing[0]!r} of {original}")
    try:
        outputs = zip(names, s_orig.run(names, feed), s_new.run(names, feed))
    except Exception as e:
        raise ValueError(f"running the models failed: {_first_line(e)}") from None
    for name, a, b in outputs:
        stats = "  ".join(f"{k} {v:.3e}" if k != "top1_agreement" else f"{k} {v:.1%}" for k, v in compare(a, b).items())
        print(f"{name:30s} {stats}")
    return 0
