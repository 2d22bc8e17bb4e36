"""The requant unit: int32 accumulators -> int8/uint8 outputs, per channel, with clamp and zero point.

Three arithmetic families cover the modes of DESIGN.md section 4:
- fixed point (``tflite``, ``tflite_single``): ``MultiplyByQuantizedMultiplier(acc, M0[c], shift[c])``
  of TFLite, with gemmlowp's double rounding or TFLITE_SINGLE_ROUNDING, in integer arithmetic
  (C truncating division written out: Python's ``//`` floors).
- fp64 (``tflite_float64`` = TFLite's reference FULLY_CONNECTED): ``round(double(acc) * scale[c])``,
  half away from zero, converted to int32 as x86 does; it shares the fixed-point kernels (int32 in,
  the scale's bits in the int64 multiplier array).
- fp32 (``float_half_even`` = ORT MLAS, ``fbgemm`` = PyTorch): ``rint((float(acc) + bias_term[c])
  * scale[c])`` in float32 with round-half-even; ORT has ``bias_term = 0`` (its bias is int32, in acc).

Then ``y = clamp(r + z_y, act_min, act_max)``. A *saturation* is an output whose ``r + z_y`` falls
outside ``[sat_min, sat_max]``: the output dtype's range, widened on the side where a fused
ReLU/ReLU6 clamp (intended, not a loss) already cuts. Accumulators
wider than int32 are saturated to int32 on entry to the fixed-point modes (their input is int32).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from accelsim.kernels.lanes import LANES, V32, V64, VF64, Lanes
from accelsim.kernels.layout import channel_params, elementwise_view

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
#: arithmetics of int32 accumulators (``arithmetic`` below); FLOAT32 is ORT's / fbgemm's
#: ``rint((float(acc) + bias_term) * scale)`` in float32, fused after the GEMM as the others
DOUBLE_ROUNDING, SINGLE_ROUNDING, FLOAT64, FLOAT32 = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _wrap_int32(v):
    return ((v - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64, without branches so
    element loops vectorize: nudge ``2**30`` or ``1 - 2**30`` by the sign, then C division by 2**31."""
    ab = a * b
    num = ab + ((1 << 30) + ((ab >> 63) & (1 - (1 << 31))))
    high = (num + ((num >> 63) & ((1 << 31) - 1))) >> 31
    return INT32_MAX if a == INT32_MIN and b == INT32_MIN else high


@njit(cache=True, inline="always")
def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: arithmetic shift right, ties away from zero."""
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + ((x >> 63) & 1)
    return (x >> exponent) + np.int64((x & mask) > threshold)


@njit(cache=True, inline="always")
def _shifted_multiply(x, multiplier, left, right, single_rounding):
    """MultiplyByQuantizedMultiplier with ``shift = left - right`` split once (hoisted out of element loops)."""
    if single_rounding:
        total_shift = 31 - (left - right)
        return (x * multiplier + (1 << (total_shift - 1))) >> total_shift
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(_wrap_int32(x << left), multiplier), right)


@intrinsic
def _bits_as_double(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (how the fp64 scale rides in the multiplier array)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def _float64_multiply(x, scale, zp):
    """TFLite's reference FULLY_CONNECTED requant: ``static_cast<int32_t>(round(double(acc) * scale))``
    (std::round: half away from zero; an out-of-range conversion gives x86's INT32_MIN), then ``+ z_y``
    in int32, which wraps. Returned less ``zp``, so that :func:`_clamp_output`'s ``r + zp`` is that
    wrapped sum. ``v - trunc(v)`` is exact, so the tie test is."""
    v = np.float64(x) * scale
    r = np.trunc(v)
    if abs(v - r) >= 0.5:
        r += 1.0 if v > 0 else -1.0
    q = np.int64(r) if -2147483648.0 <= r < 2147483648.0 else np.int64(INT32_MIN)
    return _wrap_int32(q + zp) - zp


@njit(cache=True, inline="always")
def _requant_value(x, multiplier, left, right, arithmetic, zp):
    """The requant unit's value of int32 ``x`` in one channel before ``+ z_y`` and the clamp, for any
    arithmetic: ``multiplier`` is M0, or the fp64 scale's bits for FLOAT64."""
    if arithmetic == FLOAT64:
        return _float64_multiply(x, _bits_as_double(multiplier), zp)
    return _shifted_multiply(x, multiplier, left, right, arithmetic == SINGLE_ROUNDING)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x, multiplier, shift, single_rounding):
    """TFLite MultiplyByQuantizedMultiplier (both builds) on one int32 value."""
    return _shifted_multiply(x, multiplier, max(0, shift), -shift if shift < 0 else 0, single_rounding)


