"""Deterministic fp32 ONNX models for the ONNX import tests (issue 16), built in code.

Each builder returns a :class:`Built`: the model (opset 17, seeded weights stored as initializers), one run
batch and a few calibration batches of the same shape (the quantizer runs the model on each). The graphs
cover the patterns exporters write and the importer must read: conv variants followed by BatchNormalization
and Relu / Clip, Gemm with its attributes, 2D / batched MatMul and an attention block, broadcasting
elementwise ops (SE block, hard-swish written out, Erf-GELU, decomposed LayerNorm), pools, layout ops and a
small residual CNN. :func:`torch_cnn` is a ``torch.onnx.export`` model and :func:`light_model` one of the
topologies the ``onnx`` package ships.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
N_CALIBRATION = 4  # calibration batches per model (the quantizer runs the model once per batch)
LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Built:
    """A model with one run batch and calibration batches, all for the model's one float input."""

    name: str
    model: onnx.ModelProto
    inputs: Feeds
    calibration: list[Feeds]


def _feeds(name: str, shape: tuple[int, ...], seed: int) -> Feeds:
    return {name: np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def _built(name: str, model: onnx.ModelProto, input_name: str, shape: tuple[int, ...]) -> Built:
    """The run batch is seed 0; calibration batches are seeds 1.. (different data, same distribution)."""
    onnx.checker.check_model(model, full_check=True)
    calibration = [_feeds(input_name, shape, seed) for seed in range(1, N_CALIBRATION + 1)]
    return Built(name, model, _feeds(input_name, shape, 0), calibration)


class _Graph:
    """Writes one graph: seeded weights as initializers, nodes named after their op and position."""

    def __init__(self, name: str, input_shape: tuple[int, ...], seed: int = 0):
        self.name = name
        self.input_shape = input_shape
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def const(self, value: np.ndarray | float | list[int], dtype: type = np.float32) -> str:
        """An initializer holding ``value`` (float32 unless ``dtype`` says otherwise)."""
        name = f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def weight(self, *shape: int, scale: float | None = None) -> str:
        """Normal weights, scaled by 1/sqrt(fan-in) unless ``scale`` is given (keeps activations of order 1)."""
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        std = scale if scale is not None else 1.0 / math.sqrt(fan_in)
        return self.const(self.rng.standard_normal(shape) * std)

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        """Append a node and return its (only) output name."""
        out = f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, k: tuple[int, int], group: int = 1, bias: bool = True, **a) -> str:
        inputs = [x, self.weight(c_out, c_in // group, *k)] + ([self.weight(c_out, scale=0.1)] if bias else [])
        return self.op("Conv", *inputs, group=group, kernel_shape=list(k), **a)

    def batchnorm(self, x: str, c: int) -> str:
        r = self.rng
        gamma, beta = self.const(r.uniform(0.5, 1.5, c)), self.const(r.normal(0, 0.1, c))
        mean, var = self.const(r.normal(0, 0.1, c)), self.const(r.uniform(0.5, 2.0, c))
        return self.op("BatchNormalization", x, gamma, beta, mean, var, epsilon=1e-5)

    def relu6(self, x: str) -> str:
        return self.op("Clip", x, self.const(0.0), self.const(6.0))

    def build(self, output: str) -> Built:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.input_shape))
        y = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, self.name, [x], [y], initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="accelsim-tests")
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        return _built(self.name, model, "x", self.input_shape)


# --- conv families ----------------------------------------------------------------------------------------


def conv_groups_bn_relu() -> Built:
    g = _Graph("conv_groups_bn_relu", (2, 8, 10, 10))
    y = g.conv("x", 8, 12, (3, 3), group=2, pads=[1, 1, 1, 1])
    return g.build(g.op("Relu", g.batchnorm(y, 12)))


def conv_depthwise_bn_relu6() -> Built:
    g = _Graph("conv_depthwise_bn_relu6", (2, 8, 9, 9))
    y = g.conv("x", 8, 8, (3, 3), group=8, strides=[2, 2], pads=[1, 1, 1, 1], bias=False)
    return g.build(g.relu6(g.batchnorm(y, 8)))


