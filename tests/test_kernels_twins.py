"""Every fast kernel against its slow numpy twin (accelsim.kernels.reference), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numerics_refs import tfl_multiply_by_quantized_multiplier, tfl_multiply_by_quantized_multiplier_single

from accelsim.kernels import (
    ConvGeometry,
    dequantize,
    exact_product,
    int_conv2d,
    int_gemm,
    quantize,
    requant_fixed_point,
    requant_float,
    row_minmax,
    scale_accumulator,
    vnni,
)
from accelsim.kernels import reference as ref
from accelsim.kernels import threads as gemm_threads
from accelsim.quant import quantize_multipliers

SETTINGS = settings(max_examples=40, deadline=None)


def _tflite_multiply(single_rounding: bool):
    """TFLite's MultiplyByQuantizedMultiplier (either build), transcribed in the tests, for the requant twin."""
    return tfl_multiply_by_quantized_multiplier_single if single_rounding else tfl_multiply_by_quantized_multiplier


def _ints(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=np.int64).astype(dtype)


def _weight_zero_point(rng: np.random.Generator, dtype, n: int, kind: str):
    """No weight zero point, a scalar, or one per column, anywhere in the dtype (extremes included)."""
    info = np.iinfo(dtype)
    if kind == "none":
        return 0
    zp = rng.choice(
        [info.min, info.max, int(rng.integers(info.min, info.max + 1))], n if kind == "per_column" else None
    )
    return np.asarray(zp) if kind == "per_column" else int(zp)


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    a_dtype=st.sampled_from([np.int8, np.uint8]),
    acc_bits=st.sampled_from([12, 16, 20, 32]),
    overflow=st.sampled_from(["wrap", "saturate"]),
    with_bias=st.booleans(),
    b_dtype=st.sampled_from([np.int8, np.uint8]),
    b_zp=st.sampled_from(["none", "scalar", "per_column"]),
)
@example(
    m=7, k=33, n=5, seed=0, a_dtype=np.uint8, acc_bits=32, overflow="wrap", with_bias=True, b_dtype=np.int8, b_zp="none"
)
@example(
    m=7,
    k=33,
    n=5,
    seed=1,
    a_dtype=np.int8,
    acc_bits=16,
    overflow="saturate",
    with_bias=True,
    b_dtype=np.int8,
    b_zp="none",
)
@example(
    m=7,
    k=33,
    n=5,
    seed=2,
    a_dtype=np.uint8,
    acc_bits=16,
    overflow="saturate",
    with_bias=True,
    b_dtype=np.uint8,
    b_zp="per_column",
)
def test_gemm_paths_match_reference(m, k, n, seed, a_dtype, acc_bits, overflow, with_bias, b_dtype, b_zp):
    """BLAS, VNNI and Numba paths equal the step-by-step twin, including wrap/saturate, overflow counts and
    weight zero points (each step adds ``(a - z_a) * (b - z_b[n])``, so saturation sees the same order)."""
    rng = np.random.default_rng(seed)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), b_dtype)
    zp = int(rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max + 1))
    zb = _weight_zero_point(rng, b_dtype, n, b_zp)
    bias = rng.integers(-(1 << (acc_bits - 2)), 1 << (acc_bits - 2), n) if with_bias else None
    want, want_ovf = ref.ref_int_gemm(a, b, zp, bias, acc_bits, overflow, zb)
    for method in ("blas", "numba") + (("vnni",) if vnni.AVAILABLE else ()):
        got = int_gemm(
            a, b, a_zero_point=zp, b_zero_point=zb, bias=bias, acc_bits=acc_bits, overflow=overflow, method=method
        )
        np.testing.assert_array_equal(got.values, want, err_msg=method)
        assert got.overflows == want_ovf, method


