"""A quantized ONNX model's values through ``run_values`` on the lowered program equal ORT's graph, layer by layer.

The user's path (``accelsim run|compare MODEL_int8.onnx``) runs the model's float twin as a workload with the
model's own weight codes, int32 biases and activation parameters (no calibration), ORT's requant mode
``float_half_even`` and its vector kernels (accelsim.quant.ort_vector). Every layer's stored codes (static)
or float output (dynamic layers) must equal the tensor ORT's graph computes for it, from the float input.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_models as om
import ort_reference as ref
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import QuantType

from accelsim.config.loader import load_hardware
from accelsim.onnx.quantized import run_quantized
from accelsim.onnx.quantized_workload import REQUANT_MODE, import_quantized
from accelsim.quant import QParams, ort_vector
from accelsim.values import runner
from accelsim.values.runner import run_values
from accelsim.values.tensors import LayerParams

#: builders whose every layer is bit-exact under every static recipe; ORT runs some groups of the last five as
#: float between DequantizeLinear and QuantizeLinear (tests/test_ort_reference.py's UNFUSED tables: int8
#: activations' convs, MatMuls, adds; the SE block's pool and Mul; Sub and Div always), and so does accelsim
STATIC = [
    "conv_groups_bn_relu",
    "conv_depthwise_bn_relu6",
    "conv_dilated_asymmetric_pads",
    "conv_same_upper_stride_2_1",
    "matmul_2d_bias",
    "pools",
    "attention",
    "softmax_channels",
    "batched_matmul",
    "layout_ops",
    "residual_cnn",
    "se_block",
    "elementwise_broadcast",
    "hard_swish_written_out",
    "erf_gelu",
    "layernorm_decomposed",
    "layernorm_op",
]
#: builders whose every dynamic layer's float output is bit-exact (no float reduction in MLAS's order after one
#: but the LayerNorm's and the Softmax's, which runner.layernorm and runner.softmax compute in ORT's order)
DYNAMIC = [
    "conv_groups_bn_relu",
    "conv_depthwise_bn_relu6",
    "conv_dilated_asymmetric_pads",
    "conv_same_upper_stride_2_1",
    "matmul_2d_bias",
    "elementwise_broadcast",
    "layout_ops",
    "batched_matmul",
    "attention",
    "hard_swish_written_out",
    "erf_gelu",
    "residual_cnn",
    "se_block",
    "layernorm_decomposed",
    "layernorm_op",
    "softmax_channels",
]
STATIC_CASES = [(name, r) for name in STATIC for r in ref.recipes("qdq") + ref.recipes("qoperator")]


def _ort_mode() -> object:
    hw = load_hardware()
    return hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": REQUANT_MODE})})


#: ops whose output is the layer's when they follow a QLinear GEMM (the conv / linear layer fuses them)
GEMM_ACTIVATIONS = {("QLinearConv", "QLinearSigmoid"), ("QLinearMatMul", "QLinearSigmoid"), ("QGemm", "QLinearSigmoid")}


def _layer_tensors(graph: onnx.ModelProto) -> dict[str, str]:
    """Layer (node) name -> the tensor ORT's graph holds its output in: a dynamic layer's after its float
    rescale (Cast, Mul, the bias Add) and a Relu the layer fused; a static Add's after its Relu; a QLinear
    GEMM's after a QLinearSigmoid (the layer's fused activation); a float op's (an unfused QDQ group) after
    the QuantizeLinear that stores it."""
    consts = {t.name for t in graph.graph.initializer}
    producer = {o: n for n in graph.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def constant(t: str) -> bool:
        return t in consts or (t in producer and all(i in consts for i in producer[t].input))

    def follow(node: onnx.NodeProto) -> str:
        out = node.output[0]
        while len(consumers.get(out, [])) == 1:
            c = consumers[out][0]
            rescale = node.op_type in ("MatMulInteger", "ConvInteger") and (
                c.op_type in ("Cast", "Mul") or (c.op_type == "Add" and any(constant(i) for i in c.input))
            )
            quantized = c.op_type == "QuantizeLinear" and node.domain in ("", "ai.onnx") and "Quant" not in node.op_type
            if not (
                rescale
                or quantized
                or (node.op_type, c.op_type) in GEMM_ACTIVATIONS
                or (c.op_type in ("Relu", "Clip") and node.op_type in ("Add", "Sum", "ConvInteger", "MatMulInteger"))
                or (c.op_type == "Sigmoid" and node.op_type in ("ConvInteger", "MatMulInteger"))
            ):
                break
            out = c.output[0]
            if c.op_type == "Sigmoid":
                break  # the layer's activation: what follows is another layer
        return out

    return {node.name or node.output[0]: follow(node) for node in graph.graph.node}


def _compare(name: str, recipe: ref.Recipe) -> tuple[int, list[str]]:
    """(layers equal, layers differing) of the user-path values run against ORT's graph."""
    built = om.BUILDERS[name]()
    model = ref.quantize(built, recipe)
    graph = ref.fused(model) if recipe.fmt == "qdq" else model
    q = import_quantized(graph, name=name)
    tensors = q.static_tensors(built.inputs)
    values = run_values(
        q.imported.workload, _ort_mode(), q.scheme, tensors=tensors, qparams=q.qparams or None, weights=q.weights
    )
    bits = run_quantized(graph, built.inputs).tensors
    tensor_of = _layer_tensors(graph)
    equal, differ = 0, []
    for layer, lv in values.layers.items():
        want = bits[tensor_of[layer]]
        got = lv.stored.reshape(want.shape)
        if got.dtype == want.dtype and np.array_equal(got, want):
            equal += 1
        else:
            differ.append(layer)
    return equal, differ