def conv_dilated_asymmetric_pads() -> Built:
    g = _Graph("conv_dilated_asymmetric_pads", (2, 4, 11, 9))
    y = g.conv("x", 4, 6, (3, 3), dilations=[2, 2], pads=[0, 1, 2, 1])
    return g.build(g.op("Relu", g.batchnorm(y, 6)))


def conv_same_upper_stride_2_1() -> Built:
    """auto_pad SAME_UPPER with unequal strides (2, 1), as OCR models write."""
    g = _Graph("conv_same_upper_stride_2_1", (2, 4, 12, 7))
    y = g.conv("x", 4, 8, (3, 2), auto_pad="SAME_UPPER", strides=[2, 1])
    return g.build(g.relu6(g.batchnorm(y, 8)))


# --- GEMMs ------------------------------------------------------------------------------------------------


def gemm_trans_alpha_beta() -> Built:
    g = _Graph("gemm_trans_alpha_beta", (16, 4))
    a = g.op("Relu", "x")
    return g.build(g.op("Gemm", a, g.weight(10, 16), g.weight(10, scale=0.1), transA=1, transB=1, alpha=0.5, beta=2.0))


def matmul_2d_bias() -> Built:
    """MatMul with an initializer, then a bias Add: two operators to the quantizer as written, but ORT's
    ``quant_pre_process`` (which ``ort_reference.quantize`` runs) fuses them into a Gemm, quantized as QGemm."""
    g = _Graph("matmul_2d_bias", (6, 24))
    y = g.op("MatMul", "x", g.weight(24, 10))
    return g.build(g.op("Add", y, g.weight(10, scale=0.1)))


def batched_matmul() -> Built:
    """Batched MatMul of two activations: x [2, 3, 4, 5] times its own transpose-like projection."""
    g = _Graph("batched_matmul", (2, 3, 4, 5))
    b = g.op("Transpose", g.op("MatMul", "x", g.weight(5, 5)), perm=[0, 1, 3, 2])
    return g.build(g.op("MatMul", "x", b))


def attention() -> Built:
    """Single-head attention: Q K^T / sqrt(d), Softmax, P V, output projection."""
    d = 16
    g = _Graph("attention", (2, 8, d))
    q, k, v = (g.op("MatMul", "x", g.weight(d, d)) for _ in range(3))
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 2, 1])), g.const(1.0 / math.sqrt(d)))
    p = g.op("Softmax", scores, axis=-1)
    return g.build(g.op("MatMul", g.op("MatMul", p, v), g.weight(d, d)))


def softmax_channels() -> Built:
    """Softmax over the channel axis of a conv's output (not the last axis): ORT's quantizer writes a
    QLinearSoftmax with ``axis=1``."""
    g = _Graph("softmax_channels", (2, 6, 5, 4))
    return g.build(g.op("Softmax", g.conv("x", 6, 8, (1, 1)), axis=1))


# --- elementwise ------------------------------------------------------------------------------------------


def elementwise_broadcast() -> Built:
    """Add / Sub / Mul / Div with per-channel, scalar, per-column and same-shape operands."""
    g = _Graph("elementwise_broadcast", (2, 4, 5, 6))
    y = g.op("Add", g.conv("x", 4, 4, (1, 1)), g.weight(4, 1, 1, scale=0.5))
    y = g.op("Sub", y, g.const(0.25))
    y = g.op("Mul", y, g.const(np.random.default_rng(1).uniform(0.5, 2.0, (1, 4, 1, 1))))
    y = g.op("Div", y, g.const(np.random.default_rng(2).uniform(1.0, 3.0, (6,))))
    return g.build(g.op("Add", y, "x"))


def se_block() -> Built:
    """Squeeze-and-excitation: GlobalAveragePool -> conv -> Relu -> conv -> Sigmoid -> Mul."""
    g = _Graph("se_block", (2, 8, 6, 6))
    x = g.op("Relu", g.conv("x", 8, 8, (3, 3), pads=[1, 1, 1, 1]))
    s = g.op("Relu", g.conv(g.op("GlobalAveragePool", x), 8, 4, (1, 1)))
    return g.build(g.op("Mul", x, g.op("Sigmoid", g.conv(s, 4, 8, (1, 1)))))


