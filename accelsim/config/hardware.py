"""The accelerator a run simulates (DESIGN.md section 3); every field carries its unit in its name."""

# No `from __future__ import annotations`: pydantic would compile each annotation from its text (config/workload.py).
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from accelsim.config.ranges import PLAIN_NAME_CHECK, number, whole
from accelsim.config.validation import FieldError, StrictModel
from accelsim.requant_modes import RequantModeName

Dataflow = Literal["os", "ws", "is"]
ArrayModel = Literal["pipelined", "scalesim"]
#: a requant mode as YAML names it: one of the mode table's names (strict models take an enum from its string here)
Rounding = Annotated[RequantModeName, Field(strict=False)]

# Plausible ranges (docs/hardware.md gives the reason for each bound).
ArraySide = Annotated[int, whole(1, 4096, "PEs")]
SramKiB = Annotated[float, number(1 / 1024, 1024 * 1024, "KiB (1 byte to 1 GiB)")]
Lanes = Annotated[int, whole(1, 65536, "lanes")]
PipelineCycles = Annotated[int, whole(0, 10_000, "cycles")]


class Accumulator(StrictModel):
    """The PE accumulator: int32 in every shipped design, narrower ones show overflow."""

    bits: Annotated[int, whole(8, 64, "bits")] = 32
    overflow: Literal["wrap", "saturate"] = "wrap"


class SystolicArrayConfig(StrictModel):
    """rows x cols MAC PEs, one int8 MAC per PE per cycle."""

    rows: ArraySide
    cols: ArraySide
    dataflow: Dataflow
    model: ArrayModel = "pipelined"
    accumulator: Accumulator = Accumulator()
    float_rate: Annotated[float, number(0, 1, "float MACs per int8 MAC")] = 0.0
    """Float MACs per PE per cycle relative to int8; 0 means float GEMMs run on the vector unit."""


class SramConfig(StrictModel):
    """On-chip buffers; each is split into two halves for double buffering."""

    ifmap_kib: SramKiB
    filter_kib: SramKiB
    ofmap_kib: SramKiB


class DramConfig(StrictModel):
    """Off-chip memory: bandwidth as bytes per accelerator cycle or as GB/s (then the clock converts)."""

    bandwidth_bytes_per_cycle: Annotated[float, number(0.001, 2**20, "bytes per cycle")] | None = None
    bandwidth_gb_per_s: Annotated[float, number(0.001, 100_000, "GB/s")] | None = None
    latency_cycles: Annotated[int, whole(0, 1_000_000, "cycles")]
    channels: Annotated[int, whole(1, 1024, "channels")] = 1

    @model_validator(mode="after")
    def _one_bandwidth(self) -> Self:
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

    lanes: Lanes
    latency_cycles: PipelineCycles
    rounding: Rounding = RequantModeName.TFLITE
    multiplier_bits: Annotated[int, whole(8, 32, "bits")] = 32


class VectorConfig(StrictModel):
    """fp32 vector unit: quantize, dequantize, range reduction, activations, pooling, WOQ dequant."""

    lanes: Lanes
    latency_cycles: PipelineCycles


class HardwareConfig(StrictModel):
    """A whole accelerator, as loaded from ``hwconfigs/*.yaml``."""

    schema_version: Literal[1]
    name: Annotated[str, PLAIN_NAME_CHECK]
    description: str = ""
    clock_mhz: Annotated[float, number(1, 10_000, "MHz")]
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
