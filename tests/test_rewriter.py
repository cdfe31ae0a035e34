"""tmac-ort rewrite: MatMulNBits, DequantizeLinear+MatMul and float MatMul/Gemm -> LutGemm."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper, numpy_helper

from conftest import make_session
from tmac_ort import matmul_nbits_format, packing, quantize, reference, schema
from tmac_ort.reference import relative_rms
from tmac_ort.rewriter import RewriteOptions, rewrite_model


def matmul_nbits_model(qw, bias=None, name="layer0"):
    m = matmul_nbits_format.make_matmul_nbits_model(qw, accuracy_level=4)
    m.graph.node[0].name = name
    if bias is not None:
        while len(m.graph.node[0].input) < 5:
            m.graph.node[0].input.append("")
        m.graph.node[0].input.append("bias")
        m.graph.initializer.append(numpy_helper.from_array(bias, "bias"))
    return m


def rewrite(model_proto, **options):
    model = ir.serde.deserialize_model(model_proto)
    report = rewrite_model(model, RewriteOptions(**options))
    return ir.serde.serialize_model(model), report


def lut_weight(model_proto) -> packing.QuantizedWeight:
    """The weight a rewritten one-node model's LutGemm computes with, unpacked from its initializers."""
    node = next(n for n in model_proto.graph.node if n.op_type == "LutGemm")
    attrs = {a.name: a.i for a in node.attribute}
    inits = {i.name: numpy_helper.to_array(i) for i in model_proto.graph.initializer}
    get = lambda i: inits[node.input[i]] if len(node.input) > i and node.input[i] else None  # noqa: E731
    q = packing.unpack(get(1), attrs["bits"], attrs["K"], attrs["N"], attrs["group_size"])
    return packing.QuantizedWeight(q, get(2), attrs["bits"], attrs["group_size"], zero_points=get(3), offsets=get(4))


@pytest.mark.parametrize("N", [192, 256])
@pytest.mark.parametrize("block", [32, 64, 128])
@pytest.mark.parametrize("asymmetric", [False, True])
@pytest.mark.parametrize("bits", [2, 4])
def test_matmul_nbits_is_converted_losslessly(rng, bits, asymmetric, block, N):
    K = 512
    qw = packing.quantize_rtn(rng.standard_normal((N, K)).astype(np.float32), bits, block, symmetric=not asymmetric)
    bias = rng.standard_normal(N).astype(np.float32)
    source = matmul_nbits_model(qw, bias)
    rewritten, report = rewrite(source)
    assert report.converted == {"MatMulNBits": 1}
    assert [n.op_type for n in rewritten.graph.node] == ["LutGemm"]
    # bit-identical dequantised weights
    np.testing.assert_array_equal(lut_weight(rewritten).dequantize(), qw.dequantize())
    a = rng.standard_normal((4, K)).astype(np.float32)
    exact = reference.matmul_dequantized(a, qw, bias)
    lut = make_session(rewritten).run(None, {"A": a})[0]
    ort_int8 = make_session(source, library=False).run(None, {"A": a})[0]
    assert relative_rms(lut, exact) <= 3 * relative_rms(ort_int8, exact)


def test_matmul_nbits_8_bit_is_skipped_with_reason(rng):
    qw = packing.quantize_rtn(rng.standard_normal((64, 128)).astype(np.float32), 4, 32)
    m = matmul_nbits_model(qw)
    for a in m.graph.node[0].attribute:
        if a.name == "bits":
            a.i = 8
    _, report = rewrite(m)
    assert not report.converted
    assert "bits=8" in report.skipped["layer0"][1]


