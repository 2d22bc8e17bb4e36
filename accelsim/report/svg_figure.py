"""Matplotlib figures rendered to SVG bytes that are identical for identical results.

Figures are made with the object API on an Agg canvas (no pyplot global state, safe in worker
processes); SVG ids come from a fixed hash salt and the date metadata is dropped, so re-running a
report over the same results rewrites byte-identical files.
"""

from __future__ import annotations

import contextlib
import io
from types import TracebackType
from typing import Any, Self

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

#: every report figure is this wide, so plots line up on the page
WIDTH_IN = 7.5

_STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "accelsim",
    "svg.fonttype": "none",  # text stays text: small files, selectable labels
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


class ReportStyle(contextlib.ContextDecorator):
    """The report's rc settings while inside (``with``) or while a decorated plot builder runs."""

    def __enter__(self) -> Self:
        self._rc = matplotlib.rc_context(_STYLE)
        self._rc.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._rc.__exit__(kind, exc, tb)


def report_style() -> ReportStyle:
    """The report's rc settings; decorate plot builders with it, as axes read them when created."""
    return ReportStyle()


def new_figure(width_in: float, height_in: float) -> Figure:
    """An empty figure on an Agg canvas, laid out so labels never overlap."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def svg_bytes(figure: Figure) -> bytes:
    """The figure as standalone SVG, free of dates and random ids."""
    buffer = io.BytesIO()
    with report_style():
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "accelsim"})
    return buffer.getvalue()
