"""How each framework turns a float into a quantized code (the three bit-relevant choices), as data.

See :mod:`accelsim.kernels.quantize` for why each choice changes bits. The rules are numpy-free data so
that the requant-mode and dynamic-flavour tables (read by config and lowering, which load no NumPy or
Numba) can name the rule their reference uses; :mod:`accelsim.quant.rules` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantizeRule:
    """``q = clamp(round(x op s) + z)`` with the framework's op, rounding and zero-point placement."""

    name: str
    reciprocal: bool  # x * float32(1/s) instead of x / s
    half_away: bool  # std::round instead of round-half-even
    zero_point_before_rounding: bool  # round(x/s + z) instead of round(x/s) + z
    fused: bool  # x * (1/s) + z in one FMA rounding
    reference: str
    #: ``x * (1/s) + z`` in float64 with ``1/s`` in float64 (PyTorch's decomposed per-token ops, whose scales
    #: are float64 tensors, so type promotion lifts the float32 input)
    wide: bool = False


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
TORCH_PER_TOKEN = QuantizeRule(
    "torch_per_token",
    True,
    False,
    True,
    False,
    "torch.ops.quantized_decomposed.quantize_per_token with choose_qparams_per_token_asymmetric's float64 "
    "scales: rint(float64(x) * (1.0 / float64(s)) + z)",
    wide=True,
)
TORCH_PER_TOKEN_SYMMETRIC = QuantizeRule(
    "torch_per_token_symmetric",
    True,
    False,
    True,
    False,
    "torch.ops.quantized_decomposed.quantize_per_token with choose_qparams_per_token's float32 scales: "
    "rint(x * float32(1 / s) + 0)",
)
RULES = {
    r.name: r
    for r in (ONNX, FBGEMM, TORCH_FAKE_QUANT, TFLITE, TFLITE_HYBRID, TORCH_PER_TOKEN, TORCH_PER_TOKEN_SYMMETRIC)
}
