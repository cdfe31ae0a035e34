"""Layout 3, ternary weights as base-3 triples (docs/packed-format.md), on every kernel.

The packer against its specification (round trip, the worked example, the padding of blocks
to whole steps), then the op through ONNX Runtime at the limits, as test_exactness does for
the bit planes: against the exact float64 product within the worst-case table bound (every
looked-up entry off by at most half its block's step, and a triple's weights are -1, 0 or +1
times s: per block and output at most n_triples * step / 2 * |s|, step = the block's largest
(|a0| + |a1|) + |a2| / 127), against the numpy reference of the layout's arithmetic
(`reference.lut_gemm(..., layout_version=3)`), and NaN and infinities where a float matmul
has them.  'NAME+int8' kernels take their int8 path's layout-3 form where they have one
(`avx512vnni`), centred on q = 1: its bound is test_exactness's with |q - 1|, its reference
`reference.int8_gemm(..., layout_version=3)`; elsewhere (`avx2`) layout 3 keeps the lookups.
"""

import subprocess
import sys

import numpy as np
import pytest

import tmac_ort
from conftest import is_int8_path, make_session, triple_int8_path
from test_exactness import float_product_specials, magnitude
from tmac_ort import nodes, packing, reference
from tmac_ort.packing import TERNARY_LAYOUT, QuantizedWeight


