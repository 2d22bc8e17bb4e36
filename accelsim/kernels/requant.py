"""The requant unit: int32 accumulators -> int8/uint8 outputs, per channel, with clamp and zero point.

Two arithmetic families cover the four modes of DESIGN.md section 4:
- fixed point (``tflite``, ``tflite_single``): ``MultiplyByQuantizedMultiplier(acc, M0[c], shift[c])``
  of TFLite, with gemmlowp's double rounding or TFLITE_SINGLE_ROUNDING, in integer arithmetic
  (C truncating division written out: Python's ``//`` floors).
- fp32 (``float_half_even`` = ORT MLAS, ``fbgemm`` = PyTorch): ``rint((float(acc) + bias_term[c])
  * scale[c])`` in float32 with round-half-even; ORT has ``bias_term = 0`` (its bias is int32, in acc).

Then ``y = clamp(r + z_y, act_min, act_max)``. A *saturation* is an output whose ``r + z_y`` falls
outside ``[sat_min, sat_max]``: the output dtype's range, widened on the side where a fused
ReLU/ReLU6 clamp (intended, not a loss) already cuts. Accumulators
wider than int32 are saturated to int32 on entry to the fixed-point modes (their input is int32).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.kernels.layout import channel_params, elementwise_view

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


@njit(cache=True, inline="always")
def _wrap_int32(v):
    return ((v - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64."""
    if a == b and a == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    num = ab + nudge
    if num >= 0:  # C division by 2**31, truncating toward zero
        return num >> 31
    return -((-num) >> 31)


@njit(cache=True, inline="always")
def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: arithmetic shift right, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x, multiplier, shift, single_rounding):
    """TFLite MultiplyByQuantizedMultiplier (both builds) on one int32 value."""
    if single_rounding:
        total_shift = 31 - shift
        return (x * multiplier + (1 << (total_shift - 1))) >> total_shift
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(_wrap_int32(x * (1 << left)), multiplier), right
    )


@njit(cache=True, inline="always")
def _clamp_output(r, zp, act_min, act_max, sat_min, sat_max):
    """(output value, saturated) for the rounded value ``r`` (float64 or int64)."""
    v = r + zp
    saturated = v < sat_min or v > sat_max
    if v < act_min:
        v = act_min
    if v > act_max:
        v = act_max
    return v, saturated


@njit(cache=True, inline="always")
def _requant_fixed_one(a, m, s, zp, act_min, act_max, sat_min, sat_max, single_rounding):
    x = min(max(np.int64(a), INT32_MIN), INT32_MAX)
    return _clamp_output(multiply_by_quantized_multiplier(x, m, s, single_rounding), zp, act_min, act_max, sat_min, sat_max)


@njit(cache=True)
def _requant_fixed(acc, multiplier, shift, zp, act_min, act_max, sat_min, sat_max, single_rounding):
    out = np.empty(acc.shape, dtype=np.int32)
    sats = 0
    if acc.shape[2] == 1:  # channels last: the channel loop innermost
        for o in range(acc.shape[0]):
            for c in range(acc.shape[1]):
                v, sat = _requant_fixed_one(acc[o, c, 0], multiplier[c], shift[c], zp, act_min, act_max, sat_min, sat_max, single_rounding)
                out[o, c, 0] = v
                sats += sat
        return out, sats
    for o in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            m = np.int64(multiplier[c])
            s = np.int64(shift[c])
            for i in range(acc.shape[2]):
                v, sat = _requant_fixed_one(acc[o, c, i], m, s, zp, act_min, act_max, sat_min, sat_max, single_rounding)
                out[o, c, i] = v
                sats += sat
    return out, sats


@njit(cache=True)
def _requant_float(acc, scale, bias_term, zp, act_min, act_max, sat_min, sat_max):
    out = np.empty(acc.shape, dtype=np.int32)
    sats = 0
    for o in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            sc = scale[c]
            bt = bias_term[c]
            for i in range(acc.shape[2]):
                v32 = (np.float32(acc[o, c, i]) + bt) * sc
                r = np.float64(np.rint(v32))
                v, sat = _clamp_output(r, np.float64(zp), act_min, act_max, sat_min, sat_max)
                out[o, c, i] = np.int32(v)
                sats += sat
    return out, sats


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
) -> tuple[np.ndarray, int]:
    """TFLite fixed-point requant of ``acc`` with per-channel (``axis``) or per-tensor M0/shift."""
    view, restore = elementwise_view(acc, axis)
    ch = view.shape[1]
    out, sats = _requant_fixed(
        view,
        channel_params(multiplier, ch, np.int64),
        channel_params(shift, ch, np.int64),
        zero_point,
        act_min,
        act_max,
        sat_min,
        sat_max,
        single_rounding,
    )
    return restore(out), int(sats)


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
) -> tuple[np.ndarray, int]:
    """fp32 requant ``rint((float(acc) + bias_term) * scale)`` (ORT MLAS / fbgemm)."""
    view, restore = elementwise_view(acc, axis)
    ch = view.shape[1]
    out, sats = _requant_float(
        view,
        channel_params(scale, ch, np.float32),
        channel_params(bias_term, ch, np.float32),
        zero_point,
        act_min,
        act_max,
        sat_min,
        sat_max,
    )
    return restore(out), int(sats)