def test_exact_product_large_k_chunks():
    """K far beyond one float32-exact chunk (uint8 x int8 extremes) stays exact."""
    rng = np.random.default_rng(0)
    a = np.full((3, 5000), 255, np.uint8)
    a[1] = rng.integers(0, 256, 5000)
    b = np.full((5000, 4), -128, np.int8)
    b[:, 1] = rng.integers(-128, 128, 5000)
    np.testing.assert_array_equal(exact_product(a, b), a.astype(np.int64) @ b.astype(np.int64))


@pytest.mark.skipif(not vnni.AVAILABLE, reason="needs AVX512-VNNI")
@pytest.mark.parametrize(("m", "k", "n"), [(7, 33, 5), (385, 300, 130), (13, 4, 64), (1, 1030, 200)])
@pytest.mark.parametrize("a_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("b_dtype", [np.int8, np.uint8])
def test_vnni_paths_match_blas(m, k, n, a_dtype, b_dtype):
    """The VNNI kernel's tiling edges (row/column panels, K blocks, K not a multiple of 4) are exact, with
    and without per-column weight zero points (the rank-1 start-value term of every tile)."""
    rng = np.random.default_rng(m * k + n)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), b_dtype)
    if b_dtype == np.int8:
        np.testing.assert_array_equal(vnni.vnni_product(a, b), a.astype(np.int64) @ b.astype(np.int64))
    zb = _ints(rng, (n,), b_dtype)
    for z in (0, zb):
        np.testing.assert_array_equal(
            int_gemm(a, b, a_zero_point=3, b_zero_point=z, method="vnni").values,
            int_gemm(a, b, a_zero_point=3, b_zero_point=z, method="blas").values,
        )


@pytest.mark.skipif(not vnni.AVAILABLE, reason="needs AVX512-VNNI")
@SETTINGS
@given(
    m=st.integers(1, 1300),
    k=st.integers(1, 200),
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    a_dtype=st.sampled_from([np.int8, np.uint8]),
    single=st.booleans(),
    threads=st.sampled_from([1, 2]),
)
@example(m=2000, k=64, n=256, seed=0, a_dtype=np.int8, single=False, threads=1)  # several scratch chunks
def test_requant_product_equals_gemm_then_requant(m, k, n, seed, a_dtype, single, threads):
    """The GEMM handing its accumulators straight to the requant unit (scratch chunks kept in cache,
    column or row split over threads) gives the codes, saturations and accumulator range of the
    int32 GEMM followed by the requant pass, with a per-column weight zero point on odd seeds."""
    from accelsim.kernels.gemm import PackedWeights
    from accelsim.kernels.requant import lane_plan

    rng = np.random.default_rng(seed)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), np.int8)
    zb = rng.integers(-128, 128, n) if seed % 2 else None
    packed, offset = PackedWeights.of(b), rng.integers(-(2**20), 2**20, n)
    mult, shift = rng.integers(1 << 30, 1 << 31, n), rng.integers(-32 if single else -40, 4, n)
    zp = int(rng.integers(-20, 20))
    clamps = {"zero_point": zp, "act_min": zp, "act_max": 127, "sat_min": -(2**62), "sat_max": 127}  # a fused ReLU
    gemm_threads.set_threads(threads)
    try:
        acc = vnni.vnni_product(
            a, b, b_packed=packed.vnni_panels, b_col_sums=packed.col_sums, row_offset=offset, b_zero_point=zb
        )
        if zb is not None:
            np.testing.assert_array_equal(acc, a.astype(np.int64) @ (b.astype(np.int64) - zb) + offset)
        want = requant_fixed_point(acc, mult, shift, single_rounding=single, axis=1, out_dtype=np.int8, **clamps)
        plan = (mult, shift, *lane_plan(mult, shift, zp, zp, 127, -(2**62), 127, single))
        words = vnni.prepare_a(a)
        terms = vnni.zero_point_terms(words, m, k, 0, a.dtype, zb)
        got = vnni.requant_product(
            words, m, packed.vnni_panels, vnni.offset_row(n, a.dtype, packed.col_sums, offset), n, plan, np.int8, terms
        )
    finally:
        gemm_threads.set_threads(gemm_threads.CPUS)
    np.testing.assert_array_equal(got[0], want.codes)
    assert got[1:] == (want.saturations, want.acc_min, want.acc_max)