@njit(cache=True, inline="always")
def _clamp_output(r, zp, act_min, act_max, sat_min, sat_max):
    """(output value, saturated) for the rounded value ``r`` (float64 or int64)."""
    v = r + zp
    saturated = v < sat_min or v > sat_max
    v = max(v, act_min)
    v = min(v, act_max)
    return v, saturated


def _lanes_kernel(arithmetic: int, plain: bool):
    """An intrinsic that requantizes one row of channels-last int32 accumulators, channels [c0, c1) 16 at
    a time (c1 - c0 a multiple of 16), as an LLVM vector loop: the lanes stay int32 except the
    32 x 32 -> 64-bit product (numba's own loop runs in int64), and the row's running accumulator
    min/max and saturation count stay in registers (kept in memory per 16 lanes, they were a store and
    a reload on every step's critical path). Same arithmetic as :func:`_shifted_multiply` then
    :func:`_clamp_output`, written for int32 lanes:
    - double rounding: SaturatingRoundingDoublingHighMul is ``(a*b + 2**30) >> 31`` (a floor shift:
      its nudge-and-truncate rounds half up), saturating only for a == b == INT32_MIN; then
      RoundingDivideByPOT in int32 with its per-channel mask and half-mask precomputed (``right`` <= 31);
      ``plain``: no channel shifts left and none has M0 == INT32_MIN, so both steps are left out;
    - single rounding: ``(x*m + 2**(t-1)) >> t`` in int64 lanes (``t`` in [1, 63]), then clamped to int32;
    - ``z_y`` is added after the clamp and saturation tests, whose bounds come less ``z_y`` (as int64,
      then held within int32: a bound beyond int32 cannot be crossed), so nothing overflows;
    - FLOAT64: ``llvm.round`` (half away from zero) of ``double(x) * scale`` in double lanes (the scale's
      bits are the int64 ``M0`` argument), out of int32 range -> INT32_MIN, ``+ z_y`` in wrapping int32
      lanes before the tests, whose bounds are then the plain ones (held within int32), as TFLite does.
    Args: acc, the row's first element in acc, M0 (int32 [C], or int64 [C] for FLOAT64), left shift,
    right shift (or total shift), mask, half-mask (int32 [C]), c0, c1, z_y, act_min, act_max, sat_min,
    sat_max (the four less z_y, except for FLOAT64), out,
    the row's first element in out, extremes (int32 [32]: running per-lane min then max of the
    accumulators, updated). Returns the row's saturations.
    """

    @intrinsic
    def lanes(
        typingctx,
        acc,
        acc_row,
        mult,
        left,
        right,
        mask,
        half,
        c0,
        c1,
        zp,
        act_min,
        act_max,
        sat_min,
        sat_max,
        out,
        out_row,
        extremes,
    ):
        sig = types.int64(
            acc,
            acc_row,
            mult,
            left,
            right,
            mask,
            half,
            c0,
            c1,
            zp,
            act_min,
            act_max,
            sat_min,
            sat_max,
            out,
            out_row,
            extremes,
        )

        def codegen(context, builder, signature, args):
            v = Lanes(context, builder, signature, args)
            b = builder
            zp_v, lo_v, hi_v, slo_v, shi_v = (v.splat(a, V32) for a in args[9:14])
            zero, top = ir.Constant(args[7].type, 0), ir.Constant(args[7].type, LANES)
            low = cgutils.alloca_once_value(b, v.load(16, zero))
            high = cgutils.alloca_once_value(b, v.load(16, top))
            count = cgutils.alloca_once_value(b, ir.Constant(ir.IntType(64), 0))
            with cgutils.for_range_slice(b, args[7], args[8], ir.Constant(args[7].type, LANES)) as (c, _):
                x = v.load(0, b.add(args[1], c))
                m = v.load(2, c)
                if arithmetic == FLOAT64:
                    r = v.call("llvm.round", VF64, b.fmul(b.sitofp(x, VF64), b.bitcast(m, VF64)))
                    fits = b.and_(
                        b.fcmp_ordered(">=", r, v.const(-(2.0**31), VF64)),
                        b.fcmp_ordered("<", r, v.const(2.0**31, VF64)),
                    )
                    y = b.add(b.fptosi(b.select(fits, r, v.const(-(2.0**31), VF64)), V32), zp_v)
                elif arithmetic == SINGLE_ROUNDING:
                    total = b.zext(v.load(4, c), V64)
                    prod = b.mul(b.sext(x, V64), b.sext(m, V64))
                    rounded = b.ashr(b.add(prod, b.shl(v.const(1, V64), b.sub(total, v.const(1, V64)))), total)
                    y = b.trunc(v.smin(v.smax(rounded, v.const(INT32_MIN, V64)), v.const(INT32_MAX, V64)), V32)
                else:
                    a = x if plain else b.shl(x, v.load(3, c))
                    prod = b.mul(b.sext(a, V64), b.sext(m, V64))
                    high_mul = b.trunc(b.ashr(b.add(prod, v.const(1 << 30, V64)), v.const(31, V64)), V32)
                    if not plain:
                        both_min = b.and_(
                            b.icmp_signed("==", a, v.const(INT32_MIN)), b.icmp_signed("==", m, v.const(INT32_MIN))
                        )
                        high_mul = b.select(both_min, v.const(INT32_MAX), high_mul)
                    threshold = b.add(v.load(6, c), b.lshr(high_mul, v.const(31)))
                    up = b.icmp_signed(">", b.and_(high_mul, v.load(5, c)), threshold)
                    y = b.ashr(high_mul, v.load(4, c))
                    y = b.select(up, b.add(y, v.const(1)), y)
                saturated = v.count(b.or_(b.icmp_signed("<", y, slo_v), b.icmp_signed(">", y, shi_v)))
                b.store(b.add(b.load(count), saturated), count)
                clamped = v.smin(v.smax(y, lo_v), hi_v)
                v.store(clamped if arithmetic == FLOAT64 else b.add(clamped, zp_v), 14, b.add(args[15], c))
                b.store(v.smin(x, b.load(low)), low)
                b.store(v.smax(x, b.load(high)), high)
            v.store(b.load(low), 16, zero)
            v.store(b.load(high), 16, top)
            return b.load(count)

        return sig, codegen

    return lanes


