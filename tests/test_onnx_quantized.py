"""Quantized ONNX models run with their own parameters equal ONNX Runtime's fused graph, tensor by tensor.

Each builder of tests/onnx_models.py is quantized by ORT's quantizer (every recipe it accepts: QDQ and
QOperator, per tensor / per channel, uint8 / int8 weights, uint8 / int8 activations; dynamic); the graph ORT
runs (QDQ fused at ORT_ENABLE_EXTENDED) is dumped node by node and accelsim computes every node from ORT's
own input tensors (so one difference cannot hide another downstream), then the whole graph from the feeds.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_models as om
import ort_reference as ref
import pytest
from onnx import numpy_helper

from accelsim.onnx import quantized_ops
from accelsim.onnx.quantized import op_key, run_node, run_quantized, scheme_of

BUILDERS = [
    "conv_groups_bn_relu",
    "conv_dilated_asymmetric_pads",
    "matmul_2d_bias",
    "residual_cnn",
    "pools",
    "se_block",
    "layout_ops",
]
RECIPES = ref.recipes("qdq") + ref.recipes("qoperator") + ref.recipes("dynamic")
#: float32 ops (float pools and Softmax beside the dynamic layers, ORT's unfused float Conv groups) sum in
#: MLAS's order: measured within 1e-6 of the tensor's largest magnitude (about 8 ulps of it)
FLOAT_RTOL = 1e-6
#: ORT's QLinearAveragePool: one code off at a few windows, mostly padded borders (measured, see docs/onnx.md)
AVERAGE_POOL = "com.microsoft.QLinearAveragePool"


def _graph(name: str, recipe: ref.Recipe) -> tuple[onnx.ModelProto, om.Feeds]:
    built = om.BUILDERS[name]()
    model = ref.quantize(built, recipe)
    return (ref.fused(model) if recipe.fmt == "qdq" else model), built.inputs


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
@pytest.mark.parametrize("name", BUILDERS)
def test_every_node_equals_ort(name: str, recipe: ref.Recipe) -> None:
    graph, feeds = _graph(name, recipe)
    want = ref.node_outputs(graph, feeds)
    values = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer} | dict(feeds) | want
    exact = 0
    for node in graph.graph.node:
        got = run_node(node, [values[i] if i else None for i in node.input])
        for tensor, g in zip(node.output, got):
            w = want[tensor]
            assert g.shape == w.shape and g.dtype == w.dtype, tensor
            if w.dtype.kind in "iu":
                if op_key(node) == AVERAGE_POOL:
                    assert np.abs(g.astype(int) - w).max() <= 1, tensor
                    continue
                np.testing.assert_array_equal(g, w, err_msg=f"{tensor} ({op_key(node)})")
                exact += 1
            elif op_key(node) in ("Cast", "Mul", "Add", "Relu", "Clip", "Reshape", "Flatten", "DequantizeLinear"):
                np.testing.assert_array_equal(g, w, err_msg=f"{tensor} ({op_key(node)})")  # the float rescale
                exact += 1
            else:
                bound = FLOAT_RTOL * max(float(np.abs(w).max(initial=0)), 1e-30)
                assert np.abs(g.astype(np.float64) - w).max(initial=0) <= bound, f"{tensor} ({op_key(node)})"
    assert exact > 0


@pytest.mark.parametrize(
    "recipe",
    [r for r in RECIPES if r.fmt != "dynamic" and not (r.fmt == "qdq" and r.activation_type.name == "QInt8")],
    ids=lambda r: r.name,
)
def test_whole_residual_cnn_equals_ort(recipe: ref.Recipe) -> None:
    """The whole graph from the float input: every tensor (codes and the float edges) equal ORT's."""
    graph, feeds = _graph("residual_cnn", recipe)
    want = ref.node_outputs(graph, feeds)
    got = run_quantized(graph, feeds)
    assert got.scheme == "static"
    for tensor, w in want.items():
        np.testing.assert_array_equal(got.tensors[tensor], w, err_msg=tensor)


def test_dynamic_model_is_the_dynamic_scheme() -> None:
    graph, feeds = _graph("matmul_2d_bias", ref.Recipe("dynamic", per_channel=True))
    assert scheme_of(graph) == "dynamic"
    want = ref.node_outputs(graph, feeds)
    got = run_quantized(graph, feeds).tensors
    for tensor, w in want.items():
        np.testing.assert_array_equal(got[tensor], w, err_msg=tensor)


def _tie_model() -> tuple[onnx.ModelProto, om.Feeds]:
    """QLinearConv with power-of-two scales: x 2**-2, w 2**-3, y 2**-4 make the multiplier 0.5, so every
    odd accumulator lands on an exact half; large inputs saturate the output codes."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
    w = rng.integers(-5, 6, (3, 4, 3, 3)).astype(np.int8)
    bias = rng.integers(-20, 21, 3).astype(np.int32)
    consts = {
        "xs": np.float32(2**-2),
        "xz": np.uint8(128),
        "w": w,
        "ws": np.float32(2**-3),
        "wz": np.int8(0),
        "ys": np.float32(2**-4),
        "yz": np.uint8(100),
        "B": bias,
    }
    node = onnx.helper.make_node("QLinearConv", ["x", *consts], ["y"], pads=[1, 1, 1, 1])
    graph = onnx.helper.make_graph(
        [node],
        "ties",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, x.shape)],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), {"x": x}


def test_ties_and_saturation_follow_ort_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    """float_half_even matches ORT on exact ties and saturated codes; the tflite requant (ties away from
    zero) differs on those ties, so the test fails if the rounding mode is swapped."""
    model, feeds = _tie_model()
    want = ref.run(model, feeds)[0]
    assert np.count_nonzero(want == 255) + np.count_nonzero(want == 0) > 0  # saturation occurs
    np.testing.assert_array_equal(run_quantized(model, feeds).tensors["y"], want)
    monkeypatch.setattr(quantized_ops, "MODE", "tflite")
    swapped = run_quantized(model, feeds).tensors["y"]
    assert np.count_nonzero(swapped != want) > 10