def hard_swish_written_out() -> Built:
    """``x * Clip(x + 3, 0, 6) / 6`` after a conv (what exporters write for hard-swish)."""
    g = _Graph("hard_swish_written_out", (2, 4, 7, 7))
    x = g.conv("x", 4, 8, (3, 3), pads=[1, 1, 1, 1])
    gate = g.relu6(g.op("Add", x, g.const(3.0)))
    return g.build(g.op("Div", g.op("Mul", x, gate), g.const(6.0)))


def erf_gelu() -> Built:
    """``0.5 * x * (1 + Erf(x / sqrt(2)))`` after a MatMul, as BERT exports write it."""
    g = _Graph("erf_gelu", (2, 5, 12))
    x = g.op("MatMul", "x", g.weight(12, 16))
    erf = g.op("Erf", g.op("Div", x, g.const(math.sqrt(2.0))))
    return g.build(g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.const(1.0))), g.const(0.5)))


def layernorm_decomposed(d: int = 12, tokens: int = 5) -> Built:
    """LayerNorm as ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div / Mul / Add (opset 17 axes attribute)
    over ``d`` features of ``[2, tokens, d]``."""
    g = _Graph("layernorm_decomposed", (2, tokens, d))
    centred = g.op("Sub", "x", g.op("ReduceMean", "x", axes=[-1], keepdims=1))
    var = g.op("ReduceMean", g.op("Pow", centred, g.const(2.0)), axes=[-1], keepdims=1)
    normed = g.op("Div", centred, g.op("Sqrt", g.op("Add", var, g.const(1e-5))))
    y = g.op("Add", g.op("Mul", normed, g.const(g.rng.uniform(0.5, 1.5, d))), g.const(g.rng.normal(0, 0.1, d)))
    return g.build(g.op("MatMul", y, g.weight(d, 8)))


def layernorm_op() -> Built:
    """A LayerNormalization node between two MatMuls (a transformer block's): ORT's quantizer leaves it float
    between DequantizeLinear and QuantizeLinear."""
    d = 12
    g = _Graph("layernorm_op", (2, 5, d))
    gamma, beta = g.const(g.rng.uniform(0.5, 1.5, d)), g.const(g.rng.normal(0, 0.1, d))
    y = g.op("LayerNormalization", g.op("MatMul", "x", g.weight(d, d)), gamma, beta, axis=-1, epsilon=1e-5)
    return g.build(g.op("MatMul", y, g.weight(d, 8)))


# --- pools and layout -------------------------------------------------------------------------------------


def pools() -> Built:
    g = _Graph("pools", (2, 4, 11, 11))
    x = g.op("Relu", g.conv("x", 4, 8, (3, 3)))
    x = g.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = g.op("AveragePool", x, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=0)
    x = g.op("AveragePool", g.conv(x, 8, 8, (1, 1)), kernel_shape=[2, 2], strides=[2, 2])
    return g.build(g.op("GlobalAveragePool", x))


def layout_ops() -> Built:
    """Concat of two conv branches, Transpose, Reshape, Flatten, Gemm."""
    g = _Graph("layout_ops", (2, 3, 6, 6))
    a = g.op("Relu", g.conv("x", 3, 4, (1, 1)))
    b = g.op("Relu", g.conv("x", 3, 4, (3, 3), pads=[1, 1, 1, 1]))
    x = g.op("Transpose", g.op("Concat", a, b, axis=1), perm=[0, 2, 3, 1])  # NHWC [2, 6, 6, 8]
    x = g.op("Reshape", x, g.const([2, 36, 8], np.int64))
    x = g.op("Flatten", g.op("Transpose", x, perm=[0, 2, 1]), axis=1)
    return g.build(g.op("Gemm", x, g.weight(10, 288), g.weight(10, scale=0.1), transB=1))


def residual_cnn() -> Built:
    """Stem, two residual blocks (the second downsamples with a 1x1 projection), GAP, classifier."""
    g = _Graph("residual_cnn", (2, 3, 16, 16))
    x = g.op("Relu", g.batchnorm(g.conv("x", 3, 8, (3, 3), pads=[1, 1, 1, 1], bias=False), 8))
    for c_in, c_out, stride in ((8, 8, 1), (8, 16, 2)):
        y = g.op("Relu", g.batchnorm(g.conv(x, c_in, c_out, (3, 3), strides=[stride] * 2, pads=[1] * 4), c_out))
        y = g.batchnorm(g.conv(y, c_out, c_out, (3, 3), pads=[1, 1, 1, 1]), c_out)
        shortcut = x if stride == 1 else g.batchnorm(g.conv(x, c_in, c_out, (1, 1), strides=[2, 2]), c_out)
        x = g.op("Relu", g.op("Add", y, shortcut))
    x = g.op("Flatten", g.op("GlobalAveragePool", x))
    return g.build(g.op("Gemm", x, g.weight(10, 16), g.weight(10, scale=0.1), transB=1))


