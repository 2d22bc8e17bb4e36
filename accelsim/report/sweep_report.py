"""The report of a sweep folder: best point per workload and scheme, Pareto fronts, heatmaps over two axes.

Reads the sweep's store (the points of its spec as last run), builds a ``Document`` and writes it as
``report.md`` (+ ``figures/*.svg``) and a self-contained ``report.html`` beside the store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.report.conclusions import duration
from accelsim.report.document import Document, Image, Paragraph, Section, Table
from accelsim.report.palette import ordered_schemes, scheme_styles
from accelsim.report.svg_figure import svg_bytes
from accelsim.report.sweep_plots import heatmaps, pareto
from accelsim.report.sweep_tokens import token_sections
from accelsim.report.writer import write_document
from accelsim.sweep.store import read_meta, read_rows

Row = dict[str, Any]
FAILED_SHOWN = 20


def _label(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _dram_mb(row: Row) -> float:
    return (row["dram_read_bytes"] + row["dram_write_bytes"]) / 1e6


def _setup(meta: dict[str, Any], rows: list[Row]) -> Section:
    spec = meta["spec"]
    failed = sum(r["status"] == "error" for r in rows)
    hardware = (
        f"Base config `{meta['base']['name']}`"
        if meta.get("base")
        else "Hardware configs " + ", ".join(f"`{name}`" for name in meta.get("hardware", {}).values())
    )
    workloads = [w if isinstance(w, str) else f"{w['workload']} with {_label(w['set'])}" for w in spec["workloads"]]
    text = (
        f"{hardware}, axes combined by **{spec['combine']}**, workloads "
        f"{', '.join(f'`{w}`' for w in workloads)}, schemes {', '.join(spec['schemes'])}, "
        f"{'timing only' if spec['timing_only'] else 'timing and values'}. {len(rows)} points finished"
        f"{f', {failed} of them failed' if failed else ''}."
    )
    if spec["constraints"]:
        text += " Constraints: " + "; ".join(f"`{c}`" for c in spec["constraints"]) + "."
    axes = Table(
        ["axis", "values"], [[path, ", ".join(_label(v) for v in spec["axes"][path])] for path in meta["axes"]]
    )
    return Section("Setup", [Paragraph(text), axes])


def _best(rows: list[Row], axes: list[str], groups: list[tuple[str, str]]) -> Section:
    table = []
    for workload, scheme in groups:
        ok = [r for r in rows if r["workload"] == workload and r["scheme"] == scheme and r["status"] == "ok"]
        if not ok:
            continue
        best = min(ok, key=lambda r: (r["latency_s"], _dram_mb(r)))
        table.append(
            [
                workload,
                scheme,
                ", ".join(f"{a}={_label(best[a])}" for a in axes),
                duration(best["latency_s"]),
                f"{_dram_mb(best):.3g}",
                f"{best['pe_count']:,}",
                f"{100 * best['utilization']:.1f}%",
                f"{max(r['latency_s'] for r in ok) / best['latency_s']:.2f}x",
            ]
        )
    return Section(
        "Best point per workload and scheme",
        [
            Table(["workload", "scheme", "point", "latency", "DRAM MB", "PEs", "utilization", "vs slowest"], table),
            Paragraph(
                "The lowest-latency point of each workload and scheme (ties go to less DRAM traffic); "
                "`vs slowest` is its speedup over the slowest point of the same workload and scheme."
            ),
        ],
    )


def _latency_ms(row: Row) -> float:
    return row["latency_s"] * 1e3


def _energy_mj(row: Row) -> float:
    """The point's energy in mJ; NaN when its hardware had no energy table (stored as NULL)."""
    return row["energy_pj"] / 1e9 if row.get("energy_pj") is not None else math.nan


def _area_mm2(row: Row) -> float:
    return row["area_mm2"] if row.get("area_mm2") is not None else math.nan


#: the fronts drawn per workload: (name, x label, x cost, y label, y cost, title); lower is better on both.
#: A front over energy or area leaves out points whose hardware has no energy / area table.
FRONTS: list[tuple[str, str, Callable[[Row], float], str, Callable[[Row], float], str]] = [
    ("traffic", "DRAM traffic (MB, 10^6 bytes)", _dram_mb, "latency (ms)", _latency_ms, "latency vs DRAM traffic"),
    (
        "pes",
        "PE count (rows x cols)",
        lambda r: float(r["pe_count"]),
        "latency (ms)",
        _latency_ms,
        "latency vs PE count",
    ),
    ("energy", "energy (mJ)", _energy_mj, "latency (ms)", _latency_ms, "latency vs energy"),
    ("area", "area (mm^2)", _area_mm2, "energy (mJ)", _energy_mj, "energy vs area"),
]


