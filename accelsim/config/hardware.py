"""The accelerator a run simulates (DESIGN.md section 3); every field carries its unit in its name."""

# No `from __future__ import annotations`: pydantic would compile each annotation from its text (config/workload.py).
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from accelsim.config.ranges import PLAIN_NAME_CHECK, number, whole
from accelsim.config.validation import FieldError, StrictModel, WithLaterFields
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


class SystolicArrayConfig(WithLaterFields):
    """rows x cols MAC PEs, one int8 MAC per PE per cycle."""

    #: fields added after hardware results were first stored (left out of dumps while they hold their default)
    later_fields: ClassVar[dict[str, Any]] = {"dequant_lanes": 0}

    rows: ArraySide
    cols: ArraySide
    dataflow: Dataflow
    model: ArrayModel = "pipelined"
    accumulator: Accumulator = Accumulator()
    float_rate: Annotated[float, number(0, 1, "float MACs per int8 MAC")] = 0.0
    """Float MACs per PE per cycle relative to int8; 0 means float GEMMs run on the vector unit."""
    dequant_lanes: Annotated[int, whole(0, 65536, "weights per cycle")] = 0
    """Weights per cycle the weight path converts from int8 / int4 codes to the float datapath's format between
    the filter buffer and the PEs (weight-only schemes); 0 means no such unit: the vector unit dequantizes each
    weight block as it arrives and the filter buffer holds float32."""

    @model_validator(mode="after")
    def _dequant_feeds_float_datapath(self) -> Self:
        if self.dequant_lanes and not self.float_rate:
            raise FieldError(
                ("dequant_lanes",),
                f"{self.dequant_lanes} needs a float datapath to feed, but array.float_rate is 0",
                "0 (no dequantization unit), or a float_rate above 0 beside it",
            )
        return self


class SramConfig(StrictModel):
    """On-chip buffers; each is split into two halves for double buffering."""

    ifmap_kib: SramKiB
    filter_kib: SramKiB
    ofmap_kib: SramKiB


class DramConfig(WithLaterFields):
    """Off-chip memory: bandwidth as bytes per accelerator cycle or as GB/s (then the clock converts)."""

    #: fields added after hardware results were first stored (left out of dumps while they hold their default)
    later_fields: ClassVar[dict[str, Any]] = {"outstanding_transfers": 1}

    bandwidth_bytes_per_cycle: Annotated[float, number(0.001, 2**20, "bytes per cycle")] | None = None
    bandwidth_gb_per_s: Annotated[float, number(0.001, 100_000, "GB/s")] | None = None
    latency_cycles: Annotated[int, whole(0, 1_000_000, "cycles")]
    channels: Annotated[int, whole(1, 1024, "channels")] = 1
    outstanding_transfers: Annotated[int, whole(1, 1024, "transfers")] = 1
    """DMA transfers each channel keeps in flight: each pays its latency while the others stream, and those
    streaming share the bandwidth; 1: a transfer holds its channel for its latency and its bytes, alone."""

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


# Energies per action and areas: zero is allowed (an idealized component), negative or non-finite is not.
Picojoules = Annotated[float, number(0, 1_000_000, "pJ")]
PicojoulesPerByte = Annotated[float, number(0, 1_000_000, "pJ per byte")]
SquareMicrons = Annotated[float, number(0, 10**12, "um^2")]


class BufferEnergy(StrictModel):
    """Energy per byte of one access direction, for each of the three on-chip buffers."""

    ifmap: PicojoulesPerByte
    filter: PicojoulesPerByte
    ofmap: PicojoulesPerByte


class EnergyConfig(StrictModel):
    """Energy per action of each component (docs/energy.md): a run multiplies the access counts it
    already makes by these, so the table is the only energy model."""

    int8_mac_pj: Picojoules
    """One int8 x int8 multiply in a PE."""
    accumulate_pj: Picojoules
    """One add into the PE's accumulator (the accumulator's width: int32 in every shipped design)."""
    float_mac_pj: Picojoules | None = None
    """One fp32 multiply-accumulate on the array; needed only when ``array.float_rate`` > 0."""
    vector_op_pj: Picojoules
    """One fp32 lane-cycle of the vector unit (its float GEMMs, quantize, activations, pooling, ...)."""
    requant_op_pj: Picojoules
    """One lane-cycle of the requant unit (int32 x M0 multiply, rounding shift, zero point, clamp)."""
    sram_read_pj_per_byte: BufferEnergy
    sram_write_pj_per_byte: BufferEnergy
    dram_read_pj_per_byte: PicojoulesPerByte
    dram_write_pj_per_byte: PicojoulesPerByte
    static_mw: Annotated[float, number(0, 1_000_000, "mW")]
    """Leakage and clock power of the whole accelerator while a run lasts."""


class AreaConfig(StrictModel):
    """Silicon area of each component, for sweeps' energy-vs-area fronts (docs/energy.md)."""

    pe_um2: SquareMicrons
    """One PE: int8 multiplier, accumulator adder, operand and accumulator registers."""
    sram_um2_per_kib: SquareMicrons
    requant_lane_um2: SquareMicrons
    vector_lane_um2: SquareMicrons


class HardwareConfig(WithLaterFields):
    """A whole accelerator, as loaded from ``hwconfigs/*.yaml``."""

    #: sections added after hardware results were first stored (left out of dumps while absent)
    later_fields: ClassVar[dict[str, Any]] = {"energy": None, "area": None}

    schema_version: Literal[1]
    name: Annotated[str, PLAIN_NAME_CHECK]
    description: str = ""
    clock_mhz: Annotated[float, number(1, 10_000, "MHz")]
    array: SystolicArrayConfig
    sram: SramConfig
    dram: DramConfig
    requant: RequantConfig
    vector: VectorConfig
    energy: EnergyConfig | None = None
    """Energy per action (None: runs report energy as absent, not 0)."""
    area: AreaConfig | None = None

    @model_validator(mode="after")
    def _float_mac_priced(self) -> Self:
        """An energy table must price every action the hardware does: float MACs only with a float datapath."""
        if self.energy is not None and self.array.float_rate > 0 and self.energy.float_mac_pj is None:
            raise FieldError(
                ("energy", "float_mac_pj"),
                f"missing: array.float_rate is {self.array.float_rate}, so the array does float MACs",
                "an energy per fp32 MAC in pJ, from 0 to 1,000,000",
            )
        return self

    @property
    def area_mm2(self) -> float:
        """The accelerator's area in mm^2 (NaN without an ``area`` section: absent, not 0)."""
        if self.area is None:
            return float("nan")
        a = self.area
        um2 = (
            self.pe_count * a.pe_um2
            + self.sram_total_kib * a.sram_um2_per_kib
            + self.requant.lanes * a.requant_lane_um2
            + self.vector.lanes * a.vector_lane_um2
        )
        return um2 / 1e6

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