@pytest.mark.parametrize("name,recipe", STATIC_CASES, ids=[f"{n}-{r.name}" for n, r in STATIC_CASES])
def test_static_model_every_layer_equals_ort(name: str, recipe: ref.Recipe) -> None:
    equal, differ = _compare(name, recipe)
    assert differ == [] and equal > 0


@pytest.mark.parametrize("recipe", ref.recipes("dynamic"), ids=lambda r: r.name)
@pytest.mark.parametrize("name", DYNAMIC)
def test_dynamic_model_every_layer_equals_ort(name: str, recipe: ref.Recipe) -> None:
    """Dynamic layers on the model's own weight codes: ORT's input codes (the onnx flavour), int32 products
    and float rescale, bit for bit."""
    equal, differ = _compare(name, recipe)
    assert differ == [] and equal > 0


def _qp(scale: float, zero: int, dtype: str) -> QParams:
    return QParams(np.float32([scale]), np.int32([zero]), dtype)


def _power_of_two(graph: onnx.ModelProto) -> onnx.ModelProto:
    """``graph`` with every per-tensor scale rounded to a power of two and every uint8 zero point 127 (odd):
    products of codes and multipliers land on exact halves."""
    for t in graph.graph.initializer:
        if t.name.endswith("_scale") and t.data_type == onnx.TensorProto.FLOAT and not t.dims:
            value = np.float32(2.0 ** np.round(np.log2(float(numpy_helper.to_array(t)))))
            t.CopyFrom(numpy_helper.from_array(value, t.name))
        if t.name.endswith("_zero_point") and t.data_type == onnx.TensorProto.UINT8 and not t.dims:
            t.CopyFrom(numpy_helper.from_array(np.uint8(127), t.name))
    return graph


def test_runner_vector_ops_use_ort_arithmetic_on_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    """Power-of-two scales put the add, the average pool and the global pool on exact halves and saturate:
    under float_half_even the runner's static add / avgpool are ORT's QLinearAdd / QLinearAveragePool
    (ORT's own session on the same codes agrees), and with the ORT kernels switched off (the generic
    dequantize -> float -> quantize vector unit) the codes differ."""
    built = om.BUILDERS["pools"]()
    graph = _power_of_two(ref.fused(ref.quantize(built, ref.Recipe("qdq"))))
    feeds = {"x": (built.inputs["x"] * 4).astype(np.float32)}  # saturates the first layers
    want = ref.node_outputs(graph, feeds)
    q = import_quantized(graph, name="pools")
    hw = _ort_mode()

    def layers(hw: object = hw) -> dict[str, np.ndarray]:
        values = run_values(q.imported.workload, hw, "static", tensors=q.static_tensors(feeds), qparams=q.qparams)
        return {k: v.stored for k, v in values.layers.items()}

    got = layers()
    tensor_of = _layer_tensors(graph)
    pools = [k for k in got if "pool" in k and "max" not in k]
    assert pools
    for layer, codes in got.items():
        np.testing.assert_array_equal(
            codes.reshape(want[tensor_of[layer]].shape), want[tensor_of[layer]], err_msg=layer
        )
    assert any(np.any(got[k] == 255) or np.any(got[k] == 0) for k in got)  # saturation occurs
    monkeypatch.setattr(runner._StaticRun, "_ort_vector", lambda self, layer, inputs, name: None)
    generic = layers()
    assert sum(int(np.count_nonzero(generic[k] != got[k])) for k in pools) > 0
    monkeypatch.undo()
    tflite = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": "tflite"})})
    swapped = layers(tflite)
    assert sum(int(np.count_nonzero(swapped[k] != got[k])) for k in got) > 0