def _paretos(rows: list[Row], workloads: list[str], schemes: list[str]) -> Section:
    styles = scheme_styles(schemes)
    blocks: list[Any] = []
    for workload in workloads:
        ok = {
            s: [r for r in rows if r["workload"] == workload and r["scheme"] == s and r["status"] == "ok"]
            for s in schemes
        }
        for name, xlabel, x_cost, ylabel, y_cost, what in FRONTS:
            series = {}
            for s, pts in ok.items():
                xy = [(x_cost(r), y_cost(r)) for r in pts]
                xy = [(x, y) for x, y in xy if math.isfinite(x) and math.isfinite(y)]
                if xy:
                    series[s] = ([x for x, _ in xy], [y for _, y in xy])
            if not series:
                continue
            figure = pareto(series, styles, xlabel, ylabel, f"{workload}: {what}")
            blocks.append(
                Image(
                    f"pareto_{name}_{_slug(workload)}",
                    (
                        f"{workload}: every point (faint) and the Pareto front (solid) of {what}, per scheme: "
                        "no point is better on both than a point on the front."
                    ),
                    svg_bytes(figure),
                )
            )
    return Section("Pareto fronts", blocks or [Paragraph("No point finished.")])


def _heatmap(rows: list[Row], axes: list[str], spec: dict[str, Any], groups: list[tuple[str, str]]) -> Section | None:
    """Best latency over the first two axes (in spec order) that vary; None when fewer than two do.

    Not drawn for zip sweeps: their axes move together, so a grid of two of them is a lone diagonal.
    """
    spec_axes, combine = spec["axes"], spec["combine"]
    varying = [a for a in axes if len(spec_axes[a]) > 1]
    if len(varying) < 2 or combine == "zip":
        return None
    row_axis, col_axis = varying[:2]
    row_labels = [_label(v) for v in spec_axes[row_axis]]
    col_labels = [_label(v) for v in spec_axes[col_axis]]
    grids = {}
    for workload, scheme in groups:
        grid = np.full((len(row_labels), len(col_labels)), np.nan)
        for r in rows:
            if r["workload"] == workload and r["scheme"] == scheme and r["status"] == "ok":
                i, j = row_labels.index(_label(r[row_axis])), col_labels.index(_label(r[col_axis]))
                grid[i, j] = np.fmin(grid[i, j], r["latency_s"] * 1e3)
        if np.isfinite(grid).any():
            grids[f"{workload}, {scheme}"] = grid
    if not grids:
        return None
    others = [a for a in axes if a not in (row_axis, col_axis)]
    over = f", the best over {', '.join(others)}" if others else ""
    figure = heatmaps(grids, row_labels, col_labels, row_axis, col_axis, "latency (ms)")
    return Section(
        f"Latency over {row_axis} and {col_axis}",
        [
            Image(
                "heatmap_latency",
                (
                    f"Latency in ms for each {row_axis} x {col_axis} pair{over}, per workload and scheme (darker is faster; "
                    "blank: no point ran or every point failed)."
                ),
                svg_bytes(figure),
            )
        ],
    )


def _failed(rows: list[Row], axes: list[str]) -> Section | None:
    failed = [r for r in rows if r["status"] == "error"]
    if not failed:
        return None
    table = [
        [r["workload"], r["scheme"], ", ".join(f"{a}={_label(r[a])}" for a in axes), r["error"]]
        for r in failed[:FAILED_SHOWN]
    ]
    more = f" (first {FAILED_SHOWN} of {len(failed)})" if len(failed) > FAILED_SHOWN else ""
    return Section(f"Failed points{more}", [Table(["workload", "scheme", "point", "error"], table)], collapsed=True)


def sweep_document(folder: Path) -> Document:
    """The report of the sweep stored in ``folder``, as blocks both renderers share."""
    meta = read_meta(folder)
    columns, data = read_rows(folder)
    rows = [dict(zip(columns, values)) for values in data]
    axes = meta["axes"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    schemes = ordered_schemes({r["scheme"] for r in rows})
    groups = [(w, s) for w in workloads for s in schemes]
    sections = [
        _setup(meta, rows),
        _best(rows, axes, groups),
        *token_sections(rows, axes, meta["spec"]["axes"]),
        _paretos(rows, workloads, schemes),
        _heatmap(rows, axes, meta["spec"], groups),
        _failed(rows, axes),
    ]
    return Document(f"Sweep {meta['name']}", [s for s in sections if s is not None])


def write_sweep_report(folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (+ figures) and ``report.html`` into the sweep's folder; returns their paths."""
    folder = Path(folder)
    return write_document(folder, sweep_document(folder))
