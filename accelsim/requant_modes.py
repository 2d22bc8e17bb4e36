"""The requant unit's modes as data: what the config's ``requant.rounding`` may name, and what each mode
costs the timing (parameter bytes per channel) and means for the values (arithmetic, bias domain, the
framework's input rule and activation dtype).

Every mode names the framework whose bits it reproduces; see docs/numerics.md for the arithmetic and the
tests that prove each one. NumPy-free, like :mod:`accelsim.schemes`: config and lowering read this table
without loading the arithmetic, which lives in :mod:`accelsim.quant.requant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from accelsim.quantize_rules import FBGEMM, ONNX, TFLITE, QuantizeRule
from accelsim.vocabulary import named_row


class RequantModeName(StrEnum):
    """The modes' names: the keys of :data:`REQUANT_MODES` (a test holds the two equal)."""

    TFLITE = "tflite"
    TFLITE_SINGLE = "tflite_single"
    TFLITE_FLOAT64 = "tflite_float64"
    FLOAT_HALF_EVEN = "float_half_even"
    FBGEMM = "fbgemm"


@dataclass(frozen=True)
class RequantMode:
    """One rounding choice of the requant unit and the framework conventions that go with it."""

    name: RequantModeName
    arithmetic: str  # "fixed_point" (M0, shift), "float64" or "float32" (scale multiply)
    single_rounding: bool
    bias_domain: str  # "int32": bias_q loaded into the accumulator; "float32": added in the requant unit
    input_rule: QuantizeRule  # how the framework quantizes the float layer input
    activation_dtype: str  # the framework's activation dtype
    reference: str

    @property
    def channel_parameter_bytes(self) -> int:
        """Bytes the requant unit loads per output channel: int32 M0 and int32 shift (TFLite's layout),
        one float64 scale (TF's float-scale FULLY_CONNECTED) or one float32 scale."""
        return {"fixed_point": 8, "float64": 8, "float32": 4}[self.arithmetic]


REQUANT_MODES: dict[RequantModeName, RequantMode] = {
    m.name: m
    for m in (
        RequantMode(
            RequantModeName.TFLITE,
            "fixed_point",
            False,
            "int32",
            TFLITE,
            "int8",
            "TFLite BUILTIN_REF CONV_2D / DEPTHWISE_CONV_2D int8: gemmlowp double rounding",
        ),
        RequantMode(
            RequantModeName.TFLITE_SINGLE,
            "fixed_point",
            True,
            "int32",
            TFLITE,
            "int8",
            "TFLite built with TFLITE_SINGLE_ROUNDING=1",
        ),
        RequantMode(
            RequantModeName.TFLITE_FLOAT64,
            "float64",
            False,
            "int32",
            TFLITE,
            "int8",
            "TFLite BUILTIN_REF FULLY_CONNECTED int8 (TF 2.21): round(double(acc) * (s_x * s_w / s_y) in double)",
        ),
        RequantMode(
            RequantModeName.FLOAT_HALF_EVEN,
            "float32",
            False,
            "int32",
            ONNX,
            "uint8",
            "ONNX Runtime QLinearConv / QLinearMatMul (MlasRequantizeOutput); Gemmini",
        ),
        RequantMode(
            RequantModeName.FBGEMM,
            "float32",
            False,
            "float32",
            FBGEMM,
            "uint8",
            "PyTorch quantized Conv2d / Linear on fbgemm (requantizeOutputProcessingAvx2)",
        ),
    )
}


def get_mode(name: str) -> RequantMode:
    """Look a mode up by name; an unknown one is the user's mistake (:class:`AccelsimError`, as for a scheme)."""
    return named_row(REQUANT_MODES, name, "requant mode", "requant.rounding")
