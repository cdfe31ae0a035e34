"""tmac-ort: T-MAC table-lookup low-bit matmul for ONNX Runtime.

`get_library_path()` names the custom-op library; `session_options()` returns
`onnxruntime.SessionOptions` with it registered.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

try:  # the version lives in pyproject.toml only
    __version__ = importlib.metadata.version("tmac-ort")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree
    __version__ = "unknown"

DOMAIN = "com.tmac"
OP_TYPE = "LutGemm"
OPSET_VERSION = 1

_LIB_NAME = "libtmac_ort_ops.so"


def get_library_path() -> str:
    """Absolute path of the native custom-op library shipped inside this package."""
    path = Path(__file__).resolve().parent / "lib" / _LIB_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: tmac_ort is imported from a source tree, not an installed "
            "package. Install it with `pip install .`"
        )
    return str(path)


KERNEL_CONFIG_KEY = "tmac.kernel"
INT8_MIN_ROWS_CONFIG_KEY = "tmac.int8_min_rows"


def session_options(intra_op_num_threads: int | None = None, base=None, kernel: str | None = None,
                    library: str | None = None, int8_min_rows: int | None = None):
    """`onnxruntime.SessionOptions` with the LutGemm library registered.

    `base` is an existing SessionOptions to extend (it is modified and returned).  `kernel`
    names the ISA kernel the session's LutGemm nodes run (one of `available_kernels()`);
    by default the environment variable TMAC_ORT_KERNEL, else the best this CPU has.
    `library` registers another build of the op library instead of this package's.
    `int8_min_rows`: calls of at least this many rows take the kernel's int8 path (prefill;
    kernels with one), 0 never; by default the environment variable TMAC_ORT_INT8_MIN_ROWS,
    else the kernel's own choice per bit width (`KernelInfo.int8_rows`).
    """
    import onnxruntime as ort

    options = base if base is not None else ort.SessionOptions()
    if intra_op_num_threads is not None:
        options.intra_op_num_threads = intra_op_num_threads
    if kernel is not None:
        options.add_session_config_entry(KERNEL_CONFIG_KEY, kernel)
    if int8_min_rows is not None:
        options.add_session_config_entry(INT8_MIN_ROWS_CONFIG_KEY, str(int8_min_rows))
    options.register_custom_ops_library(library or get_library_path())
    return options


def make_session(model, threads: int = 1, kernel: str | None = None, library: bool | str = True,
                 config: dict[str, str] | None = None, int8_min_rows: int | None = None):
    """The one way this project opens an `onnxruntime.InferenceSession` (CPU): `model` is a path,
    a ModelProto or serialized bytes; `library` True registers this package's op library, a
    path registers that build instead (benchmarks compare builds), False none (plain ORT);
    `config` adds session config entries; `kernel` and `int8_min_rows` as `session_options`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    if library:
        session_options(base=options, kernel=kernel, library=None if library is True else str(library),
                        int8_min_rows=int8_min_rows)
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        model = str(model)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class KernelInfo:
    """One entry of the op library's kernel registry."""

    name: str
    unavailable: str  # why this process cannot run it ("" when it can)
    # from how many rows it takes its int8 path by default at 1, 2, 3 and 4 bits (0: it has
    # none at that width, or this CPU lacks it)
    int8_min_rows: tuple[int, ...] = (0, 0, 0, 0)
    triple_int8_min_rows: int = 0  # the same for layout 3 (ternary triples); 0: no int8 form of it

    @property
    def available(self) -> bool:
        return not self.unavailable

    @property
    def has_int8_path(self) -> bool:
        return any(self.int8_min_rows)

    def int8_rows(self, bits: int) -> int:
        """From how many rows `bits`-bit weights take the int8 path by default (0: never)."""
        return self.int8_min_rows[bits - 1]


@functools.lru_cache(maxsize=None)
def _registry(kernel: str | None) -> tuple[tuple[KernelInfo, ...], str]:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    outputs = {"names": TensorProto.STRING, "unavailable": TensorProto.STRING, "selected": TensorProto.STRING,
               "int8_min_rows": TensorProto.INT64, "triple_int8_min_rows": TensorProto.INT64}
    node = helper.make_node("Kernels", [], list(outputs), domain=DOMAIN)
    graph = helper.make_graph([node], "tmac_kernels", [],
                              [helper.make_tensor_value_info(o, t, None) for o, t in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(DOMAIN, 1)],
                              ir_version=10)
    sess = ort.InferenceSession(model.SerializeToString(), session_options(1, kernel=kernel),
                                providers=["CPUExecutionProvider"])
    names, unavailable, selected, int8_rows, triple_rows = sess.run(None, {})
    return (tuple(KernelInfo(str(n), str(u), tuple(int(x) for x in r), int(t))
                  for n, u, r, t in zip(names, unavailable, int8_rows, triple_rows)),
            str(selected[0]))


def kernel_registry() -> tuple[KernelInfo, ...]:
    """Every kernel compiled into the op library, best first, with why it cannot run here."""
    return _registry(None)[0]


def available_kernels() -> list[str]:
    """The kernels this process can run, best first (the first is the default)."""
    return [k.name for k in kernel_registry() if k.available]


def selected_kernel(kernel: str | None = None) -> str:
    """The kernel a session made with `session_options(kernel=kernel)` runs."""
    return _registry(kernel)[1]


__all__ = ["DOMAIN", "OP_TYPE", "OPSET_VERSION", "KERNEL_CONFIG_KEY", "INT8_MIN_ROWS_CONFIG_KEY", "KernelInfo",
           "available_kernels", "get_library_path", "kernel_registry", "make_session", "selected_kernel", "session_options"]
