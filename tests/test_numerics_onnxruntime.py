"""Bit-exactness against ONNX Runtime's CPU kernels (MLAS), one tiny ONNX graph per case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accelsim.quant import Prepared, Quantization

pytest.importorskip("onnxruntime")
from numerics_refs import (
    TIE_ACTIVATIONS,
    max_ulp_diff,
    run_onnx_graph,
    run_onnx_node,
    tfl_multiply_by_quantized_multiplier,
    tfl_multiply_by_quantized_multiplier_single,
    tfl_quantize_multiplier,
)
from onnx import helper

from accelsim.kernels import ConvGeometry, PackedWeights, int_conv2d, int_gemm, scale_accumulator, vnni
from accelsim.kernels import threads as gemm_threads
from accelsim.quant import (
    RULES,
    QParams,
    dequantize_tensor,
    dynamic_quantize,
    make_requant_params,
    quantize_tensor,
    requantize,
    run_layer,
    run_static_codes,
)
from accelsim.quant.layer import QuantizedWeight

SETTINGS = settings(max_examples=25, deadline=None)
EDGE_SETTINGS = settings(max_examples=60, deadline=None)  # the GEMM / conv tests: sizes across the kernel's blocks
TIE_SCALES = [None, (0.5, 0.25, 0.25), (0.25, 0.375, 0.125), (0.5, 0.5, 0.5)]  # (s_a, s_b, s_y): ties occur

# Sizes on either side of the VNNI kernel's blocking (accelsim.kernels.vnni): rows in micro-tiles of
# MR = 6 and blocks of MC_PANELS * MR = 384, K in 4-byte words and blocks of KC4 * 4 = 256 bytes,
# columns in panels of NR = 64.
M_EDGES = (5, 6, 7, 383, 384, 385)
K_EDGES = (3, 4, 5, 255, 256, 257, 259, 513)
N_EDGES = (63, 64, 65, 127, 129)


def _around(lo: int, hi: int, edges: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Small sizes, or sizes straddling one of the kernel's blocking boundaries."""
    return st.one_of(st.integers(lo, hi), st.sampled_from(edges))


def _ints(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def _every_other(shape: tuple[int, ...], axis: int) -> np.ndarray:
    """True on slices 0, 2, 4, ... along ``axis`` (broadcastable to ``shape``)."""
    return (np.arange(shape[axis]) % 2 == 0).reshape([-1 if i == axis else 1 for i in range(len(shape))])


def _mixed(rng, shape, dtype, center, axis):
    """Full-range codes, except every other slice along ``axis`` within 3 of ``center`` (the zero
    point): products of two such slices give small accumulators, whose exact ties under the tie
    scales land inside the output range; the others saturate."""
    info = np.iinfo(dtype)
    near = np.clip(int(center) + rng.integers(-3, 4, size=shape), info.min, info.max).astype(dtype)
    return np.where(_every_other(shape, axis), near, _ints(rng, shape, dtype))


def _mixed_bias(rng, n):
    """int32 bias: small on the channels that can tie in range (even ones), large on the others."""
    return np.where(np.arange(n) % 2 == 0, rng.integers(-64, 65, n), rng.integers(-20000, 20000, n)).astype(np.int32)


def _assert_ties_decide(acc, sx, sw, out_qp: QParams, want, axis):
    """The case separates the roundings: ORT's ``float32(acc) * scale`` has exact ties inside the output
    range and values beyond it, and the half-away-from-zero requant unit (mode ``tflite``) gives other
    codes than ORT's, so a swapped mode fails the comparison."""
    scale = (np.float32(sx) * np.asarray(sw, np.float32) / out_qp.scale[0]).astype(np.float32)
    shape = [1] * acc.ndim
    shape[axis] = -1
    v = acc.astype(np.float32) * scale.reshape(shape) + np.float32(out_qp.zero_point[0])
    info = np.iinfo(out_qp.numpy_dtype)
    inside = (v >= info.min) & (v <= info.max)
    assert np.any(inside & (v - np.floor(v) == 0.5)), "no exact tie inside the output range"
    assert np.any(~inside), "no saturation"
    wrong = requantize(acc, make_requant_params("tflite", sx, sw, out_qp), axis=axis).codes
    assert np.any(wrong != want), "half away from zero would pass too"


@EDGE_SETTINGS
@given(
    m=_around(1, 9, M_EDGES),
    k=_around(1, 40, K_EDGES),
    n=_around(1, 9, N_EDGES),
    seed=st.integers(0, 2**32 - 1),
    a_dtype=st.sampled_from([np.uint8, np.int8]),
)
@example(m=7, k=33, n=5, seed=0, a_dtype=np.uint8)
@example(m=385, k=259, n=129, seed=1, a_dtype=np.int8)
def test_matmul_integer(m, k, n, seed, a_dtype):
    rng = np.random.default_rng(seed)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), np.int8)
    za = _ints(rng, (), a_dtype)
    (want,) = run_onnx_node("MatMulInteger", {"A": a, "B": b, "a_zero_point": za}, ["Y"])
    np.testing.assert_array_equal(int_gemm(a, b, a_zero_point=int(za)).values, want)


