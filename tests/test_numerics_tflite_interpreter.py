"""Int8 models run by the real TFLite interpreter with the BUILTIN_REF op resolver.

Needs ``tensorflow-cpu`` (skipped without it). The interpreter's own quantized tensors (input,
int8 filters, int32 bias, per-channel scales, output parameters) are fed to accelsim's kernels.

Two kinds of model: Keras layers through the converter (realistic scales), and **tie-forcing**
models, the converter's flatbuffer with its scales, weights and bias replaced so that
``acc * s_x * s_w / s_y`` lands on exact (or engineered near) halves: random data almost never
does, and only ties and near-ties tell the requant modes apart. Every requant test asserts that
the claimed mode matches AND that the other modes do not, so it fails if the claim is wrong.
Each test seeds its own generator.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from accelsim.quant import Quantization

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
from numerics_refs import PRODUCT_ROUNDS_ONTO_TIE
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm, scale_accumulator
from accelsim.quant import QParams, dynamic_quantize, make_requant_params, requantize, run_layer
from accelsim.quant.multiplier import effective_scale
from accelsim.quant.rules import quantize_tensor
from accelsim.quantize_rules import ONNX, TFLITE

pytestmark = pytest.mark.slow
MODES = ("tflite", "tflite_single", "tflite_float64")
ACTIVATIONS = {
    None: schema.ActivationFunctionType.NONE,
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
}
LAYER_OPS = (
    schema.BuiltinOperator.FULLY_CONNECTED,
    schema.BuiltinOperator.CONV_2D,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D,
)


def _convert(model, input_shape, rng: np.random.Generator, *, full_int8: bool, float_input: bool = False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if full_int8:
        samples = [rng.normal(size=input_shape).astype(np.float32) for _ in range(16)]
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32 if float_input else tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _interpreter(content: bytes):
    interp = tf.lite.Interpreter(
        model_content=content,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    return interp


def _quant(detail) -> tuple[np.ndarray, np.ndarray]:
    q = detail["quantization_parameters"]
    return q["scales"].astype(np.float32), q["zero_points"].astype(np.int32)


def _run_op(interp, x):
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    op = interp._get_ops_details()[-1]
    details = {d["index"]: d for d in interp.get_tensor_details()}
    return op, details, interp.get_tensor(interp.get_output_details()[0]["index"])


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# --- tie-forcing models: a converted layer whose quantization parameters and constants are replaced ---

SHAPES = {"fc": (8, 32), "fc_float_input": (8, 32), "conv": (1, 9, 8, 4), "depthwise": (1, 9, 8, 8)}
WEIGHT_SHAPES = {"fc": (16, 32), "fc_float_input": (16, 32), "conv": (16, 3, 3, 4), "depthwise": (1, 3, 3, 16)}
CHANNELS = 16  # at least one 16-lane block of the requant unit


@functools.cache
def _template(kind: str) -> bytes:
    """One converted layer of ``kind`` (16 output channels); only its structure is used."""
    tf.keras.utils.set_random_seed(0)
    shape = SHAPES[kind]
    inp = tf.keras.Input(shape[1:], batch_size=shape[0])
    layer = {
        "conv": lambda: tf.keras.layers.Conv2D(CHANNELS, 3, strides=2, padding="same", bias_initializer="ones"),
        "depthwise": lambda: tf.keras.layers.DepthwiseConv2D(
            3, strides=2, padding="same", depth_multiplier=2, bias_initializer="ones"
        ),
    }.get(kind, lambda: tf.keras.layers.Dense(CHANNELS, bias_initializer="ones"))()
    return _convert(
        tf.keras.Model(inp, layer(inp)),
        shape,
        np.random.default_rng(0),
        full_int8=True,
        float_input=kind == "fc_float_input",
    )


def _retuned(kind: str, s_x, z_x, w, s_w, bias, s_y, z_y, activation=None):
    """The interpreter of ``kind``'s template with these parameters (one weight scale: per tensor)."""
    model = flatbuffer_utils.convert_bytearray_to_object(_template(kind))
    graph = model.subgraphs[0]
    (op,) = [o for o in graph.operators if model.operatorCodes[o.opcodeIndex].builtinCode in LAYER_OPS]
    x_i, w_i, b_i = op.inputs
    s_w = np.asarray(s_w, np.float32).reshape(-1)
    for index, scale, zero in (
        (x_i, [s_x], [z_x]),
        (op.outputs[0], [s_y], [z_y]),
        (w_i, s_w, 0 * s_w),
        (b_i, np.float32(s_x) * s_w, 0 * s_w),
    ):
        graph.tensors[index].quantization.scale = np.asarray(scale, np.float32)
        graph.tensors[index].quantization.zeroPoint = np.asarray(zero, np.int64)
    for index, values in ((w_i, np.asarray(w, np.int8)), (b_i, np.asarray(bias, np.int32))):
        assert tuple(graph.tensors[index].shape) == values.shape
        model.buffers[graph.tensors[index].buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    op.builtinOptions.fusedActivationFunction = ACTIVATIONS[activation]
    return _interpreter(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


def _accumulators(kind: str, x_q, w, z_x, bias) -> np.ndarray:
    """accelsim's int32 accumulators, output channels last (the requant unit's 16-lane layout)."""
    if kind.startswith("fc"):
        return int_gemm(x_q, w.T, a_zero_point=z_x, bias=bias).values
    depthwise = kind == "depthwise"
    w_oihw = np.transpose(w, (3, 0, 1, 2)) if depthwise else np.transpose(w, (0, 3, 1, 2))
    h, wd = x_q.shape[1:3]
    (pt, pb), (pl, pr) = _same_padding(h, 3, 2), _same_padding(wd, 3, 2)
    geom = ConvGeometry.from_args(2, (pt, pl, pb, pr), 1, x_q.shape[3] if depthwise else 1)
    acc = int_conv2d(np.transpose(x_q, (0, 3, 1, 2)), w_oihw, geom, x_zero_point=z_x, bias=bias).values
    return np.transpose(acc, (0, 2, 3, 1))


def _compare(kind, x_q, w, s_x, z_x, s_w, bias, s_y, z_y, activation=None, interp=None):
    """(interpreter output, {mode: mismatching elements}, ties that decide an output) of one model."""
    bias = np.asarray(bias, np.int32)
    _, _, want = _run_op(interp or _retuned(kind, s_x, z_x, w, s_w, bias, s_y, z_y, activation), x_q)
    acc = _accumulators(kind, x_q, w, z_x, bias)
    out = QParams(np.float32(s_y), int(z_y), "int8")
    mismatches = {}
    for mode in MODES:
        rq = make_requant_params(mode, s_x, s_w, out, activation=activation)
        codes = requantize(acc, rq, axis=acc.ndim - 1).codes  # channels last: the 16-lane kernel
        if acc.ndim == 4:  # channels first: the element loop, same bits
            np.testing.assert_array_equal(
                np.moveaxis(requantize(np.moveaxis(acc, 3, 1), rq, axis=1).codes, 1, 3), codes
            )
        mismatches[mode] = int((codes != want).sum())
    product = acc.astype(np.float64) * effective_scale(
        s_x, np.asarray(s_w, np.float32).reshape(-1), s_y
    )  # exact: odd * 2**-k scales
    ties = int(((product - np.floor(product) == 0.5) & (want > rq.act_min) & (want < rq.act_max)).sum())
    return want, mismatches, ties


ODD = np.float32([1, 3, 5, 7, 1, 3, 9, 15, 1, 5, 3, 1, 11, 1, 7, 13])  # M[c] = ODD[c] * 2**-k: exact ties


def _tie_forcing(kind: str, rng: np.random.Generator, k: int, per_tensor: bool = False, s_y=None):
    """Power-of-two input/output scales (``s_y`` given or random) and weight scales that make the
    multipliers ``M[c] = ODD[c] * 2**-k``: ``acc * M`` is often exactly .5."""
    s_x, z_x, z_y = np.float32(2.0 ** -int(rng.integers(2, 6))), int(rng.integers(-20, 20)), int(rng.integers(-5, 5))
    s_y = np.float32(2.0 ** -int(rng.integers(0, 4))) if s_y is None else np.float32(s_y)
    s_w = ((ODD[:1] if per_tensor else ODD) * np.float32(2.0**-k * s_y / s_x)).astype(np.float32)
    taps = 32 if kind.startswith("fc") else 36 if kind == "conv" else 9
    real = effective_scale(s_x, s_w, s_y)
    lim = max(1, int(100 / (real.max() * 60 * taps**0.5 * 3)))  # outputs mostly inside int8
    w = rng.integers(-lim, lim + 1, WEIGHT_SHAPES[kind]).astype(np.int8)
    bias = rng.integers(-50, 50, CHANNELS).astype(np.int32)
    x_q = np.clip(rng.integers(-30, 31, SHAPES[kind]) + z_x, -128, 127).astype(np.int8)
    return x_q, w, s_x, z_x, s_w, bias, s_y, z_y


def _totals(cases) -> tuple[dict[str, int], int, int]:
    totals, ties, elements = dict.fromkeys(MODES, 0), 0, 0
    for want, mismatches, t in cases:
        elements, ties = elements + want.size, ties + t
        totals = {m: totals[m] + mismatches[m] for m in MODES}
    return totals, ties, elements


@pytest.mark.parametrize("per_tensor", [False, True])
def test_fully_connected_ties_round_half_away_in_double(per_tensor):
    """FULLY_CONNECTED int8 on exact ties (M = odd * 2**-k, k = 1..5): only ``tflite_float64`` matches.

    TF 2.21's reference kernel requantizes as ``round(double(acc) * (s_x * s_w / s_y))`` (half away
    from zero); gemmlowp's double rounding and single rounding both round negative ties up.
    """
    rng = np.random.default_rng(100 + per_tensor)
    totals, ties, elements = _totals(_compare("fc", *_tie_forcing("fc", rng, 1 + i % 5, per_tensor)) for i in range(10))
    assert ties > elements // 10
    assert totals["tflite_float64"] == 0, totals
    assert totals["tflite"] > 0 and totals["tflite_single"] > 0, totals


def test_fully_connected_near_ties_are_double_products():
    """Near ties decide between arithmetics that agree on exact ties: the double product, not the
    exact ``acc * M0 / 2**31`` (31-bit M0) or the exact product with the double scale.

    - product rounding: ``acc * M`` is ``K + 1/2 - 2**-47`` (8 channels, both signs): a double rounds it
      onto the tie, then away from zero, where exact arithmetic rounds to K;
    - scale precision: ``s_y = 12`` makes ``s_x * s_w / s_y`` need more than 31 bits; accumulators
      ``round((K + 1/2) / M)`` sit within ``M / 2`` of a tie, where M0's rounding tips some over.
    - x86's conversion: ``|round(acc * M)| >= 2**31`` gives INT32_MIN, and ``+ z_y`` wraps in int32.
    """
    rng = np.random.default_rng(200)
    s_x, z_x = np.float32(2.0**-10), 3
    x_q = rng.integers(-128, 128, SHAPES["fc"]).astype(np.int8)
    x_q[0] = z_x  # row 0: acc = bias, set exactly
    w = rng.integers(-3, 4, WEIGHT_SHAPES["fc"]).astype(np.int8)
    cases = []
    sign = np.tile([1, -1], 8)
    s_w = np.float32([m * 2.0**-37 for _, m, _ in PRODUCT_ROUNDS_ONTO_TIE] * 2)
    bias = sign * np.array([acc for _, _, acc in PRODUCT_ROUNDS_ONTO_TIE] * 2)
    for k, m, acc in PRODUCT_ROUNDS_ONTO_TIE:
        assert acc * m == (2 * k + 1) * 2**46 - 1 and float(acc) * (m * 2.0**-47) == k + 0.5
    cases.append(_compare("fc", x_q, w, s_x, z_x, s_w, bias, np.float32(1.0), -2))
    for per_tensor in (False, True):
        s_w = (rng.uniform(1, 2, 1 if per_tensor else CHANNELS) * 2.0**-12).astype(np.float32)
        real = np.broadcast_to(effective_scale(s_x, s_w, np.float32(12.0)), CHANNELS)
        k_max = np.minimum(120, np.floor((2**31 - 2**15) * real) - 1)
        bias = np.round((np.floor(rng.uniform(-k_max, k_max + 1)) + 0.5) / real)
        cases.append(_compare("fc", x_q, w, s_x, z_x, s_w, bias, np.float32(12.0), 5))
    extremes = np.array([2**31 - 1, -(2**31), 2**30 + 5, -(2**30) - 5, 2**29, -(2**29), 2**28 + 3, -(2**28) - 3] * 2)
    for real, z_y in ((2.0, -2), (1.0, 5), (4.0, 0)):
        s_w = np.float32(2.0**-8)
        cases.append(
            _compare("fc", np.full_like(x_q, z_x), w, s_x, z_x, s_w, extremes, np.float32(s_x * s_w / real), z_y)
        )
    assert sum(c[1]["tflite_float64"] for c in cases) == 0, [c[1] for c in cases]
    product, precision, extreme = cases[0][1], [c[1] for c in cases[1:3]], [c[1] for c in cases[3:]]
    assert product["tflite_single"] >= 16, product  # every engineered element
    assert sum(m["tflite_single"] for m in precision) > 0, precision
    assert all(m["tflite"] > 0 and m["tflite_single"] > 0 for m in extreme), extreme


@pytest.mark.parametrize("kind", ["conv", "depthwise"])
def test_convolutions_round_twice(kind):
    """CONV_2D (ReLU) and DEPTHWISE_CONV_2D (multiplier 2, ReLU6), SAME padding, stride 2, on exact ties:
    only ``tflite`` (gemmlowp double rounding) matches. The depthwise output scale makes ReLU6's
    upper clamp bind (``z_y + 6 / s_y`` < 127, outputs reach it)."""
    rng = np.random.default_rng(300 + (kind == "depthwise"))
    activation = "relu6" if kind == "depthwise" else "relu"
    cases = []
    for i in range(6):  # ReLU6 with s_y = 2**-3: 6 / s_y = 48
        case = _tie_forcing(kind, rng, 1 + i % 5, s_y=2.0**-3 if activation == "relu6" else None)
        cases.append(_compare(kind, *case, activation=activation))
        if activation == "relu6":
            top = case[-1] + 48
            assert top < 127 and (cases[-1][0] == top).sum() > 0 and (cases[-1][0] <= top).all()
    totals, ties, elements = _totals(cases)
    assert ties > elements // 20, (ties, elements)
    assert totals["tflite"] == 0, totals
    assert totals["tflite_single"] > 0 and totals["tflite_float64"] > 0, totals


def test_relu6_bound_binds_on_fully_connected():
    """FULLY_CONNECTED + ReLU6 with ``6 / s_y`` = 24: outputs clamp at ``z_y + 24``, as accelsim's clamp."""
    rng = np.random.default_rng(400)
    x_q, w, s_x, z_x, s_w, bias, s_y, z_y = _tie_forcing("fc", rng, 2, s_y=0.25)
    want, mismatches, _ = _compare("fc", x_q, w, s_x, z_x, s_w, bias, s_y, z_y, activation="relu6")
    assert (want == z_y + 24).sum() > 0 and want.max() == z_y + 24 and (want == z_y).sum() > 0
    assert mismatches["tflite_float64"] == 0, mismatches


@pytest.mark.parametrize("depthwise", [False, True])
def test_converted_conv_matches_builtin_ref(depthwise):
    """Keras CONV_2D (ReLU) / DEPTHWISE_CONV_2D (ReLU6) through the converter (its own scales): tflite."""
    rng = np.random.default_rng(11 + depthwise)
    tf.keras.utils.set_random_seed(11 + depthwise)
    shape = (1, 9, 8, 4)
    inp = tf.keras.Input(shape[1:], batch_size=1)
    if depthwise:
        layer = tf.keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu6")
    else:
        layer = tf.keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")
    model = tf.keras.Model(inp, layer(inp))
    model.layers[1].set_weights(
        [w + rng.normal(size=w.shape).astype(np.float32) * 0.1 for w in model.layers[1].get_weights()]
    )
    interp = _interpreter(_convert(model, shape, rng, full_int8=True))
    (s_x,), (z_x,) = _quant(interp.get_input_details()[0])
    x_q = np.clip(np.round(rng.normal(size=shape) / s_x) + z_x, -128, 127).astype(np.int8)
    op, details, want = _run_op(interp, x_q)
    _, w_idx, b_idx = op["inputs"]
    w = interp.get_tensor(w_idx)
    s_w, _ = _quant(details[w_idx])
    (s_y,), (z_y,) = _quant(details[op["outputs"][0]])
    acc = _accumulators("depthwise" if depthwise else "conv", x_q, w, int(z_x), interp.get_tensor(b_idx))
    rq = make_requant_params(
        "tflite", s_x, s_w, QParams(s_y, int(z_y), "int8"), activation="relu6" if depthwise else "relu"
    )
    np.testing.assert_array_equal(requantize(acc, rq, axis=3).codes, want)


@pytest.mark.parametrize("seed", range(2))
def test_converted_fully_connected_matches_builtin_ref(seed):
    """Keras FULLY_CONNECTED through the converter, odd sizes (7 x 33 -> 5): tflite_float64."""
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inp = tf.keras.Input((33,), batch_size=7)
    dense = tf.keras.layers.Dense(5)
    model = tf.keras.Model(inp, dense(inp))
    dense.set_weights([w + rng.normal(size=w.shape).astype(np.float32) * 0.1 for w in dense.get_weights()])
    interp = _interpreter(_convert(model, (7, 33), rng, full_int8=True))
    (s_x,), (z_x,) = _quant(interp.get_input_details()[0])
    x_q = rng.integers(-128, 128, (7, 33)).astype(np.int8)
    op, details, want = _run_op(interp, x_q)
    _, w_idx, b_idx = op["inputs"]
    s_w, _ = _quant(details[w_idx])
    (s_y,), (z_y,) = _quant(details[op["outputs"][0]])
    acc = int_gemm(x_q, interp.get_tensor(w_idx).T, a_zero_point=int(z_x), bias=interp.get_tensor(b_idx)).values
    got = requantize(acc, make_requant_params("tflite_float64", s_x, s_w, QParams(s_y, int(z_y), "int8")), axis=1).codes
    np.testing.assert_array_equal(got, want)


def test_quantize_op_matches_tflite_rule():
    """The interpreter's own QUANTIZE (float input -> int8) equals accelsim's TFLITE rule, ``round(x / s) + z``
    half away from zero, on exact ties (x = (k + 1/2) * s with a power-of-two s), clamped values and random
    data at a non-power-of-two scale; round-half-even (the ONNX rule) differs on the ties."""
    rng = np.random.default_rng(500)
    _x_q, w, _, _, s_w, bias, s_y, z_y = _tie_forcing("fc", rng, 3)
    for s_x, z_x in ((np.float32(2.0**-3), -7), (np.float32(0.0371), 4)):
        interp = _retuned("fc_float_input", s_x, z_x, w, s_w, bias, s_y, z_y)
        x = ((rng.integers(-140, 140, SHAPES["fc"]) + 0.5) * s_x).astype(np.float32)
        x[1] = rng.normal(size=x.shape[1]).astype(np.float32) * 200 * s_x
        op, _, _ = _run_op(interp, x)
        got = interp.get_tensor(op["inputs"][0])
        qp = QParams(s_x, z_x, "int8")
        np.testing.assert_array_equal(quantize_tensor(x, qp, TFLITE)[0], got)
        assert (np.abs(x / s_x) >= 128).any()
        if s_x == np.float32(2.0**-3):
            assert (quantize_tensor(x, qp, ONNX)[0] != got).sum() > 50


def test_hybrid_fully_connected_float_output():
    """Dynamic-range FULLY_CONNECTED (hybrid): per-row asymmetric int8 inputs and float output, bit for bit.

    The kernel's temporaries (quantized input, scaling factors, offsets) are compared too.
    """
    rng = np.random.default_rng(21)
    tf.keras.utils.set_random_seed(21)
    inp = tf.keras.Input((40,), batch_size=64)
    dense = tf.keras.layers.Dense(48)
    model = tf.keras.Model(inp, dense(inp))
    dense.set_weights([w + rng.normal(size=w.shape).astype(np.float32) * 0.1 for w in dense.get_weights()])
    interp = _interpreter(_convert(model, (64, 40), rng, full_int8=False))
    for spread in (1e-3, 1.0, 100.0):
        x = (rng.normal(size=(64, 40)) * spread).astype(np.float32)
        x[::3] = np.abs(x[::3])
        op, details, want = _run_op(interp, x)
        _, w_idx, b_idx = op["inputs"]
        w_q = interp.get_tensor(w_idx)
        s_w, _ = _quant(details[w_idx])
        q, qp = dynamic_quantize(x, "tflite")
        temps = {
            tuple(d["shape"]) + (np.dtype(d["dtype"]).name,): interp.get_tensor(i)
            for i, d in details.items()
            if not d["name"]
        }
        np.testing.assert_array_equal(temps[(64, 40, "int8")], q)
        np.testing.assert_array_equal(temps[(64, "float32")], qp.scale)
        np.testing.assert_array_equal(temps[(64, "int32")], qp.zero_point)
        centred = q.astype(np.int16) - qp.zero_point.astype(np.int16)[:, None]
        got = scale_accumulator(int_gemm(centred, w_q.T).values, qp.scale, s_w, interp.get_tensor(b_idx), axis=1)
        np.testing.assert_array_equal(got, want)


def test_hybrid_conv_per_image_float_output():
    """Dynamic-range CONV_2D (hybrid, per-channel): per-image asymmetric inputs; the layer API, flavour tflite.

    TFLite's hybrid conv output is ``(float(acc) * s_w[c]) * s_x[image] + bias``: measured, it is the
    only operation order of the three that matches (the FC kernel multiplies by ``s_x * s_w`` first).
    """
    rng = np.random.default_rng(22)
    tf.keras.utils.set_random_seed(22)
    shape = (3, 9, 8, 16)
    inp = tf.keras.Input(shape[1:], batch_size=shape[0])
    conv = tf.keras.layers.Conv2D(24, 3, strides=(2, 1), padding="valid")
    model = tf.keras.Model(inp, conv(inp))
    conv.set_weights([w + rng.normal(size=w.shape).astype(np.float32) * 0.1 for w in conv.get_weights()])
    interp = _interpreter(_convert(model, shape, rng, full_int8=False))
    x = (rng.normal(size=shape) * 2).astype(np.float32)
    op, details, want = _run_op(interp, x)
    _, w_idx, b_idx = op["inputs"]
    w_q = interp.get_tensor(w_idx)
    s_w, _ = _quant(details[w_idx])
    res = run_layer(
        "conv2d",
        np.transpose(x, (0, 3, 1, 2)),
        np.transpose(w_q, (0, 3, 1, 2)).astype(np.float32) * s_w[:, None, None, None],
        interp.get_tensor(b_idx),
        quantization=Quantization(scheme="dynamic", flavour="tflite"),
        geometry=ConvGeometry.from_args(stride=(2, 1)),
    )
    np.testing.assert_array_equal(res.tensors["weight_q"].values, np.transpose(w_q, (0, 3, 1, 2)))
    np.testing.assert_array_equal(res.tensors["weight_q"].qparams.scale, s_w)
    np.testing.assert_array_equal(np.transpose(res.output, (0, 2, 3, 1)), want)
