"""The native LutGemm op against the numpy reference of the same arithmetic."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_session, reference_gemm
from tmac_ort import nodes, packing, reference


def quantized(rng, N, K, bits, group, quant):
    w = rng.standard_normal((N, K)).astype(np.float32)
    if quant == "offsets":  # GGUF Q4_1-style w = d*q + m
        qw = packing.quantize_rtn(w, bits, group, symmetric=False)
        return packing.QuantizedWeight(qw.q, qw.scales, bits, group,
                                       offsets=rng.standard_normal(qw.scales.shape).astype(np.float32))
    return packing.quantize_rtn(w, bits, group, symmetric=quant == "symmetric")


def run(qw, a, threads=1, dtype=np.float32, bias=None, kernel=None):
    lead = tuple(f"d{i}" for i in range(a.ndim - 1))
    sess = make_session(nodes.make_lut_gemm_model(qw, lead, dtype=dtype, bias=bias), threads, kernel=kernel)
    return sess.run(None, {"A": a.astype(dtype)})[0]


def assert_matches_reference(y, a2d, qw, bias=None, tol=1e-5, kernel=None):
    ref = reference_gemm(kernel)(a2d, qw, bias)
    scale = float(np.abs(ref).max()) + 1e-6
    np.testing.assert_allclose(y.reshape(ref.shape), ref, rtol=0, atol=tol * scale * np.sqrt(qw.K / 64))


@pytest.mark.parametrize("quant", ["symmetric", "asymmetric", "offsets"])
@pytest.mark.parametrize("group", [32, 64, 128, 256, "K"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_bits_groups_and_zero_points_match_reference(rng, bits, group, quant, kernel):
    K, N = 512, 100  # N is not a multiple of the 32-channel tile
    qw = quantized(rng, N, K, bits, K if group == "K" else group, quant)
    a = rng.standard_normal((3, K)).astype(np.float32)
    assert_matches_reference(run(qw, a, kernel=kernel), a, qw, kernel=kernel)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M", [1, 3, 17, 128])
@pytest.mark.parametrize("N", [192, 576])
@pytest.mark.parametrize("bits", [2, 4])
def test_rows_and_channels_match_reference(rng, bits, N, M, threads):
    K = 256
    qw = quantized(rng, N, K, bits, 64, "asymmetric")
    a = rng.standard_normal((M, K)).astype(np.float32)
    assert_matches_reference(run(qw, a, threads=threads), a, qw)


@pytest.mark.parametrize("bits", [1, 3])
def test_wide_output_49152(rng, bits):
    K, N = 64, 49152
    qw = quantized(rng, N, K, bits, 32, "symmetric")
    a = rng.standard_normal((1, K)).astype(np.float32)
    assert_matches_reference(run(qw, a, threads=2), a, qw)


@pytest.mark.parametrize("K", [4, 12, 1000, 2052])
def test_whole_row_groups_with_k_not_a_multiple_of_the_step(rng, K):
    qw = quantized(rng, 40, K, 2, K, "asymmetric")
    a = rng.standard_normal((2, K)).astype(np.float32)
    assert_matches_reference(run(qw, a), a, qw)


@pytest.mark.parametrize("M", [1, 17])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_float16_activations(rng, bits, M):
    K, N = 256, 192
    qw = quantized(rng, N, K, bits, 128, "symmetric")
    a = rng.standard_normal((M, K)).astype(np.float16)
    bias = rng.standard_normal(N).astype(np.float16)
    y = run(qw, a, dtype=np.float16, bias=bias, threads=2)
    assert y.dtype == np.float16
    ref = reference.lut_gemm(a.astype(np.float32), qw, bias.astype(np.float32))
    np.testing.assert_allclose(y.astype(np.float32), ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())


def test_leading_dimensions_and_bias(rng):
    K, N = 128, 64
    qw = quantized(rng, N, K, 4, 32, "asymmetric")
    a = rng.standard_normal((2, 5, K)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    y = run(qw, a, bias=bias)
    assert y.shape == (2, 5, N)
    assert_matches_reference(y, a.reshape(10, K), qw, bias)


def test_empty_batch(rng):
    qw = quantized(rng, 32, 64, 2, 32, "symmetric")
    y = run(qw, np.zeros((0, 64), np.float32))
    assert y.shape == (0, 32)


@pytest.mark.parametrize("bits", [2, 4])
def test_zero_points_that_are_all_the_default_take_the_symmetric_path(rng, bits, kernel):
    """Explicit zero points of 2^(bits-1) give the same weights as none: the same output."""
    implicit = quantized(rng, 64, 512, bits, 32, "symmetric")
    explicit = packing.QuantizedWeight(implicit.q, implicit.scales, bits, 32,
                                       zero_points=np.full(implicit.scales.shape, 1 << (bits - 1), np.uint8))
    a = rng.standard_normal((2, 512)).astype(np.float32)
    y = run(explicit, a, kernel=kernel)
    assert_matches_reference(y, a, explicit, kernel=kernel)
    np.testing.assert_array_equal(y, run(implicit, a, kernel=kernel))


@pytest.mark.parametrize("layout", [2, packing.TERNARY_LAYOUT])
@pytest.mark.parametrize("M", [1, 5])
def test_thread_count_does_not_change_results(rng, M, layout, lookup_kernel):
    """Bit for bit on 1, 2 and 3 threads.  One row over several K-chunks (2048 = four of
    512) is the case the driver splits its own way (LutGemm::RunTables); until the fifteenth
    session its sums there followed the thread count a timed probe found."""
    K, N = 2048, 1000
    if layout == packing.TERNARY_LAYOUT:
        q = rng.integers(0, 3, (N, K)).astype(np.uint8)
        scales = rng.uniform(0.5, 1.0, (N, K // 128)).astype(np.float32)
        qw = packing.QuantizedWeight(q, scales, 2, 128, zero_points=np.ones(scales.shape, np.uint8))
    else:
        qw = quantized(rng, N, K, 3, 128, "asymmetric")
    model = nodes.make_lut_gemm_model(qw, layout_version=layout)
    a = rng.standard_normal((M, K)).astype(np.float32)
    y = [make_session(model, t, kernel=lookup_kernel).run(None, {"A": a})[0] for t in (1, 2, 3)]
    np.testing.assert_array_equal(y[1], y[0])
    np.testing.assert_array_equal(y[2], y[0])


@pytest.mark.parametrize("quant", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_every_kernel_agrees_with_the_scalar_reference_kernel(rng, bits, quant, lookup_kernel):
    qw = quantized(rng, 96, 1024, bits, 128, quant)
    a = rng.standard_normal((4, 1024)).astype(np.float32)
    y = run(qw, a, kernel=lookup_kernel)
    y_scalar = run(qw, a, kernel="scalar")
    np.testing.assert_allclose(y, y_scalar, rtol=1e-5, atol=1e-5 * np.abs(y_scalar).max())


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_kernels_with_an_int8_path_take_it_from_their_row_count_by_default(rng, bits):
    """Without tmac.int8_min_rows a kernel looks up tables below its int8_min_rows rows at
    that bit width and takes its int8 path from there (never where that count is 0: AVX2 at 1
    and 2 bits); 0 turns the int8 path off."""
    import tmac_ort

    kernels = [k for k in tmac_ort.kernel_registry() if k.has_int8_path and k.available]
    if not kernels:
        pytest.skip("no kernel of this CPU has an int8 path")
    qw = quantized(rng, 64, 512, bits, 128, "asymmetric")
    model = nodes.make_lut_gemm_model(qw).SerializeToString()

    def check(y, a, ref):
        np.testing.assert_allclose(y, ref(a, qw), rtol=0, atol=1e-5 * np.abs(y).max())
        other = reference.int8_gemm if ref is reference.lut_gemm else reference.lut_gemm
        assert np.abs(y - other(a, qw)).max() > 1e-4 * np.abs(y).max()  # the two paths differ here

    for k in kernels:
        first = k.int8_rows(bits)
        cases = [(first - 1, reference.lut_gemm), (first, reference.int8_gemm)] if first else [(64, reference.lut_gemm)]
        for rows, ref in cases:
            a = rng.standard_normal((rows, 512)).astype(np.float32)
            check(tmac_ort.make_session(model, kernel=k.name).run(None, {"A": a})[0], a, ref)
        off = tmac_ort.make_session(model, kernel=k.name, int8_min_rows=0).run(None, {"A": a})[0]
        check(off, a, reference.lut_gemm)


def test_int8_threshold_from_the_environment_where_the_session_sets_none(rng, monkeypatch):
    """TMAC_ORT_INT8_MIN_ROWS (read at every session creation: onnxruntime-genai passes no
    session options of ours) sets the threshold; tmac.int8_min_rows overrides it."""
    import tmac_ort

    kernels = [k for k in tmac_ort.kernel_registry() if k.has_int8_path and k.available]
    if not kernels:
        pytest.skip("no kernel of this CPU has an int8 path")
    qw = quantized(rng, 64, 512, 4, 128, "symmetric")
    model = nodes.make_lut_gemm_model(qw).SerializeToString()
    a = rng.standard_normal((1, 512)).astype(np.float32)
    for k in kernels:
        monkeypatch.setenv("TMAC_ORT_INT8_MIN_ROWS", "1")
        y = tmac_ort.make_session(model, kernel=k.name).run(None, {"A": a})[0]
        np.testing.assert_allclose(y, reference.int8_gemm(a, qw), rtol=0, atol=1e-5 * np.abs(y).max())
        y = tmac_ort.make_session(model, kernel=k.name, int8_min_rows=0).run(None, {"A": a})[0]
        np.testing.assert_allclose(y, reference.lut_gemm(a, qw), rtol=0, atol=1e-5 * np.abs(y).max())
        monkeypatch.setenv("TMAC_ORT_INT8_MIN_ROWS", "0")
        big = rng.standard_normal((64, 512)).astype(np.float32)
        y = tmac_ort.make_session(model, kernel=k.name).run(None, {"A": big})[0]
        np.testing.assert_allclose(y, reference.lut_gemm(big, qw), rtol=0, atol=1e-5 * np.abs(y).max())


def test_error_against_exact_product_is_that_of_int8_tables(rng):
    """The table quantisation costs about as much as int8 activation quantisation."""
    K, N = 1024, 256
    qw = quantized(rng, N, K, 4, 128, "symmetric")
    a = rng.standard_normal((8, K)).astype(np.float32)
    y = run(qw, a)
    exact = reference.matmul_dequantized(a, qw)
    nmse = np.mean((y - exact) ** 2) / np.mean(exact**2)
    assert 1e-7 < nmse < 3e-4


def test_ort_infers_output_shape(rng):
    import onnx

    qw = quantized(rng, 48, 64, 2, 32, "symmetric")
    m = nodes.make_lut_gemm_model(qw, ("batch", "seq"))
    m.graph.output[0].type.tensor_type.ClearField("shape")
    sess = make_session(m)
    assert sess.get_outputs()[0].shape == ["batch", "seq", 48]
    # and the onnx-level schema registered by tmac_ort agrees
    from tmac_ort import schema

    schema.register()
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "seq", 48]


def test_unnamed_dynamic_dims_stay_unknown_for_graph_optimisers(rng):
    """An unnamed dynamic dim of A must not come out as a concrete -1: ORT would constant-fold
    Shape(Y) into -1s and reject the Reshape below (seen on Optimum exports)."""
    from onnx import TensorProto, helper

    qw = quantized(rng, 64, 64, 4, 32, "symmetric")
    m = nodes.make_lut_gemm_model(qw, ("batch", "seq"))
    for d in list(m.graph.input[0].type.tensor_type.shape.dim)[:2]:
        d.ClearField("dim_param")  # dynamic, no name
    m.graph.output[0].name = "Y0"
    m.graph.node[0].output[0] = "Y0"
    const = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, TensorProto.INT64, [len(v)], v))
    m.graph.node.extend([
        helper.make_node("Shape", ["Y0"], ["shape"], start=0, end=2),
        const("tail", [-1, 16]),
        helper.make_node("Concat", ["shape", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["Y0", "target"], ["Y"]),
    ])
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("Y", TensorProto.FLOAT, None))
    a = rng.standard_normal((2, 3, 64)).astype(np.float32)
    y = make_session(m).run(None, {"A": a})[0]
    np.testing.assert_allclose(y.reshape(2, 3, 64), reference.lut_gemm(a.reshape(6, 64), qw).reshape(2, 3, 64),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("magnitude", [1e-9, 1e6])
def test_scales_far_outside_fp16_range_keep_their_precision(rng, magnitude, kernel):
    """Scales are kept as fp16 in power-of-two units: tiny or huge weights lose nothing."""
    w = (rng.standard_normal((64, 256)) * magnitude).astype(np.float32)
    qw = packing.quantize_rtn(w, 4, 64, symmetric=False)
    a = rng.standard_normal((2, 256)).astype(np.float32)
    y = run(qw, a, kernel=kernel)
    assert_matches_reference(y, a, qw, kernel=kernel)
    exact = reference.matmul_dequantized(a, qw)
    assert np.mean((y - exact) ** 2) / np.mean(exact**2) < 3e-4


@pytest.mark.parametrize("n", [4096, 96], ids=["4 MB of planes", "96 KB of planes"])
def test_huge_page_advice_changes_no_output(tmp_path, rng, n):
    """The planes are advised onto 2 MB pages at session creation (Linux), small ones with the
    2 MB pages around them; TMAC_ORT_HUGE_PAGES=0 turns it off.  The outputs are the same bits
    either way."""
    qw = packing.quantize_rtn(rng.standard_normal((n, 2048)).astype(np.float32), 4, 128)
    (tmp_path / "m.onnx").write_bytes(nodes.make_lut_gemm_model(qw).SerializeToString())
    np.save(tmp_path / "a.npy", rng.standard_normal((3, 2048)).astype(np.float32))
    script = ("import sys, numpy as np, tmac_ort; d = sys.argv[1]; "
              "y = tmac_ort.make_session(d + '/m.onnx').run(None, {'A': np.load(d + '/a.npy')})[0]; "
              "np.save(d + '/y' + sys.argv[2] + '.npy', y)")
    for setting in ("1", "0"):
        env = {**os.environ, "TMAC_ORT_HUGE_PAGES": setting}
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path), setting], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y1.npy"), np.load(tmp_path / "y0.npy"))