# --- upsampling and slicing (the PP-OCR detector's and recognizer's ops) --------------------------------


def _conv_transpose(
    name: str, shape: tuple[int, ...], c_out: int, k: tuple[int, int], group: int = 1, bias: bool = True, **attrs
) -> Built:
    """One ConvTranspose (ONNX weight ``[C, O/group, kh, kw]``) then Relu."""
    g = _Graph(name, shape)
    c_in = shape[1]
    inputs = ["x", g.weight(c_in, c_out // group, *k)] + ([g.weight(c_out, scale=0.1)] if bias else [])
    return g.build(g.op("Relu", g.op("ConvTranspose", *inputs, group=group, kernel_shape=list(k), **attrs)))


def conv_transpose_k2_s2_bn() -> Built:
    """The DB head's upsampling: 2x2 stride 2, then a bias Add, BatchNormalization and Relu (all folded)."""
    g = _Graph("conv_transpose_k2_s2_bn", (2, 6, 5, 7))
    y = g.op("ConvTranspose", "x", g.weight(6, 4, 2, 2), kernel_shape=[2, 2], strides=[2, 2])
    y = g.op("Add", y, g.const(g.rng.normal(0, 0.1, (1, 4, 1, 1))))
    return g.build(g.op("Relu", g.batchnorm(y, 4)))


def conv_transpose_pads_output_padding() -> Built:
    """Odd sizes, a 3x3 kernel at stride 2, asymmetric pads and output_padding on one axis."""
    return _conv_transpose(
        "conv_transpose_pads_output_padding",
        (2, 4, 5, 7),
        6,
        (3, 3),
        strides=[2, 2],
        pads=[1, 0, 2, 1],
        output_padding=[1, 0],
    )


def conv_transpose_groups_dilation() -> Built:
    """Three groups, unequal strides (3, 2), dilation 2, no bias."""
    return _conv_transpose(
        "conv_transpose_groups_dilation", (2, 6, 4, 5), 9, (3, 2), group=3, bias=False, strides=[3, 2], dilations=[2, 2]
    )


def conv_transpose_depthwise_same_upper() -> Built:
    """Depthwise (groups = channels), auto_pad SAME_UPPER: the output is the input times the stride."""
    return _conv_transpose(
        "conv_transpose_depthwise_same_upper", (2, 4, 5, 6), 4, (4, 3), group=4, strides=[2, 3], auto_pad="SAME_UPPER"
    )


def conv_transpose_output_shape() -> Built:
    """output_shape given: the pads follow from it (its extra row lands as output padding)."""
    return _conv_transpose("conv_transpose_output_shape", (2, 3, 4, 4), 5, (3, 3), strides=[2, 2], output_shape=[8, 9])


def _resize(name: str, shape: tuple[int, ...], scales=None, sizes=None, **attrs) -> Built:
    """A conv, then Resize by constant ``scales`` or to constant ``sizes``."""
    g = _Graph(name, shape)
    x = g.conv("x", shape[1], 4, (3, 3), pads=[1, 1, 1, 1])
    targets = ["", g.const(scales)] if scales is not None else ["", "", g.const(sizes, np.int64)]
    return g.build(g.op("Resize", x, *targets, **attrs))


def resize_nearest_asymmetric_floor() -> Built:
    """PP-OCR's FPN: nearest, asymmetric, floor, integer scales."""
    return _resize(
        "resize_nearest_asymmetric_floor",
        (2, 3, 5, 7),
        scales=[1, 1, 2, 4],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def resize_nearest_half_pixel_fractional() -> Built:
    """nearest, half_pixel, round_prefer_floor (ONNX's defaults) by fractional scales, one of them down."""
    return _resize("resize_nearest_half_pixel_fractional", (2, 3, 6, 7), scales=[1, 1, 1.5, 0.6], mode="nearest")


def resize_nearest_sizes_round_prefer_ceil() -> Built:
    return _resize(
        "resize_nearest_sizes_round_prefer_ceil",
        (2, 3, 5, 5),
        sizes=[2, 4, 9, 13],
        mode="nearest",
        nearest_mode="round_prefer_ceil",
        coordinate_transformation_mode="pytorch_half_pixel",
    )


def resize_linear_half_pixel() -> Built:
    return _resize("resize_linear_half_pixel", (2, 3, 5, 6), scales=[1, 1, 2, 2.5], mode="linear")


def resize_linear_align_corners_sizes() -> Built:
    return _resize(
        "resize_linear_align_corners_sizes",
        (2, 3, 5, 6),
        sizes=[2, 4, 11, 4],
        mode="linear",
        coordinate_transformation_mode="align_corners",
    )


def resize_linear_asymmetric_down() -> Built:
    return _resize(
        "resize_linear_asymmetric_down",
        (2, 3, 9, 8),
        scales=[1, 1, 0.5, 0.75],
        mode="linear",
        coordinate_transformation_mode="asymmetric",
    )


def resize_linear_pytorch_half_pixel_to_one() -> Built:
    """pytorch_half_pixel with an output extent of 1 (its special case: coordinate 0)."""
    return _resize(
        "resize_linear_pytorch_half_pixel_to_one",
        (2, 3, 5, 6),
        sizes=[2, 4, 1, 9],
        mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel",
    )


def qkv_split_attention() -> Built:
    """SVTR's attention: a qkv projection reshaped to ``[N, T, 3, heads, d]``, a Transpose that moves the
    batch (``[2, 0, 3, 1, 4]``), then Slice and Squeeze per q / k / v; scores, softmax, output."""
    n, t, heads, d = 2, 6, 2, 4
    g = _Graph("qkv_split_attention", (n, t, heads * d))
    qkv = g.op("MatMul", "x", g.weight(heads * d, 3 * heads * d))
    qkv = g.op("Reshape", qkv, g.const([0, t, 3, heads, d], np.int64))
    qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.op(
            "Squeeze",
            g.op("Slice", qkv, g.const([i], np.int64), g.const([i + 1], np.int64), g.const([0], np.int64)),
            g.const([0], np.int64),
        )
        for i in range(3)
    )
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])), g.const(d**-0.5))
    y = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    y = g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]), g.const([0, t, heads * d], np.int64))
    return g.build(g.op("MatMul", y, g.weight(heads * d, heads * d)))


