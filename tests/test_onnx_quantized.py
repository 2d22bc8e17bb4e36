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
from onnxruntime.quantization import QuantType

from accelsim.config.loader import load_hardware
from accelsim.errors import AccelsimError
from accelsim.onnx import quantized_ops
from accelsim.onnx.quantized import is_qdq, load_quantized, op_key, run_node, run_quantized, scheme_of
from accelsim.onnx.quantized_workload import import_quantized
from accelsim.simulation import RunOptions, simulate
from accelsim.values.runner import error_metrics, run_values

#: quantize_dynamic leaves a Gemm with transA float (the model stays fp32: no dynamic layer to compare)
NOT_QUANTIZED = {("gemm_trans_alpha_beta", "dynamic")}
RECIPES = ref.recipes("qdq") + ref.recipes("qoperator") + ref.recipes("dynamic")
#: other float32 ops (pools beside the dynamic layers; the float Conv of
#: ORT's unfused int8-activation groups) reduce in MLAS's order: measured within 1e-6 of the tensor's
#: largest magnitude (a few ulps of it)
FLOAT_RTOL = 1e-6
#: float32 ops computed exactly as ORT does (the dynamic layers' rescale, layout, DequantizeLinear, MLAS's Erf,
#: LayerNormalization in MLAS's / the fallback's order, Softmax with MLAS's exp and order)
EXACT_FLOAT = frozenset(
    {
        "Cast",
        "Mul",
        "Add",
        "Relu",
        "Clip",
        "Reshape",
        "Flatten",
        "Transpose",
        "DequantizeLinear",
        "Erf",
        "LayerNormalization",
        "Softmax",
    }
)


def _graph(name: str, recipe: ref.Recipe) -> tuple[onnx.ModelProto, om.Feeds]:
    built = om.BUILDERS[name]()
    model = ref.quantize(built, recipe)
    return (ref.fused(model) if recipe.fmt == "qdq" else model), built.inputs


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
@pytest.mark.parametrize("name", list(om.BUILDERS))
def test_every_node_equals_ort(name: str, recipe: ref.Recipe) -> None:
    if (name, recipe.fmt) in NOT_QUANTIZED:
        with pytest.raises(AccelsimError, match="not a quantized model"):
            scheme_of(ref.quantize(om.BUILDERS[name](), recipe))
        return
    graph, feeds = _graph(name, recipe)
    want = ref.node_outputs(graph, feeds)
    values = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer} | dict(feeds) | want
    exact = 0
    for node in graph.graph.node:
        got = run_node(node, [values[i] if i else None for i in node.input], om.OPSET)
        for tensor, g in zip(node.output, got):
            w = want[tensor]
            assert g.shape == w.shape and g.dtype == w.dtype, tensor
            if w.dtype.kind in "iu" or op_key(node) in EXACT_FLOAT:
                np.testing.assert_array_equal(g, w, err_msg=f"{tensor} ({op_key(node)})")
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


