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
    """Per-channel :func:`quantize_multiplier` as int32 arrays."""
    pairs = [quantize_multiplier(float(r), single_rounding=single_rounding) for r in np.asarray(reals, dtype=np.float64).reshape(-1)]
    return np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int32)


def effective_scale(input_scale: float, weight_scale: np.ndarray, output_scale: float) -> np.ndarray:
    """``s_x * s_w[c] / s_y`` in double from float32 inputs, as TFLite's PopulateConvolutionQuantizationParams."""
    return np.float64(np.float32(input_scale)) * np.asarray(weight_scale, dtype=np.float32).astype(np.float64) / np.float64(np.float32(output_scale))