CPG_EDGES = (29, 57, 257)  # K = C/g * kh * kw crosses 256 bytes (261, 513, 2313 with 3x3), not a multiple of 4
HW_LARGE = (20, 21)  # with N = 2 images, GEMM rows beyond one 384-row block


@EDGE_SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 3]),
    cpg=_around(1, 3, CPG_EDGES),
    opg=_around(1, 3, N_EDGES[:3]),
    hw=st.one_of(st.tuples(st.integers(3, 9), st.integers(3, 9)), st.just(HW_LARGE)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 1)] * 4),
    seed=st.integers(0, 2**32 - 1),
)
@example(
    n=2, groups=1, cpg=29, opg=65, hw=HW_LARGE, kernel=(3, 3), stride=(1, 1), dilation=(1, 1), pads=(1, 0, 1, 1), seed=2
)
@example(
    n=2,
    groups=2,
    cpg=257,
    opg=63,
    hw=HW_LARGE,
    kernel=(1, 1),
    stride=(1, 2),
    dilation=(1, 1),
    pads=(0, 0, 0, 0),
    seed=3,
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
        "ConvInteger",
        {"x": x, "w": w, "x_zero_point": zx},
        ["y"],
        strides=list(stride),
        pads=[pads[0], pads[1], pads[2], pads[3]],
        dilations=list(dilation),
        group=groups,
    )
    np.testing.assert_array_equal(int_conv2d(x, w, geom, x_zero_point=int(zx)).values, want)


def _scales(rng, ties, n_channels, per_channel):
    if ties:
        sa, sb, sy = ties
        return np.float32(sa), np.full(n_channels if per_channel else 1, sb, np.float32), np.float32(sy)
    sb = rng.uniform(1e-3, 2e-2, n_channels if per_channel else 1).astype(np.float32)
    return np.float32(rng.uniform(1e-3, 5e-2)), sb, np.float32(rng.uniform(1e-2, 0.5))


def _ort_qlinear_matmul(a, b, za, zy, sa, sb, sy, per_column):
    """ORT's QLinearMatMul codes (per tensor, or per column with one scale per column of ``b``)."""
    n = b.shape[1]
    feeds = {
        "a": a,
        "a_scale": sa,
        "a_zero_point": za,
        "b": b,
        "b_scale": sb if per_column else sb[0],
        "b_zero_point": np.zeros(n, np.int8) if per_column else np.int8(0),
        "y_scale": sy,
        "y_zero_point": zy,
    }
    return run_onnx_node("QLinearMatMul", feeds, ["y"])[0]


def _ort_qlinear_conv(x, w, zx, zy, sx, sw, sy, bias, per_channel, stride, pads, groups):
    """ORT's QLinearConv codes with an int32 bias."""
    o = w.shape[0]
    feeds = {
        "x": x,
        "x_scale": sx,
        "x_zero_point": zx,
        "w": w,
        "w_scale": sw if per_channel else sw[0],
        "w_zero_point": np.zeros(o, np.int8) if per_channel else np.int8(0),
        "y_scale": sy,
        "y_zero_point": zy,
        "B": bias,
    }
    return run_onnx_node("QLinearConv", feeds, ["y"], strides=list(stride), pads=list(pads), group=groups)[0]


def _half_even(acc, sx, sw, out_qp: QParams, axis):
    """accelsim's requant unit in ORT's mode (float_half_even)."""
    return requantize(acc, make_requant_params("float_half_even", sx, sw, out_qp), axis=axis).codes