def slice_channels_steps() -> Built:
    """Slices of an activation: every other channel from the second to the end (INT64_MAX, as exporters
    write it), a negative start and end."""
    g = _Graph("slice_channels_steps", (2, 3, 7, 8))
    x = g.conv("x", 3, 9, (3, 3), pads=[1, 1, 1, 1])
    x = g.op(
        "Slice",
        x,
        g.const([1, -5], np.int64),
        g.const([np.iinfo(np.int64).max, -1], np.int64),
        g.const([1, 3], np.int64),
        g.const([2, 1], np.int64),
    )
    return g.build(g.op("Relu", x))


#: builders for the upsampling and slicing layers, kept apart from BUILDERS (which the quantized-model
#: suites run through ORT's quantizer: accelsim imports no quantized ConvTranspose / Resize / Slice)
UPSAMPLING: dict[str, Callable[[], Built]] = {
    f.__name__: f
    for f in (
        conv_transpose_k2_s2_bn,
        conv_transpose_pads_output_padding,
        conv_transpose_groups_dilation,
        conv_transpose_depthwise_same_upper,
        conv_transpose_output_shape,
        resize_nearest_asymmetric_floor,
        resize_nearest_half_pixel_fractional,
        resize_nearest_sizes_round_prefer_ceil,
        resize_linear_half_pixel,
        resize_linear_align_corners_sizes,
        resize_linear_asymmetric_down,
        resize_linear_pytorch_half_pixel_to_one,
        qkv_split_attention,
        slice_channels_steps,
    )
}