def dq_matmul_model(q_kn, scale, zp, dtype, block):
    elem = {"uint4": onnx.TensorProto.UINT4, "int4": onnx.TensorProto.INT4, "uint2": onnx.TensorProto.UINT2,
            "int2": onnx.TensorProto.INT2}[dtype]
    K, N = q_kn.shape
    inits = [helper.make_tensor("wq", elem, [K, N], q_kn.flatten().tolist()),
             numpy_helper.from_array(scale, "scale"), helper.make_tensor("zp", elem, list(zp.shape), zp.flatten().tolist())]
    nodes = [helper.make_node("DequantizeLinear", ["wq", "scale", "zp"], ["w"], axis=0, block_size=block),
             helper.make_node("MatMul", ["A", "w"], ["Y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["M", N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21 if "4" in dtype else 25)])
    model.ir_version = 10 if "4" in dtype else 11
    return model


@pytest.mark.parametrize("dtype", ["uint4", "int4", "uint2", "int2"])
def test_dequantize_linear_matmul_is_converted_losslessly(rng, dtype):
    K, N, block = 256, 96, 64
    bits = 4 if "4" in dtype else 2
    lo, hi = (0, 1 << bits) if dtype.startswith("u") else (-(1 << (bits - 1)), 1 << (bits - 1))
    q = rng.integers(lo, hi, size=(K, N))
    zp = rng.integers(lo, hi, size=(K // block, N))
    scale = (rng.random((K // block, N)) + 0.5).astype(np.float32)
    source = dq_matmul_model(q, scale, zp, dtype, block)
    rewritten, report = rewrite(source)
    assert report.converted == {"DequantizeLinear+MatMul": 1}, report.skipped
    w_float = (np.repeat(scale, block, axis=0) * (q - np.repeat(zp, block, axis=0))).astype(np.float32)  # [K, N]
    np.testing.assert_array_equal(lut_weight(rewritten).dequantize(), w_float.T)
    a = rng.standard_normal((3, K)).astype(np.float32)
    expected = make_session(source, library=False).run(None, {"A": a})[0]  # ORT's own DequantizeLinear+MatMul
    y = make_session(rewritten).run(None, {"A": a})[0]
    assert relative_rms(y, expected) < 2e-2


def float_model(weights: dict[str, np.ndarray], gemm_bias=None):
    nodes, inits, x = [], [], "A"
    for i, (name, w) in enumerate(weights.items()):
        inits.append(numpy_helper.from_array(w, f"{name}.weight"))
        out = f"h{i}"
        if gemm_bias is not None and i == 0:
            inits.append(numpy_helper.from_array(gemm_bias, "bias"))
            nodes.append(helper.make_node("Gemm", [x, f"{name}.weight", "bias"], [out], name=name, transB=1))
        else:
            nodes.append(helper.make_node("MatMul", [x, f"{name}.weight"], [out], name=name))
        x = out
    K = next(iter(weights.values())).shape[1 if gemm_bias is not None else 0]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("method", quantize.METHODS)
def test_float_matmuls_are_quantised_with_options_and_filters(rng, method):
    w = {"mlp.up": rng.standard_normal((128, 256)).astype(np.float32),
         "mlp.down": rng.standard_normal((256, 128)).astype(np.float32),
         "lm_head": rng.standard_normal((128, 64)).astype(np.float32)}
    rewritten, report = rewrite(float_model(w), bits=4, group_size=64, exclude=["lm_head"], bits_for={"down": 2},
                                method=method)
    assert report.converted == {"MatMul (float)": 2}
    assert report.skipped["lm_head"][1] == "excluded by --exclude"
    bits = {n.name: {a.name: a.i for a in n.attribute}["bits"] for n in rewritten.graph.node if n.op_type == "LutGemm"}
    assert bits == {"mlp.up": 4, "mlp.down": 2}
    a = rng.standard_normal((2, 128)).astype(np.float32)
    deq = {name: quantize.quantize(w[name].T, bits, 64, method).dequantize().T for name, bits in bits.items()}
    expected = a @ deq["mlp.up"] @ deq["mlp.down"] @ w["lm_head"]
    y = make_session(rewritten).run(None, {"A": a})[0]
    assert relative_rms(y, expected) < 3e-2


def test_ternary_weights_are_packed_exactly(rng):
    scale = (rng.random(64) + 0.5).astype(np.float32)
    w_nk = rng.integers(-1, 2, size=(64, 256)).astype(np.float32) * scale[:, None]
    bias = rng.standard_normal(64).astype(np.float32)
    rewritten, report = rewrite(float_model({"gemm": w_nk}, gemm_bias=bias), bits=4)
    assert report.converted == {"Gemm (float)": 1}
    qw = lut_weight(rewritten)
    assert qw.bits == 2
    np.testing.assert_array_equal(qw.dequantize(), w_nk)
    a = rng.standard_normal((2, 256)).astype(np.float32)
    assert relative_rms(make_session(rewritten).run(None, {"A": a})[0], a @ w_nk.T + bias) < 2e-2


def test_ternary_layout_3_on_request(rng):
    """--ternary-layout 3: ternary weights as base-3 triples, other weights as bit planes."""
    ternary = rng.integers(-1, 2, size=(64, 512)).astype(np.float32) * 0.5
    layers = {"ternary": ternary.T.copy(), "float": rng.standard_normal((64, 96)).astype(np.float32)}
    rewritten, report = rewrite(float_model(layers), ternary_layout=3)
    assert report.converted == {"MatMul (float)": 2}
    layouts = {n.name: {a.name: a.i for a in n.attribute}["layout_version"] for n in rewritten.graph.node}
    assert layouts == {"ternary": 3, "float": packing.LAYOUT_VERSION}
    packed = next(i for i in rewritten.graph.initializer if i.name.startswith("ternary") and "packed" in i.name)
    assert list(packed.dims)[1] == 80
    a = rng.standard_normal((2, 512)).astype(np.float32)
    y = make_session(rewritten).run(None, {"A": a})[0]
    planes, _ = rewrite(float_model(layers))
    assert relative_rms(y, make_session(planes).run(None, {"A": a})[0]) < 2e-2
    with pytest.raises(ValueError, match="--ternary-layout must be 2"):
        RewriteOptions(ternary_layout=1)


def test_ternary_weights_convert_whatever_the_group_option(rng):
    """Exact ternary rows are one group per row: a --group-size that float weights of this K
    cannot use (384 on K=1000) skips the float layer with its reason, not the ternary one."""
    ternary = rng.integers(-1, 2, size=(32, 1000)).astype(np.float32) * 0.25
    layers = {"float": rng.standard_normal((1000, 1000)).astype(np.float32), "ternary": ternary.T.copy()}
    rewritten, report = rewrite(float_model(layers), group_size=384)
    assert report.converted == {"MatMul (float)": 1}
    assert "above 256 must be a multiple of it" in report.skipped["float"][1]
    np.testing.assert_array_equal(lut_weight(rewritten).dequantize(), ternary)


def test_rewritten_model_passes_onnx_checker_and_shape_inference(rng):
    qw = packing.quantize_rtn(rng.standard_normal((192, 256)).astype(np.float32), 4, 64)
    rewritten, _ = rewrite(matmul_nbits_model(qw))
    schema.register()
    onnx.checker.check_model(rewritten, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(rewritten, strict_mode=True)
    assert inferred.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 192


# ---- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize("K,block", [(576, 128), (960, 128), (576, 32)])
def test_ort_quantizer_models_with_a_padded_last_block_convert_losslessly(tmp_path, rng, K, block):
    """ORT's own quantizer pads K to the block (hidden sizes 576 and 960 at its default block
    128): every MatMul converts, to exactly MatMulNBits' weights, and matches its output."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    w = {"fc1": rng.standard_normal((K, 64)).astype(np.float32), "fc2": rng.standard_normal((64, K)).astype(np.float32)}
    quantizer = MatMulNBitsQuantizer(float_model(w), algo_config=DefaultWeightOnlyQuantConfig(
        block_size=block, is_symmetric=False, accuracy_level=0))
    quantizer.process()
    source = quantizer.model.model
    assert [n.op_type for n in source.graph.node] == ["MatMulNBits", "MatMulNBits"]
    rewritten, report = rewrite(source)
    assert report.converted == {"MatMulNBits": 2} and not report.skipped
    a = rng.standard_normal((3, K)).astype(np.float32)
    ort_exact = make_session(source, library=False).run(None, {"A": a})[0]  # accuracy_level 0: fp32 activations
    y = make_session(rewritten).run(None, {"A": a})[0]
    assert relative_rms(y, ort_exact) < 2e-2


@pytest.mark.parametrize("K,block", [(512, 32), (512, 128), (576, 128)])
@pytest.mark.parametrize("bits", [2, 4])
def test_matmul_nbits_with_float_zero_points_hqq_converts(rng, bits, K, block):
    """ORT's HQQ quantizer writes float zero points (same type as the scales): w = s * (q - z).
    They were refused; they are offsets -s * z."""
    from onnx import TensorProto

    N = 96
    n_blocks = -(-K // block)
    q = rng.integers(0, 1 << bits, (N, K)).astype(np.uint8)
    scales = rng.uniform(0.01, 0.05, (N, n_blocks)).astype(np.float32)
    zeros = rng.uniform(0, (1 << bits) - 1, (N, n_blocks)).astype(np.float32)  # HQQ: not integers
    int_weight = packing.QuantizedWeight(q, scales, bits, block)
    b, _, _ = matmul_nbits_format.to_matmul_nbits(int_weight)
    node = helper.make_node("MatMulNBits", ["A", "B", "scales", "zp"], ["Y"], domain="com.microsoft", name="hqq",
                            K=K, N=N, bits=bits, block_size=block, accuracy_level=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(b, "B"), numpy_helper.from_array(scales, "scales"),
                               numpy_helper.from_array(zeros, "zp")])
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    source.ir_version = 10
    rewritten, report = rewrite(source)
    assert report.converted == {"MatMulNBits": 1}
    expected_w = (q.astype(np.float32) - int_weight.per_element(zeros)) * int_weight.per_element(scales)
    np.testing.assert_allclose(lut_weight(rewritten).dequantize(), expected_w, rtol=0, atol=1e-6)
    a = rng.standard_normal((3, K)).astype(np.float32)
    ort_float = make_session(source, library=False).run(None, {"A": a})[0]  # ORT's own HQQ dequantisation
    exact = a.astype(np.float64) @ expected_w.T.astype(np.float64)
    assert relative_rms(ort_float, exact) < 1e-5  # the reference is ORT's own reading of the model
    assert relative_rms(make_session(rewritten).run(None, {"A": a})[0], exact) < 2e-2


def test_the_dequantize_rules_skip_reason_is_not_hidden_by_the_float_rules(rng):
    """A DequantizeLinear -> MatMul the DQ rule cannot take (here a block size along the wrong
    axis) must report the DQ rule's reason, not the float rule's "weight is not constant"."""
    K, N = 64, 32
    q = rng.integers(0, 16, (K, N)).astype(np.uint8)
    model = dq_matmul_model(q, np.ones((K, N // 16), np.float32), np.zeros((K, N // 16), np.uint8), "uint4", 16)
    model.graph.node[0].attribute[0].i = 1  # axis=1: blocked along N
    _, report = rewrite(model)
    assert not report.converted
    pattern_name, reason = report.skipped["mm"]
    assert pattern_name != "MatMul (float)" and "not blocked along K" in reason, (pattern_name, reason)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_weights_with_non_finite_values_are_skipped_with_reason(rng, bad):
    w = {"ok": rng.standard_normal((64, 64)).astype(np.float32), "broken": rng.standard_normal((64, 64)).astype(np.float32)}
    w["broken"][3, 5] = bad
    rewritten, report = rewrite(float_model(w))
    assert report.converted == {"MatMul (float)": 1}
    assert report.skipped["broken"] == ("MatMul (float)", "weight holds a NaN or an infinity")


def test_matmul_nbits_with_blocks_of_the_wrong_size_is_skipped_with_reason(rng):
    qw = packing.quantize_rtn(rng.standard_normal((64, 128)).astype(np.float32), 4, 32)
    m = matmul_nbits_model(qw)
    b = next(t for t in m.graph.initializer if t.name == m.graph.node[0].input[1])
    truncated = numpy_helper.to_array(b)[:, :, :8]  # 8 bytes per block where 32 weights need 16
    b.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(truncated), b.name))
    _, report = rewrite(m)
    assert not report.converted
    assert report.skipped["layer0"][1] == "B holds 2048 values, expected 4096 (K=128, N=64, block_size=32)"
