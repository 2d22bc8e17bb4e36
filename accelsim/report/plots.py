"""Plot builders over plain mappings keyed by a label (a scheme here, a sweep point later).

Each builder returns a ``Figure``; callers turn it into SVG with ``svg_figure.svg_bytes``. Labels keep
one color and marker across every plot (``styles``), and every axis names its unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from accelsim.report.cycle_accounting import (
    ARRAY_COMPUTE,
    BUSY_UNITS,
    ENERGY_PARTS,
    EXPOSED,
    STALL_CAUSES,
    VECTOR_LAYERS,
)
from accelsim.report.palette import LANE_COLORS, SeriesStyle
from accelsim.report.svg_figure import WIDTH_IN, new_figure, report_style
from accelsim.report.table import energy_unit, joules, si

PART_COLORS = {
    ARRAY_COMPUTE: LANE_COLORS["array"],
    VECTOR_LAYERS: LANE_COLORS["vector"],
    **dict(zip(STALL_CAUSES.values(), ("#de2d26", "#fb6a4a", "#a50f15", "#fcae91", "#67000d"))),
    EXPOSED: "#bdbdbd",
}
BUSY_COLORS = {"array": LANE_COLORS["array"], "vector unit": LANE_COLORS["vector"], "requant": LANE_COLORS["requant"]}
OPERAND_COLORS = {
    "weights": "#3182bd",
    "weight scales": "#9ecae1",
    "bias": "#c6dbef",
    "ifmap": "#e6550d",
    "ofmap (write)": "#fdae6b",
}

#: energy parts: compute in the units' lane colors, SRAM in pinks, DRAM in blues, static in grey
ENERGY_COLORS = dict(
    zip(
        ENERGY_PARTS,
        (
            LANE_COLORS["array"],
            LANE_COLORS["vector"],
            LANE_COLORS["requant"],
            "#fbb4b9",
            "#f768a1",
            "#ae017e",
            "#08519c",
            "#6baed6",
            "#3182bd",
            "#c6dbef",
            "#bdbdbd",
        ),
    )
)


#: tick labels like ``2.5 M`` instead of matplotlib's ``1e6`` offset
SI_TICKS = FuncFormatter(lambda value, _: si(value))


def _color_ticklabels(ax: Axes, styles: Mapping[str, SeriesStyle]) -> None:
    for tick in ax.get_yticklabels():
        style = styles.get(tick.get_text().split("\n")[0])
        tick.set_color(style.color if style else "black")


def _legend_below(figure: Figure, ax: Axes, ncols: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False, fontsize=8)


@report_style()
def cycle_breakdown(
    parts: Mapping[str, Mapping[str, int]], busy: Mapping[str, Mapping[str, int]], styles: Mapping[str, SeriesStyle]
) -> Figure:
    """Left: each label's critical path as shares of its own total (so a 50x slower scheme does not
    flatten the others). Right: how much of that time each unit was busy, which may overlap."""
    labels = list(parts)
    figure = new_figure(WIDTH_IN, 1.6 + 0.45 * len(labels))
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=(2.2, 1))
    y = np.arange(len(labels))[::-1]
    totals = {label: sum(parts[label].values()) for label in labels}
    start = np.zeros(len(labels))
    for part, color in PART_COLORS.items():
        share = np.array([100 * parts[label].get(part, 0) / (totals[label] or 1) for label in labels])
        if share.any():
            left.barh(y, share, left=start, color=color, label=part, height=0.6)
            start += share
    left.set_yticks(y, [f"{label}\n{si(totals[label])} cycles" for label in labels])
    left.set_xlim(0, 100)
    left.set_xlabel("share of total cycles (%)")
    left.set_title("critical path")
    height = 0.8 / len(BUSY_UNITS)
    for i, unit in enumerate(BUSY_UNITS):
        busy_share = [100 * busy[label][unit] / (totals[label] or 1) for label in labels]
        right.barh(
            y + 0.4 - height * (i + 0.5), busy_share, height=height, color=BUSY_COLORS[unit], label=f"{unit} busy"
        )
    right.set_xlim(0, 100)
    right.set_xlabel("busy, share of total cycles (%)")
    right.set_title("unit busy time (overlaps)")
    _color_ticklabels(left, styles)
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    names = [n for ax in (left, right) for n in ax.get_legend_handles_labels()[1]]
    figure.legend(handles, names, loc="outside lower center", ncols=4, frameon=False, fontsize=8)
    return figure


@report_style()
def traffic_by_operand(traffic: Mapping[str, Mapping[str, int]], styles: Mapping[str, SeriesStyle]) -> Figure:
    """DRAM bytes per label stacked by operand, in MB, so the operand a scheme saves on is visible."""
    labels = list(traffic)
    figure = new_figure(WIDTH_IN, 1.4 + 0.4 * len(labels))
    ax = figure.subplots()
    y = np.arange(len(labels))[::-1]
    start = np.zeros(len(labels))
    for operand, color in OPERAND_COLORS.items():
        mb = np.array([traffic[label].get(operand, 0) / 1e6 for label in labels])
        if mb.any():
            ax.barh(y, mb, left=start, color=color, label=operand, height=0.6)
            start += mb
    for yi, total in zip(y, start):
        ax.annotate(f"{total:.2f} MB", (total, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, max(start.max(), 1e-9) * 1.15)
    ax.set_xlabel("DRAM traffic (MB, 10^6 bytes)")
    _color_ticklabels(ax, styles)
    _legend_below(figure, ax, ncols=5)
    return figure


@report_style()
def energy_breakdown(energy: Mapping[str, Mapping[str, float]], styles: Mapping[str, SeriesStyle]) -> Figure:
    """Energy per label stacked by component on a common axis (pJ in, shown in the unit that fits the
    largest): what a scheme saves, and where."""
    labels = list(energy)
    figure = new_figure(WIDTH_IN, 1.6 + 0.4 * len(labels))
    ax = figure.subplots()
    factor, unit = energy_unit(max(sum(parts.values()) for parts in energy.values()))
    y = np.arange(len(labels))[::-1]
    start = np.zeros(len(labels))
    for part, color in ENERGY_COLORS.items():
        scaled = np.array([energy[label].get(part, 0.0) / factor for label in labels])
        if scaled.any():
            ax.barh(y, scaled, left=start, color=color, label=part, height=0.6)
            start += scaled
    for yi, total in zip(y, start):
        ax.annotate(
            joules(total * factor), (total, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
        )
    ax.set_yticks(y, labels)
    ax.set_xlim(0, max(start.max(), 1e-9) * 1.18)
    ax.set_xlabel(f"energy ({unit})")
    _color_ticklabels(ax, styles)
    _legend_below(figure, ax, ncols=5)
    return figure


@report_style()
def layer_dots(
    layers: Sequence[str],
    values: Mapping[str, Sequence[float]],
    styles: Mapping[str, SeriesStyle],
    xlabel: str,
    log: bool = False,
) -> Figure:
    """One row per layer, one dot per label: 50 layers x 4 schemes stay readable where bars would not.

    Each label has its own line within a row (the first on top), so labels with equal values (fp32 and woq
    on the vector unit) sit side by side instead of hiding one another. NaN values are left out; +inf (an
    exact result) is drawn as a triangle at the right edge.
    """
    figure = new_figure(WIDTH_IN, 1.3 + (0.1 + 0.03 * len(values)) * len(layers))
    ax = figure.subplots()
    y = np.arange(len(layers))[::-1]
    finite = [v for series in values.values() for v in series if math.isfinite(v)]
    high = max(finite, default=1.0)
    edge = high * 2 if log else high + max(5.0, 0.05 * abs(high))
    offsets = np.linspace(0.27, -0.27, len(values)) if len(values) > 1 else np.zeros(1)
    for (label, series), offset in zip(values.items(), offsets):
        data = np.array(series, dtype=float)
        exact = np.isposinf(data)
        style = styles[label]
        ax.scatter(
            np.where(exact, np.nan, data),
            y + offset,
            s=16,
            color=style.color,
            marker=style.marker,
            label=label,
            alpha=0.9,
            linewidths=0.4,
            edgecolors="white",
            zorder=3,
        )
        if exact.any():
            ax.scatter(np.full(exact.sum(), edge), y[exact] + offset, s=18, marker=">", color=style.color, zorder=3)
    ax.set_yticks(y, layers, fontsize=6.5)
    ax.set_ylim(-0.7, len(layers) - 0.3)
    ax.grid(axis="y", alpha=0.15)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.xaxis.set_ticks_position("both")
    ax.tick_params(axis="x", labeltop=True)
    _legend_below(figure, ax, ncols=max(1, len(values)))
    return figure


class RooflinePoints(NamedTuple):
    """One label's layers on the roofline: parallel sequences."""

    intensity: Sequence[float]  # MACs per DRAM byte
    attained: Sequence[float]  # MACs per cycle
    memory_bound: Sequence[bool]