@EDGE_SETTINGS
@given(
    m=_around(1, 9, M_EDGES),
    k=_around(1, 40, K_EDGES),
    n=_around(1, 9, N_EDGES),
    seed=st.integers(0, 2**32 - 1),
    per_column=st.booleans(),
    ties=st.sampled_from(TIE_SCALES),
    a_dtype=st.sampled_from([np.uint8, np.int8]),
)
@example(m=7, k=33, n=5, seed=3, per_column=True, ties=(0.5, 0.25, 0.25), a_dtype=np.uint8)
@example(m=383, k=257, n=65, seed=4, per_column=False, ties=(0.25, 0.375, 0.125), a_dtype=np.int8)
def test_qlinear_matmul(m, k, n, seed, per_column, ties, a_dtype):
    """QLinearMatMul == int GEMM + float_half_even requant (per tensor / per column, ties, saturation)."""
    rng = np.random.default_rng(seed)
    za, zy = _ints(rng, (), a_dtype), _ints(rng, (), a_dtype)
    a, b = _mixed(rng, (m, k), a_dtype, za, 0), _mixed(rng, (k, n), np.int8, 0, 1)
    sa, sb, sy = _scales(rng, ties, n, per_column)
    want = _ort_qlinear_matmul(a, b, za, zy, sa, sb, sy, per_column)
    out_qp = QParams(sy, int(zy), "uint8" if a_dtype == np.uint8 else "int8")
    np.testing.assert_array_equal(_half_even(int_gemm(a, b, a_zero_point=int(za)).values, sa, sb, out_qp, 1), want)


@EDGE_SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 4]),
    cpg=_around(1, 3, CPG_EDGES[:2]),
    opg=_around(1, 3, N_EDGES[:3]),
    depthwise=st.booleans(),
    hw=st.one_of(st.tuples(st.integers(3, 8), st.integers(3, 8)), st.just(HW_LARGE)),
    kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    pads=st.tuples(*[st.integers(0, 1)] * 4),
    per_channel=st.booleans(),
    ties=st.sampled_from(TIE_SCALES),
    seed=st.integers(0, 2**32 - 1),
)
@example(
    n=2,
    groups=1,
    cpg=29,
    opg=65,
    depthwise=False,
    hw=HW_LARGE,
    kernel=(3, 3),
    stride=(1, 1),
    pads=(1, 1, 0, 1),
    per_channel=True,
    ties=(0.5, 0.25, 0.25),
    seed=5,
)
def test_qlinear_conv(n, groups, cpg, opg, depthwise, hw, kernel, stride, pads, per_channel, ties, seed):
    """QLinearConv (per tensor, per channel, depthwise) == im2col GEMM + int32 bias + float_half_even."""
    rng = np.random.default_rng(seed)
    cpg, o = (1, groups) if depthwise else (cpg, groups * opg)
    geom = ConvGeometry.from_args(stride, pads, 1, groups)
    try:
        geom.output_size(*hw, *kernel)
    except ValueError:
        return
    zx, zy = _ints(rng, (), np.uint8), _ints(rng, (), np.uint8)
    x, w = _mixed(rng, (n, groups * cpg, *hw), np.uint8, zx, 0), _mixed(rng, (o, cpg, *kernel), np.int8, 0, 0)
    w[w == -128] = -127
    sx, sw, sy = _scales(rng, ties, o, per_channel)
    bias = _mixed_bias(rng, o)
    want = _ort_qlinear_conv(x, w, zx, zy, sx, sw, sy, bias, per_channel, stride, pads, groups)
    acc = int_conv2d(x, w, geom, x_zero_point=int(zx), bias=bias).values
    np.testing.assert_array_equal(_half_even(acc, sx, sw, QParams(sy, int(zy), "uint8"), 1), want)


@pytest.fixture
def four_threads():
    """The GEMM on 4 threads (whatever this machine has), so the split directions are fixed."""
    before = gemm_threads.threads()
    gemm_threads.set_threads(4)
    yield 4
    gemm_threads.set_threads(before)


# Per-channel tie scales: x 0.5, w 0.25 / 0.125 alternately, y 0.25 (multipliers 0.5 and 0.25).
TIE_X, TIE_Y = np.float32(0.5), np.float32(0.25)


