"""The library, built against ORT API 21, loads and computes in onnxruntime 1.21 too
(the newest onnxruntime is what every other test runs)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import tmac_ort
from tmac_ort import nodes
from tmac_ort import packing, reference

OLDEST = "1.21.0"


def oldest_onnxruntime() -> Path:
    """onnxruntime==1.21.0 installed into a cache folder (not into this environment)."""
    cache = Path(os.environ.get("TMAC_ORT_CACHE", Path.home() / ".cache" / "tmac-ort")) / f"onnxruntime-{OLDEST}"
    if not (cache / "onnxruntime").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(cache),
                        f"onnxruntime=={OLDEST}"], check=True)
    return cache


SCRIPT = """
import sys, numpy as np, onnxruntime as ort
assert ort.__version__ == sys.argv[1], ort.__version__
opts = ort.SessionOptions()
opts.register_custom_ops_library(sys.argv[2])
sess = ort.InferenceSession(sys.argv[3], opts, providers=["CPUExecutionProvider"])
np.save(sys.argv[5], sess.run(None, {"A": np.load(sys.argv[4])})[0])
"""


def test_runs_in_onnxruntime_1_21(tmp_path, rng):
    qw = packing.quantize_rtn(rng.standard_normal((96, 256)).astype(np.float32), 2, 64, symmetric=False)
    (tmp_path / "m.onnx").write_bytes(nodes.make_lut_gemm_model(qw).SerializeToString())
    a = rng.standard_normal((3, 256)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    env = dict(os.environ, PYTHONPATH=str(oldest_onnxruntime()))
    subprocess.run([sys.executable, "-c", SCRIPT, OLDEST, tmac_ort.get_library_path(), str(tmp_path / "m.onnx"),
                    str(tmp_path / "a.npy"), str(tmp_path / "y.npy")], check=True, env=env, cwd=tmp_path)
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(y, reference.lut_gemm(a, qw), rtol=0, atol=1e-5 * np.abs(y).max())
