"""The engine's event log of one layer drawn as lanes over cycles, to show overlap and stalls.

A gap in the array lane while DMA-in is busy is a stall on operands; DMA bars that overlap in one lane
were queued for the channel (the engine logs a transfer from its request to its completion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from accelsim.report.palette import LANE_COLORS, LANE_LABELS, LANE_ORDER, SeriesStyle
from accelsim.report.plots import SI_TICKS
from accelsim.report.results import TimelineEvent
from accelsim.report.svg_figure import WIDTH_IN, new_figure, report_style

MAX_SUBROWS = 4


def layer_window(events: Sequence[TimelineEvent], layer: str, compute_events: int) -> list[TimelineEvent]:
    """``layer``'s events up to the start of its ``compute_events + 1``-th array or vector run.

    Cutting by compute runs rather than cycles keeps a few whole tiles with their transfers, whatever
    the layer's length; times stay absolute so several lanes line up.
    """
    mine = sorted((e for e in events if e[3] == layer), key=lambda e: (e[1], e[2], e[0]))
    starts = sorted(e[1] for e in mine if e[0] in ("array", "vector"))
    if len(starts) <= compute_events:
        return mine
    cutoff = starts[compute_events]
    return [e for e in mine if e[1] < cutoff]


def _pack(spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Overlapping spans of one lane onto sub-rows, first fit, at most ``MAX_SUBROWS`` (the last takes the rest)."""
    rows: list[list[tuple[int, int]]] = []
    for start, end in sorted(spans):
        row = next((r for r in rows if r[-1][1] <= start), None)
        if row is None and len(rows) < MAX_SUBROWS:
            rows.append(row := [])
        (row if row is not None else rows[-1]).append((start, end))
    return rows


@report_style()
def timeline(windows: Mapping[str, Sequence[TimelineEvent]], styles: Mapping[str, SeriesStyle], layer: str) -> Figure:
    """One panel per label: lanes DMA-in, array, vector unit, requant, DMA-out over cycles."""
    figure = new_figure(WIDTH_IN, 0.6 + 1.7 * len(windows))
    axes = figure.subplots(len(windows), 1, squeeze=False)[:, 0]
    for ax, (label, events) in zip(axes, windows.items()):
        origin = min((e[1] for e in events), default=0)
        for lane_index, lane in enumerate(LANE_ORDER):
            rows = _pack([(s - origin, e - origin) for name, s, e, _ in events if name == lane])
            for row_index, row in enumerate(rows):
                band = 0.8 / len(rows)
                base = len(LANE_ORDER) - 1 - lane_index - 0.4 + row_index * band
                ax.broken_barh(
                    [(s, e - s) for s, e in row],
                    (base + 0.05 * band, 0.9 * band),
                    facecolors=LANE_COLORS[lane],
                    edgecolor="white",
                    linewidth=0.3,
                )
        ax.set_yticks(range(len(LANE_ORDER)), [LANE_LABELS[lane] for lane in reversed(LANE_ORDER)])
        ax.set_ylim(-0.6, len(LANE_ORDER) - 0.4)
        ax.grid(axis="y", visible=False)
        ax.set_title(
            f"{label}: {layer}" + ("" if events else " (no events logged)"), color=styles[label].color, loc="left"
        )
        ax.xaxis.set_major_formatter(SI_TICKS)
        ax.set_xlabel("cycles since the layer's first event")
    return figure
