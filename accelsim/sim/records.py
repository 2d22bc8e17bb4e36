"""Result records: one row per layer and scheme, and totals; field names carry their units.

Every field is defined in docs/metrics.md. Records are plain dataclasses so CSV, JSON and the reports
read the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from accelsim.atomic_file import write_atomic


@dataclass
class LayerRecord:
    """What one layer cost and how accurate it was under one scheme."""

    workload: str
    hardware: str
    scheme: str
    layer: str
    type: str
    unit: str
    macs: int
    compute_cycles: int
    stall_cycles_ifmap: int
    stall_cycles_weights: int
    stall_cycles_ofmap_buffer: int
    stall_cycles_vector_unit: int
    stall_cycles_range_pass: int
    stall_cycles: int
    total_cycles: int
    latency_s: float
    utilization: float
    vector_busy_cycles: int
    requant_busy_cycles: int
    dram_read_bytes_weights: int
    dram_read_bytes_weight_scales: int
    dram_read_bytes_bias: int
    dram_read_bytes_ifmap: int
    dram_write_bytes_ofmap: int
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int
    tiles: int
    roofline_cycles: int
    bound_by: str
    accumulator_overflows: int = 0
    requant_saturations: int = 0
    sqnr_db: float = math.nan
    max_abs_error: float = math.nan
    top1_agreement: float = math.nan


def total_record(rows: list[LayerRecord], pe_count: int, clock_mhz: float) -> LayerRecord:
    """The workload total of one scheme's rows: sums, utilization over the whole run."""
    first = rows[0]
    summed = {
        f.name: sum(getattr(r, f.name) for r in rows)
        for f in fields(LayerRecord)
        if f.type == "int"
    }
    total_cycles = summed["total_cycles"]
    return LayerRecord(
        workload=first.workload,
        hardware=first.hardware,
        scheme=first.scheme,
        layer="total",
        type="total",
        unit="",
        **summed,
        latency_s=total_cycles / (clock_mhz * 1e6),
        utilization=summed["macs"] / (pe_count * total_cycles) if total_cycles else 0.0,
        bound_by="",
        sqnr_db=math.nan,
        max_abs_error=math.nan,
        top1_agreement=math.nan,
    )


def write_results(folder: Path, rows: list[LayerRecord], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.json`` atomically into ``folder``."""
    names = [f.name for f in fields(LayerRecord)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in asdict(row).items()})
    csv_path = write_atomic(folder / "results.csv", buffer.getvalue())
    doc = {"meta": meta, "rows": [{k: _json_value(v) for k, v in asdict(r).items()} for r in rows]}
    json_path = write_atomic(folder / "results.json", json.dumps(doc, indent=1) + "\n")
    return csv_path, json_path


def write_timeline(folder: Path, logs: dict[str, list[tuple[str, int, int, str]]]) -> Path:
    """The engine's event log per scheme, for timeline plots: ``[lane, start_cycle, end_cycle, layer]``."""
    doc = {scheme: [list(event) for event in events] for scheme, events in logs.items()}
    return write_atomic(folder / "timeline.json", json.dumps(doc, separators=(",", ":")) + "\n")


def read_timeline(folder: Path) -> dict[str, list[tuple[str, int, int, str]]]:
    path = Path(folder) / "timeline.json"
    if not path.exists():
        return {}
    return {scheme: [tuple(e) for e in events] for scheme, events in json.loads(path.read_text()).items()}


def update_results(folder: Path, rows: list[LayerRecord], meta: dict[str, Any],
                   logs: dict[str, list[tuple[str, int, int, str]]]) -> None:
    """Write these schemes' rows, meta and event logs into ``folder``, keeping other schemes' from
    earlier runs of the same workload and hardware (``run --scheme`` one at a time fills a comparison)."""
    if (folder / "results.json").exists():
        old_rows, old_meta = read_results(folder)
        fresh = {row.scheme for row in rows}
        rows = [r for r in old_rows if r.scheme not in fresh] + rows
        meta = {**meta, **{key: {**old_meta.get(key, {}), **meta[key]} for key in ("runs", "events")}}
    write_results(folder, rows, meta)
    write_timeline(folder, {**read_timeline(folder), **logs})


def read_results(folder: Path) -> tuple[list[LayerRecord], dict[str, Any]]:
    """Load what ``write_results`` wrote (JSON is the lossless copy)."""
    doc = json.loads((Path(folder) / "results.json").read_text())
    floats = {f.name for f in fields(LayerRecord) if f.type == "float"}
    rows = [LayerRecord(**{k: _from_json(v) if k in floats else v for k, v in r.items()}) for r in doc["rows"]]
    return rows, doc["meta"]


def _from_json(value: Any) -> float:
    return math.nan if value is None else float(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