def _tie_weight_scales(n):
    return np.where(np.arange(n) % 2 == 0, 0.25, 0.125).astype(np.float32)


@pytest.mark.parametrize("packed", [False, True], ids=["packs-b", "prepacked-b"])
@pytest.mark.parametrize(
    "m, k, n",
    [
        pytest.param(391, 261, 333, id="split-by-6-column-panels(tail-13)_2-row-blocks(tail-7)_k-261"),
        pytest.param(1153, 513, 63, id="split-by-193-row-panels(tail-1)_1-column-panel_k-513"),
    ],
)
def test_threaded_matmul_matches_ort(m, k, n, packed, four_threads):
    """MatMulInteger and QLinearMatMul on GEMMs of >= 2**25 MACs, which the kernel splits over threads:
    by column panels when there are at least as many as threads, else by row panels; B packed per call
    (each worker packs its panels) or prepacked. int8 A (the 128 * colsum correction), per-column tie
    scales: the case has in-range exact ties and saturations, and half away from zero fails on it."""
    assert m * k * n >= gemm_threads.PARALLEL_MIN_MACS
    rng = np.random.default_rng(m)
    za, zy = np.int8(-3), np.int8(5)
    a, b = _mixed(rng, (m, k), np.int8, za, 0), _mixed(rng, (k, n), np.int8, 0, 1)
    acc = int_gemm(a, PackedWeights.of(b) if packed else b, a_zero_point=int(za)).values
    np.testing.assert_array_equal(acc, run_onnx_node("MatMulInteger", {"A": a, "B": b, "a_zero_point": za}, ["Y"])[0])
    sb, out_qp = _tie_weight_scales(n), QParams(TIE_Y, int(zy), "int8")
    want = _ort_qlinear_matmul(a, b, za, zy, TIE_X, sb, TIE_Y, True)
    np.testing.assert_array_equal(_half_even(acc, TIE_X, sb, out_qp, 1), want)
    _assert_ties_decide(acc, TIE_X, sb, out_qp, want, 1)


@pytest.mark.parametrize(
    "x_shape, o, kernel, stride, pads",
    [
        pytest.param((2, 35, 22, 23), 130, 3, 1, (1, 1, 1, 1), id="3x3-k315-m1012-n130_split-by-rows"),
        pytest.param((2, 257, 20, 20), 200, 1, 1, (0, 0, 0, 0), id="1x1-k257-m800-n200_split-by-columns"),
    ],
)
def test_threaded_conv_matches_ort(x_shape, o, kernel, stride, pads, four_threads):
    """ConvInteger and QLinearConv on convolutions whose GEMM (>= 2**25 MACs) is split over threads,
    with rows, K and columns past the kernel's blocks: bit-exact, ties that separate the roundings."""
    rng = np.random.default_rng(o)
    zx, zy = np.uint8(121), np.uint8(130)
    x, w = _mixed(rng, x_shape, np.uint8, zx, 0), _mixed(rng, (o, x_shape[1], kernel, kernel), np.int8, 0, 0)
    w[w == -128] = -127
    geom = ConvGeometry.from_args(stride, pads, 1, 1)
    oh, ow = geom.output_size(*x_shape[2:], kernel, kernel)
    assert x_shape[0] * oh * ow * w[0].size * o >= gemm_threads.PARALLEL_MIN_MACS
    (want_acc,) = run_onnx_node(
        "ConvInteger", {"x": x, "w": w, "x_zero_point": zx}, ["y"], strides=[stride] * 2, pads=list(pads)
    )
    bias = _mixed_bias(rng, o)
    acc = int_conv2d(x, w, geom, x_zero_point=int(zx), bias=bias).values
    np.testing.assert_array_equal(acc, want_acc + bias[None, :, None, None])
    sw, out_qp = _tie_weight_scales(o), QParams(TIE_Y, int(zy), "uint8")
    want = _ort_qlinear_conv(x, w, zx, zy, TIE_X, sw, TIE_Y, bias, True, (stride, stride), pads, 1)
    np.testing.assert_array_equal(_half_even(acc, TIE_X, sw, out_qp, 1), want)
    _assert_ties_decide(acc, TIE_X, sw, out_qp, want, 1)


