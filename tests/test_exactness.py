"""Every kernel at the limits: integer overflow, the float range, NaN and infinities.

Each case is checked three ways, on every kernel of the registry and on the int8 path of
each kernel that has one ('NAME+int8', conftest.py):

* against the exact float64 product of the dequantised weights, within the worst-case
  bound of the path (`error_bound`).  Table lookups (`table_error_bound`): every looked-up
  entry is off by at most half a table step, so per block and output the lookup sum is off
  by at most n_quads * step / 2 * (2^bits - 1) / 2 * |s|.  The int8 path
  (`int8_error_bound`): every activation is off by at most half its block's step
  (largest |a| / 127) and multiplies only the centred weight s (q - 2^(bits-1)) (the
  offset part takes the exact block sum), so per block and output the sum is off by at
  most step / 2 * sum_k |s| |q_k - 2^(bits-1)|.  On both, fp16 scales (2^-11) and fp32 sums add at most 2^-10 of
  sum_k |a_k| (|s| (2^bits - 1) + |constant|).  These bounds hold for any data: a kernel
  that overflows, saturates or loses a scale to underflow breaks them;
* against the numpy reference of the path's own arithmetic (`reference.lut_gemm`,
  `reference.int8_gemm`), to fp32 summation order (1e-5 of the same magnitude);
* NaN and infinities exactly where a float matmul has them (docs/packed-format.md); an
  infinity where the exact product plus or minus the bound is beyond fp32 on that side.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import is_int8_path, make_session, reference_gemm
from tmac_ort import nodes
from tmac_ort import packing, reference


def run(qw, a, kernel, threads=1):
    sess = make_session(nodes.make_lut_gemm_model(qw), threads, kernel=kernel)
    return sess.run(None, {"A": np.asarray(a, np.float32)})[0]


def constant_term(qw) -> np.ndarray:
    """c[n, g] with w = s * q + c (float64)."""
    s = qw.scales.astype(np.float64)
    if qw.offsets is not None:
        return qw.offsets.astype(np.float64)
    z = qw.zero_points.astype(np.float64) if qw.zero_points is not None else float(1 << (qw.bits - 1))
    return -s * z


def magnitude(a: np.ndarray, qw) -> np.ndarray:
    """sum_k |a_k| (|s| (2^bits - 1) + |s| (2^bits - 1) / 2 + |o|) per [M, N]: bounds what fp16
    scale and constant terms and fp32 sums can be off by, relatively."""
    a = np.where(np.isfinite(a), a, 0).astype(np.float64)
    s = np.abs(qw.scales.astype(np.float64))
    levels = (1 << qw.bits) - 1
    per_group = s * levels * 1.5 + np.abs(constant_term(qw))
    return np.abs(a) @ qw.per_element(per_group).T


def padded_finite(a: np.ndarray, geo) -> np.ndarray:
    """Rows a[M, K] in float64, NaN and infinities as 0, zero-padded to K_pad."""
    padded = np.zeros((len(a), geo.K_pad))
    padded[:, : geo.K] = np.where(np.isfinite(a), a, 0)
    return padded


def table_error_bound(a: np.ndarray, qw) -> np.ndarray:
    """Worst-case |LutGemm - exact| per output [M, N] for finite a (see the module doc)."""
    geo = qw.geometry
    padded = padded_finite(a, geo)
    M = len(a)
    quads = np.abs(padded).reshape(M, -1, 4).sum(axis=2)  # sum_j |a_j| per quad
    quads_per_block = geo.block_k // 4
    levels = (1 << qw.bits) - 1
    s = np.abs(qw.scales.astype(np.float64))
    bound = np.zeros((M, qw.N))
    for b in range(geo.n_blocks):
        block = quads[:, b * quads_per_block:(b + 1) * quads_per_block]
        step = block.max(axis=1) / 127
        g = geo.group_of_block(b)
        bound += (block.shape[1] * step / 2 * levels / 2)[:, None] * s[:, g][None, :]
    return bound + 2.0**-10 * magnitude(a, qw) + 2.0**-140


def int8_error_bound(a: np.ndarray, qw) -> np.ndarray:
    """Worst-case |int8 path - exact| per output [M, N] for finite a (see the module doc)."""
    geo = qw.geometry
    padded = padded_finite(a, geo)
    w = np.zeros((qw.N, geo.K_pad))  # |s| |q - 2^(bits-1)|: what the int8 values multiply
    centred = np.abs(qw.q.astype(np.float64) - (1 << (qw.bits - 1)))
    w[:, : qw.K] = qw.per_element(np.abs(qw.scales.astype(np.float64))) * centred
    bound = np.zeros((len(a), qw.N))
    for b in range(geo.n_blocks):
        sl = slice(b * geo.block_k, (b + 1) * geo.block_k)
        step = np.abs(padded[:, sl]).max(axis=1) / 127
        bound += (step / 2)[:, None] * w[:, sl].sum(axis=1)[None, :]
    return bound * (1 + 2.0**-8) + 2.0**-10 * magnitude(a, qw) + 2.0**-140


def error_bound(a: np.ndarray, qw, kernel: str) -> np.ndarray:
    return int8_error_bound(a, qw) if is_int8_path(kernel) else table_error_bound(a, qw)


def float_product_specials(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What a float matmul gives where A holds NaN or infinities: NaN or +-inf per [M, N], and
    0 where every a is finite.  A NaN, an infinity times a zero weight, or infinities of
    both signs give NaN; otherwise the infinities' sign."""
    special = np.zeros((a.shape[0], w.shape[0]))
    for m in np.nonzero(~np.isfinite(a).all(axis=1))[0]:
        for n in range(w.shape[0]):
            with np.errstate(invalid="ignore"):
                terms = [a[m, k] * np.float64(w[n, k]) for k in np.nonzero(~np.isfinite(a[m]))[0]]
            if not terms:
                continue
            if any(np.isnan(t) for t in terms) or (min(terms) < 0 < max(terms)):
                special[m, n] = np.nan
            else:
                special[m, n] = terms[0]
    return special


