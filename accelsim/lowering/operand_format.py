"""Bytes per element of each operand class, in DRAM and in SRAM, as a quantization scheme stores them.

Traffic depends on the scheme (DESIGN.md section 4): static int8 moves int8 activations; dynamic and
weight-only keep fp32 activations in DRAM (dynamic quantizes them on the way into SRAM); weight-only
dequantizes int8 weights to fp32 on the way in; fp32 moves everything as fp32.

The per-output-channel parameters (bias, weight scales or requant multipliers and shifts, weight zero
points) are priced here and nowhere else: :meth:`OperandFormat.channel_parameters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import ceil

from accelsim.config.hardware import HardwareConfig
from accelsim.requant_modes import get_mode
from accelsim.schemes import WeightFormatName, get_scheme


@dataclass(frozen=True)
class ChannelParameters:
    """Bytes of the per-output-channel parameters of a number of channels, by the operand they are
    reported under (``dram_read_bytes_bias``, ``dram_read_bytes_weight_scales``)."""

    bias: int
    weight_scales: int  # scales (or requant M0 and shift) plus the weight zero points, if any

    @property
    def total(self) -> int:
        return self.bias + self.weight_scales


@dataclass(frozen=True)
class OperandFormat:
    """Bytes per element of every operand class for one scheme."""

    scheme: str
    ifmap_dram: int
    ifmap_sram: int
    weights_dram: float  # 0.5 for int4 weights packed two per byte
    weights_sram: float  # as in DRAM when a dequantization unit between the filter buffer and the array converts them
    ofmap_dram: int
    bias_per_channel: int
    weight_scales_per_channel: int
    weight_zero_points_per_channel: int = 0  # asymmetric weights: one int8/uint8 zero point per channel
    accumulator: int = 4  # int32 (or fp32) partial sums in the ofmap buffer
    #: int4 group-wise weights: K elements per group; the scale (and zero point) bytes above are then per
    #: group, the zero points 4-bit, two per byte
    weight_group: int | None = None
    #: one weight scale (and zero point) for the whole tensor: a block reads one set, not one per channel
    per_tensor_weights: bool = False

    def channel_parameters(self, channels: int, bias: bool = True, k: int = 0) -> ChannelParameters:
        """Per-channel parameters of ``channels`` output channels of a layer with or without a bias (and
        K = ``k``, which sets the number of groups of group-wise weights). The zero points travel and are
        reported with the scales: both describe the weights' code mapping and the requant or dequant step
        reads them together."""
        per_channel = self.weight_scales_per_channel + self.weight_zero_points_per_channel
        if self.weight_group is not None:
            groups = ceil(k / self.weight_group)
            per_channel = (
                groups * self.weight_scales_per_channel + ceil(groups / 2) * self.weight_zero_points_per_channel
            )
        elif self.per_tensor_weights:
            return ChannelParameters(
                bias=channels * self.bias_per_channel * bias, weight_scales=per_channel * (channels > 0)
            )
        return ChannelParameters(bias=channels * self.bias_per_channel * bias, weight_scales=channels * per_channel)

    @cached_property
    def float_gemm(self) -> bool:
        """The GEMM runs on the float datapath (array at float_rate, or the vector unit); looked up once (a
        lowering asks for every tile it prices)."""
        return get_scheme(self.scheme).float_gemm


def dequant_unit(scheme: str, hw: HardwareConfig) -> bool:
    """Does a dequantization unit between the filter buffer and the array convert ``scheme``'s weights (a
    float GEMM on quantized weights, on an array with ``dequant_lanes``)? Else the vector unit does, into SRAM."""
    plan = get_scheme(scheme)
    return plan.float_gemm and plan.weights.quantized and hw.array.dequant_lanes > 0


def _bytes(dtype: str) -> int:
    return {"int8": 1, "uint8": 1, "int32": 4, "float32": 4}[dtype]


def _weight_bytes(dtype: str) -> float:
    """Bytes per stored weight code: the int4 formats' uint4 codes are packed two per byte."""
    return 0.5 if dtype == "uint4" else _bytes(dtype)


def operand_format(
    scheme: str,
    hw: HardwareConfig,
    *,
    weights: str = WeightFormatName.SYMMETRIC,
    per_tensor_weights: bool = False,
) -> OperandFormat:
    """Byte widths of ``scheme`` with its weights in format ``weights`` (from the tables in
    ``accelsim.schemes``, whose refusals apply: int4 weights under a requant unit) on ``hw``.

    Asymmetric quantized weights carry a zero point per output channel (ONNX Runtime's uint8 weights), one
    byte each; a scheme whose weights stay float (fp32) has none. int4 group-wise weights are half a byte each
    in DRAM, with a float32 scale and (asymmetric) a 4-bit zero point per group of K elements.
    ``per_tensor_weights``: one weight scale (requant multiplier) and zero point for the whole tensor.
    Weight-only weights stay codes in the filter buffer when the array has a dequantization unit
    (``array.dequant_lanes``): it converts them on their way into the PEs."""
    plan = get_scheme(scheme, weights)
    group = plan.weight_group(weights)
    if plan.requant_unit:
        scales = get_mode(hw.requant.rounding).channel_parameter_bytes  # requant parameters replace the weight scales
    else:
        scales = 4 if plan.weights.quantized else 0
    weights_dram = _weight_bytes(plan.weights.dram_dtype)
    return OperandFormat(
        scheme=scheme,
        ifmap_dram=_bytes(plan.activations.dram_dtype),
        ifmap_sram=_bytes(plan.array_operand_dtype),
        weights_dram=weights_dram,
        weights_sram=weights_dram if dequant_unit(plan.name, hw) else _bytes(plan.array_operand_dtype),
        ofmap_dram=_bytes(plan.outputs.dram_dtype),
        bias_per_channel=_bytes(plan.bias.dram_dtype),
        weight_scales_per_channel=scales,
        weight_zero_points_per_channel=1 if plan.weights.quantized and not plan.weights.symmetric else 0,
        weight_group=group,
        per_tensor_weights=per_tensor_weights and group is None and plan.weights.quantized,
    )
