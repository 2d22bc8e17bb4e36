"""Bytes per element of each operand class, in DRAM and in SRAM, as a quantization scheme stores them.

Traffic depends on the scheme (DESIGN.md section 4): static int8 moves int8 activations; dynamic and
weight-only keep fp32 activations in DRAM (dynamic quantizes them on the way into SRAM); weight-only
dequantizes int8 weights to fp32 on the way in; fp32 moves everything as fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.config.hardware import HardwareConfig

SCHEMES = ("fp32", "woq", "dynamic", "static")


@dataclass(frozen=True)
class OperandFormat:
    """Bytes per element of every operand class for one scheme."""

    scheme: str
    ifmap_dram: int
    ifmap_sram: int
    weights_dram: int
    weights_sram: int
    ofmap_dram: int
    bias_per_channel: int
    weight_scales_per_channel: int
    runtime_scales_per_range: int  # scale and zero point computed at run time (dynamic)
    accumulator: int = 4  # int32 (or fp32) partial sums in the ofmap buffer

    @property
    def float_gemm(self) -> bool:
        """The GEMM runs on the float datapath (array at float_rate, or the vector unit)."""
        return self.scheme in ("fp32", "woq")


def operand_format(scheme: str, hw: HardwareConfig) -> OperandFormat:
    """The formats of ``scheme`` on ``hw`` (the requant mode decides how requant parameters are stored)."""
    if scheme == "static":
        fixed_point = hw.requant.rounding in ("tflite", "tflite_single")
        # fixed point: int32 M0 and int32 shift per channel (TFLite's layout); float modes: one fp32 scale
        return OperandFormat("static", 1, 1, 1, 1, 1, 4, 8 if fixed_point else 4, 0)
    if scheme == "dynamic":
        return OperandFormat("dynamic", 4, 1, 1, 1, 4, 4, 4, 8)
    if scheme == "woq":
        return OperandFormat("woq", 4, 4, 1, 4, 4, 4, 4, 0)
    if scheme == "fp32":
        return OperandFormat("fp32", 4, 4, 4, 4, 4, 4, 0, 0)
    raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