def check(qw, a, kernel, threads=1):
    a = np.asarray(a, np.float32)
    y = run(qw, a, kernel, threads).astype(np.float64)
    specials = float_product_specials(a, qw.dequantize())
    is_special = np.isnan(specials) | np.isinf(specials)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(specials), err_msg="NaN where a float matmul has none, or none where it has")
    np.testing.assert_array_equal(y[np.isinf(specials)], specials[np.isinf(specials)], err_msg="infinities differ")
    finite_a = np.where(np.isfinite(a), a, np.float32(0))
    exact = reference.matmul_dequantized(finite_a, qw)
    bound = error_bound(a, qw, kernel)
    float_max = float(np.finfo(np.float32).max)
    with np.errstate(invalid="ignore"):
        # where exact +- bound reaches beyond fp32, the infinity of that side is within the bound
        overflows = ((y == np.inf) & (exact + bound >= float_max)) | ((y == -np.inf) & (exact - bound <= -float_max))
        ok = is_special | overflows | (np.abs(y - exact) <= bound)
    if not ok.all():
        m, n = np.argwhere(~ok)[0]
        raise AssertionError(f"{(~ok).sum()} outputs beyond the error bound; first [{m}, {n}]: "
                             f"got {y[m, n]!r}, exact {exact[m, n]!r}, bound {bound[m, n]!r}")
    ref = reference_gemm(kernel)(a, qw).astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = is_special | overflows | (np.abs(y - ref) <= 1e-5 * magnitude(a, qw) + 2.0**-140)
    assert close.all(), f"{(~close).sum()} outputs differ from the reference of the kernel arithmetic"
    return y