_double_rounding_lanes = _lanes_kernel(DOUBLE_ROUNDING, plain=False)
_plain_double_rounding_lanes = _lanes_kernel(DOUBLE_ROUNDING, plain=True)
_single_rounding_lanes = _lanes_kernel(SINGLE_ROUNDING, plain=False)  # has no plain variant
_float64_lanes = _lanes_kernel(FLOAT64, plain=False)


@njit(cache=True, nogil=True)
def lane_plan(multiplier, shift, zp, act_min, act_max, sat_min, sat_max, arithmetic):
    """What the 16-lane kernel needs of a layer's requant parameters, derived once: ``table`` (int32
    [5, C]: M0, left shift, right or total shift, RoundingDivideByPOT mask and half-mask; zeros for
    FLOAT64, whose ``multiplier`` holds the scales' bits) and ``scalars`` (int64: z_y, act_min,
    act_max, sat_min, sat_max, the four less z_y (plain for FLOAT64) held within int32, the arithmetic
    (DOUBLE_ROUNDING, SINGLE_ROUNDING, FLOAT64 or FLOAT32; a bool is single rounding or not), whether every
    shift fits the int32 lanes, whether the plain variant applies). FLOAT32: ``multiplier`` and ``shift``
    hold the float32 scales' and bias terms' bits, kept in ``table`` rows 0 and 1 (:func:`_float32_rows`)."""
    channels = multiplier.shape[0]
    table = np.zeros((5, channels), np.int32)
    if arithmetic == FLOAT32:
        for c in range(channels):
            table[0, c], table[1, c] = np.int32(multiplier[c]), np.int32(shift[c])
    single_rounding, fixed = arithmetic == SINGLE_ROUNDING, arithmetic < FLOAT64
    lanes_hold, plain = fixed or arithmetic == FLOAT64, fixed
    for c in range(channels if fixed else 0):
        s = np.int64(shift[c])
        table[0, c] = multiplier[c]
        table[1, c] = max(s, 0)
        table[2, c] = 31 - s if single_rounding else max(-s, 0)
        bits = (np.int64(1) << max(-s, 0)) - 1
        table[3, c], table[4, c] = np.int32(bits & 0xFFFFFFFF), np.int32(bits >> 1)
        lanes_hold &= (-32 if single_rounding else -31) <= s <= 30
        plain &= s <= 0 and multiplier[c] != INT32_MIN
    scalars = np.empty(
        12, np.int64
    )  # element by element: a tuple assigned to a slice compiles numba's error formatting
    scalars[0], scalars[1], scalars[2], scalars[3], scalars[4] = zp, act_min, act_max, sat_min, sat_max
    for i in range(4):
        scalars[5 + i] = min(max(scalars[1 + i] - (zp if fixed else 0), INT32_MIN), INT32_MAX)
    scalars[9], scalars[10], scalars[11] = arithmetic, lanes_hold, plain
    return table, scalars


