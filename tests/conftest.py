import os

import numpy as np
import onnxruntime as ort
import pytest

import tmac_ort


def make_session(model, threads: int = 1, library: bool = True, kernel: str | None = None, monkeypatch=None):
    """An InferenceSession for `model` (a ModelProto, or a path when weights live in external files),
    with the LutGemm library registered."""
    options = tmac_ort.session_options(threads) if library else ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def relative_rms(actual, expected) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2) / np.mean(expected**2)))
