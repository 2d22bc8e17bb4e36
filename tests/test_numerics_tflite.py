"""Bit-exactness against TFLite's reference kernels, transcribed step by step in this file.

The transcriptions (and numerics_refs' gemmlowp helpers) follow tensorflow/lite/kernels/internal:
reference_integer_ops::ConvPerChannel / FullyConnected, reference_ops::AffineQuantize, and
portable_tensor_utils (hybrid kernels). They never call accelsim; the layer API is run on the same
float inputs and its intermediates are compared. Every comparison has a tie-forcing case: weights
``n * 2**-4`` with a 127 in each channel (so ``s_w = 2**-4`` exactly) and power-of-two activation
scales, which put ``acc * M`` on exact halves.
"""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numerics_refs import (
    INT32_MAX,
    INT32_MIN,
    PRODUCT_ROUNDS_ONTO_TIE,
    tfl_fully_connected_requant,
    tfl_multiply_by_quantized_multiplier,
    tfl_multiply_by_quantized_multiplier_single,
    tfl_quantize_multiplier,
    tfl_round,
)

from accelsim.quant import ConvGeometry, Prepared, QParams, Quantization, run_layer

SETTINGS = settings(max_examples=20, deadline=None)
TIE_INPUT, TIE_OUTPUT = QParams(np.float32(2.0), 1, "int8"), QParams(np.float32(0.5), -5, "int8")  # M = 2 * 2**-4 / 0.5


