"""Weights with a zero point (uint8 / int8 affine, scalar or per channel) against ONNX Runtime, bit for bit.

ORT 1.32 kernels: MatMulInteger takes every (A, B) dtype pair and a per-column ``b_zero_point``;
ConvInteger only a scalar ``w_zero_point`` (per channel it raises "Non per-tensor quantization is not
supported now"); QLinearMatMul and QLinearConv take uint8 x uint8, uint8 x int8 and int8 x int8 with a
per-column / per-channel zero point. Each is driven through accelsim's public functions (``int_gemm``,
``int_conv2d``, ``run_static_codes`` with given codes and parameters, ``run_layer``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from accelsim.quant import Quantization

pytest.importorskip("onnxruntime")
from numerics_refs import TIE_ACTIVATIONS, run_onnx_graph, run_onnx_node
from onnx import helper

from accelsim.kernels import ConvGeometry, PackedWeights, int_conv2d, int_gemm
from accelsim.kernels.gemm import accumulator_range, never_overflows
from accelsim.quant import RULES, QParams, QuantizedWeight, quantize_tensor, run_layer, run_static_codes

SETTINGS = settings(max_examples=25, deadline=None)
DTYPES = {"uint8": np.uint8, "int8": np.int8}
GEMM_PAIRS = [("uint8", "uint8"), ("uint8", "int8"), ("int8", "uint8"), ("int8", "int8")]
QLINEAR_PAIRS = [("uint8", "uint8"), ("uint8", "int8"), ("int8", "int8")]  # what ORT's QLinear kernels implement
TIE_SCALES = [None, (0.5, 0.25, 0.25), (0.25, 0.375, 0.125), (0.5, 0.5, 0.5)]  # (s_a, s_b, s_y): exact .5 products


def _ints(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def _zero_points(rng: np.random.Generator, dtype, n: int, per_channel: bool, where: str) -> np.ndarray:
    """Zero points at the dtype's minimum, maximum, or anywhere (one per channel or a scalar)."""
    info = np.iinfo(dtype)
    size = n if per_channel else 1
    if where == "min":
        zp = np.full(size, info.min)
    elif where == "max":
        zp = np.full(size, info.max)
    else:
        zp = rng.integers(info.min, info.max + 1, size)
    zp = zp.astype(dtype)
    return zp if per_channel else zp.reshape(())


def _scales(rng: np.random.Generator, ties, n: int, per_channel: bool):
    if ties:
        sa, sb, sy = ties
        return np.float32(sa), np.full(n if per_channel else 1, sb, np.float32), np.float32(sy)
    return (
        np.float32(rng.uniform(1e-3, 5e-2)),
        rng.uniform(1e-3, 2e-2, n if per_channel else 1).astype(np.float32),
        np.float32(rng.uniform(1e-2, 0.5)),
    )


def _geometry(stride, pads, dilation, groups: int, hw, kernel) -> ConvGeometry:
    """The conv's geometry; hypothesis rejects (``assume``) the draws whose output would be empty."""
    geom = ConvGeometry.from_args(stride, pads, dilation, groups)
    oh = (hw[0] + pads[0] + pads[2] - geom.dilation[0] * (kernel[0] - 1) - 1) // geom.stride[0] + 1
    ow = (hw[1] + pads[1] + pads[3] - geom.dilation[1] * (kernel[1] - 1) - 1) // geom.stride[1] + 1
    assume(oh > 0 and ow > 0)
    return geom


def _weight(codes: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int, per_channel: bool) -> QuantizedWeight:
    """Given codes and parameters, as an ONNX import hands them in."""
    dtype = str(codes.dtype)
    if per_channel:
        return QuantizedWeight(codes, QParams(scale, zp.astype(np.int32), dtype, axis=axis))
    return QuantizedWeight(codes, QParams(scale[0], int(zp), dtype))


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    pair=st.sampled_from(GEMM_PAIRS),
    per_column=st.booleans(),
    where=st.sampled_from(["min", "max", "any"]),
)
@example(m=7, k=33, n=5, seed=0, pair=("uint8", "uint8"), per_column=True, where="min")
@example(m=7, k=33, n=5, seed=1, pair=("int8", "int8"), per_column=False, where="max")
def test_matmul_integer_weight_zero_point(m, k, n, seed, pair, per_column, where):
    """MatMulInteger with ``b_zero_point`` == int_gemm, plain and with prepacked weights."""
    rng = np.random.default_rng(seed)
    a_dt, b_dt = DTYPES[pair[0]], DTYPES[pair[1]]
    a, b = _ints(rng, (m, k), a_dt), _ints(rng, (k, n), b_dt)
    za, zb = _ints(rng, (), a_dt), _zero_points(rng, b_dt, n, per_column, where)
    (want,) = run_onnx_node("MatMulInteger", {"A": a, "B": b, "a_zero_point": za, "b_zero_point": zb}, ["Y"])
    np.testing.assert_array_equal(int_gemm(a, b, a_zero_point=int(za), b_zero_point=zb).values, want)
    np.testing.assert_array_equal(int_gemm(a, PackedWeights.of(b), a_zero_point=int(za), b_zero_point=zb).values, want)