def _label_slope(ax: Axes, text: str, x: float, slope: float) -> None:
    """Write ``text`` along the line ``y = slope * x`` (straight on log-log axes), just above it."""
    (x0, y0), (x1, y1) = ax.transData.transform([(x, slope * x), (x * 10, slope * x * 10)])
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    ax.annotate(
        text,
        (x, slope * x),
        xytext=(0, 4),
        textcoords="offset points",
        rotation=angle,
        rotation_mode="anchor",
        fontsize=8,
    )


@report_style()
def roofline(
    points: Mapping[str, RooflinePoints],
    peak_macs_per_cycle: float,
    peak_bytes_per_cycle: float,
    styles: Mapping[str, SeriesStyle],
) -> Figure:
    """Attained MAC/cycle against MAC per DRAM byte, under ``min(compute roof, bandwidth x intensity)``.

    A point far below its roof lost cycles to stalls or fill/drain; a point left of the ridge cannot
    reach the compute roof whatever the overlap, because DRAM cannot feed it. Hollow points are the
    ones whose transfers at peak bandwidth outlast their own array compute (``bound_by`` memory).
    """
    figure = new_figure(WIDTH_IN, 4.6)
    ax = figure.subplots()
    ridge = peak_macs_per_cycle / peak_bytes_per_cycle
    xs = [x for p in points.values() for x in p.intensity] + [ridge]
    ys = [y for p in points.values() for y in p.attained if y > 0] + [peak_macs_per_cycle]
    x = np.geomspace(min(xs) / 2, max(xs) * 2, 200)
    ax.plot(x, np.minimum(peak_macs_per_cycle, peak_bytes_per_cycle * x), color="black", lw=1.2)
    ax.axvline(ridge, color="black", lw=0.6, ls=":")
    ax.annotate(
        f"compute roof {peak_macs_per_cycle:g} MAC/cycle",
        (x[-1], peak_macs_per_cycle),
        xytext=(0, 4),
        textcoords="offset points",
        ha="right",
        fontsize=8,
    )
    ax.annotate(
        f"ridge {ridge:.3g} MAC/B", (ridge, min(ys) / 1.5), xytext=(4, 0), textcoords="offset points", fontsize=8
    )
    for label, p in points.items():
        style, memory = styles[label], np.array(p.memory_bound, dtype=bool)
        for hollow in (False, True):
            pick = memory == hollow
            ax.scatter(
                np.array(p.intensity)[pick],
                np.array(p.attained)[pick],
                s=22,
                marker=style.marker,
                facecolors="none" if hollow else style.color,
                edgecolors=style.color,
                alpha=0.85,
                linewidths=1.0 if hollow else 0,
                zorder=3,
                label=None if hollow else label,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(min(ys) / 2, peak_macs_per_cycle * 2)
    _label_slope(ax, f"DRAM roof {peak_bytes_per_cycle:g} B/cycle", x[0] * 2, peak_bytes_per_cycle)
    ax.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax.set_ylabel("attained throughput (MACs per cycle)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    _legend_below(figure, ax, ncols=max(1, len(points)))
    return figure
