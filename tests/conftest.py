import numpy as np
import pytest

import tmac_ort


def make_session(model, threads: int = 1, library: bool = True, kernel: str | None = None):
    """tmac_ort.make_session: `model` a ModelProto or a path (weights in external files)."""
    return tmac_ort.make_session(model, threads, kernel=kernel, library=library)


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