@pytest.mark.parametrize(("m", "k", "n"), [(385, 300, 130), (1, 1030, 200), (13, 4, 64), (700, 517, 129)])
@pytest.mark.parametrize("pair", GEMM_PAIRS)
def test_matmul_integer_weight_zero_point_across_kernel_blocks(m, k, n, pair):
    """Shapes crossing every blocking boundary of the VNNI kernel (row panels of 6 and blocks of 384,
    column panels of 64, K blocks of 256, K not a multiple of 4), per-column zero points."""
    rng = np.random.default_rng(m * k + n)
    a_dt, b_dt = DTYPES[pair[0]], DTYPES[pair[1]]
    a, b = _ints(rng, (m, k), a_dt), _ints(rng, (k, n), b_dt)
    za, zb = _ints(rng, (), a_dt), _ints(rng, (n,), b_dt)
    (want,) = run_onnx_node("MatMulInteger", {"A": a, "B": b, "a_zero_point": za, "b_zero_point": zb}, ["Y"])
    np.testing.assert_array_equal(int_gemm(a, b, a_zero_point=int(za), b_zero_point=zb).values, want)


@SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 3]),
    cpg=st.integers(1, 3),
    opg=st.integers(1, 3),
    hw=st.tuples(st.integers(3, 8), st.integers(3, 8)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 1)] * 4),
    seed=st.integers(0, 2**32 - 1),
    pair=st.sampled_from(GEMM_PAIRS),
    where=st.sampled_from(["min", "max", "any"]),
)
def test_conv_integer_weight_zero_point(n, groups, cpg, opg, hw, kernel, stride, dilation, pads, seed, pair, where):
    """ConvInteger with a scalar ``w_zero_point`` (ORT's only one) == int_conv2d; padded taps add 0."""
    rng = np.random.default_rng(seed)
    geom = _geometry(stride, pads, dilation, groups, hw, kernel)
    x_dt, w_dt = DTYPES[pair[0]], DTYPES[pair[1]]
    x, w = _ints(rng, (n, groups * cpg, *hw), x_dt), _ints(rng, (groups * opg, cpg, *kernel), w_dt)
    zx, zw = _ints(rng, (), x_dt), _zero_points(rng, w_dt, 1, False, where)
    (want,) = run_onnx_node(
        "ConvInteger",
        {"x": x, "w": w, "x_zero_point": zx, "w_zero_point": zw},
        ["y"],
        strides=list(stride),
        pads=list(pads),
        dilations=list(dilation),
        group=groups,
    )
    np.testing.assert_array_equal(int_conv2d(x, w, geom, x_zero_point=int(zx), w_zero_point=zw).values, want)


def _qlinear_matmul(a, sa, za, b, sb, zb, sy, zy, per_column):
    feeds = {
        "a": a,
        "a_scale": sa,
        "a_zero_point": za,
        "b": b,
        "b_scale": sb if per_column else sb[0],
        "b_zero_point": zb,
        "y_scale": sy,
        "y_zero_point": zy,
    }
    return run_onnx_node("QLinearMatMul", feeds, ["y"])[0]