def _tflite_rescale(acc: np.ndarray, multiplier: float, single_rounding: bool) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (numerics_refs' scalar transcriptions) over int64 arrays,
    for int32 accumulators and a multiplier below 1 (shift <= 0)."""
    m0, shift = tfl_quantize_multiplier(multiplier)
    assert shift <= 0
    prod = acc.astype(np.int64) * m0
    if single_rounding:
        return (prod + (1 << (30 - shift))) >> (31 - shift)
    total = prod + np.where(prod >= 0, 1 << 30, 1 - (1 << 30))  # SaturatingRoundingDoublingHighMul
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C's '/' truncates toward zero
    mask = (1 << -shift) - 1  # RoundingDivideByPOT
    return (high >> -shift) + ((high & mask) > (mask >> 1) + (high < 0))


def _tflite_codes(acc2d: np.ndarray, multipliers: np.ndarray, zero_point: int, single_rounding: bool) -> np.ndarray:
    """int8 codes of ``[rows, channels]`` accumulators, one multiplier per channel."""
    out = np.empty(acc2d.shape, np.int64)
    for mult in np.unique(multipliers):
        cols = multipliers == mult
        out[:, cols] = _tflite_rescale(acc2d[:, cols], float(mult), single_rounding)
    return np.clip(out + zero_point, -128, 127)


@pytest.mark.parametrize(
    "kind, x_shape, o, conv",
    [
        pytest.param("linear", (130, 129), 2100, {}, id="linear-3-chunks-of-60-rows_split-by-33-column-panels"),
        pytest.param("linear", (8400, 64), 63, {}, id="linear-1-column-panel_split-by-rows_2076-row-chunks"),
        pytest.param(
            "conv2d",
            (2, 29, 20, 20),
            320,
            {"kernel": 3, "stride": 1, "padding": 1},
            id="conv3x3-patches-into-a-rows_k261_2-chunks",
        ),
        pytest.param(
            "conv2d", (2, 257, 20, 20), 65, {"kernel": 1, "stride": 2, "padding": 0}, id="conv1x1-stride2-k257-n65"
        ),
    ],
)
def test_requant_fused_gemm_matches_ort_accumulators(kind, x_shape, o, conv, four_threads):
    """run_static_codes(keep_accumulators=False): the accumulators go through the requant unit a scratch
    chunk at a time (vnni.requant_product), never stored as int32. Its codes equal TFLite's
    MultiplyByQuantizedMultiplier (transcribed) on ORT's MatMulInteger / ConvInteger accumulators plus
    the int32 bias. Power-of-two multipliers (2**-10, 2**-11) give exact ties: tflite_single would fail."""
    rng = np.random.default_rng(o)
    zx, zy, sx, sy = 120, 3, np.float32(2.0**-4), np.float32(8.0)
    sw = np.where(np.arange(o) % 2 == 0, 2.0**-3, 2.0**-4).astype(np.float32)
    xq = _mixed(rng, x_shape, np.uint8, zx, 0)
    kernel = conv.get("kernel")
    wq = _ints(rng, (o, x_shape[1], kernel, kernel) if conv else (o, x_shape[1]), np.int8)
    bias_q = rng.integers(-5000, 5000, o)
    res = run_static_codes(
        kind,
        xq,
        QParams(sx, zx, "uint8"),
        QuantizedWeight(wq, QParams(sw, np.zeros(o, np.int32), "int8", axis=0)),
        (bias_q * (sx * sw)).astype(np.float32),
        QParams(sy, zy, "int8"),
        requant_mode="tflite",
        keep_accumulators=False,
        geometry=ConvGeometry.from_args(conv["stride"], conv["padding"]) if conv else None,
    )
    if conv:
        (acc,) = run_onnx_node(
            "ConvInteger",
            {"x": xq, "w": wq, "x_zero_point": np.uint8(zx)},
            ["y"],
            strides=[conv["stride"]] * 2,
            pads=[conv["padding"]] * 4,
        )
        acc2d, got = (
            acc.transpose(0, 2, 3, 1).reshape(-1, o),
            res.tensors["output_q"].values.transpose(0, 2, 3, 1).reshape(-1, o),
        )
    else:
        (acc2d,) = run_onnx_node(
            "MatMulInteger", {"A": xq, "B": np.ascontiguousarray(wq.T), "a_zero_point": np.uint8(zx)}, ["Y"]
        )
        got = res.tensors["output_q"].values
    acc2d = acc2d.astype(np.int64) + bias_q
    multipliers = np.float64(sx) * sw.astype(np.float64) / np.float64(sy)
    sample = np.concatenate([acc2d[:50, 0], [-(2**31), 2**31 - 1, -512, -513, 512, 1536, -1536]])
    for single in (False, True):  # the vectorized transcription equals the scalar one
        m0, shift = tfl_quantize_multiplier(float(multipliers[0]))
        scalar = tfl_multiply_by_quantized_multiplier_single if single else tfl_multiply_by_quantized_multiplier
        assert _tflite_rescale(sample, float(multipliers[0]), single).tolist() == [
            scalar(int(v), m0, shift) for v in sample
        ]
    want = _tflite_codes(acc2d, multipliers, zy, False)
    np.testing.assert_array_equal(got, want)
    if vnni.AVAILABLE:
        assert "acc" not in res.tensors  # the fused path ran
    assert res.requant_saturations > 0
    assert np.any(_tflite_codes(acc2d, multipliers, zy, True) != want), "tflite_single would pass too"


# DynamicQuantizeLinear takes scale (61.125 + 2.625) / 255 = 0.25 exactly from these, a zero point from
# -min / scale = 10.5 (a tie), and every other x / scale is k + 0.5: a tie for each code.


def _half_away_codes(x, qp: QParams) -> np.ndarray:
    """``x`` quantized with ORT's parameters but std::round (half away from zero): the wrong rounding."""
    return quantize_tensor(x, qp, RULES["tflite"])[0]


def _assert_dynamic_quantize_linear(x):
    """DynamicQuantizeLinear in ORT and the onnx flavour: same scale, zero point and codes; returns them."""
    y, ys, yz = run_onnx_node("DynamicQuantizeLinear", {"x": x}, ["y", "ys", "yz"], opset=13)
    q, qp = dynamic_quantize(x.reshape(1, -1), "onnx")
    assert qp.scale[0] == ys and qp.zero_point[0] == yz
    np.testing.assert_array_equal(q.reshape(x.shape), y)
    return y, qp


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 7), st.integers(1, 33)),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from([1e-3, 1.0, 100.0]),
    sign=st.sampled_from([-1, 0, 1]),
)
def test_dynamic_quantize_linear(shape, seed, spread, sign):
    """DynamicQuantizeLinear: same scale, zero point and codes (incl. all-positive / all-negative inputs)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * spread).astype(np.float32)
    _assert_dynamic_quantize_linear(np.abs(x) * sign if sign else x)


def test_dynamic_quantize_linear_ties():
    """Exact ties in the zero point and in every code: ORT rounds them to even, half away would not.
    (DynamicQuantizeLinear cannot saturate: the range is the input's.)"""
    y, qp = _assert_dynamic_quantize_linear(TIE_ACTIVATIONS)
    assert qp.scale[0] == 0.25 and np.all((TIE_ACTIVATIONS / qp.scale[0]) % 1 == 0.5)
    assert np.any(_half_away_codes(TIE_ACTIVATIONS, qp) != y)


@SETTINGS
@given(
    size=st.integers(2, 64),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.5, 0.25, 0.375, 0.0173]),
    dtype=st.sampled_from(["int8", "uint8"]),
    ties=st.booleans(),
)
@example(size=35, seed=2913, scale=0.5, dtype="int8", ties=True)  # all but four ties saturated
@example(size=64, seed=0, scale=0.375, dtype="uint8", ties=True)
@example(size=64, seed=1, scale=0.5, dtype="int8", ties=True)
def test_quantize_dequantize_linear(size, seed, scale, dtype, ties):
    """QuantizeLinear (x / s, half to even, saturate) and DequantizeLinear. With 32 or more exact ties
    (+-700 steps: most saturate, and +-s/2, of which one always lands in range whatever the zero point)
    half away from zero must give other codes."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(-700, 700, size) + 0.5) * scale if ties else rng.normal(size=size) * 200 * scale).astype(
        np.float32
    )
    if ties:
        x[:2] = np.float32(0.5 * scale), np.float32(-0.5 * scale)
    npd = np.int8 if dtype == "int8" else np.uint8
    zp = _ints(rng, (), npd)
    qp = QParams(np.float32(scale), int(zp), dtype)
    (want,) = run_onnx_node("QuantizeLinear", {"x": x, "s": np.float32(scale), "z": zp}, ["y"])
    got, clamped = quantize_tensor(x, qp, RULES["onnx"])
    np.testing.assert_array_equal(got, want)
    if ties and size >= 32:
        assert clamped > 0 and np.any(_half_away_codes(x, qp) != want)
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


def _dynamic_output(q, qp: QParams, wq, ws, bias):
    """The dynamic linear output from codes ``q`` (``[M, K]``) and int8 ``wq`` (``[K, N]``)."""
    return scale_accumulator(int_gemm(q, wq, a_zero_point=int(qp.zero_point[0])).values, qp.scale[0], ws, bias, axis=1)


def _assert_dynamic_graph(x, n, per_column, rng):
    """ORT quantize_dynamic's graph (DQL, MatMulInteger, Cast, Mul, Add) == layer API, flavour onnx:
    the quantized input and the output. Returns (ORT's output, the layer's result, int8 [K, N] weights, ws, bias)."""
    w = (rng.normal(size=(n, x.shape[1])) * 0.1).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    res = run_layer(
        "linear",
        x,
        w,
        bias,
        quantization=Quantization(
            scheme="dynamic", flavour="onnx", weight_granularity="per_channel" if per_column else "per_tensor"
        ),
    )
    wq = res.tensors["weight_q"]
    ws = wq.qparams.scale if per_column else wq.qparams.scale[0]
    w_kn = np.ascontiguousarray(wq.values.T)
    want, xq = run_onnx_graph(_dynamic_matmul_graph(), {"x": x}, {"w": w_kn, "ws": ws, "b": bias}, ["y", "xq"])
    np.testing.assert_array_equal(res.tensors["input_q"].values, xq)
    np.testing.assert_array_equal(res.output, want)
    return want, res, w_kn, ws, bias


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    per_column=st.booleans(),
)
@example(m=7, k=33, n=5, seed=0, per_column=False)
def test_dynamic_onnx_flavour_float_output(m, k, n, seed, per_column):
    """ORT quantize_dynamic's graph (DQL, MatMulInteger, Cast, Mul, Add) == layer API, flavour onnx."""
    rng = np.random.default_rng(seed)
    _assert_dynamic_graph((rng.normal(size=(m, k)) * 2).astype(np.float32), n, per_column, rng)