def weights(kind: str, N: int, K: int, bits: int, group: int, rng, scale=1.0) -> packing.QuantizedWeight:
    levels = (1 << bits) - 1
    n_groups = -(-K // group)
    if kind == "all_max":  # every nibble 2^bits - 1, zero point 0: all weights positive and largest
        q = np.full((N, K), levels)
    elif kind == "all_zero":
        q = np.zeros((N, K))
    elif kind == "constant_rows":
        q = np.repeat(rng.integers(0, levels + 1, (N, 1)), K, axis=1)
    elif kind == "alternating":
        q = np.tile([0, levels], (N, -(-K // 2)))[:, :K]
    else:
        q = rng.integers(0, levels + 1, (N, K))
    scales = (scale * rng.uniform(0.5, 1.0, (N, n_groups))).astype(np.float32)
    zero_points = np.zeros((N, n_groups)) if kind in ("all_max", "constant_rows") else rng.integers(0, levels + 1, (N, n_groups))
    return packing.QuantizedWeight(q.astype(np.uint8), scales, bits, group, zero_points=zero_points.astype(np.uint8))


def activations(K: int, rng) -> np.ndarray:
    """Rows that defeat random-data testing: positive, ReLU'd, one-hot, sparse, constant,
    alternating extremes, and one Gaussian row."""
    positive = rng.uniform(0, 1, K)
    relu = np.maximum(rng.standard_normal(K), 0)
    one_hot = np.zeros(K)
    one_hot[K // 3] = 1
    sparse = np.where(rng.uniform(size=K) < 0.05, rng.standard_normal(K), 0)
    ones = np.ones(K)
    alternating = np.tile([1.0, -1.0], K // 2)
    return np.stack([positive, relu, one_hot, sparse, ones, alternating, rng.standard_normal(K)]).astype(np.float32)


@pytest.mark.parametrize("pattern", ["all_max", "all_zero", "constant_rows", "alternating", "random"])
@pytest.mark.parametrize("group", [32, 128, 256, "K"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_weight_and_activation_patterns(rng, kernel, bits, group, pattern):
    K, N = 512, 40
    qw = weights(pattern, N, K, bits, K if group == "K" else group, rng)
    check(qw, activations(K, rng), kernel)


@pytest.mark.parametrize("group", [32, 128, 256, "K"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("K", [4096, 32768])
def test_long_rows_of_largest_weights_and_positive_activations(rng, kernel, K, bits, group):
    """The int16 worst case: every product positive and largest, summed over the whole row."""
    qw = weights("all_max", 32, K, bits, K if group == "K" else group, rng)
    a = np.stack([np.ones(K), rng.uniform(0, 1, K), rng.standard_normal(K)]).astype(np.float32)
    check(qw, a, kernel)


@pytest.mark.parametrize("M", [1, 2, 3, 17])
def test_row_counts(rng, kernel, M):
    qw = weights("all_max", 70, 1024, 4, 128, rng)
    a = np.abs(rng.standard_normal((M, 1024))).astype(np.float32)
    check(qw, a, kernel, threads=2)


def test_audit_reproducer_4bit_group_128(kernel):
    """Issue F1: all-15 nibbles, zero points 0, unit scales, ones: 3840, not 1775.9."""
    qw = packing.QuantizedWeight(np.full((32, 256), 15, np.uint8), np.ones((32, 2), np.float32), 4, 128,
                                 zero_points=np.zeros((32, 2), np.uint8))
    y = check(qw, np.ones((1, 256), np.float32), kernel)
    np.testing.assert_allclose(y, 3840.0, rtol=1e-2)


@pytest.mark.parametrize("magnitude", [1e-45, 1e-40, 1e-38, 1e-37, 1e-36, 1e-20, 1.0, 1e20, 1e30, 1e36, 1e38])
def test_activation_magnitudes(rng, kernel, magnitude):
    """Tiny activations keep their relative precision; huge ones neither overflow nor go NaN."""
    qw = weights("random", 64, 512, 4, 64, rng, scale=1e-5 if magnitude > 1 else 1.0)  # no fp32 overflow in y
    a = (np.clip(rng.standard_normal((3, 512)), -3, 3) * magnitude).astype(np.float32)
    a[2] = np.abs(a[2])
    y = check(qw, a, kernel)
    assert np.isfinite(y).all()
    if magnitude >= 1e-37:  # normal fp32 activations: the error is the table's, relative to the output
        exact = reference.matmul_dequantized(a, qw)
        assert np.sqrt(np.mean((y - exact) ** 2) / np.mean(exact**2)) < 0.05


@pytest.mark.parametrize("quad", [[1e38, 1e38, -1e38, -1e38], [9e37] * 4, [3.4e38, -3.4e38, 3.4e38, 1.0]])
def test_quads_whose_sums_overflow_fp32(rng, kernel, quad):
    """Issue F2: the table step of four huge activations overflowed into NaN or inf."""
    qw = weights("random", 64, 256, 4, 128, rng, scale=0.001)
    a = (rng.standard_normal((2, 256)) * 1e30).astype(np.float32)
    a[:, 8:12] = quad
    y = check(qw, a, kernel)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("scale", [0.0, 1e-45, 1e-44, 1e-41, 1e-40, 1e-38, 1e-20, 1e20, 1e30])
@pytest.mark.parametrize("quant", ["zero_points", "offsets", "symmetric"])
def test_weight_scale_magnitudes(rng, kernel, scale, quant):
    """Issue F4: subnormal scales gave NaN (the fp16 unit underflowed); zero scales give 0."""
    K, N = 256, 48
    q = rng.integers(0, 16, (N, K)).astype(np.uint8)
    scales = (scale * rng.uniform(0.5, 1.0, (N, K // 64))).astype(np.float32)
    extra = {}
    if quant == "zero_points":
        extra["zero_points"] = rng.integers(0, 16, scales.shape).astype(np.uint8)
    elif quant == "offsets":
        extra["offsets"] = (scale * rng.standard_normal(scales.shape)).astype(np.float32)
    qw = packing.QuantizedWeight(q, scales, 4, 64, **extra)
    y = check(qw, rng.standard_normal((2, K)), kernel)
    if scale == 0.0:
        np.testing.assert_array_equal(y, 0.0)


def test_scales_spanning_the_float_range_across_channels(rng, kernel):
    """Channel units are per channel: a 1e-40 channel beside a 1e30 one keeps its precision."""
    K, N = 256, 64
    q = rng.integers(0, 4, (N, K)).astype(np.uint8)
    magnitudes = np.logspace(-40, 30, N)[:, None]
    scales = (magnitudes * rng.uniform(0.5, 1, (N, K // 32))).astype(np.float32)
    check(packing.QuantizedWeight(q, scales, 2, 32), rng.standard_normal((2, K)), kernel)


@pytest.mark.parametrize("case", ["+inf", "-inf", "nan", "both_infinities", "inf_on_zero_weight", "inf_and_big"])
def test_non_finite_activations_follow_a_float_matmul(rng, kernel, case):
    """Issue F5: the AVX2 kernel gave the wrong sign on half the infinite outputs, the scalar one NaN."""
    K, N = 256, 40
    qw = weights("random", N, K, 2, 64, rng)
    qw.q[:5, 17] = 2  # zero point 2 on group 0 for these channels: w[n, 17] = 0
    qw.zero_points[:5, 0] = 2
    a = rng.standard_normal((2, K)).astype(np.float32)
    if case == "+inf":
        a[0, 50] = np.inf
    elif case == "-inf":
        a[0, 100] = -np.inf
    elif case == "nan":
        a[0, 3] = np.nan
    elif case == "both_infinities":
        a[0, 30], a[0, 200] = np.inf, -np.inf
    elif case == "inf_on_zero_weight":
        a[0, 17] = np.inf  # channels 0..4 have w = 0 there: NaN, the rest +-inf
    else:
        a[0, 40], a[0, 41] = np.inf, 1e30
    y = check(qw, a, kernel)
    assert np.isfinite(y[1]).all()  # the other row is untouched


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bits=st.integers(1, 4), group_steps=st.sampled_from([1, 2, 4, 8, 16, 32, 64]), blocks=st.integers(1, 6),
       N=st.integers(1, 70), M=st.integers(1, 5), log_a=st.floats(-37, 37), log_s=st.floats(-38, 30),
       zero_point=st.sampled_from(["default", "random", "offsets"]), seed=st.integers(0, 2**32 - 1))
def test_random_shapes_and_magnitudes(kernel, bits, group_steps, blocks, N, M, log_a, log_s, zero_point, seed):
    rng = np.random.default_rng(seed)
    group = 8 * group_steps
    K = group * blocks
    q = rng.integers(0, 1 << bits, (N, K)).astype(np.uint8)
    scales = (10.0**log_s * rng.uniform(-1, 1, (N, blocks))).astype(np.float32)
    extra = {}
    if zero_point == "random":
        extra["zero_points"] = rng.integers(0, 1 << bits, (N, blocks)).astype(np.uint8)
    elif zero_point == "offsets":
        extra["offsets"] = (10.0**log_s * rng.standard_normal((N, blocks))).astype(np.float32)
    qw = packing.QuantizedWeight(q, scales, bits, group, **extra)
    a = (10.0**log_a * rng.standard_normal((M, K)) * rng.uniform(0, 1, (M, 1))).astype(np.float32)
    check(qw, a, kernel)


@pytest.mark.parametrize("K,group", [(576, 128), (960, 128), (1001, 64), (100, 64), (72, 256)])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_a_short_last_group(rng, kernel, bits, K, group):
    """K not a multiple of the group (hidden sizes 576 and 960 at MatMulNBits' default block
    128): n_groups = ceil(K / group), the last group shorter."""
    qw = weights("random", 40, K, bits, group, rng)
    assert qw.scales.shape == (40, -(-K // group))
    check(qw, activations(K - K % 2, rng)[:, :K] if K % 2 == 0 else rng.standard_normal((3, K)), kernel)
    check(weights("all_max", 40, K, bits, group, rng), np.abs(rng.standard_normal((2, K))), kernel)