def test_add_ties_half_to_even_not_away() -> None:
    """ort_vector.add on exact halves (scales 0.5, 0.25 -> 0.5; zero point 3 added before rounding, as MLAS
    does): half to even, which half away from zero misses on every other tie; the last codes saturate."""
    a = np.arange(256, dtype=np.uint8).reshape(1, 256)
    b = np.full((1, 256), 1, np.uint8)
    codes, sats = ort_vector.add(a, _qp(0.5, 0, "uint8"), b, _qp(0.25, 0, "uint8"), _qp(0.5, 3, "uint8"))
    exact = a.astype(np.float64) + 0.5  # a * 1 + b * 0.5: every value an exact half
    np.testing.assert_array_equal(codes, np.clip(np.rint(exact + 3), 0, 255))  # the zero point inside
    assert sats > 0
    away = np.clip(np.floor(exact + 3 + 0.5), 0, 255)
    assert np.count_nonzero(away != codes) > 100


@pytest.mark.parametrize(("name", "scale"), [("attention", "mul5"), ("erf_gelu", "mul5")])
def test_scale_by_a_constant_is_its_own_requantization_on_ties(name: str, scale: str) -> None:
    """Attention's ``Q K^T * (1/sqrt(d))`` and Erf-GELU's ``* 0.5`` (and ``erf + 1``): ORT requantizes the
    product first (QLinearMatMul / QLinearMul, the model's parameters for it) and then multiplies by the
    constant's own codes (QLinearMul / QLinearAdd by a quantized constant), so the twin keeps each step a layer
    (no alpha fold, no GELU match). With power-of-two scales the scale layer's products are exact halves and
    codes saturate: every layer equals ORT's codes (Erf-GELU's Div -> Erf float group included), and the
    tflite rounding (half away from zero) moves codes of the scale layer."""
    built = om.BUILDERS[name]()
    graph = _power_of_two(ref.fused(ref.quantize(built, ref.Recipe("qdq"))))
    feeds = {"x": (built.inputs["x"] * 4).astype(np.float32)}
    want = ref.node_outputs(graph, feeds)
    q = import_quantized(graph, name=name)
    kinds = {layer.name: layer.type for layer in q.imported.workload.layers}
    assert kinds[scale] == "elementwise" and "gelu" not in str(q.imported.workload.layers)
    assert all(layer.alpha == 1.0 for layer in q.imported.workload.layers if layer.type == "matmul")
    tensor_of = _layer_tensors(graph)

    def layers(rounding: str = REQUANT_MODE) -> dict[str, np.ndarray]:
        hw = load_hardware()
        hw = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": rounding})})
        values = run_values(q.imported.workload, hw, "static", tensors=q.static_tensors(feeds), qparams=q.qparams)
        return {k: v.stored.reshape(want[tensor_of[k]].shape) for k, v in values.layers.items()}

    got = layers()
    for layer, codes in got.items():
        np.testing.assert_array_equal(codes, want[tensor_of[layer]], err_msg=layer)
    # the scale layer's exact value before rounding: (a - z_a)(c - z_c) s_a s_c / s_y, exact in float64
    consts = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    mul = next(n for n in graph.graph.node if n.name == scale)
    a, sa, za, c, sc, zc, sy = (consts.get(i, want.get(i)) for i in mul.input[:7])
    exact = (a.astype(np.float64) - float(za)) * (float(c) - float(zc)) * float(sa) * float(sc) / float(sy)
    assert np.count_nonzero(np.abs(exact - np.floor(exact)) == 0.5) > 20  # exact ties
    ends = sum(
        int(np.count_nonzero((v == np.iinfo(v.dtype).max) | (v == np.iinfo(v.dtype).min)))
        for v in got.values()
        if v.dtype.kind in "iu"
    )
    assert ends > 10  # saturation
    swapped = layers("tflite")
    assert np.count_nonzero(swapped[scale] != got[scale]) > 10


