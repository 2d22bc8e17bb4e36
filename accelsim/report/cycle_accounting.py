"""Where a scheme's cycles and DRAM bytes go, split so the parts add up to the recorded totals.

The stacked cycle bar must sum to ``total_cycles`` or it misleads, so units that run in the shadow of
the critical path (requant, vector passes beside the array) are reported apart as busy cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from accelsim.results.records import LayerRecord

STALL_CAUSES = {
    "stall_cycles_ifmap": "stall: ifmap",
    "stall_cycles_weights": "stall: weights",
    "stall_cycles_ofmap_buffer": "stall: ofmap buffer",
    "stall_cycles_vector_unit": "stall: vector unit",
    "stall_cycles_range_pass": "stall: range pass",
}
ARRAY_COMPUTE = "array compute"
VECTOR_LAYERS = "vector-unit layers"
EXPOSED = "exposed latency and drain"
CYCLE_PARTS = (ARRAY_COMPUTE, VECTOR_LAYERS, *STALL_CAUSES.values(), EXPOSED)

TRAFFIC_OPERANDS = {
    "dram_read_bytes_weights": "weights",
    "dram_read_bytes_weight_scales": "weight scales",
    "dram_read_bytes_bias": "bias",
    "dram_read_bytes_ifmap": "ifmap",
    "dram_read_bytes_kv_cache": "KV cache",
    "dram_write_bytes_ofmap": "ofmap (write)",
}

BUSY_UNITS = ("array", "vector unit", "requant")


def cycle_parts(rows: Sequence[LayerRecord]) -> dict[str, int]:
    """The critical path of ``rows`` in ``CYCLE_PARTS``; the values sum to their ``total_cycles``.

    Compute is split by the unit a layer runs on; what is neither compute nor a counted stall (pipeline
    fill and drain, DMA latency, the last requant and store of a layer) is the exposed remainder.
    """
    parts = dict.fromkeys(CYCLE_PARTS, 0)
    for r in rows:
        parts[ARRAY_COMPUTE if r.unit == "array" else VECTOR_LAYERS] += r.compute_cycles
        for field, label in STALL_CAUSES.items():
            parts[label] += getattr(r, field)
        parts[EXPOSED] += r.total_cycles - r.compute_cycles - r.stall_cycles
    return parts


def busy_cycles(rows: Sequence[LayerRecord]) -> dict[str, int]:
    """Cycles each unit worked, overlapping each other and the critical path."""
    return {
        "array": sum(r.compute_cycles for r in rows if r.unit == "array"),
        "vector unit": sum(r.vector_busy_cycles for r in rows),
        "requant": sum(r.requant_busy_cycles for r in rows),
    }


def traffic_parts(record: LayerRecord) -> dict[str, int]:
    """DRAM bytes of a layer or total row by operand; the values sum to reads plus writes."""
    return {label: getattr(record, field) for field, label in TRAFFIC_OPERANDS.items()}


def dram_bytes(record: LayerRecord) -> int:
    return record.dram_read_bytes + record.dram_write_bytes


#: the energy breakdown's parts -> the record components each sums (results.energy.COMPONENTS)
ENERGY_PARTS = {
    "array MACs": ("array",),
    "vector unit": ("vector",),
    "requant": ("requant",),
    "SRAM ifmap": ("sram_ifmap",),
    "SRAM filter": ("sram_filter",),
    "SRAM ofmap": ("sram_ofmap",),
    "DRAM weights + params": ("dram_weights", "dram_weight_scales", "dram_bias"),
    "DRAM ifmap": ("dram_ifmap",),
    "DRAM KV cache": ("dram_kv_cache",),
    "DRAM ofmap": ("dram_ofmap",),
    "static": ("static",),
}


def energy_parts(record: LayerRecord) -> dict[str, float]:
    """A row's energy (pJ) by part of the breakdown plot; the values sum to ``energy_pj``. NaN when absent."""
    return {
        part: sum(getattr(record, f"energy_pj_{c}") for c in components) for part, components in ENERGY_PARTS.items()
    }


def has_energy(record: LayerRecord) -> bool:
    """Whether the run had an energy table (otherwise every energy field is NaN: absent)."""
    return math.isfinite(record.energy_pj)
