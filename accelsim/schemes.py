"""The four quantization schemes of DESIGN.md section 4, as data the lowering and timing models read.

For each tensor: is it quantized, at which granularity, when are its parameters known, and which
dtype does it have in DRAM and inside each unit (array operands/accumulator, requant unit,
vector unit). Byte counts, unit occupancy and the numerics all derive from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from accelsim.errors import AccelsimError
from accelsim.vocabulary import named_row


class SchemeName(StrEnum):
    """The schemes' names: the keys of :data:`SCHEMES` (a test holds the two equal). A ``StrEnum`` equals its
    string, so a name read from YAML or the command line compares and serializes as users write it."""

    FP32 = "fp32"
    WOQ = "woq"
    DYNAMIC = "dynamic"
    STATIC = "static"


class WeightFormatName(StrEnum):
    """The weight formats' names: the keys of :data:`WEIGHT_FORMATS` (a test holds the two equal)."""

    SYMMETRIC = "symmetric"
    ASYMMETRIC = "asymmetric"
    ASYMMETRIC_INT8 = "asymmetric_int8"
    INT4_G32 = "int4_g32"
    INT4_G64 = "int4_g64"
    INT4_G128 = "int4_g128"
    INT4_G32_ZP = "int4_g32_zp"
    INT4_G64_ZP = "int4_g64_zp"
    INT4_G128_ZP = "int4_g128_zp"


@dataclass(frozen=True)
class TensorPlan:
    """How one tensor of a layer is represented under a scheme."""

    quantized: bool
    dram_dtype: str  # dtype stored in / moved from DRAM
    granularity: str | None = None  # per_tensor, per_channel, per_row (None: float)
    symmetric: bool | None = None
    qparams_known: str = "never"  # "offline" (calibration / weights), "runtime" (vector unit), "never"


@dataclass(frozen=True)
class Scheme:
    """What a scheme quantizes and what each unit computes on."""

    name: SchemeName
    weights: TensorPlan
    activations: TensorPlan
    bias: TensorPlan
    outputs: TensorPlan
    array_operand_dtype: str  # dtype of the MAC inputs
    array_accumulator_dtype: str
    requant_unit: bool  # does the requant unit run (int32 -> int8)?
    vector_ops: tuple[str, ...]  # what the vector unit does per layer, in order
    description: str

    @property
    def is_reference(self) -> bool:
        """Nothing is quantized: the float run every other scheme's error is measured against."""
        return not (self.weights.quantized or self.activations.quantized)

    @property
    def float_gemm(self) -> bool:
        """The array multiplies floats (weights, if quantized, are dequantized on the way in)."""
        return self.array_operand_dtype == "float32"

    @property
    def runtime_activations(self) -> bool:
        """Activation quantization parameters are measured at run time (a dynamic flavour applies)."""
        return self.activations.qparams_known == "runtime"

    @property
    def calibrated(self) -> bool:
        """Activation parameters are fixed offline by calibration, and the requant unit writes integers."""
        return self.activations.qparams_known == "offline" and self.requant_unit

    def with_weights(self, weights: str) -> Scheme:
        """This scheme with its weights stored in format ``weights`` (:data:`WEIGHT_FORMATS`); a scheme
        whose weights stay float (fp32) is unchanged."""
        fmt = get_weight_format(weights)
        if not self.weights.quantized or fmt.name == WeightFormatName.SYMMETRIC:
            return self
        if fmt.group is not None and self.requant_unit:
            raise AccelsimError(
                f"int4 group-wise weights ({fmt.name}) do not run under the {self.name} scheme: its requant unit "
                "takes one multiplier per output channel, not one per group",
                path="weights",
                allowed="woq (weight-only int4) or dynamic (W4A8), or an int8 weight format",
            )
        plan = replace(self.weights, dram_dtype=fmt.dtype, symmetric=fmt.symmetric)
        return replace(self, weights=replace(plan, granularity="per_group") if fmt.group else plan)

    def weight_group(self, weights: str) -> int | None:
        """K elements per weight scale when this scheme stores its weights in ``weights``, an int4 group-wise
        format (:data:`WEIGHT_FORMATS`); None for an int8 format or float weights (fp32), which ignore it. The
        one test of "int4 group-wise and quantized" that the lowering, the values and the CLI's lines share."""
        return get_weight_format(weights).group if self.weights.quantized else None

    def unit_dtypes(self) -> dict[str, tuple[str, str]]:
        """(input dtype, output dtype) of each unit that runs under this scheme."""
        out = {"array": (self.array_operand_dtype, self.array_accumulator_dtype)}
        if self.requant_unit:
            out["requant"] = (self.array_accumulator_dtype, self.outputs.dram_dtype)
        if self.vector_ops:
            out["vector"] = ("float32", self.array_operand_dtype if "quantize" in self.vector_ops else "float32")
        return out


