import numpy as np
import pytest

import tmac_ort
from tmac_ort import reference


INT8_PATH = "+int8"


def is_int8_path(kernel: str | None) -> bool:
    return bool(kernel) and kernel.endswith(INT8_PATH)


def make_session(model, threads: int = 1, library: bool = True, kernel: str | None = None):
    """tmac_ort.make_session: `model` a ModelProto or a path (weights in external files).

    The path is pinned, whatever the row count: `kernel` 'NAME' (or None: the default kernel)
    runs table lookups, 'NAME+int8' the kernel's int8 path (tmac.int8_min_rows 0 or 1)."""
    name = kernel[: -len(INT8_PATH)] if is_int8_path(kernel) else kernel
    return tmac_ort.make_session(model, threads, kernel=name, library=library,
                                 int8_min_rows=1 if is_int8_path(kernel) else 0)


def triple_int8_path(kernel: str) -> bool:
    """Whether the int8 path of `kernel` ('NAME+int8') has a layout-3 form (else layout 3
    takes the lookups at every row count)."""
    name = kernel[: -len(INT8_PATH)] if is_int8_path(kernel) else kernel
    return next(k for k in tmac_ort.kernel_registry() if k.name == name).triple_int8_min_rows > 0


def reference_gemm(kernel: str | None):
    """The numpy reference of the arithmetic `kernel` (a test parameter) runs."""
    return reference.int8_gemm if is_int8_path(kernel) else reference.lut_gemm


def kernel_params(int8_paths: bool = True):
    """Every kernel of the op library's registry, and 'NAME+int8' for each that has an int8
    path; those this process cannot run are skipped with the registry's reason."""
    params = []
    for k in tmac_ort.kernel_registry():
        marks = () if k.available else pytest.mark.skip(reason=f"{k.name}: {k.unavailable}")
        params.append(pytest.param(k.name, marks=marks))
        if int8_paths and k.has_int8_path:
            params.append(pytest.param(k.name + INT8_PATH, marks=marks))
    return params


def pytest_generate_tests(metafunc):
    # A test that takes `kernel` runs once per kernel of the registry and int8 path;
    # `lookup_kernel` once per kernel, table lookups only.
    if "kernel" in metafunc.fixturenames:
        metafunc.parametrize("kernel", kernel_params())
    if "lookup_kernel" in metafunc.fixturenames:
        metafunc.parametrize("lookup_kernel", kernel_params(int8_paths=False))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