BUILDERS: dict[str, Callable[[], Built]] = {
    f.__name__: f
    for f in (
        conv_groups_bn_relu,
        conv_depthwise_bn_relu6,
        conv_dilated_asymmetric_pads,
        conv_same_upper_stride_2_1,
        gemm_trans_alpha_beta,
        matmul_2d_bias,
        batched_matmul,
        attention,
        softmax_channels,
        elementwise_broadcast,
        se_block,
        hard_swish_written_out,
        erf_gelu,
        layernorm_decomposed,
        layernorm_op,
        pools,
        layout_ops,
        residual_cnn,
    )
}


# --- models from elsewhere --------------------------------------------------------------------------------


def torch_cnn() -> Built:
    """A small CNN with BatchNorm exported by ``torch.onnx.export`` (eval mode, seeded).

    torch 2.13's default exporter (dynamo) needs ``onnxscript``, which is not installed; the TorchScript
    exporter (``dynamo=False``) needs nothing else and is what this uses. Its constant folding (on by
    default in eval mode) folds BatchNorm into the conv; ``do_constant_folding=False`` keeps the
    BatchNormalization nodes (and writes shared weights through Identity nodes), which the importer must fold.
    """
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),
        nn.BatchNorm2d(8),
        nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    with torch.no_grad():  # non-trivial running statistics, so BatchNorm folding matters
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    shape = (2, 3, 12, 12)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        torch.onnx.export(
            net,
            (torch.zeros(shape),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["x"],
            do_constant_folding=False,
        )
    return _built("torch_cnn", onnx.load_from_string(buf.getvalue()), "x", shape)


def light_model(name: str, seed: int | None = None) -> Built:
    """``light_<name>.onnx`` from the installed onnx package, made quantizable and runnable at opset 17.

    The light files store no weights: each conv / FC weight is a ``ConstantOfShape`` node filled with one
    value (0.02) from an int64 shape initializer; BatchNorm statistics are real initializers. The weights are
    folded here into float initializers (the quantizer only quantizes initializer weights). As shipped, the
    activations explode (ResNet-50's logits are all about 1.3e19, its softmax 0.001 everywhere), so with
    ``seed`` the weights are instead seeded normal of std 1/sqrt(fan-in) and the BatchNorm statistics seeded
    near identity, giving logits of order 1 that quantization can resolve. The run batch is what onnx's
    backend runner feeds (``arange(n).reshape(shape) / n``, its ``generate_dummy_data(random=False)``), the
    one ``light_<name>_output_0.pb`` holds the output for (without ``seed``); calibration batches are seeded
    uniform [0, 1).
    """
    from onnx import version_converter

    model = onnx.load(LIGHT_DIR / f"light_{name}.onnx")
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == TensorProto.INT64}
    rng = np.random.default_rng(seed)
    kept = []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape":
            kept.append(node)
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        fill = float(numpy_helper.to_array(node.attribute[0].t).reshape(-1)[0])
        values = (
            rng.standard_normal(shape) * math.sqrt(1 / np.prod(shape[1:])) if seed is not None else np.full(shape, fill)
        )
        model.graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    if seed is not None:  # the shipped BatchNorm statistics (means up to ~5) make seeded activations overflow
        for node in (n for n in kept if n.op_type == "BatchNormalization"):
            c = len(numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == node.input[1])))
            stats = (rng.uniform(0.5, 1.0, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 2.0, c))
            for name_, v in zip(node.input[1:], stats, strict=True):
                t = next(t for t in model.graph.initializer if t.name == name_)
                t.CopyFrom(numpy_helper.from_array(v.astype(np.float32), name_))
    init_names = {t.name for t in model.graph.initializer}
    used = {i for n in kept for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    data = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(data)  # initializers listed as inputs (IR 3) would be overridable feeds
    model.ir_version = 8  # IR >= 4: initializers need not be inputs (and opset 17 needs IR 8)
    model = version_converter.convert_version(model, OPSET)
    (x,) = data
    shape = tuple(d.dim_value for d in x.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    inputs = {x.name: (np.arange(n).reshape(shape) / n).astype(np.float32)}
    calibration = [{x.name: np.random.default_rng(s).random(shape, np.float32)} for s in range(1, N_CALIBRATION + 1)]
    return Built(f"light_{name}", model, inputs, calibration)


def light_reference_output(name: str) -> np.ndarray:
    """The output onnx ships for :func:`light_model`'s run batch."""
    return numpy_helper.to_array(onnx.load_tensor(str(LIGHT_DIR / f"light_{name}_output_0.pb")))
