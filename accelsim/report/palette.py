"""Fixed colors, so a scheme (or a timeline lane) looks the same in every plot of every report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from accelsim.schemes import SCHEMES, SchemeName

#: The shipped schemes in the order reports list them: the scheme table's (baseline first, most quantized last).
SCHEME_ORDER = tuple(SCHEMES)

_SCHEME_STYLES: dict[str, tuple[str, str]] = {
    SchemeName.FP32: ("#4d4d4d", "o"),
    SchemeName.WOQ: ("#1f77b4", "s"),
    SchemeName.DYNAMIC: ("#ff7f0e", "^"),
    SchemeName.STATIC: ("#2ca02c", "D"),
}  # a scheme added to the table without a style here draws in the spare styles
_SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
_SPARE_MARKERS = ("v", "P", "X", "h", "<", "p")

LANE_ORDER = ("dma_in", "array", "vector", "requant", "dma_out")
LANE_LABELS = {
    "dma_in": "DMA in",
    "array": "array",
    "vector": "vector unit",
    "requant": "requant",
    "dma_out": "DMA out",
}
LANE_COLORS = {"dma_in": "#6baed6", "array": "#31a354", "vector": "#fd8d3c", "requant": "#9e9ac8", "dma_out": "#2171b5"}


def ordered_schemes(schemes: Iterable[str]) -> list[str]:
    """Shipped schemes in their usual order, then any others alphabetically."""
    present = set(schemes)
    return [s for s in SCHEME_ORDER if s in present] + sorted(present - set(SCHEME_ORDER))


def is_baseline(scheme: str) -> bool:
    """The scheme a report measures speedups, traffic cuts and errors against: the table's reference (fp32);
    a name the table does not know (a results file from elsewhere) is none."""
    return scheme in SCHEMES and SCHEMES[SchemeName(scheme)].is_reference


@dataclass(frozen=True)
class SeriesStyle:
    """How one scheme (or sweep point) is drawn everywhere; the marker tells apart dots that coincide."""

    color: str
    marker: str


def scheme_styles(schemes: Iterable[str]) -> dict[str, SeriesStyle]:
    """A style per scheme: fixed for the shipped ones, the spare styles in order for any others."""
    ordered = ordered_schemes(schemes)
    others = [s for s in ordered if s not in _SCHEME_STYLES]
    spare = {
        s: (_SPARE_COLORS[i % len(_SPARE_COLORS)], _SPARE_MARKERS[i % len(_SPARE_MARKERS)])
        for i, s in enumerate(others)
    }
    return {s: SeriesStyle(*(_SCHEME_STYLES.get(s) or spare[s])) for s in ordered}