def _ort_qlinear_softmax(x: np.ndarray, x_scale: float, y_scale: float, y_zero: int, axis: int) -> np.ndarray:
    """ORT's own com.microsoft QLinearSoftmax kernel on ``x``'s codes (one node, opset-13 form)."""
    dtype = x.dtype
    consts = [
        numpy_helper.from_array(np.float32(x_scale), "xs"),
        numpy_helper.from_array(np.zeros((), dtype), "xz"),
        numpy_helper.from_array(np.float32(y_scale), "ys"),
        numpy_helper.from_array(np.asarray(y_zero, dtype), "yz"),
    ]
    node = onnx.helper.make_node(
        "QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft", axis=axis, opset=13
    )
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    graph = onnx.helper.make_graph(
        [node],
        "qsoftmax",
        [onnx.helper.make_tensor_value_info("x", elem, list(x.shape))],
        [onnx.helper.make_tensor_value_info("y", elem, list(x.shape))],
        consts,
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.microsoft", 1)]
    )
    return ref.run(model, {"x": x}, "disabled")[0]


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_softmax_ties_and_saturation_equal_ort(dtype: type, axis: int) -> None:
    """QLinearSoftmax on exact ties and saturation, over the last axis and a middle one: with ``y_scale = 1``
    (``floor(1 / s_y) = 1``) a pair of equal codes reads ``t / (t + t)``, exactly 0.5, at half the positions;
    ORT rounds it to even and adds the odd zero point after (``z``; half away, or the zero point inside the
    rounding, would give ``z + 1``), and ``ort_vector.softmax`` equals ORT there and everywhere else. With
    the zero point at the top of the range the rounded values pass 255 and clamp (MLAS clamps at 255 only)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    pairs = rng.integers(info.min, info.max + 1, (48, 2, 3)).astype(dtype)  # softmax over axis 1 (size 2)
    pairs[::2, 1] = pairs[::2, 0]  # every other pair equal: the ties
    pairs[1::4, 1] = info.min  # far apart: one entry near 1, the other near 0
    pairs[1::4, 0] = info.max
    x = pairs if axis == 1 else np.ascontiguousarray(pairs.transpose(0, 2, 1))
    tied = np.broadcast_to((np.arange(48) % 2 == 0).reshape(48, 1, 1), x.shape)
    odd = info.min + 3  # an odd zero point: rint(0.5) + z = z, rint(0.5 + z) = z + 1
    for zero in (odd, info.max):
        want = _ort_qlinear_softmax(x, 0.5, 1.0, zero, axis)
        got, saturated = ort_vector.softmax(x, np.float32(0.5), np.float32(1.0), zero, axis)
        np.testing.assert_array_equal(got, want, err_msg=f"zero point {zero}")
        if zero == odd:
            assert np.count_nonzero(tied) >= 40 and np.all(want[tied] == odd)  # half to even, z after
        else:
            assert saturated >= 36  # the far-apart pairs' large entries: 1 + z_max


def test_erf_is_onnx_runtimes_bit_for_bit() -> None:
    """The erf activation is ORT's float32 Erf (MLAS's polynomial): bit-equal on +-[0, 5] in steps of 5e-5, a
    million normal values times 3 and the specials (+-0, subnormals, +-inf, NaN, 3e38), where the correctly
    rounded erf differs from ORT in over 10,000 values (so the quantized Erf-GELU's codes would too)."""
    rng = np.random.default_rng(0)
    specials = [0.0, -0.0, 20, -20, 1e10, -1e10, np.inf, -np.inf, np.nan, 3e38, 1e-40, -1e-40, 0.921875, -3.725]
    x = np.concatenate([np.linspace(-5, 5, 200001), rng.standard_normal(1_000_000) * 3, np.asarray(specials)]).astype(
        np.float32
    )
    node = onnx.helper.make_node("Erf", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "erf",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [x.size])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    (want,) = ref.run(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), {"x": x})
    got = runner.activate(x, "erf")
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    rounded = np.asarray([math.erf(v) for v in x[:200001].tolist()], np.float32)
    assert np.count_nonzero(rounded != want[:200001]) > 10_000


def _power_of_two_int8(graph: onnx.ModelProto) -> onnx.ModelProto:
    """:func:`_power_of_two`, and every int8 zero point -1 (odd) too: int8 activations' float groups land on
    exact halves (products and sums of dequantized codes are exact in float32)."""
    for t in _power_of_two(graph).graph.initializer:
        if t.name.endswith("_zero_point") and t.data_type == onnx.TensorProto.INT8 and not t.dims:
            t.CopyFrom(numpy_helper.from_array(np.int8(-1), t.name))
    return graph


#: (builder, recipe) whose graphs ORT runs partly as float between DequantizeLinear and QuantizeLinear (int8
#: activations: float Conv / MatMul / Add / pool / Mul groups, and Sub and Div, which are float with uint8
#: activations too; elementwise_broadcast's uint8 graph is left out here: its Sub and Div by float constants
#: (0.25, random divisors) hit no exact half; batched_matmul's float MatMuls (the same fp32 GEMM path as
#: residual_cnn's convs) land on 4 ties at most, too few to tell)
FLOAT_GROUP_CASES = [
    ("se_block", ref.Recipe("qdq", activation_type=QuantType.QInt8)),
    ("elementwise_broadcast", ref.Recipe("qdq", activation_type=QuantType.QInt8)),
    ("residual_cnn", ref.Recipe("qdq", activation_type=QuantType.QInt8)),
]


