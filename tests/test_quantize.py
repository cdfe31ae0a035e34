"""The quantisers for float weights (tmac_ort.quantize) and how their numbers are stored.

References are independent: round-to-nearest over each group's [min, max] range with a float
offset, computed here in float64; and sessions of the same weights stored as float32."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import make_session
from tmac_ort import nodes, quantize
from tmac_ort.packing import quantize_rtn

SHAPES = [(64, 256, 32), (40, 200, 64), (96, 512, 128), (32, 72, 72)]  # N, K, group (ragged last groups)


def weights(rng, kind, N, K):
    if kind == "gaussian":
        return rng.standard_normal((N, K)).astype(np.float32)
    if kind == "heavy-tailed":
        return (rng.standard_t(3, (N, K)) * 0.02).astype(np.float32)
    if kind == "uniform":
        return rng.uniform(-1, 3, (N, K)).astype(np.float32)
    raise ValueError(kind)


def range_rtn_error(w, bits, group):
    """Per-group squared error of round-to-nearest over the group's [min, max] with a float
    offset, in float64."""
    N, K = w.shape
    errors = []
    for start in range(0, K, group):
        g = w[:, start:start + group].astype(np.float64)
        lo, hi = g.min(1, keepdims=True), g.max(1, keepdims=True)
        s = np.where(hi > lo, (hi - lo) / ((1 << bits) - 1), 1.0)
        q = np.clip(np.rint((g - lo) / s), 0, (1 << bits) - 1)
        errors.append(((g - (s * q + lo)) ** 2).sum(1))
    return np.stack(errors, 1)


def group_errors(qw, w):
    group = qw.group_size
    d = (qw.dequantize().astype(np.float64) - w) ** 2
    return np.stack([d[:, s:s + group].sum(1) for s in range(0, w.shape[1], group)], 1)


@pytest.mark.parametrize("kind", ["gaussian", "heavy-tailed", "uniform"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("N,K,group", SHAPES)
def test_mse_is_never_worse_than_round_to_nearest(rng, kind, bits, N, K, group):
    w = weights(rng, kind, N, K)
    qw = quantize.quantize(w, bits, group, "mse")
    err = group_errors(qw, w)
    # per group: at most the range RTN's error R (the search starts there and alternation never
    # increases the error), plus what rounding s and o to fp16 can add: each dequantised value
    # moves by d <= 2^-11 (s*levels + |o|) <= 2^-11 * 4 max|w|, so the error grows by at most
    # 2 d sqrt(n R) + n d^2 (Cauchy-Schwarz)
    reference = range_rtn_error(w, bits, group)
    n, d = group_lengths_and_shifts(w, group)
    assert (err <= reference + 2 * d * np.sqrt(n * reference) + n * d * d + 1e-30).all()
    # in total: below both of MatMulNBits' round-to-nearest variants
    for symmetric in (True, False):
        assert err.sum() <= group_errors(quantize_rtn(w, bits, group, symmetric), w).sum()


def group_lengths_and_shifts(w, group):
    K = w.shape[1]
    starts = range(0, K, group)
    n = np.array([min(group, K - s) for s in starts], np.float64)
    d = np.stack([np.abs(w[:, s:s + group]).max(1) for s in starts], 1).astype(np.float64) * 4 * 2.0**-11
    return n, d


@pytest.mark.parametrize("bits,ratio", [(1, 0.99), (2, 0.65), (3, 0.78), (4, 0.87)])
def test_mse_improves_on_round_to_nearest_on_bell_shaped_weights(rng, bits, ratio):
    w = weights(rng, "gaussian", 128, 1024)
    mse = group_errors(quantize.quantize(w, bits, 128, "mse"), w).sum()
    rtn = min(group_errors(quantize_rtn(w, bits, 128, s), w).sum() for s in (True, False))
    # measured (this seed): 0.987, 0.626, 0.750, 0.839 of the better RTN variant at 1-4 bits; at
    # 1 bit the sign binarisation +-mean|w| is already close to optimal for zero-mean groups
    assert mse < ratio * rtn


def test_constant_and_zero_groups(rng):
    w = np.zeros((32, 64), np.float32)
    w[1] = 0.75  # exact in fp16
    w[2, :32] = -3.0
    qw = quantize.quantize(w, 2, 32, "mse")
    np.testing.assert_array_equal(qw.dequantize(), w)


def test_mse_parameters_are_fp16_numbers_and_stored_as_such(rng):
    w = weights(rng, "gaussian", 64, 256)
    qw = quantize.quantize(w, 3, 32, "mse")
    scales, offsets = nodes.stored_scales_and_offsets(qw)
    assert scales.dtype == np.float16 and offsets.dtype == np.float16
    np.testing.assert_array_equal(scales.astype(np.float32), qw.scales)
    np.testing.assert_array_equal(offsets.astype(np.float32), qw.offsets)
    # round-to-nearest scales are not fp16 numbers: kept as float32
    assert nodes.stored_scales_and_offsets(quantize_rtn(w, 3, 32))[0].dtype == np.float32


def as_float32_storage(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for i, tensor in enumerate(out.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float16:
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
    return out


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_fp16_storage_changes_no_output_bit(rng, bits, kernel):
    w = weights(rng, "heavy-tailed", 96, 320)
    qw = quantize.quantize(w, bits, 64, "mse")
    proto = nodes.make_lut_gemm_model(qw)
    stored = {t.name: numpy_helper.to_array(t).dtype for t in proto.graph.initializer}
    assert stored["W.lut_scales"] == np.float16 and stored["W.lut_offsets"] == np.float16
    a = (rng.standard_normal((5, 320)) * 3).astype(np.float32)
    y16 = make_session(proto, kernel=kernel).run(None, {"A": a})[0]
    y32 = make_session(as_float32_storage(proto), kernel=kernel).run(None, {"A": a})[0]
    np.testing.assert_array_equal(y16, y32)


def test_one_bit_is_two_bits_per_weight_and_smaller_than_two_bit(rng):
    w = weights(rng, "gaussian", 256, 1024)

    def bits_per_weight(qw):
        proto = nodes.make_lut_gemm_model(qw)
        return 8 * sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer) / w.size

    assert bits_per_weight(quantize.quantize(w, 1, 32, "mse")) == 2.0  # 1 + fp16 scale and offset per 32
    assert bits_per_weight(quantize.quantize(w, 2, 32, "mse")) == 3.0
    assert bits_per_weight(quantize.quantize(w, 2, 32, "rtn")) == 3.0  # 2 + an fp32 scale per 32


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown quantisation method 'gptq'"):
        quantize.quantize(np.ones((4, 32), np.float32), 2, 32, "gptq")


def test_a_group_of_tiny_weights_keeps_the_tensor_in_fp16(rng):
    """A scale below fp16's normal range (2^-14) used to keep the whole tensor in fp32 (SmolLM2's
    1-bit model: 2.49 instead of 2.0 bits per weight); it is rounded to an fp16 subnormal."""
    w = weights(rng, "gaussian", 64, 256) * 0.05
    w[7, 32:64] *= 1e-5  # one group of weights around 5e-7
    qw = quantize.quantize(w, 1, 32, "mse")
    assert np.abs(qw.scales[7, 1]) < 2.0**-14
    scales, offsets = nodes.stored_scales_and_offsets(qw)
    assert scales.dtype == offsets.dtype == np.float16
    # the tiny group is still represented to within its own magnitude
    assert np.abs(qw.dequantize()[7, 32:64] - w[7, 32:64]).max() <= 2 * np.abs(w[7, 32:64]).max()