@pytest.mark.parametrize("per_column", [False, True])
def test_dynamic_onnx_flavour_ties(per_column):
    """The same graph on an input whose every code is an exact tie: equal, and half away from zero
    would change the quantized input and the output."""
    want, res, w_kn, ws, bias = _assert_dynamic_graph(TIE_ACTIVATIONS, 7, per_column, np.random.default_rng(7))
    qp = res.tensors["input_q"].qparams
    away = _half_away_codes(TIE_ACTIVATIONS, qp)
    assert np.any(away != res.tensors["input_q"].values)
    assert max_ulp_diff(_dynamic_output(away, qp, w_kn, ws, bias), want) > 0


def test_dynamic_quantize_matmul_contrib_ulps():
    """ORT's fused com.microsoft DynamicQuantizeMatMul: measured against the unfused formula, incl. an
    input of exact ties on which half-away-from-zero quantization differs."""
    rng = np.random.default_rng(11)
    worst = 0
    inputs = [(rng.normal(size=(m, k)) * 2).astype(np.float32) for m, k in [(7, 33), (16, 64), (3, 300)]] + [
        TIE_ACTIVATIONS
    ]
    for x, n in zip(inputs, [5, 24, 17, 9]):
        wq = rng.integers(-127, 128, (x.shape[1], n)).astype(np.int8)
        ws, bias = np.float32(0.01), rng.normal(size=n).astype(np.float32)
        (want,) = run_onnx_node(
            "DynamicQuantizeMatMul",
            {"A": x, "B": wq, "b_scale": ws, "b_zero_point": np.int8(0), "bias": bias},
            ["Y"],
            domain="com.microsoft",
        )
        q, qp = dynamic_quantize(x, "onnx")
        worst = max(worst, max_ulp_diff(_dynamic_output(q, qp, wq, ws, bias), want))
    assert worst == 0, f"DynamicQuantizeMatMul differs by up to {worst} ulp"
    assert max_ulp_diff(_dynamic_output(_half_away_codes(x, qp), qp, wq, ws, bias), want) > 0