def _accelsim_matmul(a, sa, za, b, sb, zb, sy, zy, per_column, mode="float_half_even"):
    out_qp = QParams(sy, int(zy), str(zy.dtype))
    res = run_static_codes(
        "matmul",
        a,
        QParams(sa, int(za), str(a.dtype)),
        _weight(b, sb, zb, 1, per_column),
        None,
        out_qp,
        requant_mode=mode,
    )
    return res.tensors["output_q"].values


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    per_column=st.booleans(),
    ties=st.sampled_from(TIE_SCALES),
    pair=st.sampled_from(QLINEAR_PAIRS),
    where=st.sampled_from(["min", "max", "any"]),
    saturate=st.booleans(),
)
@example(
    m=7,
    k=33,
    n=5,
    seed=3,
    per_column=True,
    ties=(0.5, 0.25, 0.25),
    pair=("uint8", "uint8"),
    where="max",
    saturate=False,
)
def test_qlinear_matmul_weight_zero_point(m, k, n, seed, per_column, ties, pair, where, saturate):
    """QLinearMatMul with a weight zero point == run_static_codes on the given codes (float_half_even)."""
    rng = np.random.default_rng(seed)
    a_dt, b_dt = DTYPES[pair[0]], DTYPES[pair[1]]
    a, b = _ints(rng, (m, k), a_dt), _ints(rng, (k, n), b_dt)
    za, zy, zb = _ints(rng, (), a_dt), _ints(rng, (), a_dt), _zero_points(rng, b_dt, n, per_column, where)
    sa, sb, sy = _scales(rng, ties, n, per_column)
    sy = np.float32(sy / 64) if saturate else sy  # most outputs clamp at the code range
    want = _qlinear_matmul(a, sa, za, b, sb, zb, sy, zy, per_column)
    np.testing.assert_array_equal(_accelsim_matmul(a, sa, za, b, sb, zb, sy, zy, per_column), want)


def _qlinear_conv(x, sx, zx, w, sw, zw, sy, zy, bias, per_channel, geom: ConvGeometry):
    feeds = {
        "x": x,
        "x_scale": sx,
        "x_zero_point": zx,
        "w": w,
        "w_scale": sw if per_channel else sw[0],
        "w_zero_point": zw,
        "y_scale": sy,
        "y_zero_point": zy,
        "B": bias,
    }
    return run_onnx_node(
        "QLinearConv", feeds, ["y"], strides=list(geom.stride), pads=list(geom.padding), group=geom.groups
    )[0]


def _accelsim_conv(
    x, sx, zx, w, sw, zw, sy, zy, bias, per_channel, geom: ConvGeometry, mode="float_half_even", keep=True
):
    res = run_static_codes(
        "conv2d",
        x,
        QParams(sx, int(zx), str(x.dtype)),
        _weight(w, sw, zw, 0, per_channel),
        bias,
        QParams(sy, int(zy), str(zy.dtype)),
        requant_mode=mode,
        keep_accumulators=keep,
        geometry=ConvGeometry.from_args(stride=geom.stride, padding=geom.padding, groups=geom.groups),
    )
    return res.tensors["output_q"].values


@SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 4]),
    opg=st.integers(1, 3),
    depthwise=st.booleans(),
    hw=st.tuples(st.integers(3, 7), st.integers(3, 7)),
    kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    pads=st.tuples(*[st.integers(0, 1)] * 4),
    per_channel=st.booleans(),
    ties=st.sampled_from(TIE_SCALES),
    seed=st.integers(0, 2**32 - 1),
    pair=st.sampled_from(QLINEAR_PAIRS),
    where=st.sampled_from(["min", "max", "any"]),
    saturate=st.booleans(),
)
def test_qlinear_conv_weight_zero_point(
    n, groups, opg, depthwise, hw, kernel, stride, pads, per_channel, ties, seed, pair, where, saturate
):
    """QLinearConv with a scalar or per-channel ``w_zero_point`` (grouped, depthwise, strided, padded, int32
    bias) == run_static_codes on the given codes and bias."""
    rng = np.random.default_rng(seed)
    cpg = 1 if depthwise else int(rng.integers(1, 4))
    o = groups * (1 if depthwise else opg)
    geom = _geometry(stride, pads, 1, groups, hw, kernel)
    x_dt, w_dt = DTYPES[pair[0]], DTYPES[pair[1]]
    x, w = _ints(rng, (n, groups * cpg, *hw), x_dt), _ints(rng, (o, cpg, *kernel), w_dt)
    zx, zy, zw = _ints(rng, (), x_dt), _ints(rng, (), x_dt), _zero_points(rng, w_dt, o, per_channel, where)
    sx, sw, sy = _scales(rng, ties, o, per_channel)
    sy = np.float32(sy / 64) if saturate else sy
    bias = rng.integers(-20000, 20000, o).astype(np.int32)
    want = _qlinear_conv(x, sx, zx, w, sw, zw, sy, zy, bias, per_channel, geom)
    np.testing.assert_array_equal(_accelsim_conv(x, sx, zx, w, sw, zw, sy, zy, bias, per_channel, geom), want)


def _near(rng: np.random.Generator, zp: np.ndarray, shape, axis: int, dtype) -> np.ndarray:
    """Codes within 3 of their zero point (``zp`` broadcast along ``axis``), inside the dtype."""
    info = np.iinfo(dtype)
    centre = (
        np.expand_dims(np.asarray(zp, np.int64), tuple(d for d in range(len(shape)) if d != axis))
        if np.ndim(zp)
        else int(zp)
    )
    return np.clip(centre + rng.integers(-3, 4, shape), info.min, info.max).astype(dtype)


