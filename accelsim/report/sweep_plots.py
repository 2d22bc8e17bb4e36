"""Plots of a sweep: Pareto fronts of two costs, and a heatmap of the best latency over two axes.

Builders take plain sequences and mappings (no store, no pandas) and return a ``Figure`` drawn in the
report style, so sweep plots look like the rest of the report and render to identical SVG bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from accelsim.report.palette import SeriesStyle
from accelsim.report.svg_figure import WIDTH_IN, new_figure, report_style


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both costs (lower is better), by increasing x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    front: list[int] = []
    for i in order:
        if not front or ys[i] < ys[front[-1]]:
            front.append(i)
    return front


def _scale(axis: Axis, set_scale: Callable[[str], None], values: Sequence[float]) -> None:
    """Log when the values span more than a decade (sweeps often span several), plain numbers on the ticks."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) > 10 * min(positive):
        set_scale("log")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labels at 1-2-5: readable over any span
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


@report_style()
def pareto(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    styles: Mapping[str, SeriesStyle],
    xlabel: str,
    ylabel: str,
    title: str,
) -> Figure:
    """Every point of each label as a faint dot, its Pareto front as a line of solid dots."""
    figure = new_figure(WIDTH_IN, 4.2)
    ax = figure.subplots()
    for label, (xs, ys) in series.items():
        style = styles[label]
        ax.scatter(xs, ys, s=14, marker=style.marker, color=style.color, alpha=0.25, linewidths=0)
        front = pareto_front(xs, ys)
        ax.plot(
            [xs[i] for i in front],
            [ys[i] for i in front],
            marker=style.marker,
            markersize=5,
            lw=1.2,
            color=style.color,
            drawstyle="steps-post",
            label=f"{label} (front: {len(front)} of {len(xs)})",
        )
    _scale(ax.xaxis, ax.set_xscale, [x for xs, _ in series.values() for x in xs])
    _scale(ax.yaxis, ax.set_yscale, [y for _, ys in series.values() for y in ys])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    return figure


@report_style()
def heatmaps(
    grids: Mapping[str, np.ndarray], rows: Sequence[str], cols: Sequence[str], row_axis: str, col_axis: str, unit: str
) -> Figure:
    """One panel per label (workload / scheme): each cell the best value over the other axes, annotated.

    Each panel has its own color scale (workloads differ by orders of magnitude); NaN cells (no point
    ran, or all failed) stay blank.
    """
    n = len(grids)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    figure = new_figure(WIDTH_IN, 0.6 + nrows * (0.9 + 0.32 * len(rows)))
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (label, grid) in zip(axes, grids.items()):
        image = ax.imshow(grid, cmap="viridis", aspect="auto")  # dark = low = good
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (r, c), value in np.ndenumerate(grid):
            if math.isfinite(value):
                ax.text(
                    c,
                    r,
                    f"{value:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value < middle else "black",
                )
        ax.set_xticks(range(len(cols)), cols, fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel(col_axis)
        ax.set_ylabel(row_axis)
        ax.set_title(label, fontsize=9)
        ax.grid(False)
        figure.colorbar(image, ax=ax, label=unit, shrink=0.85)
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure


#: line styles of a scheme's variants (its weight format, its KV cache dtype): the first variant solid
VARIANT_DASHES = ("-", "--", ":", "-.")


@report_style()
def per_token(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    styles: Mapping[str, tuple[SeriesStyle, str]],
    xlabel: str,
    marks: Sequence[tuple[float, str]],
    title: str,
) -> Figure:
    """Time per token (left) and tokens per second (right) against ``xlabel``, one line per series (color:
    its scheme, dashes: its variant); ``marks`` are dotted vertical lines where the fastest series changes."""
    figure = new_figure(WIDTH_IN, 4.0)
    left, right = figure.subplots(1, 2)
    for label, (xs, ms) in series.items():
        style, dash = styles[label]
        for ax, ys in ((left, ms), (right, [1e3 / m for m in ms])):
            ax.plot(xs, ys, marker=style.marker, markersize=4, lw=1.2, ls=dash, color=style.color, label=label)
    for ax, ylabel in ((left, "time per token (ms)"), (right, "tokens per second")):
        for x, text in marks:
            ax.axvline(x, color="#777777", ls=":", lw=1)
            ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=6, va="top", ha="right")
        if all(x > 0 for line in ax.get_lines() for x in line.get_xdata()):  # a context of 0 stays on a linear axis
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        _scale(ax.yaxis, ax.set_yscale, [y for line in ax.get_lines() for y in line.get_ydata()])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    left.legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    return figure
