"""Instructions per LutGemm call under callgrind: repeatable where wall clock is not.

    python benchmarks/instructions.py [--library SO ...] [--kernel NAME ...] [--shape KxN] [--m M ...]

Each (library, kernel, bits, M) runs in its own valgrind process; only tmac::LutGemm::Run
(tables, tiles, epilogue) is counted, averaged over the calls.  Weights are Gaussian, RTN,
group 128, symmetric, as in `tmac-ort bench`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

CALLS = 3


def inner(library: str, kernel: str, K: int, N: int, M: int, bits: int, group: int) -> None:
    import numpy as np
    import onnxruntime as ort

    from tmac_ort import KERNEL_CONFIG_KEY, nodes, packing

    rng = np.random.default_rng(0)
    qw = packing.quantize_rtn(rng.standard_normal((N, K)).astype(np.float32), bits, group, symmetric=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if kernel:
        options.add_session_config_entry(KERNEL_CONFIG_KEY, kernel)
    options.register_custom_ops_library(library)
    sess = ort.InferenceSession(nodes.make_lut_gemm_model(qw).SerializeToString(), options)
    a = rng.standard_normal((M, K)).astype(np.float32)
    for _ in range(CALLS):
        sess.run(None, {"A": a})


def count(library: str, kernel: str, K: int, N: int, M: int, bits: int, group: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=tmac::LutGemm::Run(*",
               f"--callgrind-out-file={tmp}/out", sys.executable, __file__, "--inner",
               library, kernel, str(K), str(N), str(M), str(bits), str(group)]
        result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        match = re.search(r"Collected : (\d+)", result.stderr)
        if result.returncode or not match:
            raise RuntimeError(result.stderr[-2000:])
        if int(match.group(1)) == 0:
            raise RuntimeError(f"{library}: no instructions in tmac::LutGemm::Run: a stripped build? "
                               "(pip install . -C install.strip=false)")
        return int(match.group(1)) / CALLS


def main() -> int:
    if sys.argv[1:2] == ["--inner"]:
        library, kernel, *numbers = sys.argv[2:]
        inner(library, kernel, *map(int, numbers))
        return 0
    import tmac_ort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", nargs="*", default=[tmac_ort.get_library_path()])
    parser.add_argument("--kernel", nargs="*", default=[""], help="kernels of the registry (default: the best)")
    parser.add_argument("--shape", default="4096x1024")
    parser.add_argument("--bits", nargs="*", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--m", nargs="*", type=int, default=[1])
    parser.add_argument("--group-size", type=int, default=128)
    args = parser.parse_args()
    K, N = map(int, args.shape.split("x"))
    print(f"instructions per call, K={K} N={N} group {args.group_size} (callgrind, tmac::LutGemm::Run)")
    for library in args.library:
        for kernel in args.kernel:
            for M in args.m:
                counts = [count(library, kernel, K, N, M, bits, args.group_size) for bits in args.bits]
                cells = "  ".join(f"{b}-bit {c / 1e3:9.0f} k" for b, c in zip(args.bits, counts))
                print(f"{library} {kernel or '(default)'} M={M}: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
