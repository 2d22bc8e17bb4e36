"""Energy of a run: the access counts the lowering and the engine already make, times the hardware's
energy per action (``energy:`` in the hardware YAML). docs/energy.md defines every count and field.

Pricing is a product of counts and a table, so it lives beside the records rather than in the engine:
the engine stays free of energy, and a table changes no cycle.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import TYPE_CHECKING

from accelsim.results.records import LayerRecord

if TYPE_CHECKING:
    from accelsim.config.hardware import EnergyConfig, HardwareConfig

#: the components whose energies add up to ``energy_pj`` (one record field each, ``energy_pj_<component>``)
COMPONENTS = (
    "array",
    "vector",
    "requant",
    "sram_ifmap",
    "sram_filter",
    "sram_ofmap",
    "dram_ifmap",
    "dram_weights",
    "dram_weight_scales",
    "dram_bias",
    "dram_kv_cache",
    "dram_ofmap",
    "static",
)
#: the record field of each component
ENERGY_FIELDS = tuple(f"energy_pj_{c}" for c in COMPONENTS)
#: pJ in a joule per mW-second: static energy = static_mw * latency_s * 1e9 pJ
PJ_PER_MW_S = 1e9

assert set(ENERGY_FIELDS) <= {f.name for f in fields(LayerRecord)}


def mac_pj(table: EnergyConfig, float_gemm: bool) -> float:
    """One array MAC: a float MAC under a float scheme, else an int8 multiply plus the accumulator's add. A
    table without a float MAC belongs to an array without a float datapath (HardwareConfig checks it), where
    float GEMMs run on the vector unit and no array MAC is float: NaN keeps that impossible price absent."""
    if float_gemm:
        return math.nan if table.float_mac_pj is None else table.float_mac_pj
    return table.int8_mac_pj + table.accumulate_pj


def price(rows: list[LayerRecord], hw: HardwareConfig, float_gemm: bool) -> None:
    """Fill the energy fields of ``rows`` in place (a total sums them: :func:`sum_energy`); a hardware
    without an energy table leaves them NaN (absent). ``float_gemm``: the scheme's GEMMs are fp32."""
    table = hw.energy
    if table is None:
        return
    mac = mac_pj(table, float_gemm)
    vector_lane = hw.vector.lanes * table.vector_op_pj
    requant_lane = hw.requant.lanes * table.requant_op_pj
    for row in rows:
        _price_layer(row, table, mac, vector_lane, requant_lane)


def sum_energy(rows: list[LayerRecord], total: LayerRecord, hw: HardwareConfig) -> None:
    """Fill ``total``'s energy fields with the sums of ``rows``' (priced rows, or totals of parts of a run) and
    its derived figures; nothing without an energy table (the fields stay absent)."""
    if hw.energy is None:
        return
    for name in ENERGY_FIELDS:
        setattr(total, name, math.fsum(getattr(row, name) for row in rows))
    _derived(total)


def _price_layer(row: LayerRecord, table: EnergyConfig, mac: float, vector_lane: float, requant_lane: float) -> None:
    """One row's components: each a count of the row times its entry of the table (docs/energy.md)."""
    read, write = table.sram_read_pj_per_byte, table.sram_write_pj_per_byte
    dram_read = table.dram_read_pj_per_byte
    row.energy_pj_array = row.macs * mac if row.unit == "array" else 0.0
    row.energy_pj_vector = row.vector_busy_cycles * vector_lane
    row.energy_pj_requant = row.requant_busy_cycles * requant_lane
    row.energy_pj_sram_ifmap = row.sram_read_bytes_ifmap * read.ifmap + row.sram_write_bytes_ifmap * write.ifmap
    row.energy_pj_sram_filter = row.sram_read_bytes_filter * read.filter + row.sram_write_bytes_filter * write.filter
    row.energy_pj_sram_ofmap = row.sram_read_bytes_ofmap * read.ofmap + row.sram_write_bytes_ofmap * write.ofmap
    row.energy_pj_dram_ifmap = row.dram_read_bytes_ifmap * dram_read
    row.energy_pj_dram_weights = row.dram_read_bytes_weights * dram_read
    row.energy_pj_dram_weight_scales = row.dram_read_bytes_weight_scales * dram_read
    row.energy_pj_dram_bias = row.dram_read_bytes_bias * dram_read
    row.energy_pj_dram_kv_cache = row.dram_read_bytes_kv_cache * dram_read
    row.energy_pj_dram_ofmap = row.dram_write_bytes_ofmap * table.dram_write_pj_per_byte
    row.energy_pj_static = table.static_mw * row.latency_s * PJ_PER_MW_S
    _derived(row)


def _derived(row: LayerRecord) -> None:
    """The sum over components, energy-delay product, energy per MAC and effective TOPS/W (2 ops per MAC)."""
    row.energy_pj = math.fsum(getattr(row, name) for name in ENERGY_FIELDS)
    row.energy_delay_pj_s = row.energy_pj * row.latency_s
    row.pj_per_mac = row.energy_pj / row.macs if row.macs else math.nan
    row.tops_per_w = 2 * row.macs / row.energy_pj if row.energy_pj else math.nan
