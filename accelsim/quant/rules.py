"""How each framework turns a float into a quantized code (the three bit-relevant choices).

See :mod:`accelsim.kernels.quantize` for why each choice changes bits. The rules are data so that
schemes, dynamic flavours and requant modes can name the one their reference uses. The kernels are
imported by the functions that call them: lowering reads these tables without loading Numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.quant.qparams import QParams


@dataclass(frozen=True)
class QuantizeRule:
    """``q = clamp(round(x op s) + z)`` with the framework's op, rounding and zero-point placement."""

    name: str
    reciprocal: bool  # x * float32(1/s) instead of x / s
    half_away: bool  # std::round instead of round-half-even
    zero_point_before_rounding: bool  # round(x/s + z) instead of round(x/s) + z
    fused: bool  # x * (1/s) + z in one FMA rounding
    reference: str


ONNX = QuantizeRule("onnx", False, False, False, False, "ORT MlasQuantizeLinear: rint(x / s) + z")
FBGEMM = QuantizeRule(
    "fbgemm",
    True,
    False,
    True,
    True,
    "torch.quantize_per_tensor and the dynamic Linear's input (fbgemm QuantizeAvx2<T, LEGACY=true>: "
    "_mm256_fmadd_ps then _mm256_cvtps_epi32): rint(fma(x, float32(1/s), z))",
)
TORCH_FAKE_QUANT = QuantizeRule(
    "torch_fake_quant",
    True,
    False,
    False,
    False,
    "torch.fake_quantize_per_tensor_affine (QAT; the arithmetic of fbgemm Quantize<T, LEGACY=false>): z + rint(x * float32(1/s))",
)
TFLITE = QuantizeRule("tflite", False, True, False, False, "TFLite reference AffineQuantize: round(x / s) + z")
TFLITE_HYBRID = QuantizeRule(
    "tflite_hybrid", True, True, True, False, "TFLite PortableAsymmetricQuantizeFloats: round(z + x * (1/s))"
)
RULES = {r.name: r for r in (ONNX, FBGEMM, TORCH_FAKE_QUANT, TFLITE, TFLITE_HYBRID)}


def quantize_tensor(
    x: np.ndarray, qp: QParams, rule: QuantizeRule = ONNX, *, inv_scale: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Quantize ``x`` with ``qp`` under ``rule``: (codes in ``qp``'s numpy dtype, clamped count)."""
    from accelsim.kernels.quantize import quantize

    q, sats = quantize(
        x,
        qp.scale,
        qp.zero_point,
        qmin=qp.qmin,
        qmax=qp.qmax,
        axis=qp.axis,
        reciprocal=rule.reciprocal,
        half_away=rule.half_away,
        zero_point_before_rounding=rule.zero_point_before_rounding,
        inv_scale=inv_scale,
        fused=rule.fused,
        out_dtype=qp.numpy_dtype,
    )
    return q, sats


def dequantize_tensor(q: np.ndarray, qp: QParams) -> np.ndarray:
    """``float32(q - z) * s`` (all frameworks agree on this one)."""
    from accelsim.kernels.quantize import dequantize

    return dequantize(q, qp.scale, qp.zero_point, axis=qp.axis)


#: float32 clamp of the activations a residual add can fuse
ADD_CLAMPS = {"none": (-np.inf, np.inf), "relu": (0.0, np.inf), "relu6": (0.0, 6.0)}


def add_tensors(
    a: np.ndarray, a_qp: QParams, b: np.ndarray, b_qp: QParams, out_qp: QParams, rule: QuantizeRule, activation: str
) -> tuple[np.ndarray, int]:
    """Per-tensor codes ``a + b`` on the vector unit (dequantize, add, activation, quantize with ``rule``,
    all float32) in one pass: (codes in ``out_qp``'s dtype, clamped count)."""
    from accelsim.kernels.quantize import add_codes

    def pair(qp: QParams) -> tuple[float, int]:
        return float(qp.scale[0]), int(qp.zero_point[0])

    return add_codes(
        a,
        pair(a_qp),
        b,
        pair(b_qp),
        ADD_CLAMPS[activation],
        pair(out_qp),
        qmin=out_qp.qmin,
        qmax=out_qp.qmax,
        reciprocal=rule.reciprocal,
        half_away=rule.half_away,
        zero_point_before_rounding=rule.zero_point_before_rounding,
        fused=rule.fused,
        out_dtype=out_qp.numpy_dtype,
    )
