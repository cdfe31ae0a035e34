"""Malformed LutGemm nodes fail with a clear error naming the node; nothing crashes."""

import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import tmac_ort
from tmac_ort import packing

K, N, BITS, GROUP = 64, 40, 2, 32


def build(attrs=None, inputs=None, inits=None, drop_attr=None, a_shape=("M", K)):
    qw = packing.quantize_rtn(np.random.default_rng(0).standard_normal((N, K)).astype(np.float32), BITS, GROUP, False)
    base = {"packed": qw.pack(), "scales": qw.scales, "zp": qw.zero_points}
    base.update(inits or {})
    attributes = {"K": K, "N": N, "bits": BITS, "group_size": GROUP, "layout_version": packing.LAYOUT_VERSION}
    attributes.update(attrs or {})
    if drop_attr:
        del attributes[drop_attr]
    names = inputs if inputs is not None else ["A", "packed", "scales"]
    initializers = [numpy_helper.from_array(v, k) for k, v in base.items() if k in names and v is not None]
    graph_inputs = [helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, list(a_shape))]
    if "scales_input" in names:
        graph_inputs.append(helper.make_tensor_value_info("scales_input", onnx.TensorProto.FLOAT, [N, K // GROUP]))
    node = helper.make_node("LutGemm", names, ["Y"], domain="com.tmac", name="my_layer", **attributes)
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.tmac", 1)])
    model.ir_version = 10
    return model


def session(model):
    return tmac_ort.make_session(model)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"attrs": {"bits": 5}}, "bits must be 1, 2, 3 or 4"),
        ({"attrs": {"group_size": 0}}, "group_size must be positive"),
        ({"attrs": {"group_size": 12}}, "group_size must be a multiple of 8"),  # (48 is fine: groups 48 + 16)
        ({"attrs": {"layout_version": 4}}, "layout_version 4 is not supported (this library reads 1 to 3)"),
        ({"attrs": {"layout_version": 0}}, "layout_version 0 is not supported"),
        ({"attrs": {"layout_version": 3}}, "packed_weights has shape [16, 64], expected [12, 80]"),
        ({"attrs": {"layout_version": 3, "bits": 4}}, "layout 3 holds ternary weights: bits must be 2"),
        ({"attrs": {"layout_version": 1}}, "packed_weights has shape [16, 64], expected [2, 8, 64]"),
        ({"drop_attr": "N"}, "missing or non-integer attribute 'N'"),
        ({"attrs": {"N": 64}}, "scales has shape [40, 2], expected [64, 2]"),
        ({"attrs": {"N": 100}}, "packed_weights has shape"),
        ({"inits": {"packed": np.zeros((16, 32), np.uint8)}}, "packed_weights has shape [16, 32], expected [16, 64]"),
        ({"inits": {"scales": np.ones((N, 3), np.float32)}}, "scales has shape"),
        # (fp16 scales are valid since scales and offsets may be stored as fp16: test_storage.py)
        ({"inits": {"scales": np.ones((N, 2), np.int32)}}, "scales has the wrong element type (6, expected float or float16)"),
        ({"inputs": ["A", "packed", "scales", "", "offsets"], "inits": {"offsets": np.ones((N, 2), np.float64)}},
         "offsets has the wrong element type (11, expected float or float16)"),
        ({"inputs": ["A", "packed", "scales_input"]}, "scales must be a constant initializer"),
        ({"inputs": ["A", "packed", "scales", "zp"], "inits": {"zp": np.full((N, 2), 4, np.uint8)}},
         "zero point 4 does not fit in 2 bits"),
        ({"inputs": ["A", "packed", "scales", "zp", "offsets"],
          "inits": {"zp": np.ones((N, 2), np.uint8), "offsets": np.ones((N, 2), np.float32)}},
         "give zero_points or offsets, not both"),
        ({"inputs": ["A", "packed"]}, None),
    ],
)
def test_session_creation_fails_with_a_clear_message(kwargs, message):
    with pytest.raises(Exception) as info:
        session(build(**kwargs))
    if message is not None:
        assert message in str(info.value)
        assert "my_layer" in str(info.value)


def test_wrong_activation_width_is_a_run_error_not_a_crash():
    sess = session(build(a_shape=("M", "K")))
    with pytest.raises(Exception, match="last dimension must be K=64"):
        sess.run(None, {"A": np.zeros((2, 63), np.float32)})
    # the session stays usable after the error
    assert sess.run(None, {"A": np.zeros((2, K), np.float32)})[0].shape == (2, N)


def test_wrong_bias_shape_is_a_run_error():
    model = build(inputs=["A", "packed", "scales", "", "", "bias"])
    model.graph.input.append(helper.make_tensor_value_info("bias", onnx.TensorProto.FLOAT, ["B"]))
    sess = session(model)
    with pytest.raises(Exception, match="bias has shape"):
        sess.run(None, {"A": np.zeros((1, K), np.float32), "bias": np.zeros(N + 1, np.float32)})
    y = sess.run(None, {"A": np.zeros((1, K), np.float32), "bias": np.arange(N, dtype=np.float32)})[0]
    assert y.shape == (1, N)


def test_unknown_kernel_name_is_refused():
    with pytest.raises(Exception, match="tmac.kernel=sparc names no kernel of this build"):
        tmac_ort.session_options(kernel="sparc")


@pytest.mark.parametrize("value", ["-1", "eight", "", "1e3"])
def test_int8_min_rows_that_is_not_a_count_is_refused(value):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry(tmac_ort.INT8_MIN_ROWS_CONFIG_KEY, value)
    with pytest.raises(Exception, match="tmac.int8_min_rows must be a count of rows"):
        tmac_ort.session_options(base=options)


@pytest.mark.parametrize("value", ["-1", "eight", "1e3"])
def test_int8_min_rows_in_the_environment_that_is_not_a_count_is_refused(value, monkeypatch):
    monkeypatch.setenv("TMAC_ORT_INT8_MIN_ROWS", value)
    with pytest.raises(Exception, match="TMAC_ORT_INT8_MIN_ROWS must be a count of rows") as refused:
        tmac_ort.session_options()
    assert str(refused.value).count("\n") == 0


def test_unknown_kernel_in_the_environment_is_refused():
    """TMAC_ORT_KERNEL is read once per process: checked in a fresh one."""
    import subprocess
    import sys

    code = "import tmac_ort; tmac_ort.available_kernels()"
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMAC_ORT_KERNEL": "sparc"},
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "TMAC_ORT_KERNEL=sparc names no kernel of this build" in result.stderr


def test_non_finite_scales_are_refused():
    qw = packing.quantize_rtn(np.random.default_rng(0).standard_normal((N, K)).astype(np.float32), BITS, GROUP, False)
    scales = qw.scales.copy()
    scales[7, 1] = np.inf
    with pytest.raises(Exception, match="scales hold a NaN or an infinity \\(channel 7, group 1\\)"):
        session(build(inits={"scales": scales}))


def test_non_finite_activations_propagate_like_a_float_matmul():
    sess = session(build())
    a = np.zeros((2, K), np.float32)
    a[0, 3] = np.nan
    a[1, 5] = np.inf
    y = sess.run(None, {"A": a})[0]
    assert np.isnan(y[0]).all()
    assert not np.isfinite(y[1]).any()