@pytest.mark.parametrize("name,recipe", FLOAT_GROUP_CASES, ids=[f"{n}-{r.name}" for n, r in FLOAT_GROUP_CASES])
def test_float_groups_follow_ort_on_ties_and_saturation(name: str, recipe: ref.Recipe) -> None:
    """ORT's unfused groups (DQ -> float op -> Q) and the SE block's QLinearConv -> QLinearSigmoid on power-of-two
    scales and inputs that saturate: every layer equals ORT's own session on the graph, the float layers'
    QuantizeLinear inputs hold exact halves (rounded half to even), and under the ``tflite`` requant mode
    (half away from zero) the codes differ."""
    built = om.BUILDERS[name]()
    graph = _power_of_two_int8(ref.fused(ref.quantize(built, recipe)))
    feeds = {"x": (built.inputs["x"] * 4).astype(np.float32)}
    want = ref.node_outputs(graph, feeds)
    q = import_quantized(graph, name=name)
    assert q.float_layers and not (set(q.float_layers) - set(q.qparams))  # every float layer stores codes here
    hw = _ort_mode()

    def layers(hw: object = hw) -> dict[str, np.ndarray]:
        values = run_values(q.imported.workload, hw, "static", tensors=q.static_tensors(feeds), qparams=q.qparams)
        return {k: v.stored for k, v in values.layers.items()}

    got, tensor_of = layers(), _layer_tensors(graph)
    for layer, codes in got.items():
        np.testing.assert_array_equal(codes.reshape(want[tensor_of[layer]].shape), want[tensor_of[layer]], layer)
    quantizer = {n.output[0]: n for n in graph.graph.node if n.op_type == "QuantizeLinear"}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    ties = saturated = 0
    for layer in q.float_layers:
        node = quantizer[tensor_of[layer]]
        v = want[node.input[0]] / consts[node.input[1]]
        ties += int(np.count_nonzero(v - np.floor(v) == 0.5))
        info = np.iinfo(want[tensor_of[layer]].dtype)
        saturated += int(np.count_nonzero((want[tensor_of[layer]] == info.min) | (want[tensor_of[layer]] == info.max)))
    assert ties >= 10 and saturated > 0, (ties, saturated)
    tflite = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": "tflite"})})
    swapped = layers(tflite)
    assert sum(int(np.count_nonzero(swapped[k] != got[k])) for k in q.float_layers) >= 5


def test_float_tensors_pass_between_float_layers() -> None:
    """A ``Sum`` (which ORT's quantizer leaves float) -> Relu -> MaxPool -> AveragePool -> Flatten chain that the
    QDQ model quantizes only before its Gemm: ORT runs the chain in float32, and so does the static run (the
    tensors between those layers have no parameters and stay float, a MaxPool and a Flatten on floats too);
    no calibration, and the Gemm's input codes and output equal ORT's."""
    g = om._Graph("float_chain", (2, 4, 6, 6))
    s = g.op("Relu", g.op("Sum", g.conv("x", 4, 4, (3, 3), pads=[1, 1, 1, 1]), "x"))
    p = g.op(
        "AveragePool", g.op("MaxPool", s, kernel_shape=[2, 2], strides=[2, 2]), kernel_shape=[3, 3], strides=[3, 3]
    )
    built = g.build(g.op("Gemm", g.op("Flatten", p), g.weight(10, 4), g.weight(10, scale=0.1), transB=1))
    graph = ref.fused(ref.quantize(built, ref.Recipe("qdq")))
    assert [n.op_type for n in graph.graph.node][4:9] == ["Sum", "Relu", "MaxPool", "AveragePool", "Flatten"]
    q = import_quantized(graph, name="float_chain")
    calls = []
    real = runner.calibrate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "calibrate", lambda *a, **k: calls.append(1) or real(*a, **k))
        values = run_values(
            q.imported.workload, _ort_mode(), "static", tensors=q.static_tensors(built.inputs), qparams=q.qparams
        )
    assert calls == []
    want = ref.node_outputs(graph, built.inputs)
    kinds = {layer.name: layer.type for layer in q.imported.workload.layers}
    floats = {kinds[k] for k, v in values.layers.items() if v.qparams is None}
    assert floats == {"add", "maxpool", "avgpool"}, floats  # Sum (its Relu fused), MaxPool, AveragePool
    assert all(values.layers[k].stored.dtype == np.float32 for k, v in values.layers.items() if v.qparams is None)
    quantize = next(n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.input[0] != "x")
    flatten = next(k for k, kind in kinds.items() if kind == "flatten")
    np.testing.assert_array_equal(values.layers[flatten].stored, want[quantize.output[0]])
    gemm = next(n for n in graph.graph.node if n.op_type == "QGemm")
    np.testing.assert_array_equal(values.layers[gemm.name].stored, want[gemm.output[0]])