@pytest.mark.skipif(not vnni.AVAILABLE, reason="needs AVX512-VNNI")
@pytest.mark.parametrize(("m", "k", "n"), [(70, 64, 40), (33, 300, 130)])
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_requant_fused_equals_gemm_then_requant(m, k, n, threads):
    """ONNX Runtime's fp32 requant (``rint((float(acc) + bias_term) * scale)``) fused after the GEMM gives the
    codes, saturations and accumulator range of the int32 GEMM followed by :func:`requant_float` (checked
    against ORT in test_numerics_onnxruntime.py). Scales of 1/4 put a quarter of the outputs on exact .5
    ties (to even) and small operands send many below the zero point's code range (saturations)."""
    from accelsim.kernels.gemm import PackedWeights
    from accelsim.kernels.requant import FLOAT32, lane_plan

    rng = np.random.default_rng(m + k + n)
    a, b = rng.integers(0, 4, (m, k)).astype(np.uint8), rng.integers(-2, 3, (k, n)).astype(np.int8)
    packed, offset = PackedWeights.of(b), rng.integers(-40, 40, n)
    scale, bias_term = np.full(n, 0.25, np.float32), rng.integers(-8, 8, n).astype(np.float32)
    clamps = {"zero_point": 10, "act_min": 0, "act_max": 255, "sat_min": 0, "sat_max": 255}
    acc = a.astype(np.int64) @ b.astype(np.int64) + offset
    want = requant_float(acc.astype(np.int32), scale, bias_term=bias_term, axis=1, out_dtype=np.uint8, **clamps)
    real = (acc + bias_term) * scale + 10
    ties = np.count_nonzero((real % 1 == 0.5) & (real > 0) & (real < 255))  # ties the clamp leaves standing
    assert ties > m * n // 16 and want.saturations > m * n // 16
    mult, shift = scale.view(np.int32).astype(np.int64), bias_term.view(np.int32).astype(np.int64)
    plan = (mult, shift, *lane_plan(mult, shift, 10, 0, 255, 0, 255, FLOAT32))
    gemm_threads.set_threads(threads)
    try:
        words = vnni.prepare_a(a)
        row = vnni.offset_row(n, a.dtype, packed.col_sums, offset)
        got = vnni.requant_product(words, m, packed.vnni_panels, row, n, plan, np.uint8)
    finally:
        gemm_threads.set_threads(gemm_threads.CPUS)
    np.testing.assert_array_equal(got[0], want.codes)
    assert got[1:] == (want.saturations, want.acc_min, want.acc_max)


def test_wrapping_int32_accumulator_on_long_k():
    """K = 70000 of 255 * 127 overflows int32: all paths give the two's complement wrap and count it."""
    a = np.full((2, 70000), 255, np.uint8)
    b = np.full((70000, 3), 127, np.int8)
    exact = 70000 * 255 * 127
    wrapped = (exact + (1 << 31)) % (1 << 32) - (1 << 31)
    for method in ("blas",) + (("vnni",) if vnni.AVAILABLE else ()):
        res = int_gemm(a, b, method=method)
        assert (res.values == wrapped).all() and res.overflows == 6
    sat = int_gemm(a, b, overflow="saturate")
    assert (sat.values == (1 << 31) - 1).all() and sat.overflows == 6


@SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 3]),
    cpg=st.integers(1, 3),
    opg=st.integers(1, 3),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    seed=st.integers(0, 2**32 - 1),
    acc_bits=st.sampled_from([14, 32]),
    overflow=st.sampled_from(["wrap", "saturate"]),
    w_dtype=st.sampled_from([np.int8, np.uint8]),
    w_zp=st.sampled_from(["none", "scalar", "per_column"]),
)
def test_conv_matches_direct_reference(
    n, groups, cpg, opg, h, w, kh, kw, stride, dilation, pads, seed, acc_bits, overflow, w_dtype, w_zp
):
    """im2col + GEMM conv equals a direct convolution over a zero-point padded input, with weight zero
    points (scalar or per output channel, int8 or uint8 weights)."""
    rng = np.random.default_rng(seed)
    geom = ConvGeometry.from_args(stride, pads, dilation, groups)
    try:
        geom.output_size(h, w, kh, kw)
    except ValueError:
        return
    x = _ints(rng, (n, groups * cpg, h, w), np.uint8)
    wt = _ints(rng, (groups * opg, cpg, kh, kw), w_dtype)
    zp = int(rng.integers(0, 256))
    zw = _weight_zero_point(rng, w_dtype, groups * opg, w_zp)
    bias = rng.integers(-5000, 5000, groups * opg)
    want, want_ovf = ref.ref_int_conv2d(
        x,
        wt,
        stride=geom.stride,
        padding=geom.padding,
        dilation=geom.dilation,
        groups=groups,
        x_zero_point=zp,
        bias=bias,
        acc_bits=acc_bits,
        overflow=overflow,
        w_zero_point=zw,
    )
    got = int_conv2d(x, wt, geom, x_zero_point=zp, w_zero_point=zw, bias=bias, acc_bits=acc_bits, overflow=overflow)
    np.testing.assert_array_equal(got.values, want)
    assert got.overflows == want_ovf


@SETTINGS
@given(
    rows=st.integers(1, 6),
    ch=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
    single=st.booleans(),
    tie_scale=st.sampled_from([None, 0.5, 0.25, 0.375, 1.5, 3.0]),
    relu=st.booleans(),
)
def test_requant_fixed_point_matches_reference(rows, ch, seed, single, tie_scale, relu):
    """Fixed-point requant (both roundings) equals the Python-int twin, on ties and on saturation."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 31), 1 << 31, (rows, ch)) if seed % 3 == 0 else rng.integers(-3000, 3000, (rows, ch))
    reals = np.full(ch, tie_scale) if tie_scale else np.exp(rng.uniform(np.log(1e-6), np.log(2.0), ch))
    mult, shift = quantize_multipliers(reals, single_rounding=single)
    zp = int(rng.integers(-20, 20))
    act_min = zp if relu else -128
    want, want_sats = ref.ref_requant_fixed_point(
        acc, mult, shift, zp, act_min, 127, -128, 127, _tflite_multiply(single)
    )
    got, sats, _, _ = requant_fixed_point(
        acc,
        mult,
        shift,
        zero_point=zp,
        act_min=act_min,
        act_max=127,
        sat_min=-128,
        sat_max=127,
        single_rounding=single,
        axis=1,
    )
    np.testing.assert_array_equal(got, want)
    assert sats == want_sats


@SETTINGS
@given(
    rows=st.integers(1, 5),
    ch=st.integers(16, 50),
    seed=st.integers(0, 2**32 - 1),
    single=st.booleans(),
    out_dtype=st.sampled_from([np.int8, np.uint8]),
    activation=st.sampled_from([None, "relu", "relu6"]),
    values=st.sampled_from(["small", "int32", "extremes"]),
)
@example(rows=2, ch=17, seed=1, single=False, out_dtype=np.int8, activation=None, values="extremes")
def test_requant_lanes_match_reference(rows, ch, seed, single, out_dtype, activation, values):
    """The 16-lane requant kernel (channels-last int32 accumulators, 1-byte codes) equals the Python-int
    twin on every code and saturation, at the int32 extremes and INT32_MIN multipliers included, with
    every shift its lanes take, and reports the accumulators' range."""
    rng = np.random.default_rng(seed)
    if values == "extremes":
        acc = rng.choice(np.array([-(1 << 31), (1 << 31) - 1, 0, -1, 1, 1 << 30, -(1 << 30)]), (rows, ch))
    else:
        acc = (
            rng.integers(-(1 << 31), 1 << 31, (rows, ch))
            if values == "int32"
            else rng.integers(-3000, 3000, (rows, ch))
        )
    mult = rng.integers(1 << 30, 1 << 31, ch)
    if values == "extremes" and not single:
        # INT32_MIN is gemmlowp's saturating case. Single rounding's domain is M0 >= 0 (TFLite DCHECKs it):
        # there INT32_MIN * INT32_MIN + 2**62 would leave int64 at the total shift 63 (shift -32).
        mult[rng.integers(0, ch)] = -(1 << 31)
    shift = rng.integers(
        -32 if single else -31 - 9 * (values == "small"), 31, ch
    )  # below -31: no int32 lanes, the element loop
    qmin, qmax = int(np.iinfo(out_dtype).min), int(np.iinfo(out_dtype).max)
    zp = int(rng.integers(qmin, qmax + 1))
    act_min, sat_min = (zp, -(1 << 62)) if activation else (qmin, qmin)
    act_max, sat_max = (min(qmax, zp + 40), 1 << 62) if activation == "relu6" and zp + 40 < qmax else (qmax, qmax)
    want, want_sats = ref.ref_requant_fixed_point(
        acc, mult, shift, zp, act_min, act_max, sat_min, sat_max, _tflite_multiply(single)
    )
    got = requant_fixed_point(
        acc.astype(np.int32),
        mult,
        shift,
        zero_point=zp,
        act_min=act_min,
        act_max=act_max,
        sat_min=sat_min,
        sat_max=sat_max,
        single_rounding=single,
        axis=1,
        out_dtype=out_dtype,
    )
    assert got.codes.dtype == out_dtype
    np.testing.assert_array_equal(got.codes, want)
    assert (got.saturations, got.acc_min, got.acc_max) == (want_sats, acc.min(), acc.max())