def _assert_static_conv(x, w, b, groups, activation, **qparams):
    """run_layer(static, float_half_even) conv (stride 2, padding 1) == ORT: its input codes ==
    QuantizeLinear, its output == QLinearConv fed the layer's tensors. Returns (result, ORT's codes)."""
    res = run_layer(
        "conv2d",
        x,
        w,
        b,
        activation=activation,
        quantization=Quantization(scheme="static", requant_mode="float_half_even"),
        geometry=ConvGeometry.from_args(stride=2, padding=1, groups=groups),
        prepared=Prepared(**qparams),
    )
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    (xq,) = run_onnx_node("QuantizeLinear", {"x": x, "s": iq.scale[0], "z": np.uint8(iq.zero_point[0])}, ["y"])
    np.testing.assert_array_equal(t["input_q"].values, xq)
    want = _ort_qlinear_conv(
        xq,
        wq.values,
        np.uint8(iq.zero_point[0]),
        np.uint8(oq.zero_point[0]),
        iq.scale[0],
        wq.qparams.scale,
        oq.scale[0],
        t["bias_q"].values,
        True,
        (2, 2),
        (1, 1, 1, 1),
        groups,
    )
    if activation == "relu":
        want = np.maximum(want, np.uint8(oq.zero_point[0]))
    np.testing.assert_array_equal(t["output_q"].values, want)
    return res, want


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), depthwise=st.booleans(), relu=st.booleans())
def test_static_layer_matches_qlinear_conv(seed, depthwise, relu):
    """run_layer(static, float_half_even) conv == QuantizeLinear + QLinearConv fed the layer's own tensors."""
    rng = np.random.default_rng(seed)
    groups = 3 if depthwise else 1
    x = rng.normal(size=(1, 3, 7, 6)).astype(np.float32)
    w = (rng.normal(size=(6 if not depthwise else 3, 1 if depthwise else 3, 3, 3)) * 0.3).astype(np.float32)
    _assert_static_conv(x, w, rng.normal(size=w.shape[0]).astype(np.float32), groups, "relu" if relu else None)


