import os

import numpy as np
import onnxruntime as ort
import pytest

import tmac_ort


def make_session(model, threads: int = 1, library: bool = True, kernel: str | None = None):
    """An InferenceSession for `model` (a ModelProto, or a path when weights live in external files),
    with the LutGemm library registered (running `kernel`, default the best available)."""
    options = tmac_ort.session_options(threads, kernel=kernel) if library else ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def kernel_params():
    """Every kernel of the op library's registry; those this process cannot run are skipped
    with the registry's reason."""
    return [pytest.param(k.name, marks=() if k.available else pytest.mark.skip(reason=f"{k.name}: {k.unavailable}"))
            for k in tmac_ort.kernel_registry()]


def pytest_generate_tests(metafunc):
    # A test that takes `kernel` runs once per kernel of the registry.
    if "kernel" in metafunc.fixturenames:
        metafunc.parametrize("kernel", kernel_params())


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def relative_rms(actual, expected) -> float:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2) / np.mean(expected**2)))
