"""Per-token sections of a sweep report: time per token and tokens/s against batch or context length, and where
the fastest scheme changes and why (the step's arithmetic intensity against the machine's MACs-per-byte balance).

Drawn for a sweep with a ``workload.batch`` or ``workload.context`` axis over sequence workloads (the store's
``tokens_per_step``). A scheme's variants (its ``weights`` format, its ``workload.kv_cache_dtype``) are separate
series; the other axes (``hardware``, hardware fields) and each workload make separate groups.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from accelsim.report.document import Image, Paragraph, Section, Table
from accelsim.report.palette import ordered_schemes, scheme_styles
from accelsim.report.svg_figure import svg_bytes
from accelsim.report.sweep_plots import VARIANT_DASHES, per_token

Row = dict[str, Any]
#: the axes a per-token section is drawn against, and what its title calls them
TOKEN_AXES = {"workload.batch": "batch", "workload.context": "context length (tokens in the KV cache)"}
#: values an axis needs for its section: with two, each line is a segment, and a sweep over context at two batch
#: sizes would draw a batch figure per context
MIN_POINTS = 3
#: axes whose values split a scheme into series (a line each) rather than groups (a figure each)
SERIES_AXES = ("weights", "workload.kv_cache_dtype")
#: the traffic classes a step's per-token bytes are split into besides activations
WEIGHT_AND_KV = ("dram_read_bytes_weights", "dram_read_bytes_weight_scales", "dram_read_bytes_kv_cache")


def _variant(row: Row, spec_axes: dict[str, list[Any]]) -> str:
    """The series a row belongs to: its scheme and the values of the series axes the spec varies."""
    parts = [row["scheme"]]
    for axis in SERIES_AXES:
        if len(spec_axes.get(axis, ())) > 1:
            value = row[axis]
            parts.append(
                f"KV {value}" if axis == "workload.kv_cache_dtype" else ("int8" if value == "symmetric" else value)
            )
    return " ".join(str(p) for p in parts)


def ms_per_token(row: Row) -> float:
    return row["latency_s"] * 1e3 / row["tokens_per_step"]


def intensity(row: Row) -> float:
    """The step's arithmetic intensity: MACs per byte of DRAM traffic."""
    return row["macs"] / max(1, row["dram_read_bytes"] + row["dram_write_bytes"])


def balance(row: Row) -> float:
    """The machine's balance for the row's scheme: the MACs per cycle its GEMMs can reach per DRAM byte per cycle
    (a step below it is memory-bound, above it compute-bound)."""
    return row["peak_macs_per_cycle"] / row["dram_bytes_per_cycle"]


def _mb_per_token(row: Row, *columns: str) -> float:
    return sum(row[c] or 0 for c in columns) / row["tokens_per_step"] / 1e6


def roofline_ms_per_token(row: Row) -> float:
    """The step's roofline time per token: its DRAM bytes at full bandwidth or its MACs at the peak rate of its
    GEMMs' datapath, whichever is longer (cycles to seconds at the point's own clock: latency over cycles)."""
    cycles = max(
        (row["dram_read_bytes"] + row["dram_write_bytes"]) / row["dram_bytes_per_cycle"],
        row["macs"] / row["peak_macs_per_cycle"],
    )
    return cycles * row["latency_s"] / row["total_cycles"] * 1e3 / row["tokens_per_step"]


def _bound(row: Row) -> str:
    side = "memory" if intensity(row) < balance(row) else "compute"
    return (
        f"{side}-bound: {intensity(row):.3g} MACs per DRAM byte against a balance of {balance(row):.3g}, "
        f"{ms_per_token(row) / roofline_ms_per_token(row):.2f}x its roofline time; per token "
        f"{ms_per_token(row):.3g} ms and {_mb_per_token(row, 'dram_read_bytes', 'dram_write_bytes'):.3g} MB, of them "
        f"weights and their scales {_mb_per_token(row, 'dram_read_bytes_weights', 'dram_read_bytes_weight_scales'):.3g}"
        f" MB, KV cache {_mb_per_token(row, 'dram_read_bytes_kv_cache'):.3g} MB, activations and the rest "
        f"{_mb_per_token(row, 'dram_read_bytes', 'dram_write_bytes') - _mb_per_token(row, *WEIGHT_AND_KV):.3g} MB"
    )