@pytest.mark.parametrize("depthwise", [False, True])
def test_static_layer_ties_match_qlinear_conv(depthwise):
    """The layer on power-of-two parameters: inputs on k + 0.5 steps of s_x = 0.25 (a tie each; a few
    far beyond the range: input saturation), weights whose per-channel scale is 2**-7 exactly, integer
    bias, s_y = 2**-4, so acc * 2**-5 ties in range and saturates. The tflite mode (half away from
    zero in the input quantization and the requant unit) must mismatch ORT."""
    rng = np.random.default_rng(3)
    groups, o, cpg = (8, 8, 1) if depthwise else (1, 16, 8)
    x = ((rng.integers(-6, 6, (2, 8, 16, 16)) + 0.5) * 0.25).astype(np.float32)
    x[0, :, 0] = 60.125  # beyond the uint8 range of s_x 0.25, zero point 128
    codes = rng.integers(-127, 128, (o, cpg, 3, 3))
    codes[:, 0, 0, 0] = 127  # max |w| = 127 * 2**-7 in every channel
    w = (codes * 2.0**-7).astype(np.float32)
    b = (rng.integers(-40, 40, o) * 2.0**-9).astype(np.float32)
    qparams = {
        "input_qparams": QParams(np.float32(0.25), 128, "uint8"),
        "output_qparams": QParams(np.float32(2.0**-4), 128, "uint8"),
    }
    res, want = _assert_static_conv(x, w, b, groups, None, **qparams)
    t = res.tensors
    _assert_ties_decide(
        t["acc"].values, t["input_q"].qparams.scale[0], t["weight_q"].qparams.scale, t["output_q"].qparams, want, 1
    )
    swapped = run_layer(
        "conv2d",
        x,
        w,
        b,
        quantization=Quantization(scheme="static", requant_mode="tflite"),
        geometry=ConvGeometry.from_args(stride=2, padding=1, groups=groups),
        prepared=Prepared(**qparams),
    )
    assert np.any(swapped.tensors["output_q"].values != want)