def test_light_resnet50_qdq_every_layer_equals_ort() -> None:
    """onnx's light ResNet-50 (seeded weights), QDQ per channel, on the user's path: the 16 residual Sums ORT
    runs as float between DequantizeLinear and QuantizeLinear are float layers (the last one's Relu and
    AveragePool too, whose outputs the model quantizes only before the Gemm), nothing is calibrated, and
    every layer's stored codes (floats for the unquantized ones) equal ORT's."""
    built = om.light_model("resnet50", seed=0)
    graph = ref.fused(ref.quantize(built, ref.Recipe("qdq", per_channel=True)))
    q = import_quantized(graph, name="resnet50")
    assert len(q.float_layers) == 17  # 16 Sums and the AveragePool
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "calibrate", lambda *a, **k: pytest.fail("calibrated"))
        tensors = q.static_tensors(built.inputs)
        values = run_values(q.imported.workload, _ort_mode(), "static", tensors=tensors, qparams=q.qparams)
    want, tensor_of = ref.node_outputs(graph, built.inputs), _layer_tensors(graph)
    differ = [
        k
        for k, v in values.layers.items()
        if not np.array_equal(v.stored.reshape(want[tensor_of[k]].shape), want[tensor_of[k]])
    ]
    assert differ == [] and len(values.layers) == 74


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (6, 6), (7, 7), (14, 14)], ids=str)
def test_global_mean_is_onnx_runtimes_bit_for_bit(hw: tuple[int, int]) -> None:
    """The float GlobalAveragePool (every scheme's global avgpool, ORT's float groups, the dynamic models'
    pools) sums as MLAS does (four lanes, then the remainder): bit-equal to ORT's kernel on rows of every
    length mod 4, where numpy's mean differs in some channels (so codes after it could)."""
    x = np.random.default_rng(0).standard_normal((2, 64, *hw)).astype(np.float32) * 3
    node = onnx.helper.make_node("GlobalAveragePool", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "gap",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    (want,) = ref.run(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), {"x": x})
    np.testing.assert_array_equal(runner.global_mean(x).view(np.int32), want.view(np.int32))
    if hw[0] * hw[1] > 4:
        assert np.count_nonzero(x.mean(axis=(2, 3), keepdims=True, dtype=np.float32) != want) > 0


def test_logistic_is_onnx_runtimes_bit_for_bit() -> None:
    """The float sigmoid (every scheme's sigmoid activation, ORT's float groups, QLinearSigmoid's table) is
    MLAS's rational approximation with FMAs: bit-equal to ORT's Sigmoid on 200,000 values and the specials
    (+-0, the clamp at +-18, +-inf, NaN, tiny), where the float64 logistic rounded once differs in over half."""
    x = np.random.default_rng(0).standard_normal(200_000).astype(np.float32) * 6
    specials = np.float32([0, -0.0, 18, -18, 30, -30, np.inf, -np.inf, 1e-30, 1e-45, np.nan])
    x = np.concatenate([x, specials])
    node = onnx.helper.make_node("Sigmoid", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "sigmoid",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [x.size])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    (want,) = ref.run(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), {"x": x})
    np.testing.assert_array_equal(runner.activate(x, "sigmoid").view(np.int32), want.view(np.int32))
    rounded = (1.0 / (1.0 + np.exp(-x[:200_000].astype(np.float64)))).astype(np.float32)
    assert np.count_nonzero(rounded != want[:200_000]) > 100_000


def _single_op(op: str, x: np.ndarray, inits: dict[str, np.ndarray], **attrs: object) -> np.ndarray:
    """ORT's output of one ``op`` node on ``x`` (and constant inputs ``inits``)."""
    node = onnx.helper.make_node(op, ["x", *inits], ["y"], **attrs)
    graph = onnx.helper.make_graph(
        [node],
        op.lower(),
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    (want,) = ref.run(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), {"x": x})
    return want