def tie_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 weights ``n * 2**-4``, ``|n| <= 4`` but one 127 per output channel: ``s_w = 127 * 2**-4 / 127 = 2**-4``
    exactly, so with TIE_INPUT / TIE_OUTPUT the requant multiplier is 0.25 and one accumulator in four is a tie."""
    n = rng.integers(-4, 5, shape)
    n.reshape(shape[0], -1)[:, 0] = 127
    return (n * 2.0**-4).astype(np.float32)


def exact_ties(acc: np.ndarray, multiplier: float) -> int:
    """Accumulators whose ``acc * multiplier`` (exact in float64 for a power of two) is a half."""
    v = acc.astype(np.float64) * multiplier
    return int((v - np.floor(v) == 0.5).sum())


def tfl_affine_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """reference_ops::AffineQuantize to int8: round(val / float(scale)) + zero_point, clamped."""
    out = np.empty(x.shape, np.int8)
    for idx, val in np.ndenumerate(x.astype(np.float32)):
        unclamped = tfl_round(float(np.float32(val) / np.float32(scale))) + zero_point
        out[idx] = min(max(unclamped, -128), 127)
    return out


def tfl_conv_per_channel(
    x_q,
    w_q,
    bias_q,
    input_offset,
    output_offset,
    multipliers,
    shifts,
    stride,
    pad,
    dilation,
    groups,
    act_min,
    act_max,
    single,
):
    """reference_integer_ops::ConvPerChannel (NCHW indexing, grouped like DepthwiseConv's depth multiplier)."""
    mbqm = tfl_multiply_by_quantized_multiplier_single if single else tfl_multiply_by_quantized_multiplier
    batches, _in_depth, in_h, in_w = x_q.shape
    out_depth, filt_depth, fh, fw = w_q.shape
    pt, pl = pad
    oh = (in_h + 2 * pt - dilation[0] * (fh - 1) - 1) // stride[0] + 1
    ow = (in_w + 2 * pl - dilation[1] * (fw - 1) - 1) // stride[1] + 1
    per_group = out_depth // groups
    out = np.empty((batches, out_depth, oh, ow), np.int8)
    for b in range(batches):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(out_depth):
                    g = oc // per_group
                    acc = 0
                    for ic in range(filt_depth):
                        for fy in range(fh):
                            for fx in range(fw):
                                iy = oy * stride[0] - pt + dilation[0] * fy
                                ix = ox * stride[1] - pl + dilation[1] * fx
                                if 0 <= iy < in_h and 0 <= ix < in_w:  # is_point_inside_image
                                    acc += int(w_q[oc, ic, fy, fx]) * (
                                        int(x_q[b, g * filt_depth + ic, iy, ix]) + input_offset
                                    )
                    acc += int(bias_q[oc])
                    acc = mbqm(acc, int(multipliers[oc]), int(shifts[oc]))
                    acc += output_offset
                    out[b, oc, oy, ox] = min(max(acc, act_min), act_max)
    return out


def _tflite_multipliers(s_x: float, s_w: np.ndarray, s_y: float, single: bool):
    """PopulateConvolutionQuantizationParams: effective scale in double, then QuantizeMultiplier."""
    pairs = []
    for w in s_w:
        real = float(np.float32(s_x)) * float(np.float32(w)) / float(np.float32(s_y))
        m, s = tfl_quantize_multiplier(real)
        if single and s > 30:
            m, s = (1 << 31) - 1, 30
        pairs.append((m, s))
    return [p[0] for p in pairs], [p[1] for p in pairs]


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    depthwise=st.booleans(),
    single=st.booleans(),
    activation=st.sampled_from([None, "relu", "relu6"]),
    stride=st.sampled_from([(1, 1), (2, 2), (2, 1)]),
    dilation=st.sampled_from([(1, 1), (2, 2)]),
    ties=st.booleans(),
)
def test_static_conv_matches_tflite_reference(seed, depthwise, single, activation, stride, dilation, ties):
    """run_layer(static, tflite / tflite_single) conv == ConvPerChannel on the same quantized tensors."""
    rng = np.random.default_rng(seed)
    c = 3
    groups = c if depthwise else 1
    x = rng.normal(size=(1, c, 7, 6)).astype(np.float32)
    w_shape = (6, 1 if depthwise else c, 3, 3)
    w = tie_weights(rng, w_shape) if ties else (rng.normal(size=w_shape) * 0.3).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    in_qp, out_qp = (TIE_INPUT, TIE_OUTPUT) if ties else (None, None)
    res = run_layer(
        "conv2d",
        x,
        w,
        b,
        activation=activation,
        quantization=Quantization(scheme="static", requant_mode="tflite_single" if single else "tflite"),
        geometry=ConvGeometry.from_args(stride=stride, padding=1, dilation=dilation, groups=groups),
        prepared=Prepared(input_qparams=in_qp, output_qparams=out_qp),
    )
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    np.testing.assert_array_equal(t["input_q"].values, tfl_affine_quantize(x, iq.scale[0], int(iq.zero_point[0])))
    mults, shifts = _tflite_multipliers(iq.scale[0], wq.qparams.scale, oq.scale[0], single)
    zy = int(oq.zero_point[0])
    act_min, act_max = -128, 127
    if activation is not None:
        act_min = max(act_min, zy)
    if activation == "relu6":
        act_max = min(act_max, zy + tfl_round(float(np.float32(6.0) / oq.scale[0])))
    want = tfl_conv_per_channel(
        t["input_q"].values,
        wq.values,
        t["bias_q"].values,
        -int(iq.zero_point[0]),
        zy,
        mults,
        shifts,
        stride,
        (1, 1),
        dilation,
        groups,
        act_min,
        act_max,
        single,
    )
    np.testing.assert_array_equal(t["output_q"].values, want)
    if ties and not depthwise:  # the tie-forcing case does force ties
        assert exact_ties(t["acc"].values, 0.25) > 0


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(),
    mode=st.sampled_from(["tflite", "tflite_float64"]),
    ties=st.booleans(),
)
@example(m=7, k=33, n=5, seed=0, per_channel=True, mode="tflite_float64", ties=True)
@example(m=7, k=33, n=5, seed=0, per_channel=False, mode="tflite", ties=True)
def test_static_fully_connected_matches_tflite_reference(m, k, n, seed, per_channel, mode, ties):
    """reference_integer_ops::FullyConnected(PerChannel): acc = sum w * (x + in_offset) + bias, requantized
    by TF 2.21's reference (float scales, ``round(double(acc) * scale)``: ``tflite_float64``) or by the
    integer MultiplyByQuantizedMultiplier of TFLite's other FC kernels (``tflite``)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, k)).astype(np.float32)
    w = tie_weights(rng, (n, k)) if ties else (rng.normal(size=(n, k)) * 0.2).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    in_qp, out_qp = (TIE_INPUT, TIE_OUTPUT) if ties else (None, None)
    res = run_layer(
        "linear",
        x,
        w,
        b,
        quantization=Quantization(
            scheme="static", requant_mode=mode, weight_granularity="per_channel" if per_channel else "per_tensor"
        ),
        prepared=Prepared(input_qparams=in_qp, output_qparams=out_qp),
    )
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    w_scales = np.broadcast_to(wq.qparams.scale, (n,))
    mults, shifts = _tflite_multipliers(iq.scale[0], w_scales, oq.scale[0], False)
    accs, want = np.empty((m, n), np.int64), np.empty((m, n), np.int8)
    for i in range(m):
        for o in range(n):
            acc = sum(int(wq.values[o, j]) * (int(t["input_q"].values[i, j]) - int(iq.zero_point[0])) for j in range(k))
            accs[i, o] = acc = acc + int(t["bias_q"].values[o])
            if mode == "tflite_float64":
                acc = tfl_fully_connected_requant(acc, iq.scale[0], w_scales[o], oq.scale[0], int(oq.zero_point[0]))
            else:
                acc = tfl_multiply_by_quantized_multiplier(acc, mults[o], shifts[o]) + int(oq.zero_point[0])
            want[i, o] = min(max(acc, -128), 127)
    np.testing.assert_array_equal(t["output_q"].values, want)
    if ties and m * n >= 35:
        assert exact_ties(accs, 0.25) > 0


def tfl_asymmetric_quantize_floats(values: np.ndarray):
    """PortableAsymmetricQuantizeFloats: (int8 codes, float scaling_factor, int offset).

    ``rmin``/``rmax`` are floats: their difference is a float32 subtraction (as in TF 2.21's build).
    """
    rmin = min(np.float32(0.0), values.min())
    rmax = max(np.float32(0.0), values.max())
    if rmin == rmax:
        return np.zeros(values.shape, np.int8), np.float32(1.0), 0
    qmin_double, qmax_double = -128.0, 127.0
    scale = float(np.float32(rmax - rmin)) / (qmax_double - qmin_double)
    rmin, rmax = float(rmin), float(rmax)
    zero_point_from_min = qmin_double - rmin / scale
    zero_point_from_max = qmax_double - rmax / scale
    zero_point_from_min_error = abs(qmin_double) + abs(rmin / scale)
    zero_point_from_max_error = abs(qmax_double) + abs(rmax / scale)
    zero_point_double = (
        zero_point_from_min if zero_point_from_min_error < zero_point_from_max_error else zero_point_from_max
    )
    if zero_point_double <= qmin_double:
        nudged = -128
    elif zero_point_double >= qmax_double:
        nudged = 127
    else:
        nudged = tfl_round(zero_point_double)
    scaling_factor = np.float32(scale)
    scaling_factor_inv = np.float32(1.0) / scaling_factor
    q = np.empty(values.shape, np.int8)
    for i, v in enumerate(values):
        q[i] = min(127, max(-128, tfl_round(float(np.float32(nudged) + v * scaling_factor_inv))))
    return q, scaling_factor, nudged


def tfl_symmetric_quantize_floats(values: np.ndarray):
    """PortableSymmetricQuantizeFloats: (codes, scaling_factor), offset 0."""
    rng_ = max(abs(float(values.min())), abs(float(values.max())))
    if rng_ == 0:
        return np.zeros(values.shape, np.int8), np.float32(1.0)
    scaling_factor = np.float32(np.float32(rng_) / np.float32(127))
    inv = np.float32(127) / np.float32(rng_)
    return np.array([min(127, max(-127, tfl_round(float(v * inv)))) for v in values], np.int8), scaling_factor


@SETTINGS
@given(
    m=st.integers(1, 6),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(),
    asymmetric=st.booleans(),
    spread=st.sampled_from([1e-3, 1.0, 50.0]),
)
@example(m=7, k=33, n=5, seed=0, per_channel=True, asymmetric=True, spread=1.0)
def test_hybrid_fully_connected_matches_tflite_reference(m, k, n, seed, per_channel, asymmetric, spread):
    """Hybrid FULLY_CONNECTED: per-row input quantization, int32 dot products, float output."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(m, k)) * spread).astype(np.float32)
    w = (rng.normal(size=(n, k)) * 0.2).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    res = run_layer(
        "linear",
        x,
        w,
        b,
        quantization=Quantization(
            scheme="dynamic",
            flavour="tflite" if asymmetric else "tflite_symmetric",
            weight_granularity="per_channel" if per_channel else "per_tensor",
        ),
    )
    wq = res.tensors["weight_q"]
    filter_scales = np.broadcast_to(wq.qparams.scale, (n,))
    row_sums = wq.values.astype(np.int64).sum(axis=1)  # PortableReductionSumVector
    want = np.empty((m, n), np.float32)
    for batch in range(m):
        if asymmetric:
            q, sf, offset = tfl_asymmetric_quantize_floats(x[batch])
        else:
            (q, sf), offset = tfl_symmetric_quantize_floats(x[batch]), 0
        for row in range(n):
            dotprod = int(np.dot(wq.values[row].astype(np.int64), q.astype(np.int64)))
            dotprod = int(np.float32(dotprod) - np.float32(row_sums[row]) * np.float32(offset))  # int -= float
            scale = np.float32(sf * filter_scales[row])
            want[batch, row] = np.float32(b[row]) + np.float32(np.float32(dotprod) * scale)
    np.testing.assert_array_equal(res.output, want)


@settings(max_examples=60, deadline=None)
@given(
    real=st.sampled_from([0.5, 0.25, 0.375, 0.75, 1.5, 2.0**-9, 3.0]),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["tflite", "tflite_single", "tflite_float64"]),
    zp=st.integers(-10, 10),
)
def test_requant_ties_match_tflite(real, seed, mode, zp):
    """Exact ties (odd accumulators times 0.5, ...) round like MultiplyByQuantizedMultiplier (both builds)
    or the reference FULLY_CONNECTED's ``round(double(acc) * scale)``, through the element loop (one
    channel) and the 16-lane kernel (16 channels of the same scale)."""
    from accelsim.quant import make_requant_params, requantize

    rng = np.random.default_rng(seed)
    acc = np.concatenate(
        [rng.integers(-4000, 4000, 64), rng.integers(INT32_MIN, INT32_MAX + 1, 14), [INT32_MIN, INT32_MAX]]
    )
    out = QParams(np.float32(1.0), zp, "int8")
    rq = make_requant_params(mode, np.float32(real), np.float32(1.0), out)
    m, s = tfl_quantize_multiplier(real)
    if mode == "tflite_float64":
        raw = [tfl_fully_connected_requant(int(a), real, 1.0, 1.0, zp) for a in acc]
    else:
        mbqm = (
            tfl_multiply_by_quantized_multiplier_single
            if mode == "tflite_single"
            else tfl_multiply_by_quantized_multiplier
        )
        raw = [mbqm(int(a), m, s) + zp for a in acc]
    for channels in (1, 16):
        got, sats, _, _ = requantize(acc.astype(np.int32).reshape(-1, channels), rq, axis=1)
        np.testing.assert_array_equal(got.reshape(-1), np.clip(raw, -128, 127))
        assert sats == sum(1 for r in raw if r < -128 or r > 127)
    assert exact_ties(acc[:64], real) > 0 or real not in (0.5, 0.25, 0.75, 1.5)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    channels=st.sampled_from([1, 5, 16, 37]),
    zp=st.integers(-128, 127),
    activation=st.sampled_from([None, "relu", "relu6"]),
    channels_last=st.booleans(),
)
@example(seed=0, channels=16, zp=-2, activation=None, channels_last=True)
def test_float64_requant_matches_fully_connected_reference(seed, channels, zp, activation, channels_last):
    """``tflite_float64`` per channel on random scales, exact ties, double-product near ties and int32
    extremes (out-of-range conversion, wrapping ``+ z_y``) equals the transcribed reference, in the
    16-lane kernel (channels last, 16+ channels), the element loop, and ``requant_region`` run on
    ``RequantParams.lanes()`` (what the fused array -> requant path would run); saturations counted alike."""
    from accelsim.kernels.requant import requant_region
    from accelsim.quant import make_requant_params, requantize

    rng = np.random.default_rng(seed)
    s_x, s_y = np.float32(2.0 ** -int(rng.integers(4, 12))), np.float32(rng.choice([1.0, 0.75, 2.0**-3, 12.0]))
    s_w = rng.uniform(2.0**-14, 2.0**-6, channels).astype(np.float32)
    s_w[: channels // 3] = np.float32(0.5 * s_y / s_x)  # multiplier 0.5: every odd accumulator a tie
    near = PRODUCT_ROUNDS_ONTO_TIE[int(rng.integers(len(PRODUCT_ROUNDS_ONTO_TIE)))]
    s_w[-1] = np.float32(near[1] * 2.0**-47 * s_y / s_x)
    acc = rng.integers(-5000, 5000, (9, channels))
    acc[0] = rng.integers(INT32_MIN, INT32_MAX + 1, channels)
    acc[1, -1], acc[2, -1], acc[3, 0], acc[4, 0] = near[2], -near[2], INT32_MIN, INT32_MAX
    out = QParams(s_y, zp, "int8")
    rq = make_requant_params("tflite_float64", s_x, s_w, out, activation=activation)
    raw = np.array(
        [[tfl_fully_connected_requant(int(a), s_x, s_w[c], s_y, zp) for c, a in enumerate(row)] for row in acc]
    )
    lo = zp if activation else -128
    hi = min(127, zp + tfl_round(float(np.float32(6.0) / s_y))) if activation == "relu6" else 127
    acc32 = acc.astype(np.int32)
    got, sats, _, _ = requantize(acc32 if channels_last else np.ascontiguousarray(acc32.T).T, rq, axis=1)
    np.testing.assert_array_equal(got, np.clip(raw, lo, hi))
    if activation is None:
        assert sats == int(((raw < -128) | (raw > 127)).sum())
    codes = np.empty(acc.shape, np.int8)  # the plan the array -> requant hand-off (vnni.requant_product) runs
    region = requant_region(
        acc32.reshape(-1), channels, codes.reshape(-1), channels, acc.shape[0], 0, channels, *rq.lanes()
    )
    np.testing.assert_array_equal(codes, got)
    assert region == (sats, acc.min(), acc.max())


def test_gemmlowp_helpers_at_the_int32_extremes() -> None:
    """The kernels' branch-free SaturatingRoundingDoublingHighMul and RoundingDivideByPOT equal the
    transcriptions on the edges: both INT32_MIN (the saturating case), +-1, 0 and every exponent."""
    from numerics_refs import tfl_rounding_divide_by_pot, tfl_srdhm

    from accelsim.kernels.requant import rounding_divide_by_pot, saturating_rounding_doubling_high_mul

    edges = [
        -(1 << 31),
        -(1 << 31) + 1,
        -(1 << 30),
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        (1 << 30),
        (1 << 31) - 1,
        123456789,
        -987654321,
    ]
    for a in edges:
        for b in edges:
            assert saturating_rounding_doubling_high_mul(a, b) == tfl_srdhm(a, b), (a, b)
        for exponent in range(32):
            assert rounding_divide_by_pot(a, exponent) == tfl_rounding_divide_by_pot(a, exponent), (a, exponent)