@njit(cache=True, nogil=True)
def _float32_rows(acc, acc_ld, out, out_ld, rows, c0, c1, scale, bias_term, zp, act_min, act_max, sat_min, sat_max):
    """:func:`requant_region` for FLOAT32 and the fp32 requant of a GEMM's ``[M, N]`` accumulators: flat
    ``acc`` / ``out`` with row strides, :func:`_float_code` per element along each row's channels [c0, c1)
    taken as slices (contiguous, so the loop vectorizes: indexed into the flat arrays it ran 4-5x slower)."""
    sats = 0
    lo, hi = np.int64(INT32_MAX), np.int64(INT32_MIN)
    sc, bt = scale[c0:c1], bias_term[c0:c1]
    for r in range(rows):
        row, codes = acc[r * acc_ld + c0 : r * acc_ld + c1], out[r * out_ld + c0 : r * out_ld + c1]
        for c in range(c1 - c0):
            raw = row[c]
            lo, hi = min(lo, np.int64(raw)), max(hi, np.int64(raw))
            codes[c], sat = _float_code(raw, sc[c], bt[c], zp, act_min, act_max, sat_min, sat_max)
            sats += sat
    return sats, lo, hi


@njit(cache=True, nogil=True)
def requant_region(acc, acc_ld, out, out_ld, rows, c0, c1, multiplier, shift, table, scalars):
    """The requant unit on ``rows`` x channels [c0, c1) of flat int32 ``acc`` (row stride ``acc_ld``,
    channel c at column c) into flat 1-byte ``out`` (row stride ``out_ld``): 16 channels at a time,
    the channel tail (and every channel when a shift is beyond the int32 lanes) element by element.
    ``multiplier``: int64 M0, or the fp64 scales' bits for FLOAT64. Returns (saturations, acc min, acc max)."""
    zp, act_min, act_max, sat_min, sat_max = scalars[0], scalars[1], scalars[2], scalars[3], scalars[4]
    lo32, hi32, slo32, shi32 = scalars[5], scalars[6], scalars[7], scalars[8]
    arithmetic, lanes_hold, plain = scalars[9], scalars[10], scalars[11]
    if arithmetic == FLOAT32:
        scale, bias_term = table[0].view(np.float32), table[1].view(np.float32)
        return _float32_rows(
            acc, acc_ld, out, out_ld, rows, c0, c1, scale, bias_term, zp, act_min, act_max, sat_min, sat_max
        )
    m32, left, right, mask, half = table[0], table[1], table[2], table[3], table[4]
    extremes = np.empty(2 * LANES, np.int32)
    for i in range(LANES):
        extremes[i], extremes[LANES + i] = INT32_MAX, INT32_MIN
    body = c1 - (c1 - c0) % LANES if lanes_hold else c0
    sats = 0
    lo, hi = INT32_MAX, INT32_MIN
    for r in range(rows):
        a0, o0 = r * acc_ld, r * out_ld
        if arithmetic == FLOAT64:
            sats += _float64_lanes(
                acc, a0, multiplier, left, right, mask, half, c0, body, zp, lo32, hi32, slo32, shi32, out, o0, extremes
            )
        elif arithmetic == SINGLE_ROUNDING:
            sats += _single_rounding_lanes(
                acc, a0, m32, left, right, mask, half, c0, body, zp, lo32, hi32, slo32, shi32, out, o0, extremes
            )
        elif plain:
            sats += _plain_double_rounding_lanes(
                acc, a0, m32, left, right, mask, half, c0, body, zp, lo32, hi32, slo32, shi32, out, o0, extremes
            )
        else:
            sats += _double_rounding_lanes(
                acc, a0, m32, left, right, mask, half, c0, body, zp, lo32, hi32, slo32, shi32, out, o0, extremes
            )
        for c in range(body, c1):
            x = np.int64(acc[a0 + c])
            lo, hi = min(lo, x), max(hi, x)
            r = _requant_value(
                x, np.int64(multiplier[c]), np.int64(left[c]), max(-np.int64(shift[c]), 0), arithmetic, zp
            )
            v, sat = _clamp_output(r, zp, act_min, act_max, sat_min, sat_max)
            out[o0 + c] = v
            sats += sat
    if body > c0 and rows:
        for i in range(LANES):  # a loop: ``.min()`` / ``.max()`` compile numba's reductions in every first run
            lo, hi = min(lo, np.int64(extremes[i])), max(hi, np.int64(extremes[LANES + i]))
    return sats, lo, hi


