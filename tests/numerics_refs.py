"""Shared helpers of the numerics tests: independent references (ONNX Runtime graphs, TFLite formulas)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def run_onnx_node(
    op_type: str, inputs: dict[str, np.ndarray], outputs: list[str], *, domain: str = "", opset: int = 21, **attrs
):
    """Run one ONNX node in ONNX Runtime (CPU, graph optimizations off so the op's own kernel runs)."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    names = list(inputs)
    node = helper.make_node(
        op_type, [n if inputs[n] is not None else "" for n in names], outputs, domain=domain, **attrs
    )
    feeds = {n: v for n, v in inputs.items() if v is not None}
    initializers = [numpy_helper.from_array(np.asarray(v), n) for n, v in feeds.items()]
    graph = helper.make_graph(
        [node], "g", [], [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=initializers
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {})


def run_onnx_graph(
    nodes, feeds: dict[str, np.ndarray], initializers: dict[str, np.ndarray], outputs: list[str], opset: int = 21
):
    """Run a small multi-node graph (standard ops) in ONNX Runtime with optimizations off."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()
    ]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in initializers.items()]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


#: DynamicQuantizeLinear input whose range gives the scale 0.25 exactly (and a zero point 10.5, itself a
#: tie) and whose every other value lies half a step between two codes: ties for the input quantization
TIE_ACTIVATIONS = (
    np.concatenate([[-2.625, 61.125], (np.arange(-10, 244) + 0.5) * 0.25]).astype(np.float32).reshape(8, 32)
)


def max_ulp_diff(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in float32 units in the last place between two arrays of finite floats."""

    def ordered(v: np.ndarray) -> np.ndarray:
        i = np.asarray(v, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return int(np.abs(ordered(a) - ordered(b)).max(initial=0))


# --- TFLite reference arithmetic, written out from tensorflow/lite/kernels/internal/common.h ----------


def tfl_round(v: float) -> int:
    """TfLiteRound == std::round: half away from zero."""
    return int(np.sign(v) * np.floor(abs(v) + 0.5))


def tfl_srdhm(a: int, b: int) -> int:
    """gemmlowp::SaturatingRoundingDoublingHighMul<int32>."""
    overflow = a == b == INT32_MIN
    ab_64 = a * b
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    total = ab_64 + nudge
    ab_x2_high32 = int(Fraction(total, 1 << 31))  # C++ '/' truncates toward zero
    return INT32_MAX if overflow else ab_x2_high32


def tfl_rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp::RoundingDivideByPOT<int32>."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tfl_multiply_by_quantized_multiplier(x: int, quantized_multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier, default (double rounding) build."""
    left_shift = max(0, shift)
    right_shift = 0 if shift > 0 else -shift
    shifted = (x * (1 << left_shift) - INT32_MIN) % (1 << 32) + INT32_MIN  # int32 '*': overflow wraps in practice
    return tfl_rounding_divide_by_pot(tfl_srdhm(shifted, quantized_multiplier), right_shift)


def tfl_multiply_by_quantized_multiplier_single(x: int, quantized_multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier, TFLITE_SINGLE_ROUNDING build."""
    total_shift = 31 - shift
    return (x * quantized_multiplier + (1 << (total_shift - 1))) >> total_shift


def tfl_quantize_multiplier(double_multiplier: float) -> tuple[int, int]:
    """QuantizeMultiplier (quantization_util.cc), default build."""
    import math

    if double_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(double_multiplier)
    q_fixed = tfl_round(q * (1 << 31))
    assert q_fixed <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return q_fixed, shift


def c_round(v: float) -> int:
    """std::round on a double, exactly (a rational, so 0.5 - 2**-54 is not a tie): half away from zero."""
    f = Fraction(v)
    q = (abs(f.numerator) * 2 + f.denominator) // (2 * f.denominator)
    return q if f >= 0 else -q


def tfl_fully_connected_requant(
    acc: int, input_scale: float, filter_scale: float, output_scale: float, output_offset: int
) -> int:
    """TF 2.21 reference_integer_ops::FullyConnected(PerChannel), float scales, before the activation clamp:

        effective_output_scale = double(input_scale) * double(filter_scale) / double(output_scale);
        acc_scaled = static_cast<int32_t>(round(static_cast<double>(acc) * effective_output_scale));
        acc_scaled += output_offset;

    The cast of an out-of-range double is x86's cvttsd2si (INT32_MIN); the int32 ``+=`` wraps.
    """
    effective_output_scale = (
        float(np.float32(input_scale)) * float(np.float32(filter_scale)) / float(np.float32(output_scale))
    )
    acc_scaled = c_round(float(acc) * effective_output_scale)  # one double multiplication, then std::round
    if not INT32_MIN <= acc_scaled <= INT32_MAX:
        acc_scaled = INT32_MIN
    return (acc_scaled + output_offset - INT32_MIN) % (1 << 32) + INT32_MIN


# (K, m, acc) with acc * m == (2K + 1) * 2**46 - 1: for the multiplier M = m * 2**-47 (m 24-bit, so a float32
# scale holds it), acc * M = K + 1/2 - 2**-47 exactly, and the double product (55 bits) rounds onto K + 1/2.
# Exact arithmetic rounds to K, TF 2.21's reference FULLY_CONNECTED to K + 1. Found with sympy.divisors.
PRODUCT_ROUNDS_ONTO_TIE = [
    (69, 11822029, 827375355),
    (78, 11011699, 1003286853),
    (79, 12998705, 860749615),
    (81, 9031411, 1270023621),
    (87, 14970987, 822559677),
    (90, 13968141, 911842363),
    (93, 8761343, 1501933569),
    (95, 16389689, 820054007),
]