@SETTINGS
@given(
    rows=st.integers(1, 6),
    ch=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
    tie_scale=st.sampled_from([None, 0.5, 0.25, 0.375]),
    with_bias=st.booleans(),
)
def test_requant_float_matches_reference(rows, ch, seed, tie_scale, with_bias):
    """fp32 requant equals numpy float32 arithmetic, ties to even included."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 31), 1 << 31, (rows, ch)) if seed % 3 == 0 else rng.integers(-3000, 3000, (rows, ch))
    scale = np.full(ch, tie_scale, np.float32) if tie_scale else rng.uniform(1e-4, 0.2, ch).astype(np.float32)
    bias_term = rng.normal(size=ch).astype(np.float32) * 100 if with_bias else np.zeros(ch, np.float32)
    want, want_sats = ref.ref_requant_float(acc, scale, bias_term, 128, 0, 255, 0, 255)
    got, sats, _, _ = requant_float(
        acc, scale, bias_term=bias_term, zero_point=128, act_min=0, act_max=255, sat_min=0, sat_max=255, axis=1
    )
    np.testing.assert_array_equal(got, want)
    assert sats == want_sats


@SETTINGS
@given(
    size=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.5, 0.25, 0.375, 0.0137, 3.1]),
    reciprocal=st.booleans(),
    half_away=st.booleans(),
    zp_before=st.booleans(),
    ties=st.booleans(),
    fused=st.booleans(),
)
def test_quantize_dequantize_match_reference(size, seed, scale, reciprocal, half_away, zp_before, ties, fused):
    """All quantize rules (incl. the fused one) equal their numpy twin; dequantize too."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-600, 600, size) / 2.0
    x = (steps * scale if ties else rng.normal(size=size) * 100 * scale).astype(np.float32)
    want, want_sats = ref.ref_quantize(x, scale, 7, -128, 127, reciprocal, half_away, zp_before, fused)
    got, sats = quantize(
        x,
        scale,
        7,
        qmin=-128,
        qmax=127,
        reciprocal=reciprocal,
        half_away=half_away,
        zero_point_before_rounding=zp_before,
        fused=fused,
    )
    np.testing.assert_array_equal(got, want)
    assert sats == want_sats
    np.testing.assert_array_equal(dequantize(got, scale, 7), ref.ref_dequantize(got, scale, 7))


