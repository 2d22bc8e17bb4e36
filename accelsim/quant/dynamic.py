"""Dynamic (run-time) activation quantization: each flavour's exact arithmetic (the flavours as data are
:data:`accelsim.dynamic_flavours.DYNAMIC_FLAVOURS`).

At run time the vector unit reduces the float input to its range, derives scale and zero point,
quantizes, the array accumulates int32, and the output is dequantized to float
``float32(acc) * float32(s_x[row] * s_w[c]) + bias[c]``, product and sum rounded separately
(TFLite reference, ONNX standard ops, PyTorch qnnpack) or fused into one FMA rounding (PyTorch fbgemm,
measured); TFLite's hybrid conv instead computes ``(float32(acc) * s_w[c]) * s_x[image] + bias[c]``
(measured).

Parameter rules, each the framework's code line by line, over the ranges of all rows at once (NumPy
arrays, each operation in the framework's float type; a per-tensor flavour is the one-row case):
- ``onnx`` (DynamicQuantizeLinear): float32 throughout, ``scale = (max - min) / 255``,
  ``zp = rint(clamp(0 - min / scale, 0, 255))``; uint8; 1 when the range is empty.
- ``pytorch`` (quantize_dynamic Linear, fbgemm / x86 engine): ``ChooseQuantizationParams`` in double
  with ``reduce_range`` (0..127, the module passes True), the small-scale cut-off at 6.1e-5, zero
  point from the smaller-error end, ``nearbyint``; the scale is then used as float32. The input is
  quantized by ``PackAWithQuantRowOffset::pack`` -> ``QuantizeAvx2<uint8_t>`` with its default
  ``LEGACY=true``: ``cvtps(fma(x, 1/s, z))``, clamped to 0..255 (not to the reduced range).
- ``pytorch_qnnpack`` (same module, qnnpack engine): the same parameters over the full 0..255
  (qnnpack ignores ``reduce_range``), ``at::quantize_per_tensor`` (the same fused rounding), and an
  unfused output ``float32(acc) * scale + bias`` (the q8gemm ``dq`` kernels).
- ``tflite`` (hybrid FULLY_CONNECTED, asymmetric_quantize_inputs; per row, per image for conv):
  ``PortableAsymmetricQuantizeFloats``: float32 range, double scale and zero point, int8 -128..127,
  ties away from zero;
  ``tflite_symmetric`` is ``PortableSymmetricQuantizeFloats`` (scale = max|x| / 127).
- ``pytorch_per_token`` (W8A8 dynamic, one scale and zero point per token): PyTorch's decomposed
  ``choose_qparams_per_token_asymmetric`` (float32, XNNPACK's zero-point rule) and ``quantize_per_token``,
  whose float64 scales make the quantization ``rint(float64(x) * (1 / s) + z)``;
  ``pytorch_per_token_symmetric``: ``choose_qparams_per_token`` (``max(max|x|, 1e-5) / 127``, float32 scales,
  so ``rint(x * float32(1 / s))``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from accelsim.dynamic_flavours import DynamicFlavour, FlavourName, get_flavour
from accelsim.quant.qparams import QParams
from accelsim.quant.rules import quantize_tensor

SMALL_SCALE_THRESHOLD = np.float32(6.1e-5)  # PyTorch QuantUtils.h: fp16 min normal
EPS32 = np.float32(np.finfo(np.float32).eps)


def _min(a: np.ndarray | np.floating, b: np.ndarray | np.floating) -> np.ndarray:
    """Python's and C++'s ``min(a, b)`` per element: ``a`` unless ``b < a`` (``np.minimum`` would pass a NaN on)."""
    return np.where(b < a, b, a)


def _max(a: np.ndarray | np.floating, b: np.ndarray | np.floating) -> np.ndarray:
    """Python's and C++'s ``max(a, b)`` per element: ``a`` unless ``b > a``."""
    return np.where(b > a, b, a)


def onnx_qparams(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORT GetQuantizationParameter<uint8_t>, float32 arithmetic."""
    f32 = np.float32
    lo32, hi32 = _min(lo, f32(0)), _max(hi, f32(0))
    scale = np.where(hi32 == lo32, f32(1), (hi32 - lo32) / f32(255))
    initial = f32(0) - lo32 / scale
    return scale, np.rint(_max(f32(0), _min(f32(255), initial)))