def _tie_codes(rng: np.random.Generator, a_dt, b_dt, shape_a, shape_b, b_axis):
    """Operands whose accumulators stay small (|acc| <= 9 K) with zero points at the dtype extremes and
    anywhere: under scales 0.5 / 0.5 / 0.5 (multiplier 0.5) every odd accumulator is an exact tie, where
    half-even, half-away-from-zero (tflite) and half-up (tflite_single) rounding disagree."""
    info_a, info_b = np.iinfo(a_dt), np.iinfo(b_dt)
    za = a_dt(info_a.max)
    zb = rng.integers(info_b.min, info_b.max + 1, shape_b[b_axis]).astype(b_dt)
    zb[:2] = info_b.min, info_b.max
    zy = a_dt(0 if a_dt == np.int8 else 128)
    return _near(rng, za, shape_a, 0, a_dt), za, _near(rng, zb, shape_b, b_axis, b_dt), zb, zy


@pytest.mark.parametrize("pair", QLINEAR_PAIRS)
def test_qlinear_matmul_ties_separate_the_rounding_modes(pair):
    """On exact ties ORT's QLinearMatMul is float_half_even, and neither fixed-point mode: swapping the
    requant mode must break the match (so the equality above is evidence about the mode)."""
    rng = np.random.default_rng(5)
    a, za, b, zb, zy = _tie_codes(rng, DTYPES[pair[0]], DTYPES[pair[1]], (16, 9), (9, 12), 1)
    s, sb = np.float32(0.5), np.full(12, 0.5, np.float32)
    want = _qlinear_matmul(a, s, za, b, sb, zb, s, zy, True)
    np.testing.assert_array_equal(_accelsim_matmul(a, s, za, b, sb, zb, s, zy, True), want)
    assert ((want == np.iinfo(want.dtype).min) | (want == np.iinfo(want.dtype).max)).sum() == 0  # ties, not clamps
    for other in ("tflite", "tflite_single"):
        got = _accelsim_matmul(a, s, za, b, sb, zb, s, zy, True, mode=other)
        assert (got != want).sum() > 10, other


@pytest.mark.parametrize("pair", QLINEAR_PAIRS)
def test_qlinear_conv_ties_separate_the_rounding_modes(pair):
    """The same on QLinearConv with per-channel weight zero points and an int32 bias."""
    rng = np.random.default_rng(6)
    x, zx, w, zw, zy = _tie_codes(rng, DTYPES[pair[0]], DTYPES[pair[1]], (1, 3, 6, 6), (4, 3, 3, 3), 0)
    s, sw = np.float32(0.5), np.full(4, 0.5, np.float32)
    bias = rng.integers(-50, 50, 4).astype(np.int32)
    geom = ConvGeometry.from_args(1, 1)
    want = _qlinear_conv(x, s, zx, w, sw, zw, s, zy, bias, True, geom)
    np.testing.assert_array_equal(_accelsim_conv(x, s, zx, w, sw, zw, s, zy, bias, True, geom), want)
    assert ((want == np.iinfo(want.dtype).min) | (want == np.iinfo(want.dtype).max)).sum() == 0
    for other in ("tflite", "tflite_single"):
        got = _accelsim_conv(x, s, zx, w, sw, zw, s, zy, bias, True, geom, mode=other)
        assert (got != want).sum() > 10, other


