"""Dynamic (run-time) activation quantization: each flavour's exact arithmetic (the flavours as data are
:data:`accelsim.dynamic_flavours.DYNAMIC_FLAVOURS`).

At run time the vector unit reduces the float input to its range, derives scale and zero point,
quantizes, the array accumulates int32, and the output is dequantized to float
``float32(acc) * float32(s_x[row] * s_w[c]) + bias[c]``, product and sum rounded separately
(TFLite reference, ONNX standard ops, PyTorch qnnpack) or fused into one FMA rounding (PyTorch fbgemm,
measured); TFLite's hybrid conv instead computes ``(float32(acc) * s_w[c]) * s_x[image] + bias[c]``
(measured).

Parameter rules, each the framework's code line by line:
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

import math
from collections.abc import Callable

import numpy as np

from accelsim.dynamic_flavours import DynamicFlavour, FlavourName, get_flavour
from accelsim.quant.qparams import QParams
from accelsim.quant.rules import quantize_tensor

SMALL_SCALE_THRESHOLD = np.float32(6.1e-5)  # PyTorch QuantUtils.h: fp16 min normal


def onnx_qparams(lo: float, hi: float) -> tuple[float, int]:
    """ORT GetQuantizationParameter<uint8_t>, float32 arithmetic."""
    lo32, hi32 = min(np.float32(lo), np.float32(0)), max(np.float32(hi), np.float32(0))
    scale = np.float32(1.0) if hi32 == lo32 else np.float32((hi32 - lo32) / np.float32(255))
    initial = np.float32(np.float32(0) - lo32 / scale)
    return float(scale), int(np.rint(np.float32(max(np.float32(0), min(np.float32(255), initial)))))


def pytorch_qparams(lo: float, hi: float, *, reduce_range: bool = True) -> tuple[float, int]:
    """PyTorch/fbgemm ChooseQuantizationParams(min, max, 0, 255, preserve_sparsity=False, reduce_range)."""
    qmin, qmax = (0, 127) if reduce_range else (0, 255)
    lo32, hi32 = min(np.float32(lo), np.float32(0)), max(np.float32(hi), np.float32(0))
    scale = (float(hi32) - float(lo32)) / (qmax - qmin)
    if np.float32(scale) == 0 or math.isinf(np.float32(1.0) / np.float32(scale)):
        scale = 0.1
    if scale < SMALL_SCALE_THRESHOLD:
        org_scale = np.float32(scale)
        scale = float(SMALL_SCALE_THRESHOLD)
        if lo32 == 0:
            hi32 = np.float32(SMALL_SCALE_THRESHOLD * np.float32(qmax - qmin))
        elif hi32 == 0:
            lo32 = np.float32(-SMALL_SCALE_THRESHOLD * np.float32(qmax - qmin))
        else:
            amplifier = np.float32(SMALL_SCALE_THRESHOLD / org_scale)
            lo32, hi32 = np.float32(lo32 * amplifier), np.float32(hi32 * amplifier)
    zp_from_min = qmin - float(lo32) / scale
    zp_from_max = qmax - float(hi32) / scale
    err_min = abs(qmin) - abs(float(lo32) / scale)
    err_max = abs(qmax) - abs(float(hi32) / scale)
    initial = zp_from_min if err_min < err_max else zp_from_max
    zp = qmin if initial < qmin else qmax if initial > qmax else int(np.rint(initial))
    return float(np.float32(scale)), zp


def tflite_asymmetric_qparams(lo: float, hi: float) -> tuple[float, int]:
    """TFLite PortableAsymmetricQuantizeFloats' scale and offset.

    ``rmin``/``rmax`` are float, so ``rmax - rmin`` is rounded to float32 before the double
    division by 255 (measured against TF 2.21's interpreter, whose scaling-factor tensor it matches).
    """
    rmin, rmax = min(np.float32(0), np.float32(lo)), max(np.float32(0), np.float32(hi))
    if rmin == rmax:
        return 1.0, 0
    qmin, qmax = -128.0, 127.0
    scale = float(np.float32(rmax - rmin)) / (qmax - qmin)
    zp_from_min = qmin - float(rmin) / scale
    zp_from_max = qmax - float(rmax) / scale
    err_min = abs(qmin) + abs(float(rmin) / scale)
    err_max = abs(qmax) + abs(float(rmax) / scale)
    zp_double = zp_from_min if err_min < err_max else zp_from_max
    if zp_double <= qmin:
        zp = -128
    elif zp_double >= qmax:
        zp = 127
    else:
        zp = int(math.copysign(math.floor(abs(zp_double) + 0.5), zp_double))
    return float(np.float32(scale)), zp


def tflite_symmetric_qparams(lo: float, hi: float) -> tuple[float, int]:
    """TFLite PortableSymmetricQuantizeFloats' scale: ``max|x| / 127`` in float32."""
    rng = max(abs(np.float32(lo)), abs(np.float32(hi)))
    return (1.0 if rng == 0 else float(np.float32(rng / np.float32(127)))), 0


def pytorch_per_token_qparams(lo: float, hi: float) -> tuple[float, int]:
    """``torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric`` (int8) for one row, in its
    float32 tensor arithmetic: the range widened to contain 0, ``scale = max((max - min) / 255, eps32)``,
    the zero point from the end with the smaller error (XNNPACK's rule), clamped to -128..127 and rounded
    half to even. Torch hands the scale on as float64 (exactly this float32 value)."""
    f32 = np.float32
    lo32, hi32 = min(f32(lo), f32(0)), max(f32(hi), f32(0))
    scale = max(f32(f32(hi32 - lo32) / f32(255)), f32(np.finfo(np.float32).eps))
    low, high = f32(lo32 / scale), f32(hi32 / scale)
    from_min = f32(f32(-128) - low) if f32(f32(f32(-128) + low) + f32(f32(127) + high)) > 0 else f32(f32(127) - high)
    return float(scale), int(np.rint(min(max(from_min, f32(-128)), f32(127))))


def pytorch_per_token_symmetric_qparams(lo: float, hi: float) -> tuple[float, int]:
    """``torch.ops.quantized_decomposed.choose_qparams_per_token`` (int8) for one row: ``max(max|x|, 1e-5) / 127``
    in float32, zero point 0."""
    rng = max(abs(np.float32(lo)), abs(np.float32(hi)), np.float32(1e-5))
    return float(np.float32(rng / np.float32(127))), 0


#: (range min, range max, reduce_range) -> (float32 scale, zero point) of each parameter rule
PARAM_RULES: dict[FlavourName, Callable[[float, float, bool], tuple[float, int]]] = {
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
    (``127 / range``, 0 for an all-zero row), None for the other flavours.
    """
    from accelsim.kernels.quantize import row_minmax  # here, not at import: lowering reads the flavours without Numba

    if flavour.granularity == "per_tensor":
        lo, hi = row_minmax(x2d.reshape(1, -1))
    else:
        lo, hi = row_minmax(x2d)
    rule = PARAM_RULES[flavour.params]
    pairs = [rule(float(a), float(b), flavour.reduce_range) for a, b in zip(lo, hi)]
    axis = None if flavour.granularity == "per_tensor" else 0
    dtype = flavour.activation_dtype
    narrow = flavour.params == FlavourName.TFLITE_SYMMETRIC  # symmetric TFLite clamps to -127..127
    qp = QParams([p[0] for p in pairs], [p[1] for p in pairs], dtype, axis, narrow)
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
