"""Dynamic (run-time) activation quantization's flavours as data: what ``--flavour`` and a sweep's
``flavour`` may name, and what each framework does (parameter rule, dtype, granularity, rounding rule,
output arithmetic).

NumPy-free, like :mod:`accelsim.schemes`: config and lowering read this table without loading the
arithmetic, which lives in :mod:`accelsim.quant.dynamic` (the parameter rules and docs/numerics.md say
what each flavour computes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accelsim.quantize_rules import (
    FBGEMM,
    ONNX,
    TFLITE_HYBRID,
    TORCH_PER_TOKEN,
    TORCH_PER_TOKEN_SYMMETRIC,
    QuantizeRule,
)
from accelsim.vocabulary import named_row


class FlavourName(StrEnum):
    """The flavours' names: the keys of :data:`DYNAMIC_FLAVOURS` (a test holds the two equal)."""

    TFLITE = "tflite"
    TFLITE_SYMMETRIC = "tflite_symmetric"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    PYTORCH_QNNPACK = "pytorch_qnnpack"
    PYTORCH_PER_TOKEN = "pytorch_per_token"
    PYTORCH_PER_TOKEN_SYMMETRIC = "pytorch_per_token_symmetric"


@dataclass(frozen=True)
class DynamicFlavour:
    """What a framework's dynamic quantization does to activations.

    ``params`` names the flavour whose parameter rule it uses (a key of ``accelsim.quant.dynamic.PARAM_RULES``);
    ``reduce_range`` halves the code range the parameters are chosen for (PyTorch's fbgemm engine: 0..127,
    so that a uint8 x int8 pair sum fits int16 on AVX2 without saturation), while quantization still
    clamps to the dtype. A flavour is data: ``dataclasses.replace(get_flavour("pytorch"), reduce_range=False)``
    is fbgemm's ``torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False)`` for
    :func:`accelsim.quant.dynamic.dynamic_quantize`.
    """

    name: FlavourName
    params: FlavourName  # whose parameter rule (scale, zero point from the range) this flavour uses
    activation_dtype: str
    granularity: str  # "per_tensor" or "per_row" (per image for conv)
    symmetric: bool
    reduce_range: bool
    rule: QuantizeRule
    fused_output: bool  # output float(acc) * scale + bias with one rounding (FMA)
    conv_channel_scale_first: bool  # conv output (float(acc) * s_w[c]) * s_x[image] + bias
    reference: str


DYNAMIC_FLAVOURS: dict[FlavourName, DynamicFlavour] = {
    f.name: f
    for f in (
        DynamicFlavour(
            FlavourName.TFLITE,
            FlavourName.TFLITE,
            "int8",
            "per_row",
            False,
            False,
            TFLITE_HYBRID,
            False,
            True,
            "TFLite hybrid FULLY_CONNECTED / CONV_2D, asymmetric_quantize_inputs=true",
        ),
        DynamicFlavour(
            FlavourName.TFLITE_SYMMETRIC,
            FlavourName.TFLITE_SYMMETRIC,
            "int8",
            "per_row",
            True,
            False,
            TFLITE_HYBRID,
            False,
            True,
            "TFLite hybrid kernels, asymmetric_quantize_inputs=false",
        ),
        DynamicFlavour(
            FlavourName.ONNX,
            FlavourName.ONNX,
            "uint8",
            "per_tensor",
            False,
            False,
            ONNX,
            False,
            False,
            "ONNX DynamicQuantizeLinear + MatMulInteger/ConvInteger (ORT quantize_dynamic)",
        ),
        DynamicFlavour(
            FlavourName.PYTORCH,
            FlavourName.PYTORCH,
            "uint8",
            "per_tensor",
            False,
            True,
            FBGEMM,
            True,
            False,
            "torch.ao.nn.quantized.dynamic.Linear, fbgemm / x86 engine (reduce_range=True)",
        ),
        DynamicFlavour(
            FlavourName.PYTORCH_QNNPACK,
            FlavourName.PYTORCH,
            "uint8",
            "per_tensor",
            False,
            False,
            FBGEMM,
            False,
            False,
            "torch.ao.nn.quantized.dynamic.Linear, qnnpack engine (reduce_range ignored: full 0..255)",
        ),
        # W8A8 dynamic with per-token activation scales (LLM serving: torchao / ExecuTorch's 8da*w recipes)
        DynamicFlavour(
            FlavourName.PYTORCH_PER_TOKEN,
            FlavourName.PYTORCH_PER_TOKEN,
            "int8",
            "per_row",
            False,
            False,
            TORCH_PER_TOKEN,
            False,
            False,
            "torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric + quantize_per_token (int8 -128..127)",
        ),
        DynamicFlavour(
            FlavourName.PYTORCH_PER_TOKEN_SYMMETRIC,
            FlavourName.PYTORCH_PER_TOKEN_SYMMETRIC,
            "int8",
            "per_row",
            True,
            False,
            TORCH_PER_TOKEN_SYMMETRIC,
            False,
            False,
            "torch.ops.quantized_decomposed.choose_qparams_per_token + quantize_per_token (int8 -128..127)",
        ),
    )
}


def get_flavour(name: str) -> DynamicFlavour:
    """Look a flavour up by name; an unknown one is the user's mistake (:class:`AccelsimError`, as for a scheme)."""
    return named_row(DYNAMIC_FLAVOURS, name, "flavour")