@pytest.mark.parametrize("weights", ["asymmetric", "asymmetric_int8"])
@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_static_layer_with_asymmetric_weights_matches_qlinear_conv(weights, granularity):
    """run_layer(..., weights=asymmetric) end to end: its own codes, zero points and int32 bias through
    ORT's QLinearConv give its output codes (and the fused requant path gives the same)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 6, 9, 9)).astype(np.float32)
    w = (rng.normal(size=(8, 6, 3, 3)) * 0.2 + 0.05).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    res = run_layer(
        "conv2d",
        x,
        w,
        bias,
        quantization=Quantization(
            scheme="static", requant_mode="float_half_even", weights=weights, weight_granularity=granularity
        ),
        geometry=ConvGeometry.from_args(stride=2, padding=1),
    )
    t = res.tensors
    wq, xq, out = t["weight_q"], t["input_q"], t["output_q"]
    assert not wq.qparams.symmetric and wq.dtype == ("uint8" if weights == "asymmetric" else "int8")
    per_channel = granularity == "per_channel"
    zw = (
        wq.qparams.zero_point.astype(wq.values.dtype) if per_channel else wq.values.dtype.type(wq.qparams.zero_point[0])
    )
    geom = ConvGeometry.from_args(2, 1)
    args = (
        xq.values,
        xq.qparams.scale[0],
        xq.values.dtype.type(xq.qparams.zero_point[0]),
        wq.values,
        wq.qparams.scale,
        zw,
        out.qparams.scale[0],
        out.values.dtype.type(out.qparams.zero_point[0]),
        t["bias_q"].values,
        per_channel,
        geom,
    )
    np.testing.assert_array_equal(out.values, _qlinear_conv(*args))
    np.testing.assert_array_equal(_accelsim_conv(*args, keep=False), out.values)


@pytest.mark.parametrize("weights", ["asymmetric", "asymmetric_int8"])
@pytest.mark.parametrize("per_column", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_dynamic_layer_with_asymmetric_weights_matches_ort_graph(weights, per_column, ties):
    """ORT quantize_dynamic's graph with a weight zero point (DynamicQuantizeLinear, MatMulInteger with
    ``b_zero_point``, Cast, Mul, Add) == run_layer(scheme=dynamic, flavour=onnx, weights=...). With
    ``ties`` every input lies half a step between two codes (scale 0.25 exactly): the graph's codes are
    then half-to-even ones, which half away from zero would change. (DynamicQuantizeLinear takes its
    range from the data, so its codes cannot saturate.)"""
    rng = np.random.default_rng(8)
    x = TIE_ACTIVATIONS if ties else (rng.normal(size=(9, 70)) * 2).astype(np.float32)
    w = (rng.normal(size=(33, x.shape[1])) * 0.1 + 0.03).astype(np.float32)
    bias = rng.normal(size=33).astype(np.float32)
    res = run_layer(
        "linear",
        x,
        w,
        bias,
        quantization=Quantization(
            scheme="dynamic",
            flavour="onnx",
            weights=weights,
            weight_granularity="per_channel" if per_column else "per_tensor",
        ),
    )
    wq = res.tensors["weight_q"]
    ws = wq.qparams.scale if per_column else wq.qparams.scale[0]
    zw = wq.qparams.zero_point.astype(wq.values.dtype)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=1),
        helper.make_node("Mul", ["xs", "ws"], ["s"]),
        helper.make_node("Mul", ["accf", "s"], ["ys"]),
        helper.make_node("Add", ["ys", "b"], ["y"]),
    ]
    inits = {"w": np.ascontiguousarray(wq.values.T), "wz": zw if per_column else zw[0], "ws": ws, "b": bias}
    want, want_codes = run_onnx_graph(nodes, {"x": x}, inits, ["y", "xq"])
    np.testing.assert_array_equal(res.output, want)
    xq = res.tensors["input_q"]
    np.testing.assert_array_equal(xq.values, want_codes)
    if ties:
        assert xq.qparams.scale[0] == 0.25
        assert np.any(quantize_tensor(x, xq.qparams, RULES["tflite"])[0] != want_codes)  # half away from zero


def test_overflow_bound_counts_the_weight_zero_point():
    """uint8 weights with zero point 0 or 255 reach |w - z| = 255: the dtype bound clears K up to
    floor((2**31 - 1) / 255**2) = 33025 for uint8 inputs with zero point 0, not the symmetric 65793."""
    hi = accumulator_range(32)[1]
    u8, i8 = np.dtype(np.uint8), np.dtype(np.int8)
    assert never_overflows(u8, 0, i8, 65793, 0, hi) and not never_overflows(u8, 0, i8, 65794, 0, hi)
    for zp in (0, 255, np.array([3, 255])):
        assert never_overflows(u8, 0, u8, 33025, 0, hi, zp) and not never_overflows(u8, 0, u8, 33026, 0, hi, zp)
    assert never_overflows(u8, 0, i8, 33025, 0, hi, -128) and not never_overflows(u8, 0, i8, 33026, 0, hi, 127)
    # at the limit the exact sum is 2**31 - 1 - ... : one more step of 255 * 255 wraps, and int_gemm says so
    k = 33026
    a, b = np.full((1, k), 255, np.uint8), np.zeros((k, 1), np.uint8)
    res = int_gemm(a, b, b_zero_point=255, acc_bits=32, overflow="saturate")
    assert res.values[0, 0] == -(1 << 31) and res.overflows == 1
    res = int_gemm(a, b, b_zero_point=255, acc_bits=32, overflow="wrap")
    assert res.values[0, 0] == ((-255 * 255 * k + (1 << 31)) % (1 << 32)) - (1 << 31) and res.overflows == 1
