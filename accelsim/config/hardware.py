"""The accelerator a run simulates (DESIGN.md section 3); every field carries its unit in its name."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from accelsim.config.validation import FieldError, StrictModel

Dataflow = Literal["os", "ws", "is"]
ArrayModel = Literal["pipelined", "scalesim"]
Rounding = Literal["tflite", "tflite_single", "tflite_float64", "float_half_even", "fbgemm"]


class Accumulator(StrictModel):
    """The PE accumulator: int32 in every shipped design, narrower ones show overflow."""

    bits: int = Field(32, ge=8, le=64)
    overflow: Literal["wrap", "saturate"] = "wrap"


class SystolicArrayConfig(StrictModel):
    """rows x cols MAC PEs, one int8 MAC per PE per cycle."""

    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    dataflow: Dataflow
    model: ArrayModel = "pipelined"
    accumulator: Accumulator = Accumulator()
    float_rate: float = Field(0.0, ge=0.0)
    """Float MACs per PE per cycle relative to int8; 0 means float GEMMs run on the vector unit."""


class SramConfig(StrictModel):
    """On-chip buffers; each is split into two halves for double buffering."""

    ifmap_kib: float = Field(gt=0)
    filter_kib: float = Field(gt=0)
    ofmap_kib: float = Field(gt=0)


class DramConfig(StrictModel):
    """Off-chip memory: bandwidth as bytes per accelerator cycle or as GB/s (then the clock converts)."""

    bandwidth_bytes_per_cycle: float | None = Field(None, gt=0)
    bandwidth_gb_per_s: float | None = Field(None, gt=0)
    latency_cycles: int = Field(ge=0)
    channels: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _one_bandwidth(self) -> "DramConfig":
        given = [self.bandwidth_bytes_per_cycle is not None, self.bandwidth_gb_per_s is not None]
        if sum(given) != 1:
            raise FieldError(
                ("bandwidth_bytes_per_cycle",),
                "give exactly one of bandwidth_bytes_per_cycle and bandwidth_gb_per_s"
                + (" (both given)" if all(given) else " (neither given)"),
            )
        return self


class RequantConfig(StrictModel):
    """Fixed-point requantization unit after the array: int32 accumulators -> int8 outputs."""

    lanes: int = Field(gt=0)
    latency_cycles: int = Field(ge=0)
    rounding: Rounding = "tflite"
    multiplier_bits: int = Field(32, ge=8, le=32)


class VectorConfig(StrictModel):
    """fp32 vector unit: quantize, dequantize, range reduction, activations, pooling, WOQ dequant."""

    lanes: int = Field(gt=0)
    latency_cycles: int = Field(ge=0)


class HardwareConfig(StrictModel):
    """A whole accelerator, as loaded from ``hwconfigs/*.yaml``."""

    schema_version: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    clock_mhz: float = Field(gt=0)
    array: SystolicArrayConfig
    sram: SramConfig
    dram: DramConfig
    requant: RequantConfig
    vector: VectorConfig

    @property
    def dram_bytes_per_cycle(self) -> float:
        """DRAM bandwidth in bytes per accelerator clock cycle, whichever way it was given."""
        if self.dram.bandwidth_bytes_per_cycle is not None:
            return self.dram.bandwidth_bytes_per_cycle
        assert self.dram.bandwidth_gb_per_s is not None  # guaranteed by DramConfig's validator
        return self.dram.bandwidth_gb_per_s * 1e3 / self.clock_mhz

    @property
    def pe_count(self) -> int:
        return self.array.rows * self.array.cols

    @property
    def sram_total_kib(self) -> float:
        return self.sram.ifmap_kib + self.sram.filter_kib + self.sram.ofmap_kib