@pytest.mark.parametrize("d", [3, 5, 7, 8, 12, 13, 17, 31, 64, 100, 768])
def test_reduce_mean_is_onnx_runtimes_bit_for_bit(d: int) -> None:
    """The float ReduceMean over the last axis (reduce_mean layers, the node-by-node emulator) sums in Eigen's
    order, as ORT's kernel does: bit-equal on rows of every length mod 8 and every alignment, where a
    sequential float32 sum differs in some rows (so codes after it could) once a row holds 5 or more."""
    x = np.random.default_rng(d).standard_normal((37, d)).astype(np.float32) * 3
    want = _single_op("ReduceMean", x, {}, axes=[-1], keepdims=1)
    np.testing.assert_array_equal(runner.reduce_mean(x).view(np.int32), want.view(np.int32))
    if d >= 5:
        sequential = np.cumsum(x, axis=-1, dtype=np.float32)[:, -1:] / np.float32(d)
        assert np.count_nonzero(sequential != want) > 0


def test_square_and_sqrt_are_onnx_runtimes() -> None:
    """Pow(x, 2) and Sqrt (a written-out LayerNorm's steps) as ORT computes them, bit for bit."""
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32) * 5
    square = _single_op("Pow", x, {"two": np.float32(2)})
    np.testing.assert_array_equal(runner.activate(x, "square").view(np.int32), square.view(np.int32))
    root = _single_op("Sqrt", np.abs(x), {})
    np.testing.assert_array_equal(runner.activate(np.abs(x), "sqrt").view(np.int32), root.view(np.int32))


def _written_out_layernorm(recipe: ref.Recipe, built: om.Built | None = None) -> onnx.ModelProto:
    """The written-out LayerNorm quantized *without* ``quant_pre_process`` (which would fuse it into a
    LayerNormalization): ORT's quantizer leaves ReduceMean / Sub / Pow / ReduceMean / Sqrt / Div float and
    quantizes the variance, ``+ eps``, the Div, ``* gamma`` and ``+ beta``; the graph ORT runs."""
    model = ref.quantize(built or om.layernorm_decomposed(), recipe, pre=False)
    return ref.fused(model) if recipe.fmt == "qdq" else model


UNPROCESSED_LAYERNORM = ref.recipes("qdq") + ref.recipes("qoperator") + ref.recipes("dynamic")


@pytest.mark.parametrize("recipe", UNPROCESSED_LAYERNORM, ids=lambda r: r.name)
def test_written_out_layernorm_without_preprocess_equals_ort(recipe: ref.Recipe) -> None:
    """Each step is a layer of its own (reduce_mean, elementwise sub, activation square, reduce_mean, the
    quantized ``+ eps``, activation sqrt, div, the quantized ``* gamma`` and ``+ beta``); the float steps
    ORT runs between DequantizeLinear and QuantizeLinear are float layers. Every layer's stored tensor equals
    ORT's own session on the graph bit for bit: the codes, and the float steps' float32 values too (the
    reduce_means in ORT's summation order); the node-by-node emulator equals it on every tensor."""
    built = om.layernorm_decomposed()
    graph = _written_out_layernorm(recipe, built)
    want = ref.node_outputs(graph, built.inputs)
    q = import_quantized(graph, name="layernorm")
    kinds = [layer.type for layer in q.imported.workload.layers]
    assert kinds.count("reduce_mean") == 2 and kinds[-1] == "linear" and "layernorm" not in kinds
    values = run_values(
        q.imported.workload, _ort_mode(), q.scheme, tensors=q.static_tensors(built.inputs), qparams=q.qparams or None
    )
    tensor_of = _layer_tensors(graph)
    for layer, v in values.layers.items():
        w = want[tensor_of[layer]]
        assert v.stored.dtype == w.dtype, layer
        np.testing.assert_array_equal(v.stored.reshape(w.shape), w, layer)
    if recipe.fmt != "dynamic":
        assert {"reducemean0", "sub1", "pow2", "reducemean3", "sqrt5", "div6"} <= q.float_layers
    emulated = run_quantized(graph, built.inputs).tensors
    for tensor, w in want.items():
        np.testing.assert_array_equal(emulated[tensor], w, tensor)