def pytorch_qparams(lo: np.ndarray, hi: np.ndarray, *, reduce_range: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch/fbgemm ChooseQuantizationParams(min, max, 0, 255, preserve_sparsity=False, reduce_range), the
    scale in double. Its small-scale test compares in float32, as accelsim's scalar rule did through NumPy (the
    C++ compares in double; they part only for a double scale within half a float32 step below the threshold,
    whose float32 scale is the threshold either way)."""
    f32, f64 = np.float32, np.float64
    qmin, qmax = 0.0, 127.0 if reduce_range else 255.0
    lo32, hi32 = _min(lo, f32(0)), _max(hi, f32(0))
    scale = (hi32.astype(f64) - lo32.astype(f64)) / (qmax - qmin)
    scale32 = scale.astype(f32)
    scale = np.where((scale32 == 0) | np.isinf(f32(1) / scale32), 0.1, scale)
    # below the threshold: the scale becomes it, and the range (one end 0: that end's opposite) grows with it
    small = scale.astype(f32) < SMALL_SCALE_THRESHOLD
    amplifier = SMALL_SCALE_THRESHOLD / scale.astype(f32)
    widest = SMALL_SCALE_THRESHOLD * f32(qmax - qmin)
    small_lo = np.where(lo32 == 0, lo32, np.where(hi32 == 0, -widest, lo32 * amplifier))
    small_hi = np.where(lo32 == 0, widest, np.where(hi32 == 0, hi32, hi32 * amplifier))
    lo32, hi32 = np.where(small, small_lo, lo32), np.where(small, small_hi, hi32)
    scale = np.where(small, f64(SMALL_SCALE_THRESHOLD), scale)
    lo_steps, hi_steps = lo32.astype(f64) / scale, hi32.astype(f64) / scale
    zp_from_min, zp_from_max = qmin - lo_steps, qmax - hi_steps
    err_min, err_max = abs(qmin) - np.abs(lo_steps), abs(qmax) - np.abs(hi_steps)
    initial = np.where(err_min < err_max, zp_from_min, zp_from_max)
    return scale.astype(f32), np.where(initial < qmin, qmin, np.where(initial > qmax, qmax, np.rint(initial)))


def tflite_asymmetric_qparams(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite PortableAsymmetricQuantizeFloats' scale and offset.

    ``rmin``/``rmax`` are float, so ``rmax - rmin`` is rounded to float32 before the double
    division by 255 (measured against TF 2.21's interpreter, whose scaling-factor tensor it matches).
    """
    f32, f64 = np.float32, np.float64
    rmin, rmax = _min(f32(0), lo), _max(f32(0), hi)
    qmin, qmax = -128.0, 127.0
    scale = (rmax - rmin).astype(f64) / (qmax - qmin)
    min_steps, max_steps = rmin.astype(f64) / scale, rmax.astype(f64) / scale
    zp_from_min, zp_from_max = qmin - min_steps, qmax - max_steps
    err_min, err_max = abs(qmin) + np.abs(min_steps), abs(qmax) + np.abs(max_steps)
    zp = np.where(err_min < err_max, zp_from_min, zp_from_max)
    zp = np.where(zp <= qmin, qmin, np.where(zp >= qmax, qmax, np.copysign(np.floor(np.abs(zp) + 0.5), zp)))
    empty = rmin == rmax
    return np.where(empty, f32(1), scale.astype(f32)), np.where(empty, 0.0, zp)


