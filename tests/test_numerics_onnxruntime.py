"""Bit-exactness against ONNX Runtime's CPU kernels (MLAS), one tiny ONNX graph per case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
from numerics_refs import max_ulp_diff, run_onnx_graph, run_onnx_node  # noqa: E402
from onnx import helper  # noqa: E402

from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm, scale_accumulator  # noqa: E402
from accelsim.quant import (  # noqa: E402
    RULES,
    QParams,
    dequantize_tensor,
    dynamic_quantize,
    make_requant_params,
    quantize_tensor,
    requantize,
    run_layer,
)

SETTINGS = settings(max_examples=25, deadline=None)
TIE_SCALES = [None, (0.5, 0.25, 0.25), (0.25, 0.375, 0.125), (0.5, 0.5, 0.5)]  # (s_a, s_b, s_y): ties occur


def _ints(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


@SETTINGS
@given(m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), a_dtype=st.sampled_from([np.uint8, np.int8]))
@example(m=7, k=33, n=5, seed=0, a_dtype=np.uint8)
def test_matmul_integer(m, k, n, seed, a_dtype):
    rng = np.random.default_rng(seed)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), np.int8)
    za = _ints(rng, (), a_dtype)
    (want,) = run_onnx_node("MatMulInteger", {"A": a, "B": b, "a_zero_point": za}, ["Y"])
    np.testing.assert_array_equal(int_gemm(a, b, a_zero_point=int(za)).values, want)



@SETTINGS
@given(
    n=st.integers(1, 2), groups=st.sampled_from([1, 2, 3]), cpg=st.integers(1, 3), opg=st.integers(1, 3),
    hw=st.tuples(st.integers(3, 9), st.integers(3, 9)), kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 1)] * 4), seed=st.integers(0, 2**32 - 1),
)
def test_conv_integer(n, groups, cpg, opg, hw, kernel, stride, dilation, pads, seed):
    rng = np.random.default_rng(seed)
    geom = ConvGeometry.from_args(stride, pads, dilation, groups)
    try:
        geom.output_size(*hw, *kernel)
    except ValueError:
        return
    x, w = _ints(rng, (n, groups * cpg, *hw), np.uint8), _ints(rng, (groups * opg, cpg, *kernel), np.int8)
    zx = _ints(rng, (), np.uint8)
    (want,) = run_onnx_node(
        "ConvInteger", {"x": x, "w": w, "x_zero_point": zx}, ["y"],
        strides=list(stride), pads=[pads[0], pads[1], pads[2], pads[3]], dilations=list(dilation), group=groups,
    )
    np.testing.assert_array_equal(int_conv2d(x, w, geom, x_zero_point=int(zx)).values, want)


def _scales(rng, ties, n_channels, per_channel):
    if ties:
        sa, sb, sy = ties
        return np.float32(sa), np.full(n_channels if per_channel else 1, sb, np.float32), np.float32(sy)
    sb = rng.uniform(1e-3, 2e-2, n_channels if per_channel else 1).astype(np.float32)
    return np.float32(rng.uniform(1e-3, 5e-2)), sb, np.float32(rng.uniform(1e-2, 0.5))


@SETTINGS
@given(
    m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
    per_column=st.booleans(), ties=st.sampled_from(TIE_SCALES), a_dtype=st.sampled_from([np.uint8, np.int8]),
)
@example(m=7, k=33, n=5, seed=3, per_column=True, ties=(0.5, 0.25, 0.25), a_dtype=np.uint8)
def test_qlinear_matmul(m, k, n, seed, per_column, ties, a_dtype):
    """QLinearMatMul == int GEMM + float_half_even requant (per tensor / per column, ties, saturation)."""
    rng = np.random.default_rng(seed)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), np.int8)
    za, zy = _ints(rng, (), a_dtype), _ints(rng, (), a_dtype)
    sa, sb, sy = _scales(rng, ties, n, per_column)
    feeds = {
        "a": a, "a_scale": sa, "a_zero_point": za, "b": b,
        "b_scale": sb if per_column else sb[0], "b_zero_point": np.zeros(n, np.int8) if per_column else np.int8(0),
        "y_scale": sy, "y_zero_point": zy,
    }
    (want,) = run_onnx_node("QLinearMatMul", feeds, ["y"])
    dtype = "uint8" if a_dtype == np.uint8 else "int8"
    rq = make_requant_params("float_half_even", sa, sb, QParams(sy, int(zy), dtype))
    got = requantize(int_gemm(a, b, a_zero_point=int(za)).values, rq, axis=1).codes
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(
    n=st.integers(1, 2), groups=st.sampled_from([1, 2, 4]), opg=st.integers(1, 3), depthwise=st.booleans(),
    hw=st.tuples(st.integers(3, 8), st.integers(3, 8)), kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]), pads=st.tuples(*[st.integers(0, 1)] * 4),
    per_channel=st.booleans(), ties=st.sampled_from(TIE_SCALES), seed=st.integers(0, 2**32 - 1),
)
def test_qlinear_conv(n, groups, opg, depthwise, hw, kernel, stride, pads, per_channel, ties, seed):
    """QLinearConv (per tensor, per channel, depthwise) == im2col GEMM + int32 bias + float_half_even."""
    rng = np.random.default_rng(seed)
    cpg = 1 if depthwise else int(rng.integers(1, 4))
    o = groups * (1 if depthwise else opg)
    geom = ConvGeometry.from_args(stride, pads, 1, groups)
    try:
        geom.output_size(*hw, *kernel)
    except ValueError:
        return
    x, w = _ints(rng, (n, groups * cpg, *hw), np.uint8), _ints(rng, (o, cpg, *kernel), np.int8)
    w[w == -128] = -127
    zx, zy = _ints(rng, (), np.uint8), _ints(rng, (), np.uint8)
    sx, sw, sy = _scales(rng, ties, o, per_channel)
    bias = rng.integers(-20000, 20000, o).astype(np.int32)
    feeds = {
        "x": x, "x_scale": sx, "x_zero_point": zx, "w": w, "w_scale": sw if per_channel else sw[0],
        "w_zero_point": np.zeros(o, np.int8) if per_channel else np.int8(0), "y_scale": sy, "y_zero_point": zy, "B": bias,
    }
    (want,) = run_onnx_node("QLinearConv", feeds, ["y"], strides=list(stride), pads=list(pads), group=groups)
    acc = int_conv2d(x, w, geom, x_zero_point=int(zx), bias=bias).values
    got = requantize(acc, make_requant_params("float_half_even", sx, sw, QParams(sy, int(zy), "uint8")), axis=1).codes
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(shape=st.tuples(st.integers(1, 7), st.integers(1, 33)), seed=st.integers(0, 2**32 - 1), spread=st.sampled_from([1e-3, 1.0, 100.0]), sign=st.sampled_from([-1, 0, 1]))
def test_dynamic_quantize_linear(shape, seed, spread, sign):
    """DynamicQuantizeLinear: same scale, zero point and codes (incl. all-positive / all-negative inputs)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * spread).astype(np.float32)
    x = np.abs(x) * sign if sign else x
    y, ys, yz = run_onnx_node("DynamicQuantizeLinear", {"x": x}, ["y", "ys", "yz"], opset=13)
    q, qp = dynamic_quantize(x.reshape(1, -1), "onnx")
    assert qp.scale[0] == ys and qp.zero_point[0] == yz
    np.testing.assert_array_equal(q.reshape(shape), y)