@njit(cache=True, nogil=True)
def _requant_fixed_lanes(acc, multiplier, shift, zp, act_min, act_max, sat_min, sat_max, arithmetic, out):
    """:func:`_requant_fixed` for channels-last int32 ``acc`` ``[outer, C, 1]`` and a 1-byte output by
    :func:`requant_region`; returns (saturations, acc min, acc max)."""
    rows, channels = acc.shape[0], acc.shape[1]
    table, scalars = lane_plan(multiplier, shift, zp, act_min, act_max, sat_min, sat_max, arithmetic)
    return requant_region(
        acc.reshape(-1), channels, out.reshape(-1), channels, rows, 0, channels, multiplier, shift, table, scalars
    )


@njit(cache=True, nogil=True)
def _requant_fixed(acc, multiplier, shift, zp, act_min, act_max, sat_min, sat_max, arithmetic, out):
    """Fill ``out`` (the output dtype) from ``acc`` ``[outer, C, inner]`` with an int32-input arithmetic
    (``multiplier``: M0, or the fp64 scales' bits); returns (saturations, acc min, acc max)."""
    channels = acc.shape[1]
    left = np.empty(channels, np.int64)
    right = np.empty(channels, np.int64)
    for c in range(channels):
        left[c] = max(np.int64(shift[c]), 0)
        right[c] = max(-np.int64(shift[c]), 0)
    sats = 0
    lo, hi = np.int64(INT32_MAX), np.int64(INT32_MIN)
    if acc.shape[2] == 1:  # channels last: the channel loop innermost
        flat = acc.reshape(acc.shape[0], channels)
        dest = out.reshape(acc.shape[0], channels)
        for o in range(acc.shape[0]):
            for c in range(channels):
                raw = np.int64(flat[o, c])
                lo, hi = min(lo, raw), max(hi, raw)
                r = _requant_value(
                    min(max(raw, INT32_MIN), INT32_MAX), np.int64(multiplier[c]), left[c], right[c], arithmetic, zp
                )
                v, sat = _clamp_output(r, zp, act_min, act_max, sat_min, sat_max)
                dest[o, c] = v
                sats += sat
        return sats, lo, hi
    for o in range(acc.shape[0]):
        for c in range(channels):
            m, lc, rc = np.int64(multiplier[c]), left[c], right[c]
            for i in range(acc.shape[2]):
                raw = np.int64(acc[o, c, i])
                lo, hi = min(lo, raw), max(hi, raw)
                v, sat = _clamp_output(
                    _requant_value(min(max(raw, INT32_MIN), INT32_MAX), m, lc, rc, arithmetic, zp),
                    zp,
                    act_min,
                    act_max,
                    sat_min,
                    sat_max,
                )
                out[o, c, i] = v
                sats += sat
    return sats, lo, hi


