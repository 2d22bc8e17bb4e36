"""Accuracy on labelled data (``--data``): its table, its plot and the scheme the numbers pick.

The rows are ``results.json``'s ``meta.accuracy.rows`` (:meth:`accelsim.values.accuracy.AccuracyRow.record`):
plain dicts, so a report needs no numerics. The pick weighs accuracy, latency and traffic together: among the
schemes whose top-1 (as run: the flavour, observer and weight granularity of the scheme's own row) is within
:data:`TOLERANCE_POINTS` of fp32's, the fastest, least traffic breaking a tie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from accelsim.report.cycle_accounting import dram_bytes
from accelsim.report.palette import SeriesStyle
from accelsim.report.svg_figure import WIDTH_IN, new_figure, report_style
from accelsim.results.records import LayerRecord

#: top-1 percentage points below fp32 a scheme may lose and still be picked
TOLERANCE_POINTS = 1.0
HEADERS = ["scheme", "flavour", "observer", "weight scales", "top-1 %", "correct", "agrees with fp32 %"]
#: the run settings (results.json meta.runs) that name a row's variant
VARIANT_SETTINGS = {"flavour": "flavour", "observer": "observer", "granularity": "weight_granularity"}


def label(row: Mapping[str, Any], keys: Sequence[str] = ("scheme", "flavour", "observer", "granularity")) -> str:
    """``static percentile per_tensor``: the scheme and the choices it read."""
    return " ".join(str(row[k]) for k in keys if row.get(k))


def accuracy_rows(rows: Sequence[Mapping[str, Any]], seconds: Sequence[float] | None = None) -> list[list[str]]:
    """Table rows (:data:`HEADERS`, then ``ms / 1000 images`` when ``seconds`` are given)."""
    out = []
    for i, row in enumerate(rows):
        cells = [
            str(row["scheme"]),
            row["flavour"] or "-",
            row["observer"] or "-",
            (row["granularity"] or "-").replace("_", "-"),
            f"{100 * row['top1']:.2f}",
            f"{row['correct']}/{row['images']}",
            f"{100 * row['agreement']:.2f}",
        ]
        if seconds is not None:
            cells.append(f"{1e6 * seconds[i] / row['images']:.0f}")
        out.append(cells)
    return out


@report_style()
def accuracy_plot(rows: Sequence[Mapping[str, Any]], styles: Mapping[str, SeriesStyle]) -> Figure:
    """One bar per variant, its top-1 in %, colored by scheme; fp32's top-1 a dashed line."""
    labels = [label(r) for r in rows]
    top1 = np.array([100 * r["top1"] for r in rows])
    figure = new_figure(WIDTH_IN, 1.2 + 0.28 * len(rows))
    ax = figure.subplots()
    y = np.arange(len(rows))[::-1]
    colors = [styles[r["scheme"]].color if r["scheme"] in styles else "#999999" for r in rows]
    ax.barh(y, top1, color=colors, height=0.6)
    for yi, value in zip(y, top1):
        ax.annotate(f"{value:.2f}", (value, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    reference = [100 * r["top1"] for r in rows if r["scheme"] == "fp32"]
    if reference:
        ax.axvline(reference[0], color=styles.get("fp32", SeriesStyle("#4d4d4d", "o")).color, ls="--", lw=1)
    low = max(0.0, float(top1.min()) - 2.0)
    ax.set_xlim(low, min(100.0, float(top1.max()) + 1.5) + 0.5)
    ax.set_yticks(y, labels, fontsize=7)
    for tick, color in zip(ax.get_yticklabels(), colors):
        tick.set_color(color)
    ax.set_xlabel(f"top-1 accuracy on the test set (%, axis from {low:.0f})")
    return figure


def run_row(rows: Sequence[Mapping[str, Any]], scheme: str, settings: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The accuracy row of ``scheme`` as it was run (its flavour, observer and weight granularity)."""
    for row in rows:
        if row["scheme"] == scheme and all(row[k] == settings.get(s) for k, s in VARIANT_SETTINGS.items()):
            return row
    return None


def pick(
    rows: Sequence[Mapping[str, Any]], totals: Mapping[str, LayerRecord], runs: Mapping[str, Mapping[str, Any]]
) -> str:
    """A sentence naming the scheme to deploy, from measured accuracy, latency and traffic together."""
    measured = {s: row for s in totals if (row := run_row(rows, s, runs.get(s, {}))) is not None}
    if "fp32" not in measured or len(measured) < 2:
        return "No pick: the accuracy table lacks fp32 or a quantized scheme as run (run `compare --data`)."
    base = measured["fp32"]["top1"]
    kept = [s for s, row in measured.items() if 100 * (base - row["top1"]) <= TOLERANCE_POINTS]
    best = min(kept, key=lambda s: (totals[s].total_cycles, dram_bytes(totals[s])))
    row, t, ref = measured[best], totals[best], totals["fp32"]
    lost = [f"{s} ({100 * measured[s]['top1']:.2f}%)" for s in measured if s not in kept]
    text = (
        f"Pick **{best}**{f' ({choices})' if (choices := label(row, tuple(VARIANT_SETTINGS))) else ''} for this model and hardware: top-1 {100 * row['top1']:.2f}% against fp32's "
        f"{100 * base:.2f}% on {row['images']} test images"
    )
    if best != "fp32":
        text += (
            f", {ref.total_cycles / t.total_cycles:.2f}x faster than fp32 and "
            f"{dram_bytes(ref) / (dram_bytes(t) or 1):.2f}x less DRAM traffic"
        )
    others = sorted((s for s in kept if s != best), key=lambda s: totals[s].total_cycles)
    if others:
        text += f"; {', '.join(others)} keep the accuracy too but are slower"
    if lost:
        text += f"; {', '.join(lost)} lose more than {TOLERANCE_POINTS:g} point(s)"
    return text + "."
