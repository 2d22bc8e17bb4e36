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


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x, multiplier, shift, single_rounding):
    """TFLite MultiplyByQuantizedMultiplier (both builds) on one int32 value."""
    return _shifted_multiply(x, multiplier, shift if shift > 0 else 0, -shift if shift < 0 else 0, single_rounding)


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


@njit(cache=True)
def _requant_fixed(acc, multiplier, shift, zp, act_min, act_max, sat_min, sat_max, single_rounding, out):
    """Fill ``out`` (the output dtype) from ``acc`` ``[outer, C, inner]``; returns the saturation count."""
    channels = acc.shape[1]
    left = np.empty(channels, np.int64)
    right = np.empty(channels, np.int64)
    for c in range(channels):
        left[c] = max(np.int64(shift[c]), 0)
        right[c] = max(-np.int64(shift[c]), 0)
    sats = 0
    if acc.shape[2] == 1:  # channels last: the channel loop innermost
        flat = acc.reshape(acc.shape[0], channels)
        dest = out.reshape(acc.shape[0], channels)
        for o in range(acc.shape[0]):
            for c in range(channels):
                x = min(max(np.int64(flat[o, c]), INT32_MIN), INT32_MAX)
                v, sat = _clamp_output(_shifted_multiply(x, np.int64(multiplier[c]), left[c], right[c], single_rounding),
                                       zp, act_min, act_max, sat_min, sat_max)
                dest[o, c] = v
                sats += sat
        return sats
    for o in range(acc.shape[0]):
        for c in range(channels):
            m, lc, rc = np.int64(multiplier[c]), left[c], right[c]
            for i in range(acc.shape[2]):
                x = min(max(np.int64(acc[o, c, i]), INT32_MIN), INT32_MAX)
                v, sat = _clamp_output(_shifted_multiply(x, m, lc, rc, single_rounding), zp, act_min, act_max, sat_min, sat_max)
                out[o, c, i] = v
                sats += sat
    return sats


@njit(cache=True)
def _requant_float(acc, scale, bias_term, zp, act_min, act_max, sat_min, sat_max, out):
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
    return sats


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
) -> tuple[np.ndarray, int]:
    """TFLite fixed-point requant of ``acc`` with per-channel (``axis``) or per-tensor M0/shift; codes in
    ``out_dtype`` (the clamp range lies inside it)."""
    clamps = (zero_point, act_min, act_max, sat_min, sat_max)
    return _per_channel(_requant_fixed, acc, axis, out_dtype, ((multiplier, np.int64), (shift, np.int64)), *clamps, single_rounding)


def _per_channel(kernel, acc: np.ndarray, axis: int | None, out_dtype: type, channel_args, *args) -> tuple[np.ndarray, int]:  # noqa: ANN001
    """``kernel(view, *per-channel arrays, *args, out)`` on ``acc``'s memory-order channel view: the
    codes in ``acc``'s shape and the kernel's saturation count."""
    view, restore = elementwise_view(acc, axis)
    out = np.empty(view.shape, out_dtype)
    sats = kernel(view, *(channel_params(v, view.shape[1], t) for v, t in channel_args), *args, out)
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
    out_dtype: type = np.int32,
) -> tuple[np.ndarray, int]:
    """fp32 requant ``rint((float(acc) + bias_term) * scale)`` (ORT MLAS / fbgemm); codes in ``out_dtype``."""
    clamps = (zero_point, act_min, act_max, sat_min, sat_max)
    return _per_channel(_requant_float, acc, axis, out_dtype, ((scale, np.float32), (bias_term, np.float32)), *clamps)