@SETTINGS
@given(size=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.5, 0.25, 0.375, 0.0173]), dtype=st.sampled_from(["int8", "uint8"]), ties=st.booleans())
def test_quantize_dequantize_linear(size, seed, scale, dtype, ties):
    """QuantizeLinear (x / s, half to even, saturate) and DequantizeLinear."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(-700, 700, size) + 0.5) * scale if ties else rng.normal(size=size) * 200 * scale).astype(np.float32)
    npd = np.int8 if dtype == "int8" else np.uint8
    zp = _ints(rng, (), npd)
    qp = QParams(np.float32(scale), int(zp), dtype)
    (want,) = run_onnx_node("QuantizeLinear", {"x": x, "s": np.float32(scale), "z": zp}, ["y"])
    got, _ = quantize_tensor(x, qp, RULES["onnx"])
    np.testing.assert_array_equal(got, want)
    (want_f,) = run_onnx_node("DequantizeLinear", {"q": want, "s": np.float32(scale), "z": zp}, ["y"])
    np.testing.assert_array_equal(dequantize_tensor(got, qp), want_f)


def _dynamic_matmul_graph():
    return [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "w", "xz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=1),
        helper.make_node("Mul", ["xs", "ws"], ["s"]),
        helper.make_node("Mul", ["accf", "s"], ["ys"]),
        helper.make_node("Add", ["ys", "b"], ["y"]),
    ]


@SETTINGS
@given(m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), per_column=st.booleans())
@example(m=7, k=33, n=5, seed=0, per_column=False)
def test_dynamic_onnx_flavour_float_output(m, k, n, seed, per_column):
    """ORT quantize_dynamic's graph (DQL, MatMulInteger, Cast, Mul, Add) == layer API, flavour onnx."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(m, k)) * 2).astype(np.float32)
    w = (rng.normal(size=(n, k)) * 0.1).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    res = run_layer("linear", x, w, bias, scheme="dynamic", flavour="onnx", weight_granularity="per_channel" if per_column else "per_tensor")
    wq = res.tensors["weight_q"]
    ws = wq.qparams.scale if per_column else wq.qparams.scale[0]
    (want,) = run_onnx_graph(_dynamic_matmul_graph(), {"x": x}, {"w": np.ascontiguousarray(wq.values.T), "ws": ws, "b": bias}, ["y"])
    np.testing.assert_array_equal(res.output, want)


