"""tmac-ort: T-MAC table-lookup low-bit matmul for ONNX Runtime.

`get_library_path()` names the custom-op library; `session_options()` returns
`onnxruntime.SessionOptions` with it registered.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

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


def session_options(intra_op_num_threads: int | None = None, base=None):
    """`onnxruntime.SessionOptions` with the LutGemm library registered.

    `base` is an existing SessionOptions to extend (it is modified and returned).
    """
    import onnxruntime as ort

    options = base if base is not None else ort.SessionOptions()
    if intra_op_num_threads is not None:
        options.intra_op_num_threads = intra_op_num_threads
    options.register_custom_ops_library(get_library_path())
    return options


__all__ = ["DOMAIN", "OP_TYPE", "OPSET_VERSION", "get_library_path", "session_options"]