def ternary_weight(rng, N, K, group, quant="ternary", pattern="random", scale=1.0) -> QuantizedWeight:
    n_groups = -(-K // group)
    q = {"random": lambda: rng.integers(0, 3, (N, K)), "all_plus": lambda: np.full((N, K), 2),
         "all_minus": lambda: np.zeros((N, K)), "all_zero": lambda: np.ones((N, K)),
         "alternating": lambda: np.tile([0, 2], (N, -(-K // 2)))[:, :K]}[pattern]().astype(np.uint8)
    scales = (scale * rng.uniform(0.5, 1.0, (N, n_groups))).astype(np.float32)
    if quant == "ternary":
        return QuantizedWeight(q, scales, 2, group, zero_points=np.ones((N, n_groups), np.uint8))
    if quant == "zero_points":
        return QuantizedWeight(q, scales, 2, group, zero_points=rng.integers(0, 4, (N, n_groups)).astype(np.uint8))
    if quant == "offsets":
        return QuantizedWeight(q, scales, 2, group, offsets=(scale * rng.standard_normal((N, n_groups))).astype(np.float32))
    return QuantizedWeight(q, scales, 2, group)  # default zero point 2


def triple_error_bound(a: np.ndarray, qw: QuantizedWeight) -> np.ndarray:
    geo = qw.geometry_of(TERNARY_LAYOUT)
    finite = np.where(np.isfinite(a), a, 0).astype(np.float64)
    at = geo.triple_k()  # [k_steps, 4, 3], -1 for padding
    padded = np.concatenate([finite, np.zeros((len(a), 1))], axis=1)
    triples = np.abs(padded[:, np.where(at < 0, qw.K, at)]).sum(axis=3)  # [M, k_steps, 4]
    s = np.abs(qw.scales.astype(np.float64))
    bound = np.zeros((len(a), qw.N))
    first = 0
    for b in range(geo.n_blocks):
        block = triples[:, first:first + geo.triple_steps_of_block(b)].reshape(len(a), -1)
        first += geo.triple_steps_of_block(b)
        bound += (block.shape[1] * block.max(axis=1) / 127 / 2)[:, None] * s[:, geo.group_of_block(b)][None, :]
    return bound + 2.0**-10 * magnitude(a, qw) + 2.0**-140


def int8_error_bound(a: np.ndarray, qw: QuantizedWeight) -> np.ndarray:
    geo = qw.geometry_of(TERNARY_LAYOUT)
    finite = np.zeros((len(a), geo.K_pad))
    finite[:, : qw.K] = np.where(np.isfinite(a), a, 0)
    centred = qw.per_element(np.abs(qw.scales.astype(np.float64))) * np.abs(qw.q.astype(np.float64) - 1)
    w = np.zeros((qw.N, geo.K_pad))
    w[:, : qw.K] = centred
    bound = np.zeros((len(a), qw.N))
    for b in range(geo.n_blocks):
        sl = slice(b * geo.block_k, (b + 1) * geo.block_k)
        bound += (np.abs(finite[:, sl]).max(axis=1) / 127 / 2)[:, None] * w[:, sl].sum(axis=1)[None, :]
    return bound * (1 + 2.0**-8) + 2.0**-10 * magnitude(a, qw) + 2.0**-140


def run(qw, a, kernel, threads=1):
    sess = make_session(nodes.make_lut_gemm_model(qw, layout_version=TERNARY_LAYOUT), threads, kernel=kernel)
    return sess.run(None, {"A": np.asarray(a, np.float32)})[0]


def check(qw, a, kernel, threads=1):
    a = np.asarray(a, np.float32)
    y = run(qw, a, kernel, threads).astype(np.float64)
    specials = float_product_specials(a, qw.dequantize())
    is_special = np.isnan(specials) | np.isinf(specials)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(specials))
    np.testing.assert_array_equal(y[np.isinf(specials)], specials[np.isinf(specials)])
    exact = reference.matmul_dequantized(np.where(np.isfinite(a), a, np.float32(0)), qw)
    # ('NAME+int8' on a kernel whose int8 path has no layout-3 form, AVX2's, runs the lookups)
    int8 = is_int8_path(kernel) and triple_int8_path(kernel)
    bound = int8_error_bound(a, qw) if int8 else triple_error_bound(a, qw)
    float_max = float(np.finfo(np.float32).max)
    with np.errstate(invalid="ignore"):
        overflows = ((y == np.inf) & (exact + bound >= float_max)) | ((y == -np.inf) & (exact - bound <= -float_max))
        ok = is_special | overflows | (np.abs(y - exact) <= bound)
    assert ok.all(), f"{(~ok).sum()} outputs beyond the bound; first {np.argwhere(~ok)[0]}"
    ref = (reference.int8_gemm if int8 else reference.lut_gemm)(a, qw, layout_version=TERNARY_LAYOUT).astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = is_special | overflows | (np.abs(y - ref) <= 1e-5 * magnitude(a, qw) + 2.0**-140)
    assert close.all(), f"{(~close).sum()} outputs differ from the layout-3 reference"
    return y


# ---------------------------------------------------------------------------------------
# The packer


@pytest.mark.parametrize("K,N,group", [(4096, 64, 4096), (1100, 40, 128), (576, 70, 32), (200, 33, 200), (96, 32, 96),
                                       (520, 64, 256), (1024, 96, 512), (8, 1, 8)])
def test_unpack_inverts_pack(rng, K, N, group):
    q = rng.integers(0, 3, (N, K)).astype(np.uint8)
    packed = packing.pack(q, 2, group, TERNARY_LAYOUT)
    geo = packing.Geometry(K, N, 2, group, triples=True)
    assert packed.shape == geo.packed_shape(TERNARY_LAYOUT) == (geo.n_tiles * geo.triple_k_steps, 80)
    np.testing.assert_array_equal(packing.unpack(packed, 2, K, N, group), q)


def test_worked_example_from_spec():
    """docs/packed-format.md, layout 3's worked example: K = 12 (one step), N = 32, one tile."""
    q = np.ones((32, 12), np.uint8)  # every weight 0
    q[0, 0:3] = [2, 1, 0]  # channel 0, triple 0: field 2 + 3 + 0 = 5
    q[1, 3:6] = [0, 0, 2]  # channel 1, triple 1: field 0 + 0 + 18 = 18
    q[17, 9:12] = [2, 2, 2]  # channel 17 (half 1, c = 1), triple 3: field 26
    packed = packing.pack(q, 2, 12, TERNARY_LAYOUT)
    assert packed.shape == (1, 80)
    fields = np.full(128, 13)  # 13: three zero weights
    fields[0], fields[4 * 1 + 1], fields[64 + 4 * 1 + 3] = 5, 18, 26
    bits = ((fields[:, None] >> np.arange(5)) & 1).reshape(2, 320)
    np.testing.assert_array_equal(packed[0], np.packbits(bits, axis=1, bitorder="little").reshape(80))
    # lane 0 is bits 0-4 of byte 0; lane 5 (channel 1, triple 1) bits 25-29: byte 3 bits 1-5;
    # half 1's lane 7 (channel 17, triple 3) bits 35-39 of bytes 40-79: byte 44 bits 3-7
    assert packed[0, 0] & 31 == 5 and (packed[0, 3] >> 1) & 31 == 18 and packed[0, 44] >> 3 == 26


def test_blocks_are_padded_to_whole_steps_of_zero_weights():
    """Group 32: a block is 32 k, three steps of 12 (36 k); the last four positions are zero
    weights, and the next block starts a new step."""
    geo = packing.Geometry(64, 32, 2, 32, triples=True)
    assert geo.triple_block_steps == 3 and geo.triple_k_steps == 6
    at = geo.triple_k()
    assert at[2, 2, 1] == 31 and at[2, 2, 2] == -1 and (at[2, 3] == -1).all() and at[3, 0, 0] == 32


def test_fields_27_to_31_read_as_three_zero_weights():
    packed = np.full((1, 80), 0xFF, np.uint8)  # every field 31
    np.testing.assert_array_equal(packing.unpack(packed, 2, 12, 32, 12), np.ones((32, 12), np.uint8))


def test_layout_3_refuses_what_is_not_ternary():
    with pytest.raises(ValueError, match="ternary"):
        packing.pack(np.full((32, 12), 3, np.uint8), 2, 12, TERNARY_LAYOUT)
    with pytest.raises(ValueError, match="bits=2"):
        packing.pack(np.ones((32, 12), np.uint8), 4, 12, TERNARY_LAYOUT)


def test_whole_row_groups_take_252_k_blocks_of_whole_steps():
    """One group per row (BitNet's ternary weights): blocks of 252 k, 21 steps with no padding,
    so 5 bits per 3 weights but for the row's last block; groups of 256 k would pad to 264."""
    geo = packing.Geometry(4096, 32, 2, 4096, triples=True)
    assert geo.block_k == 252 and geo.n_blocks == 17 and geo.triple_k_steps == 16 * 21 + 6  # 4096 = 16 * 252 + 64
    qw = packing.QuantizedWeight(np.ones((4096, 4096), np.uint8), np.ones((4096, 1), np.float32), 2, 4096)
    assert 8 * qw.pack(TERNARY_LAYOUT).nbytes / qw.q.size == pytest.approx(342 * 80 * 8 / 4096 / 32)  # 1.67
    assert packing.Geometry(252, 32, 2, 252, triples=True).n_blocks == 1  # (K_pad = 256 would make two)


# ---------------------------------------------------------------------------------------
# The op, every kernel


def activations(K, rng):
    return np.stack([rng.uniform(0, 1, K), np.maximum(rng.standard_normal(K), 0), np.ones(K),
                     np.tile([1.0, -1.0], -(-K // 2))[:K], rng.standard_normal(K)]).astype(np.float32)


@pytest.mark.parametrize("quant", ["ternary", "default", "zero_points", "offsets"])
@pytest.mark.parametrize("group", [32, 96, 128, 256, 512, "K"])
def test_quantisations_and_groups(rng, kernel, group, quant):
    K = 1536
    qw = ternary_weight(rng, 70, K, K if group == "K" else group, quant)
    check(qw, activations(K, rng), kernel)


@pytest.mark.parametrize("pattern", ["all_plus", "all_minus", "all_zero", "alternating"])
def test_weight_patterns(rng, kernel, pattern):
    check(ternary_weight(rng, 40, 1024, 128, "zero_points", pattern), activations(1024, rng), kernel)


@pytest.mark.parametrize("group", [128, "K"])
def test_long_rows_of_largest_weights_and_positive_activations(rng, kernel, group):
    K = 32768
    qw = ternary_weight(rng, 32, K, K if group == "K" else group, "zero_points", "all_plus")
    qw.zero_points[:] = 0  # every weight 2s
    check(qw, rng.uniform(0, 1, (2, K)), kernel)


@pytest.mark.parametrize("scale", [1e-45, 1e-38, 1e-20, 1.0, 1e30, 1e38])
def test_activation_magnitudes(rng, kernel, scale):
    qw = ternary_weight(rng, 48, 512, 64, scale=1e-5 if scale > 1 else 1.0)
    with np.errstate(over="ignore"):  # (a few of 1e38's become infinities: those follow a float matmul)
        a = activations(512, rng) * np.float32(scale)
    check(qw, a, kernel)


@pytest.mark.parametrize("scale", [0.0, 1e-44, 1e-40, 1e-20, 1e30])
@pytest.mark.parametrize("quant", ["ternary", "zero_points", "offsets"])
def test_weight_scale_magnitudes(rng, kernel, scale, quant):
    check(ternary_weight(rng, 48, 256, 64, quant, scale=scale), activations(256, rng), kernel)


@pytest.mark.parametrize("case", ["+inf", "-inf", "nan", "both_infinities"])
def test_non_finite_activations_follow_a_float_matmul(rng, kernel, case):
    qw = ternary_weight(rng, 40, 256, 64)
    a = activations(256, rng)
    a[0, 50] = {"+inf": np.inf, "-inf": -np.inf, "nan": np.nan, "both_infinities": np.inf}[case]
    if case == "both_infinities":
        a[0, 200] = -np.inf
    check(qw, a, kernel)


@pytest.mark.parametrize("K,group", [(1001, 64), (100, 64), (1100, 128), (12, 12), (8, 8), (252, 252), (253, 253),
                                     (758, 758), (2520, 2520)])
@pytest.mark.parametrize("M", [1, 3, 17])
def test_short_last_blocks_and_row_counts(rng, kernel, K, group, M):
    qw = ternary_weight(rng, 33, K, group, "offsets")
    check(qw, rng.standard_normal((M, K)).astype(np.float32), kernel)


@pytest.mark.parametrize("threads", [1, 2])
def test_one_row_over_several_k_chunks_on_threads(rng, lookup_kernel, threads):
    """K = 4096 at group K: eight K-chunks, split over the threads (LutGemm::RunTables)."""
    qw = ternary_weight(rng, 300, 4096, 4096)
    check(qw, rng.standard_normal((1, 4096)).astype(np.float32), lookup_kernel, threads)


def test_the_same_product_as_two_planes(rng, lookup_kernel):
    """Layouts 2 and 3 of the same ternary weights: both within their bounds of the exact
    product, and close to each other (their tables differ: quads against triples)."""
    qw = ternary_weight(rng, 96, 2048, 2048)
    a = rng.standard_normal((2, 2048)).astype(np.float32)
    y3 = check(qw, a, lookup_kernel)
    y2 = make_session(nodes.make_lut_gemm_model(qw), 1, kernel=lookup_kernel).run(None, {"A": a})[0]
    exact = reference.matmul_dequantized(a, qw)
    assert reference.relative_rms(y3, exact) < 0.02 and reference.relative_rms(y2, exact) < 0.02


@pytest.mark.parametrize("kernel_name", tmac_ort.available_kernels())
def test_a_kernel_without_triple_code_says_so_in_the_log(kernel_name, tmp_path):
    """Layout 3 loads on every kernel; one without layout-3 code warns once per node that it
    runs on the scalar kernel's (ORT's log, stderr), the others say nothing."""
    qw = ternary_weight(np.random.default_rng(0), 32, 96, 96)
    model = tmp_path / "m.onnx"
    model.write_bytes(nodes.make_lut_gemm_model(qw, layout_version=TERNARY_LAYOUT).SerializeToString())
    code = ("import numpy as np, tmac_ort; s = tmac_ort.make_session(%r, 1, kernel=%r); "
            "s.run(None, {'A': np.ones((1, 96), np.float32)})" % (str(model), kernel_name))
    stderr = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    has_code = kernel_name in ("avx512vnni", "neon-dotprod", "neon", "scalar")
    assert ("layout 3 (ternary triples) has no code in kernel " + kernel_name in stderr) == (not has_code)