@SETTINGS
@given(rows=st.integers(1, 5), ch=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_scale_accumulator_and_minmax_match_reference(rows, ch, seed):
    """Float output path (unfused) and the range reduction equal their twins."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 24), 1 << 24, (rows, ch))
    rs, cs, b = (
        rng.uniform(1e-3, 1, rows).astype(np.float32),
        rng.uniform(1e-3, 1, ch).astype(np.float32),
        rng.normal(size=ch).astype(np.float32),
    )
    np.testing.assert_array_equal(scale_accumulator(acc, rs, cs, b, axis=1), ref.ref_scale_accumulator(acc, rs, cs, b))
    np.testing.assert_array_equal(
        scale_accumulator(acc, rs, cs, b, axis=1, channel_scale_first=True),
        ref.ref_scale_accumulator(acc, rs, cs, b, True),
    )
    x = rng.normal(size=(rows, ch)).astype(np.float32)
    for got, want in zip(row_minmax(x), ref.ref_minmax(x)):
        np.testing.assert_array_equal(got, want)


def test_fused_scale_accumulator_is_one_rounding():
    """The FMA output equals the exactly rounded ``acc * s + b`` (exact rationals in the twin)."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-(1 << 20), 1 << 20, (50, 8))
    s, b = rng.uniform(1e-4, 1e-2, 8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    got = scale_accumulator(acc, np.float32(0.75), s, b, axis=1, fused=True)
    np.testing.assert_array_equal(got, ref.ref_scale_accumulator_fused(acc, np.float32(0.75), s, b))


@pytest.mark.parametrize("bits", [8, 16])
def test_saturating_accumulator_clamps_each_step(bits):
    """Saturation is order dependent: +max then -max ends at -max+hi, not at the exact sum 0."""
    a = np.array([[1, 1]], np.int8)
    b = np.array([[127], [-128]], np.int8)
    hi = (1 << (bits - 1)) - 1
    got = int_gemm(a, b, bias=np.array([hi]), acc_bits=bits, overflow="saturate")
    assert got.values[0, 0] == hi - 128 and got.overflows == 1


@pytest.mark.parametrize(
    "shape,stride", [((2, 16, 7, 9), (1, 1)), ((1, 8, 8, 8), (2, 2)), ((3, 5, 9, 6), (2, 3)), ((1, 4, 1, 1), (1, 1))]
)
def test_pointwise_im2col_fast_path_equals_the_window_loop(shape: tuple[int, ...], stride: tuple[int, int]) -> None:
    """1x1 unpadded convolutions take a strided NCHW -> NHWC copy instead of the window loop: same rows, same K order."""
    from accelsim.kernels.conv import ConvGeometry, _im2col, im2col

    x = np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)
    geometry = ConvGeometry.from_args(stride, 0, 1, 1)
    oh, ow = geometry.output_size(shape[2], shape[3], 1, 1)
    loop = _im2col(
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 1, 1, stride[0], stride[1], 0, 0, 1, 1, oh, ow, np.int8(0)
    )
    fast = im2col(x, 1, 1, geometry, 0)
    assert fast.flags.c_contiguous and np.array_equal(fast, loop)


def test_channels_last_memory_is_read_in_place_with_the_same_results() -> None:
    """A conv's output is NCHW in shape and channels-last in memory; the next conv, the requant unit,
    quantize and dequantize give the same bits on it as on a contiguous copy (and keep its layout)."""
    from accelsim.kernels.conv import ConvGeometry, int_conv2d
    from accelsim.kernels.quantize import dequantize, quantize
    from accelsim.kernels.requant import requant_fixed_point

    rng = np.random.default_rng(3)
    geometry = ConvGeometry.from_args(1, 1, 1, 1)
    x = rng.integers(-128, 128, (2, 8, 6, 5)).astype(np.int8)
    w = rng.integers(-127, 128, (12, 8, 3, 3)).astype(np.int8)
    acc = int_conv2d(x, w, geometry, x_zero_point=3).values
    assert acc.transpose(0, 2, 3, 1).flags.c_contiguous  # channels-last in memory
    want_acc, _ = ref.ref_int_conv2d(
        x,
        w,
        stride=(1, 1),
        padding=(1, 1, 1, 1),
        dilation=(1, 1),
        groups=1,
        x_zero_point=3,
        bias=None,
        acc_bits=32,
        overflow="wrap",
    )
    np.testing.assert_array_equal(acc, want_acc)
    dense = np.ascontiguousarray(acc)
    m0, shift = rng.integers(1 << 30, (1 << 31) - 1, 12), rng.integers(-12, -6, 12)
    args = {
        "zero_point": -3,
        "act_min": -128,
        "act_max": 127,
        "sat_min": -128,
        "sat_max": 127,
        "single_rounding": False,
        "axis": 1,
    }
    codes, sats, _, _ = requant_fixed_point(acc, m0, shift, **args)
    want, want_sats, _, _ = requant_fixed_point(dense, m0, shift, **args)
    np.testing.assert_array_equal(codes, want)
    assert sats == want_sats and codes.transpose(0, 2, 3, 1).flags.c_contiguous
    codes8, w2 = codes.astype(np.int8), rng.integers(-127, 128, (4, 12, 3, 3)).astype(np.int8)
    np.testing.assert_array_equal(
        int_conv2d(codes8, w2, geometry, x_zero_point=-3).values,
        int_conv2d(np.ascontiguousarray(codes8), w2, geometry, x_zero_point=-3).values,
    )
    real = dequantize(codes, np.float32(0.05), -3, axis=None)
    np.testing.assert_array_equal(real, dequantize(np.ascontiguousarray(codes), np.float32(0.05), -3, axis=None))
    scales = rng.uniform(0.01, 0.1, 12).astype(np.float32)
    np.testing.assert_array_equal(
        quantize(real, scales, 0, qmin=-128, qmax=127, axis=1)[0],
        quantize(np.ascontiguousarray(real), scales, 0, qmin=-128, qmax=127, axis=1)[0],
    )


@pytest.mark.parametrize(
    "kernel,stride,padding,dilation", [(3, 1, 1, 1), (7, 2, 3, 1), (3, 2, (0, 2, 1, 0), 2), (2, 3, 0, 1)]
)
def test_im2col_tap_order_is_a_column_permutation(kernel: int, stride: int, padding, dilation: int) -> None:
    """K order (ky, kx, c) holds the same patch values as (c, ky, kx), and int_conv2d gives the reference's
    accumulators with it (int32, no overflow possible) and with (c, ky, kx) (a 12-bit saturating accumulator)."""
    from accelsim.kernels.conv import ConvGeometry, im2col, int_conv2d

    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (2, 5, 11, 9)).astype(np.int8)
    geometry = ConvGeometry.from_args(stride, padding, dilation, 1)
    cyx = im2col(x, kernel, kernel, geometry, 3)
    yxc = im2col(x, kernel, kernel, geometry, 3, "yxc")
    perm = np.arange(5 * kernel * kernel).reshape(5, kernel, kernel).transpose(1, 2, 0).reshape(-1)
    np.testing.assert_array_equal(yxc, cyx[:, perm])
    w = rng.integers(-127, 128, (4, 5, kernel, kernel)).astype(np.int8)
    for bits, mode in ((32, "wrap"), (12, "saturate")):
        got = int_conv2d(x, w, geometry, x_zero_point=3, acc_bits=bits, overflow=mode)
        want, overflows = ref.ref_int_conv2d(
            x,
            w,
            stride=geometry.stride,
            padding=geometry.padding,
            dilation=geometry.dilation,
            groups=1,
            x_zero_point=3,
            bias=None,
            acc_bits=bits,
            overflow=mode,
        )
        np.testing.assert_array_equal(got.values, want)
        assert got.overflows == overflows