def test_light_resnet50_qdq_equals_ort() -> None:
    """onnx's light ResNet-50 with seeded weights, QDQ per channel (uint8 activations, int8 weights), the
    whole graph from the float input: every integer tensor equal to ORT's fused graph (53 QLinearConv, the
    16 residual Sums ORT runs as float fake quantization, QGemm, QLinearSoftmax); the one float
    AveragePool within the float bound."""
    built = om.light_model("resnet50", seed=0)
    graph = ref.fused(ref.quantize(built, ref.Recipe("qdq", per_channel=True)))
    want = ref.node_outputs(graph, built.inputs)
    got = run_quantized(graph, built.inputs).tensors
    ints = [t for t, w in want.items() if w.dtype.kind in "iu"]
    assert len(ints) > 70
    for tensor, w in want.items():
        if tensor in ints:
            np.testing.assert_array_equal(got[tensor], w, err_msg=tensor)
        else:
            assert np.abs(got[tensor] - w).max(initial=0) <= FLOAT_RTOL * np.abs(w).max(initial=1e-30), tensor


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
    # the swap differs, and only on exact ties (odd accumulators: the multiplier is 0.5). Counted from the
    # accumulators, independently of accelsim: 52 ties, 5 of them unsaturated where the two rules disagree
    # (a count above 10 held only while the fused tflite requant read past its one per-tensor multiplier)
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    x = np.pad(feeds["x"].astype(np.int64) - 128, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
    acc = np.einsum("nchwij,ocij->nohw", windows, init["w"].astype(np.int64)) + init["B"].reshape(1, -1, 1, 1)
    differ = swapped != want
    assert np.count_nonzero(differ) == 5 and np.all(acc[differ] % 2 == 1)


#: builders whose float twin maps to the layer types on main today (conv, linear, add, pools, flatten)
TIMED = ["conv_groups_bn_relu", "matmul_2d_bias", "residual_cnn", "pools"]


@pytest.mark.parametrize(
    "recipe",
    [ref.Recipe("qdq", True), ref.Recipe("qoperator", False, QuantType.QUInt8), ref.Recipe("dynamic", True)],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("name", TIMED)
def test_quantized_model_lowers_and_times(name: str, recipe: ref.Recipe) -> None:
    """The quantized model's float twin is the workload: it times under the scheme the model is, and its
    dequantized weights compute what the fp32 model does up to the quantization error."""
    built = om.BUILDERS[name]()
    graph, feeds = _graph(name, recipe)
    q = import_quantized(graph, name=name)
    assert q.scheme == ("dynamic" if recipe.fmt == "dynamic" else "static")
    assert q.weights == ("asymmetric" if recipe.weight_type == QuantType.QUInt8 else "symmetric")
    assert q.variant == ("onnx" if recipe.fmt == "dynamic" else "float_half_even")
    hw = load_hardware()
    run = simulate(q.imported.workload, hw, q.scheme, options=RunOptions(timing_only=True, weights=q.weights))
    assert run.values is None and run.total.total_cycles > 0
    values = run_values(q.imported.workload, hw, "fp32", tensors=q.imported.tensors(feeds))
    (out,) = q.imported.outputs.values()
    reference = ref.run(built.model, feeds)[0]
    assert error_metrics(reference, values.layers[out].output).sqnr_db > 20


def test_load_quantized_fuses_qdq_and_keeps_qoperator(tmp_path) -> None:
    built = om.BUILDERS["residual_cnn"]()
    for recipe, fused_ops in ((ref.Recipe("qdq"), True), (ref.Recipe("qoperator"), False)):
        model = ref.quantize(built, recipe)
        onnx.save(model, tmp_path / "m.onnx")
        loaded = load_quantized(tmp_path / "m.onnx")
        ops = {n.op_type for n in loaded.graph.node}
        assert ("QLinearConv" in ops) and is_qdq(model) == fused_ops
        want = ref.run(model, built.inputs)[0]
        np.testing.assert_array_equal(run_quantized(loaded, built.inputs).tensors[loaded.graph.output[0].name], want)


def _one_node(op: str, domain: str = "") -> onnx.ModelProto:
    node = onnx.helper.make_node(op, ["x"], ["y"], domain=domain or None)
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    opsets = [onnx.helper.make_opsetid("", 17)] + ([onnx.helper.make_opsetid(domain, 1)] if domain else [])
    return onnx.helper.make_model(graph, opset_imports=opsets)


def test_hostile_inputs_are_one_line_errors(tmp_path) -> None:
    """An fp32 model, a file that is no model, an op the quantized import does not run, a missing feed."""
    (tmp_path / "fp32.onnx").write_bytes(_one_node("Relu").SerializeToString())
    with pytest.raises(AccelsimError, match=r"fp32\.onnx: not a quantized model") as exc:
        load_quantized(tmp_path / "fp32.onnx")
    assert "\n" not in str(exc.value)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a model" * 10)
    with pytest.raises(AccelsimError, match="not a readable ONNX model|not an ONNX model"):
        load_quantized(tmp_path / "junk.onnx")
    with pytest.raises(AccelsimError, match="not a quantized model"):
        run_quantized(_one_node("Relu"), {"x": np.zeros((1, 4), np.float32)})
    graph, _ = _graph("matmul_2d_bias", ref.Recipe("qoperator"))
    with pytest.raises(AccelsimError, match="no value for"):
        run_quantized(graph, {})
    unknown = onnx.helper.make_node("QLinearLeakyRelu", ["x"], ["y"], domain="com.microsoft", name="leaky")
    with pytest.raises(AccelsimError, match=r"node 'leaky' \(com.microsoft.QLinearLeakyRelu\): not an op"):
        run_node(unknown, [np.zeros(4, np.uint8)])


def _contrib(op: str, inputs: dict[str, np.ndarray], feeds: list[str], **attrs: object) -> onnx.ModelProto:
    """One com.microsoft node; the ``feeds`` inputs are graph inputs, the rest initializers."""
    node = onnx.helper.make_node(op, list(inputs), ["y"], domain="com.microsoft", **attrs)
    dtype = onnx.helper.np_dtype_to_tensor_dtype(inputs[feeds[0]].dtype)
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info(k, dtype, inputs[k].shape) for k in feeds],
        [onnx.helper.make_tensor_value_info("y", dtype, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inputs.items() if k not in feeds],
    )
    opsets = [onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.microsoft", 1)]
    return onnx.helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_vector_unit_ties_round_half_to_even(dtype: type) -> None:
    """QLinearAdd and QLinearAveragePool on power-of-two scales: the real results land on exact halves
    (counted here in float64), ORT rounds them to even and so does accelsim; half away from zero would
    miss every one of them. Inputs at both ends of the code range saturate the output."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    a = rng.integers(info.min, info.max + 1, (2, 3, 6, 6)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (2, 3, 6, 6)).astype(dtype)
    a.flat[:4], b.flat[:4] = info.max, info.max
    scalars = {"za": dtype(3), "zb": dtype(0), "zc": dtype(1)}
    add = {"a": a, "sa": np.float32(0.5), "za": scalars["za"], "b": b, "sb": np.float32(0.25)}
    add |= {"zb": scalars["zb"], "sc": np.float32(0.5), "zc": scalars["zc"]}
    model = _contrib("QLinearAdd", add, ["a", "b"])
    want = ref.run(model, {"a": a, "b": b})[0]
    exact = (a.astype(np.float64) - 3) * 1.0 + b.astype(np.float64) * 0.5
    ties = exact % 1 == 0.5
    assert ties.sum() > 50 and np.any(want == info.max)
    np.testing.assert_array_equal(run_quantized(model, {"a": a, "b": b}).tensors["y"], want)
    half_away = np.clip(np.sign(exact) * np.floor(np.abs(exact) + 0.5) + 1, info.min, info.max)
    assert np.count_nonzero(half_away[ties] != want[ties]) > 25

    pool = {"x": a, "sx": np.float32(0.5), "zx": scalars["za"], "sy": np.float32(1.0), "zy": scalars["zc"]}
    model = _contrib("QLinearAveragePool", pool, ["x"], kernel_shape=[2, 2], strides=[2, 2])
    want = ref.run(model, {"x": a})[0]
    np.testing.assert_array_equal(run_quantized(model, {"x": a}).tensors["y"], want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((2, 3, 6, 6), (1, 3, 1, 1)), ((1, 3, 1, 1), (2, 3, 6, 6)), ((2, 3, 6, 6), ()), ((2, 3, 6, 6), (6,))]
    + [((2, 3, 6, 1), (2, 3, 6, 6)), ((2, 1, 6, 6), (2, 3, 6, 6)), ((4, 1), (1, 5))],
    ids=str,
)
def test_broadcast_add_ties_through_the_one_kernel(dtype: type, a_shape: tuple, b_shape: tuple) -> None:
    """QLinearAdd with numpy broadcasting (an SE block's per-channel operand, a scalar, a row, a column, a dim
    of 1 in the middle) through ort_vector.add's one Numba kernel equals ORT: power-of-two scales put the
    real sums on exact halves (ORT rounds them to even; half away from zero misses), the code range's ends
    saturate, and an operand that is one value per span takes ORT's other FMA order."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    a = rng.integers(info.min, info.max + 1, a_shape).astype(dtype)
    b = rng.integers(info.min, info.max + 1, b_shape).astype(dtype)
    a.reshape(-1)[:2], b.reshape(-1)[:1] = info.max, info.max
    add = {"a": a, "sa": np.float32(0.5), "za": dtype(3), "b": b, "sb": np.float32(0.25), "zb": dtype(0)}
    add |= {"sc": np.float32(0.5), "zc": dtype(1)}
    model = _contrib("QLinearAdd", add, ["a", "b"])
    want = ref.run(model, {"a": a, "b": b})[0]
    exact = (a.astype(np.float64) - 3) * 1.0 + b.astype(np.float64) * 0.5
    ties = exact % 1 == 0.5
    assert ties.sum() >= 5 and np.any(want == info.max)
    np.testing.assert_array_equal(run_quantized(model, {"a": a, "b": b}).tensors["y"], want)
    half_away = np.clip(np.sign(exact) * np.floor(np.abs(exact) + 0.5) + 1, info.min, info.max)
    assert np.count_nonzero(half_away[ties] != want[ties]) > 0


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((1, 64, 28, 28), s) for s in [(), (1, 64, 1, 1), (28,), (1, 64, 28, 1), (1, 64, 28, 28)]]
    + [(s, (1, 64, 28, 28)) for s in [(), (1, 64, 1, 1), (28,), (1, 64, 28, 1)]],
    ids=str,
)
def test_broadcast_add_fma_order_equals_ort(a_shape: tuple, b_shape: tuple) -> None:
    """On scales that are not powers of two the FMA order shows: the operand ORT's broadcaster hands the kernel
    as one value per span (a per-channel ``[C, 1, 1]``, a column ``[.., 1]``) has its FMA first (ORT swaps a
    per-span ``a`` into the kernel's scalar slot). Measured: folding that operand into the fixed part with a
    multiply and an add instead, as the earlier numpy path did, was off by one code at 40 to 1,767 of
    50,176 positions."""
    rng = np.random.default_rng(7)
    for (sa, za), (sb, zb), (sc, zc) in [((0.05, 3), (0.04, 0), (0.06, 1)), ((0.3, 128), (0.011, 5), (0.07, 120))]:
        a = rng.integers(0, 256, a_shape).astype(np.uint8)
        b = rng.integers(0, 256, b_shape).astype(np.uint8)
        add = {"a": a, "sa": np.float32(sa), "za": np.uint8(za), "b": b, "sb": np.float32(sb), "zb": np.uint8(zb)}
        add |= {"sc": np.float32(sc), "zc": np.uint8(zc)}
        model = _contrib("QLinearAdd", add, ["a", "b"])
        want = ref.run(model, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(run_quantized(model, {"a": a, "b": b}).tensors["y"], want)


@pytest.mark.parametrize(
    "recipe",
    [
        ref.Recipe("qdq", True),
        ref.Recipe("qdq", False, QuantType.QUInt8),
        ref.Recipe("qoperator", False, QuantType.QUInt8),
        ref.Recipe("qoperator", True, QuantType.QInt8, QuantType.QInt8),
    ],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("name", ["residual_cnn", "pools"])
def test_values_runner_on_the_models_codes(name: str, recipe: ref.Recipe) -> None:
    """The ordinary static run (``run_values`` with ``float_half_even``) on the model's own weight codes,
    int32 biases and activation parameters: every conv, linear, residual add and pool equals ORT's codes
    (the avgpool adds the zero point before rounding, as QLinearAveragePool: QDQ's equal-scale ties too)."""
    graph, feeds = _graph(name, recipe)
    q = import_quantized(graph, name=name)
    hw = load_hardware()
    hw = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": q.variant})})
    values = run_values(q.imported.workload, hw, "static", tensors=q.static_tensors(feeds), qparams=q.qparams)
    bits = run_quantized(graph, feeds).tensors
    tensor_of = {node.name or node.output[0]: node.output[0] for node in graph.graph.node}
    for layer, lv in values.layers.items():
        want = bits[tensor_of[layer]]
        np.testing.assert_array_equal(lv.stored.reshape(want.shape), want, err_msg=layer)