def _group_label(workload: str, key: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join([workload, *(f"{a}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for a, v in key)])


def winners(series: dict[str, dict[Any, Row]], xs: list[Any]) -> list[tuple[Any, str]]:
    """The fastest series (least time per token) at each x where any series finished."""
    out = []
    for x in xs:
        here = {label: points[x] for label, points in series.items() if x in points}
        if here:
            out.append((x, min(here, key=lambda label: (ms_per_token(here[label]), label))))
    return out


def _changes(series: dict[str, dict[Any, Row]], xs: list[Any], what: str) -> tuple[list[tuple[float, str]], list[str]]:
    """The vertical marks and the sentences for each change of the fastest series."""
    best = winners(series, xs)
    marks, lines = [], []
    if best:
        lines.append(
            f"At {what} {best[0][0]} the fastest is **{best[0][1]}** ({_bound(series[best[0][1]][best[0][0]])})."
        )
    for (_, old), (x, new) in itertools.pairwise(best):
        if old == new:
            continue
        marks.append((float(x), f"{new} from {x}"))
        was = series[old].get(x)
        lines.append(
            f"From {what} {x} **{new}** is fastest ({_bound(series[new][x])})"
            + (f"; {old} is {_bound(was)}." if was else ".")
        )
    return marks, lines


def _kv_dominates(series: dict[str, dict[Any, Row]], xs: list[Any], what: str) -> list[str]:
    """Per series, the first x at which the KV cache is more than half of the step's DRAM traffic."""
    lines = []
    for label, points in series.items():
        share = {
            x: points[x]["dram_read_bytes_kv_cache"]
            / max(1, points[x]["dram_read_bytes"] + points[x]["dram_write_bytes"])
            for x in xs
            if x in points
        }
        first = next((x for x, s in share.items() if s > 0.5), None)
        top = max(share.values(), default=0.0)
        lines.append(
            f"{label}: the KV cache is {top:.0%} of the DRAM bytes at the largest {what}"
            + (f"; more than half from {what} {first}." if first is not None else "; never more than half.")
        )
    return lines


def _order(
    points: dict[Any, Row], schemes: list[str], axes: list[str], spec_axes: dict[str, list[Any]]
) -> tuple[int, ...]:
    """Series in scheme order, each scheme's variants in the order the spec lists their values."""
    row = next(iter(points.values()))
    return (schemes.index(row["scheme"]), *(spec_axes[a].index(row[a]) for a in SERIES_AXES if a in axes))


def token_sections(rows: list[Row], axes: list[str], spec_axes: dict[str, list[Any]]) -> list[Section]:
    """One section per token axis the sweep varies: per workload and group of the other axes, a figure of time
    per token and tokens/s per series, the crossovers in words, and for the context axis the KV cache's share."""
    sections = []
    ok = [r for r in rows if r["status"] == "ok" and r.get("tokens_per_step")]
    for x_axis, what in TOKEN_AXES.items():
        if x_axis not in axes or len(spec_axes[x_axis]) < MIN_POINTS or not ok:
            continue
        xs = list(spec_axes[x_axis])
        others = [a for a in axes if a != x_axis and a not in SERIES_AXES]
        groups: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[str, dict[Any, Row]]] = {}
        for r in ok:
            key = (r["workload"], tuple((a, r[a]) for a in others))
            groups.setdefault(key, {}).setdefault(_variant(r, spec_axes), {})[r[x_axis]] = r
        blocks: list[Any] = []
        for n, ((workload, group), found) in enumerate(groups.items()):
            schemes = ordered_schemes({points[next(iter(points))]["scheme"] for points in found.values()})
            colors = scheme_styles(schemes)
            series = dict(sorted(found.items(), key=lambda item: _order(item[1], schemes, axes, spec_axes)))
            styles: dict[str, tuple[Any, str]] = {}
            seen: dict[str, int] = {}
            for label, points in series.items():
                scheme = points[next(iter(points))]["scheme"]
                seen[scheme] = seen.get(scheme, -1) + 1
                styles[label] = (colors[scheme], VARIANT_DASHES[seen[scheme] % len(VARIANT_DASHES)])
            marks, lines = _changes(series, xs, what.split(" (")[0])
            title = _group_label(workload, group)
            lines_xy = {
                label: ([float(x) for x in xs if x in p], [ms_per_token(p[x]) for x in xs if x in p])
                for label, p in series.items()
            }
            figure = per_token(lines_xy, styles, what, marks, title)
            blocks.append(
                Image(
                    f"per_token_{x_axis.split('.')[-1]}_{n}",
                    f"{title}: time per token and tokens per second against {what}, per scheme and variant; "
                    "dotted lines mark where the fastest changes.",
                    svg_bytes(figure),
                )
            )
            table = [[str(x), *(f"{ms_per_token(p[x]):.4g}" if x in p else "-" for p in series.values())] for x in xs]
            blocks.append(Table([what.split(" (")[0], *(f"{label} ms/token" for label in series)], table))
            blocks.append(Paragraph(" ".join(lines)))
            if x_axis == "workload.context":
                blocks.append(Paragraph(" ".join(_kv_dominates(series, xs, "context"))))
        sections.append(
            Section(
                f"Time per token against {what}",
                [
                    Paragraph(
                        "Time per token is the step's latency over the tokens it processes (batch x the input's "
                        "tokens); a step whose MACs per DRAM byte are below the machine's balance (the MACs per cycle "
                        "its GEMMs can reach over the DRAM bytes per cycle) is memory-bound, so the scheme moving "
                        "the fewest bytes wins; above it the fastest datapath wins."
                    ),
                    *blocks,
                ],
            )
        )
    return sections
