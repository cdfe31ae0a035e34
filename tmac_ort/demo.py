"""`tmac-ort demo`: one 4096x4096 layer at 1-4 bits, LutGemm against the numpy reference,
the exact product and ORT's own MatMulNBits, with timings."""

from __future__ import annotations

import time

import numpy as np


def _median_ms(sess, feed, repeats=20) -> float:
    sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def run_demo(threads: int = 1, K: int = 4096, N: int = 4096, group: int = 128) -> int:
    import onnxruntime as ort

    from . import make_session, matmul_nbits_format, packing, reference
    from .nodes import make_lut_gemm_model

    rng = np.random.default_rng(0)
    w = rng.standard_normal((N, K)).astype(np.float32)
    a = rng.standard_normal((1, K)).astype(np.float32)
    print(f"LutGemm demo: y = a @ W^T, W {N}x{K}, group {group}, 1 row, {threads} thread(s), onnxruntime {ort.__version__}")
    print(f"{'bits':>4} {'vs reference':>13} {'vs exact':>9} {'MatMulNBits':>12} {'LutGemm ms':>11} {'MatMulNBits ms':>15}")
    ok = True
    for bits in (1, 2, 3, 4):
        qw = packing.quantize_rtn(w, bits, group, symmetric=bits > 1)
        sess = make_session(make_lut_gemm_model(qw), threads)
        y = sess.run(None, {"A": a})[0]
        ref = reference.lut_gemm(a, qw)
        exact = reference.matmul_dequantized(a, qw)
        vs_ref = float(np.abs(y - ref).max() / np.abs(ref).max())
        vs_exact = reference.relative_rms(y, exact)
        nbits_err, nbits_ms = "-", "-"
        if bits in (2, 4):
            nb = make_session(matmul_nbits_format.make_matmul_nbits_model(qw, 4), threads, library=False)
            y_nb = nb.run(None, {"A": a})[0]
            nbits_err = f"{reference.relative_rms(y_nb, exact):.2e}"
            nbits_ms = f"{_median_ms(nb, {'A': a}):.3f}"
        print(f"{bits:>4} {vs_ref:>13.1e} {vs_exact:>9.2e} {nbits_err:>12} {_median_ms(sess, {'A': a}):>11.3f} {nbits_ms:>15}")
        ok &= vs_ref < 1e-4
    print("errors: max relative difference to the numpy reference; relative RMS to the exact dequantised product")
    print("PASS" if ok else "FAIL: LutGemm differs from its reference")
    return 0 if ok else 1