def tflite_symmetric_qparams(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite PortableSymmetricQuantizeFloats' scale: ``max|x| / 127`` in float32."""
    rng = _max(np.abs(lo), np.abs(hi))
    return np.where(rng == 0, np.float32(1), rng / np.float32(127)), np.zeros(rng.shape)


def pytorch_per_token_qparams(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric`` (int8), in its float32 tensor
    arithmetic: the range widened to contain 0, ``scale = max((max - min) / 255, eps32)``, the zero point from
    the end with the smaller error (XNNPACK's rule), clamped to -128..127 and rounded half to even. Torch hands
    the scale on as float64 (exactly this float32 value)."""
    f32 = np.float32
    lo32, hi32 = _min(lo, f32(0)), _max(hi, f32(0))
    scale = _max((hi32 - lo32) / f32(255), EPS32)
    low, high = lo32 / scale, hi32 / scale
    from_min = np.where((f32(-128) + low) + (f32(127) + high) > 0, f32(-128) - low, f32(127) - high)
    return scale, np.rint(_min(_max(from_min, f32(-128)), f32(127)))


def pytorch_per_token_symmetric_qparams(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``torch.ops.quantized_decomposed.choose_qparams_per_token`` (int8): ``max(max|x|, 1e-5) / 127`` in
    float32, zero point 0."""
    rng = _max(_max(np.abs(lo), np.abs(hi)), np.float32(1e-5))
    return rng / np.float32(127), np.zeros(rng.shape)


#: (float32 range minima, maxima, reduce_range) -> (float32 scales, zero points as floats) of each parameter
#: rule, one per range: per row, or the one range of a per-tensor flavour
PARAM_RULES: dict[FlavourName, Callable[[np.ndarray, np.ndarray, bool], tuple[np.ndarray, np.ndarray]]] = {
    FlavourName.ONNX: lambda lo, hi, _: onnx_qparams(lo, hi),
    FlavourName.PYTORCH: lambda lo, hi, reduce_range: pytorch_qparams(lo, hi, reduce_range=reduce_range),
    FlavourName.TFLITE: lambda lo, hi, _: tflite_asymmetric_qparams(lo, hi),
    FlavourName.TFLITE_SYMMETRIC: lambda lo, hi, _: tflite_symmetric_qparams(lo, hi),
    FlavourName.PYTORCH_PER_TOKEN: lambda lo, hi, _: pytorch_per_token_qparams(lo, hi),
    FlavourName.PYTORCH_PER_TOKEN_SYMMETRIC: lambda lo, hi, _: pytorch_per_token_symmetric_qparams(lo, hi),
}


def _rows_qparams(x2d: np.ndarray, flavour: DynamicFlavour) -> tuple[QParams, np.ndarray | None]:
    """Run-time parameters of each row (or of the whole tensor) of a 2-D float32 input.

    Also returns the float32 multiplier TFLite's symmetric path uses instead of ``1 / scale``
    (``127 / range``, 0 for an all-zero row), None for the other flavours. A rule that divides an infinite
    end of a range by its infinite scale has no zero point (NaN): a ValueError, as ever (NaN/Inf inputs are
    not modelled; torch casts the NaN to an integer zero point).
    """
    from accelsim.kernels.quantize import row_minmax  # here, not at import: lowering reads the flavours without Numba

    per_tensor = flavour.granularity == "per_tensor"
    lo, hi = row_minmax(x2d.reshape(1, -1) if per_tensor else x2d)
    with np.errstate(all="ignore"):  # infinite and empty ranges divide to inf and NaN, as in the frameworks
        scales, zero_points = PARAM_RULES[flavour.params](lo, hi, flavour.reduce_range)
    if np.isnan(zero_points).any():
        r = int(np.flatnonzero(np.isnan(zero_points))[0])
        problem = f"row {r}'s range [{lo[r]}, {hi[r]}] gives no zero point"
        raise ValueError(f"{flavour.name}: {problem} (NaN/Inf inputs are not modelled)")
    narrow = flavour.params == FlavourName.TFLITE_SYMMETRIC  # symmetric TFLite clamps to -127..127
    qp = QParams(scales, zero_points, flavour.activation_dtype, None if per_tensor else 0, narrow)
    if flavour.params != FlavourName.TFLITE_SYMMETRIC:
        return qp, None
    rng = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(rng > 0, np.float32(127) / rng, np.float32(0)).astype(np.float32)
    return qp, inv


def dynamic_qparams(x2d: np.ndarray, flavour: str) -> QParams:
    """The parameters :func:`dynamic_quantize` takes from ``x2d``'s range, without quantizing it (a range
    pass over a tensor that is then quantized in parts)."""
    return _rows_qparams(np.ascontiguousarray(x2d, dtype=np.float32), get_flavour(flavour))[0]


def dynamic_quantize(x2d: np.ndarray, flavour: str | DynamicFlavour) -> tuple[np.ndarray, QParams]:
    """Quantize a 2-D float32 activation ``[rows, features]`` at run time: (codes, parameters).

    For per-row flavours a row is what the framework quantizes as one vector (a token for linear,
    one image's flattened NCHW tensor for conv).
    """
    f = get_flavour(flavour) if isinstance(flavour, str) else flavour
    x2d = np.ascontiguousarray(x2d, dtype=np.float32)
    qp, inv = _rows_qparams(x2d, f)
    q, _ = quantize_tensor(x2d, qp, f.rule, inv_scale=inv)
    return q, qp
