"""LutGemm's error against the exact product stays within 3x of ORT's own int8-activation
MatMulNBits (accuracy_level=4) on the same quantised weights."""

import numpy as np
import pytest

from conftest import make_session
from tmac_ort import matmul_nbits_format, nodes, packing, reference
from tmac_ort.reference import relative_rms


def activations(rng, kind, M, K):
    a = rng.standard_normal((M, K)).astype(np.float32)
    if kind == "outliers":  # a few channels 50x larger, as in LLM hidden states
        a[:, rng.choice(K, max(1, K // 256), replace=False)] *= 50
    return a


@pytest.mark.parametrize("kind", ["gaussian", "outliers"])
@pytest.mark.parametrize("group", [32, 128])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 4])
def test_error_within_3x_of_matmulnbits_int8(rng, bits, symmetric, group, kind):
    K, N, M = 2048, 256, 8
    qw = packing.quantize_rtn(rng.standard_normal((N, K)).astype(np.float32), bits, group, symmetric)
    a = activations(rng, kind, M, K)
    exact = reference.matmul_dequantized(a, qw)
    lut = make_session(nodes.make_lut_gemm_model(qw)).run(None, {"A": a})[0]
    nbits = make_session(matmul_nbits_format.make_matmul_nbits_model(qw, accuracy_level=4), library=False)
    ort_int8 = nbits.run(None, {"A": a})[0]
    lut_err, ort_err = relative_rms(lut, exact), relative_rms(ort_int8, exact)
    assert ort_err > 0
    assert lut_err <= 3 * ort_err, f"LutGemm {lut_err:.3e} vs MatMulNBits int8 {ort_err:.3e}"


@pytest.mark.parametrize("bits", [2, 4])
def test_matmulnbits_format_round_trips(rng, bits):
    qw = packing.quantize_rtn(rng.standard_normal((40, 256)).astype(np.float32), bits, 64, symmetric=False)
    b, scales, zp = matmul_nbits_format.to_matmul_nbits(qw)
    assert b.shape == (40, 4, 64 * bits // 8)
    back = matmul_nbits_format.from_matmul_nbits(b, scales, zp, 256, 40, bits, 64)
    np.testing.assert_array_equal(back.q, qw.q)
    np.testing.assert_array_equal(back.zero_points, qw.zero_points)
    # ORT's accuracy_level=0 MatMulNBits dequantises to float: it agrees with our dequantize()
    a = rng.standard_normal((3, 256)).astype(np.float32)
    y = make_session(matmul_nbits_format.make_matmul_nbits_model(qw, accuracy_level=0), library=False).run(None, {"A": a})[0]
    np.testing.assert_allclose(y, reference.matmul_dequantized(a, qw), rtol=1e-4, atol=1e-4)