_FLOAT = TensorPlan(False, "float32")
_WEIGHTS_INT8 = TensorPlan(True, "int8", "per_channel", True, "offline")

SCHEMES: dict[SchemeName, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            SchemeName.FP32,
            _FLOAT,
            _FLOAT,
            _FLOAT,
            _FLOAT,
            "float32",
            "float32",
            False,
            (),
            "everything float32: the reference for error metrics",
        ),
        Scheme(
            SchemeName.WOQ,
            _WEIGHTS_INT8,
            _FLOAT,
            _FLOAT,
            _FLOAT,
            "float32",
            "float32",
            False,
            ("dequantize_weights",),
            "weights int8 in DRAM, dequantized on the way in; float GEMM (array float datapath or vector unit)",
        ),
        Scheme(
            SchemeName.DYNAMIC,
            _WEIGHTS_INT8,
            TensorPlan(True, "float32", "per_tensor", False, "runtime"),
            _FLOAT,
            _FLOAT,
            "int8",
            "int32",
            False,
            ("range_reduce", "quantize", "dequantize"),
            "activations quantized at run time from their range (flavour: tflite, onnx, pytorch); float output",
        ),
        Scheme(
            SchemeName.STATIC,
            _WEIGHTS_INT8,
            TensorPlan(True, "int8", "per_tensor", False, "offline"),
            TensorPlan(True, "int32", "per_channel", True, "offline"),
            TensorPlan(True, "int8", "per_tensor", False, "offline"),
            "int8",
            "int32",
            True,
            (),
            "full int8: calibrated activations, int32 bias, requant unit writes int8",
        ),
    )
}


@dataclass(frozen=True)
class WeightFormat:
    """How quantized weights map to codes: dtype, whether they carry a zero point (affine), and for the
    group-wise int4 formats the group size along K (a scale, and a zero point unless symmetric, per group)."""

    name: WeightFormatName
    dtype: str
    symmetric: bool  # no stored zero point (int8: 0, -127..127; int4: 8); else affine min-max with a zero point
    reference: str
    group: int | None = None  # elements along K per scale; None: per output channel (or per tensor)


#: weight code formats a run can select (``simulate(..., weights=)``, ``--weights``)
WEIGHT_FORMATS: dict[WeightFormatName, WeightFormat] = {
    f.name: f
    for f in (
        WeightFormat(
            WeightFormatName.SYMMETRIC,
            "int8",
            True,
            "int8, zero point 0, -127..127 (TFLite, PyTorch, ORT QInt8 default)",
        ),
        WeightFormat(
            WeightFormatName.ASYMMETRIC,
            "uint8",
            False,
            "uint8 affine, a zero point per channel (ORT quantize_static weight_type=QUInt8)",
        ),
        WeightFormat(
            WeightFormatName.ASYMMETRIC_INT8,
            "int8",
            False,
            "int8 affine -128..127 with a zero point (ORT QInt8, WeightSymmetric=False)",
        ),
        *(
            WeightFormat(
                WeightFormatName(f"int4_g{group}{'_zp' * (not symmetric)}"),
                "uint4",
                symmetric,
                f"int4 in groups of {group} along K, packed two per byte, a float32 scale "
                + ("per group, zero point 8" if symmetric else "and a 4-bit zero point per group")
                + f" (ORT MatMulNBits block_size={group}, is_symmetric={symmetric}; GPTQ / AWQ)",
                group,
            )
            for symmetric in (True, False)
            for group in (32, 64, 128)
        ),
    )
}


def get_weight_format(name: str) -> WeightFormat:
    """Look a weight format up by name; an unknown one is the user's mistake (:class:`AccelsimError`)."""
    return named_row(WEIGHT_FORMATS, name, "weights")


def get_scheme(name: str, weights: str = WeightFormatName.SYMMETRIC) -> Scheme:
    """Look a scheme up by name; ``weights`` selects the weight format. An unknown name is the user's
    mistake: the same :class:`AccelsimError` wherever the name arrives (``simulate``, ``run_values``, the CLI)."""
    return named_row(SCHEMES, name, "scheme").with_weights(weights)
