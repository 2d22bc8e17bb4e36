"""A results folder as a report sees it: rows grouped by scheme, totals, and the hardware's roofs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from accelsim.config import HardwareConfig
from accelsim.errors import AccelsimError
from accelsim.report.palette import is_baseline, ordered_schemes
from accelsim.results.records import LayerRecord, read_saved

TimelineEvent = tuple[str, int, int, str]


@dataclass(frozen=True)
class Results:
    """Everything one results folder holds, in the order reports show it."""

    folder: Path
    meta: dict[str, Any]
    workload_name: str
    hardware: HardwareConfig
    schemes: list[str]
    layers: dict[str, list[LayerRecord]]
    totals: dict[str, LayerRecord]
    timeline: dict[str, list[TimelineEvent]]

    @property
    def peak_macs_per_cycle(self) -> int:
        """The compute roof: one int8 MAC per PE per cycle."""
        return self.hardware.pe_count

    @property
    def peak_dram_bytes_per_cycle(self) -> float:
        """The bandwidth roof's slope: every channel streaming at once."""
        return self.hardware.dram_bytes_per_cycle * self.hardware.dram.channels

    @property
    def ridge_macs_per_byte(self) -> float:
        """Operational intensity where the two roofs meet; below it a layer cannot reach the compute roof."""
        return self.peak_macs_per_cycle / self.peak_dram_bytes_per_cycle

    @property
    def baseline(self) -> str | None:
        """The scheme speedups and traffic cuts are measured against, if the folder has it."""
        return next((s for s in self.totals if is_baseline(s)), None)


def load_results(folder: Path) -> Results:
    """Read a ``run``/``compare`` folder; a path that is not one is a user error (exit 2), not a traceback."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AccelsimError("no such results folder", file=str(folder))
    saved = read_saved(folder)  # one generation, checked against its manifest, every field validated
    rows, meta, timeline = saved.rows, saved.meta, saved.timeline
    try:
        hardware = HardwareConfig.model_validate(meta["hardware"])
        workload_name = str(meta["workload"]["name"])
    except (KeyError, ValidationError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise AccelsimError(
            f"not the hardware and workload accelsim saved ({type(exc).__name__}: {first_line}); "
            "remove the folder or use another --out",
            file=str(folder / "results.json"),
            path="meta",
        ) from exc
    layers: dict[str, list[LayerRecord]] = {}
    totals: dict[str, LayerRecord] = {}
    for row in rows:
        if row.layer == "total":
            totals[row.scheme] = row
        else:
            layers.setdefault(row.scheme, []).append(row)
    schemes = ordered_schemes(s for s in totals if s in layers)
    if not schemes:
        raise AccelsimError("results.json holds no scheme with layers and a total row", file=str(folder))
    return Results(
        folder,
        meta,
        workload_name,
        hardware,
        schemes,
        {s: layers[s] for s in schemes},
        {s: totals[s] for s in schemes},
        timeline,
    )
