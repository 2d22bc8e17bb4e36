"""TFLite's QuantizeMultiplier: a real multiplier as a Q31 fixed-point ``M0`` and a power-of-two shift.

``real ~= M0 * 2**(shift - 31)`` with ``M0`` in ``[2**30, 2**31)``. The steps are those of
tensorflow/lite/kernels/internal/quantization_util.cc, including its two edge cases: rounding ``q``
up to exactly 2**31 (halve it, bump the shift) and flushing multipliers below ~2**-31 to zero.
"""

from __future__ import annotations

import math

import numpy as np


def _round_half_away(v: float) -> int:
    """C's std::round."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def quantize_multiplier(real: float, *, single_rounding: bool = False) -> tuple[int, int]:
    """``(M0, shift)`` exactly as TFLite; ``single_rounding`` adds TFLITE_SINGLE_ROUNDING's shift clamp."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if single_rounding and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def quantize_multipliers(reals: np.ndarray, *, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel :func:`quantize_multiplier` as int32 arrays, vectorized with the same steps.

    ``np.frexp`` is exact, ``q * 2**31`` is exact (a power-of-two scaling) and ``floor(|v| + 0.5)`` is
    exact below 2**52, so every channel gets the bits the scalar version gives (tested).
    """
    real = np.asarray(reals, dtype=np.float64).reshape(-1)
    q, shift = np.frexp(real)
    v = q * float(1 << 31)
    q_fixed = (np.copysign(np.floor(np.abs(v) + 0.5), v)).astype(np.int64)
    shift = shift.astype(np.int64)
    carry = q_fixed == (1 << 31)
    q_fixed = np.where(carry, q_fixed // 2, q_fixed)
    shift = np.where(carry, shift + 1, shift)
    flush = (shift < -31) | (real == 0.0)
    q_fixed, shift = np.where(flush, 0, q_fixed), np.where(flush, 0, shift)
    if single_rounding:
        big = shift > 30
        q_fixed, shift = np.where(big, (1 << 31) - 1, q_fixed), np.where(big, 30, shift)
    return q_fixed.astype(np.int32), shift.astype(np.int32)


def effective_scale(input_scale: float, weight_scale: np.ndarray, output_scale: float) -> np.ndarray:
    """``s_x * s_w[c] / s_y`` in double from float32 inputs, as TFLite's PopulateConvolutionQuantizationParams."""
    return (
        np.float64(np.float32(input_scale))
        * np.asarray(weight_scale, dtype=np.float32).astype(np.float64)
        / np.float64(np.float32(output_scale))
    )