@njit(cache=True, inline="always")
def _float_code(raw, scale, bias_term, zp, act_min, act_max, sat_min, sat_max):
    """(output code, saturated) of one accumulator under fp32 requant: ``rint((float(acc) + bias) * scale)``."""
    v, saturated = _clamp_output(
        np.float64(np.rint((np.float32(raw) + bias_term) * scale)), np.float64(zp), act_min, act_max, sat_min, sat_max
    )
    return np.int32(v), saturated


@njit(cache=True, nogil=True)
def _requant_float(acc, scale, bias_term, zp, act_min, act_max, sat_min, sat_max, out):
    sats = 0
    lo, hi = np.int64(INT32_MAX), np.int64(INT32_MIN)
    for o in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            sc = scale[c]
            bt = bias_term[c]
            for i in range(acc.shape[2]):
                raw = acc[o, c, i]
                lo, hi = min(lo, np.int64(raw)), max(hi, np.int64(raw))
                out[o, c, i], sat = _float_code(raw, sc, bt, zp, act_min, act_max, sat_min, sat_max)
                sats += sat
    return sats, lo, hi


@njit(cache=True, nogil=True)
def _requant_float_rows(acc, scale, bias_term, zp, act_min, act_max, sat_min, sat_max, out):
    """:func:`_requant_float` on a channels-last ``[M, N, 1]`` view (a GEMM's ``[M, N]`` accumulators): the
    loop runs along the channels, so it vectorizes (the general loop's inner dim is 1 there: 5x slower)."""
    m, n = acc.shape[0], acc.shape[1]
    return _float32_rows(
        acc.reshape(m * n), n, out.reshape(m * n), n, m, 0, n, scale, bias_term, zp, act_min, act_max, sat_min, sat_max
    )


def _float_kernel(view: np.ndarray, *args: Any) -> tuple[int, int, int]:
    """The fp32 requant loop for this channel view: along the channels when they are innermost."""
    return (_requant_float_rows if view.shape[2] == 1 else _requant_float)(view, *args)


class Requantized(NamedTuple):
    """The requant unit's output codes, its saturation count and the accumulator range it read."""

    codes: np.ndarray
    saturations: int
    acc_min: int
    acc_max: int


#: a layer's requant parameters as the 16-lane kernel takes them: (M0 or fp64 scale bits, shift, lane table,
#: scalars), from :func:`lane_plan` (``RequantParams.lanes``)
LanePlan = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def requant_rows(acc: np.ndarray, plan: LanePlan, out_dtype: type) -> Requantized:
    """The requant unit on int32 accumulators ``[M, N]`` (channels along N) with a lane plan: 1-byte codes
    ``[M, N]``, saturations and the accumulator range (:func:`requant_region` over every row)."""
    m_dim, n_dim = acc.shape
    acc = np.ascontiguousarray(acc, dtype=np.int32)
    codes: np.ndarray = np.empty((m_dim, n_dim), out_dtype)
    sats, lo, hi = requant_region(acc.reshape(-1), n_dim, codes.reshape(-1), n_dim, m_dim, 0, n_dim, *plan)
    return Requantized(codes, int(sats), int(lo), int(hi))