def test_written_out_layernorm_ties_and_saturation() -> None:
    """The same graph on power-of-two scales (odd zero points) and inputs in quarters over 8 features, so
    every float step is exact and the variance lands on exact halves of its scale; the first 8 tokens x4
    saturate. Every layer equals ORT's session; the variance's QuantizeLinear rounds 12 exact halves half to
    even, and under the ``tflite`` requant mode (half away from zero) the codes differ."""
    shape = (2, 40, 8)
    quarters = [
        {"x": (np.random.default_rng(seed).integers(-12, 13, shape) / 4).astype(np.float32)} for seed in range(5)
    ]
    model = om.layernorm_decomposed(8, 40).model
    built = om.Built("layernorm", model, quarters[0], quarters[1:])
    graph = _power_of_two(_written_out_layernorm(ref.Recipe("qdq"), built))
    x = quarters[0]["x"].copy()
    x[0, :8] *= 4
    want = ref.node_outputs(graph, {"x": x})
    q = import_quantized(graph, name="layernorm")
    hw = _ort_mode()

    def layers(hw: object = hw) -> dict[str, np.ndarray]:
        values = run_values(q.imported.workload, hw, "static", tensors=q.static_tensors({"x": x}), qparams=q.qparams)
        return {k: v.stored for k, v in values.layers.items()}

    got, tensor_of = layers(), _layer_tensors(graph)
    for layer, codes in got.items():
        np.testing.assert_array_equal(codes.reshape(want[tensor_of[layer]].shape), want[tensor_of[layer]], layer)
    quantize = next(n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "reducemean3")
    scale = numpy_helper.to_array(next(t for t in graph.graph.initializer if t.name == quantize.input[1]))
    v = want["reducemean3"] / scale
    variance = want[quantize.output[0]]
    assert np.count_nonzero(v - np.floor(v) == 0.5) >= 10 and np.count_nonzero(variance == 255) > 0
    tflite = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": "tflite"})})
    swapped = layers(tflite)
    assert np.count_nonzero(swapped["reducemean3"] != got["reducemean3"]) > 0


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_is_onnx_runtimes_bit_for_bit(bias: bool) -> None:
    """The float LayerNorm (every scheme's layernorm layer, ORT's float groups, the emulator) is ORT's: MLAS's
    AVX2 kernel from 8 features on (float64 mean, FMA'd centred squares in eight lanes, the compiler's tail),
    the scalar Welford loop below 8; bit-equal on rows of 1 to 39, 64, 100, 768 and 1000 features and on
    means far from zero, where the textbook float32 formula (numpy's mean, the centred variance) differs in
    over a fifth of the outputs."""
    rng = np.random.default_rng(0)
    differ = total = 0
    for d in [*range(1, 40), 64, 100, 768, 1000]:
        x = (rng.standard_normal((17, d)) * rng.uniform(0.1, 5) + rng.uniform(-50, 50)).astype(np.float32)
        gamma = rng.uniform(0.5, 1.5, d).astype(np.float32)
        beta = rng.normal(0, 0.1, d).astype(np.float32)
        inits = {"g": gamma, **({"b": beta} if bias else {})}
        want = _single_op("LayerNormalization", x, inits, axis=-1, epsilon=1e-5)
        params = LayerParams(gamma, beta if bias else None)
        np.testing.assert_array_equal(runner.layernorm(x, params, 1e-5).view(np.int32), want.view(np.int32), str(d))
        mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
        var = ((x - mean) * (x - mean)).mean(axis=-1, keepdims=True, dtype=np.float32)
        textbook = (x - mean) / np.sqrt(var + np.float32(1e-5)) * gamma + (beta if bias else np.float32(0))
        differ += int(np.count_nonzero(textbook.astype(np.float32) != want))
        total += want.size
    assert differ > total // 5, (differ, total)


def test_float_softmax_is_onnx_runtimes_bit_for_bit() -> None:
    """The float Softmax (every scheme's softmax layer, ORT's float groups, the dynamic models' attention, the
    emulator) is ORT's MLAS kernel on AVX-512: its exp (clamp, Cody-Waite, polynomial by FMAs, 2^m as VSCALEFPS
    rounds) and its 16-lane sum folded 8 + 8, then pairwise: bit-equal on rows of 1 to 69, 100, 128, 197,
    512 and 1,000 and over axis 1 of a 4-D tensor, where numpy's exp over its pairwise sum differs in over a
    third of the values. (A causal softmax keeps numpy's float32, its masked weights exactly 0.)"""
    rng = np.random.default_rng(0)
    differ = total = 0
    for d in [*range(1, 70), 100, 128, 197, 512, 1000]:
        x = (rng.standard_normal((9, d)) * rng.uniform(0.5, 20)).astype(np.float32)
        want = _single_op("Softmax", x, {}, axis=-1)
        np.testing.assert_array_equal(runner.softmax(x, -1).view(np.int32), want.view(np.int32), str(d))
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        differ += int(np.count_nonzero((e / e.sum(axis=-1, keepdims=True, dtype=np.float32)) != want))
        total += want.size
    assert differ > total // 3, (differ, total)
    x = (rng.standard_normal((2, 5, 7, 3)) * 4).astype(np.float32)
    np.testing.assert_array_equal(runner.softmax(x, 1), _single_op("Softmax", x, {}, axis=1))