def test_dynamic_quantize_matmul_contrib_ulps():
    """ORT's fused com.microsoft DynamicQuantizeMatMul: measured against the unfused formula."""
    rng = np.random.default_rng(11)
    worst = 0
    for m, k, n in [(7, 33, 5), (16, 64, 24), (3, 300, 17)]:
        x = (rng.normal(size=(m, k)) * 2).astype(np.float32)
        wq = rng.integers(-127, 128, (k, n)).astype(np.int8)
        ws, bias = np.float32(0.01), rng.normal(size=n).astype(np.float32)
        (want,) = run_onnx_node("DynamicQuantizeMatMul", {"A": x, "B": wq, "b_scale": ws, "b_zero_point": np.int8(0), "bias": bias}, ["Y"], domain="com.microsoft")
        q, qp = dynamic_quantize(x, "onnx")
        got = scale_accumulator(int_gemm(q, wq, a_zero_point=int(qp.zero_point[0])).values, qp.scale[0], ws, bias, axis=1)
        worst = max(worst, max_ulp_diff(got, want))
    assert worst == 0, f"DynamicQuantizeMatMul differs by up to {worst} ulp"


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), depthwise=st.booleans(), relu=st.booleans())
def test_static_layer_matches_qlinear_conv(seed, depthwise, relu):
    """run_layer(static, float_half_even) conv == QLinearConv fed the layer's own quantized tensors."""
    rng = np.random.default_rng(seed)
    groups = 3 if depthwise else 1
    x = rng.normal(size=(1, 3, 7, 6)).astype(np.float32)
    w = (rng.normal(size=(6 if not depthwise else 3, 1 if depthwise else 3, 3, 3)) * 0.3).astype(np.float32)
    b = rng.normal(size=w.shape[0]).astype(np.float32)
    res = run_layer("conv2d", x, w, b, scheme="static", requant_mode="float_half_even", stride=2, padding=1, groups=groups, activation="relu" if relu else None)
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    feeds = {
        "x": t["input_q"].values, "x_scale": iq.scale[0], "x_zero_point": np.uint8(iq.zero_point[0]), "w": wq.values,
        "w_scale": wq.qparams.scale, "w_zero_point": np.zeros(w.shape[0], np.int8), "y_scale": oq.scale[0],
        "y_zero_point": np.uint8(oq.zero_point[0]), "B": t["bias_q"].values,
    }
    (want,) = run_onnx_node("QLinearConv", feeds, ["y"], strides=[2, 2], pads=[1, 1, 1, 1], group=groups)
    if relu:
        want = np.maximum(want, np.uint8(oq.zero_point[0]))
    np.testing.assert_array_equal(t["output_q"].values, want)