def requant_fixed_point(
    acc: np.ndarray,
    multiplier: np.ndarray,
    shift: np.ndarray,
    *,
    zero_point: int,
    act_min: int,
    act_max: int,
    sat_min: int,
    sat_max: int,
    single_rounding: bool,
    axis: int | None,
    out_dtype: type = np.int32,
) -> Requantized:
    """TFLite fixed-point requant of ``acc`` with per-channel (``axis``) or per-tensor M0/shift; codes in
    ``out_dtype`` (the clamp range lies inside it)."""
    clamps = (zero_point, act_min, act_max, sat_min, sat_max)
    arithmetic = SINGLE_ROUNDING if single_rounding else DOUBLE_ROUNDING
    return _per_channel(
        _int32_input_kernel, acc, axis, out_dtype, ((multiplier, np.int64), (shift, np.int64)), *clamps, arithmetic
    )


def requant_float64(
    acc: np.ndarray, scale: np.ndarray, *, axis: int | None, out_dtype: type = np.int32, **clamps: int
) -> Requantized:
    """TFLite's fp64 requant (reference FULLY_CONNECTED) of ``acc`` with per-channel (``axis``) or
    per-tensor float64 ``scale``: the fixed-point kernels with the scales' bits as their multiplier.
    ``clamps``: zero_point, act_min, act_max, sat_min, sat_max, as for :func:`requant_fixed_point`."""
    bits = np.ascontiguousarray(np.asarray(scale, np.float64).reshape(-1)).view(np.int64)
    return _per_channel(
        _int32_input_kernel, acc, axis, out_dtype, ((bits, np.int64), (0, np.int64)), *_clamp_args(**clamps), FLOAT64
    )


def _clamp_args(*, zero_point: int, act_min: int, act_max: int, sat_min: int, sat_max: int) -> tuple[int, ...]:
    """The kernels' clamp arguments in their order."""
    return zero_point, act_min, act_max, sat_min, sat_max


def _int32_input_kernel(
    view: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, *args: np.ndarray | int
) -> tuple[int, int, int]:
    """The 16-lane kernel where it applies (channels-last int32 accumulators, a 1-byte output, shifts
    its int32 lanes can hold), else the element loop. ``args``: the clamps, the arithmetic, the output."""
    out = args[-1]
    if not isinstance(out, np.ndarray):
        raise TypeError("the kernels' last argument is the output array")
    if view.shape[2] == 1 and view.shape[1] >= LANES and view.dtype == np.int32 and out.itemsize == 1:
        return _requant_fixed_lanes(view, multiplier, shift, *args)
    return _requant_fixed(view, multiplier, shift, *args)


def _per_channel(kernel, acc: np.ndarray, axis: int | None, out_dtype: type, channel_args, *args) -> Requantized:
    """``kernel(view, *per-channel arrays, *args, out)`` on ``acc``'s memory-order channel view: the
    codes in ``acc``'s shape, the kernel's saturation count and accumulator range."""
    view, restore = elementwise_view(acc, axis)
    out: np.ndarray = np.empty(view.shape, out_dtype)
    sats, lo, hi = kernel(view, *(channel_params(v, view.shape[1], t) for v, t in channel_args), *args, out)
    return Requantized(restore(out), int(sats), int(lo), int(hi))


def requant_float(
    acc: np.ndarray,
    scale: np.ndarray,
    *,
    bias_term: np.ndarray | float = 0.0,
    zero_point: int,
    act_min: int,
    act_max: int,
    sat_min: int,
    sat_max: int,
    axis: int | None,
    out_dtype: type = np.int32,
) -> Requantized:
    """fp32 requant ``rint((float(acc) + bias_term) * scale)`` (ORT MLAS / fbgemm); codes in ``out_dtype``."""
    clamps = (zero_point, act_min, act_max, sat_min, sat_max)
    return _per_channel(_float_kernel, acc, axis, out_dtype, ((scale, np.float32), (bias_term, np.float32)), *clamps)
