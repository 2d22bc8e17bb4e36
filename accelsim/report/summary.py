"""Terminal summaries of results: a per-layer table for one scheme, a side-by-side table of schemes."""

from __future__ import annotations

import math

from accelsim.report.table import format_table
from accelsim.results.records import LayerRecord


def decibels(value: float) -> str:
    """SQNR as the tables print it: ``-`` when not computed, ``exact`` when the error is zero."""
    if math.isnan(value):
        return "-"
    return "exact" if math.isinf(value) else f"{value:.1f}"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f}"


# Columns a narrow terminal hides first: detail that other columns or the report already give.
LAYER_HIDE_ORDER = ("unit", "compute", "write MB", "requant sats", "acc overflows", "bound", "read MB", "stalls")
SCHEME_HIDE_ORDER = (
    "bias+scales MB",
    "ofmap MB",
    "ifmap MB",
    "weights MB",
    "stalls",
    "cycles",
    "traffic cut",
    "util %",
)


def layer_table(rows: list[LayerRecord], total: LayerRecord, width: int | None = None) -> str:
    """One row per layer: cycles, stalls, traffic, utilization, error; fitted to ``width`` characters."""
    return format_table(*layer_rows(rows, total), width=width, hide_order=LAYER_HIDE_ORDER)


def layer_rows(rows: list[LayerRecord], total: LayerRecord) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of ``layer_table``, for renderers other than the terminal."""
    body = [
        [
            r.layer,
            r.type,
            r.unit,
            f"{r.total_cycles:,}",
            f"{r.compute_cycles:,}",
            f"{r.stall_cycles:,}",
            _mb(r.dram_read_bytes),
            _mb(r.dram_write_bytes),
            f"{100 * r.utilization:.1f}",
            r.bound_by or "-",
            f"{r.accumulator_overflows:,}",
            f"{r.requant_saturations:,}",
            decibels(r.sqnr_db),
        ]
        for r in rows + [total]
    ]
    headers = [
        "layer",
        "type",
        "unit",
        "cycles",
        "compute",
        "stalls",
        "read MB",
        "write MB",
        "util %",
        "bound",
        "acc overflows",
        "requant sats",
        "SQNR dB",
    ]
    return headers, body


def scheme_table(totals: list[LayerRecord], markdown: bool = False, width: int | None = None) -> str:
    """Schemes side by side; the fastest is marked ``*``, the least DRAM traffic ``+``; fitted to ``width``."""
    return format_table(*scheme_rows(totals), markdown=markdown, width=width, hide_order=SCHEME_HIDE_ORDER)


def scheme_rows(totals: list[LayerRecord]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of ``scheme_table``, for renderers other than the terminal."""
    fastest = min(totals, key=lambda t: t.total_cycles)
    leanest = min(totals, key=lambda t: t.dram_read_bytes + t.dram_write_bytes)
    from accelsim.report.palette import is_baseline  # the plots' styles: `run`'s layer table needs none

    base = next((t for t in totals if is_baseline(t.scheme)), None)
    body = []
    for t in totals:
        traffic = t.dram_read_bytes + t.dram_write_bytes
        mark = ("*" if t is fastest else "") + ("+" if t is leanest else "")
        body.append(
            [
                t.scheme + (f" {mark}" if mark else ""),
                f"{t.latency_s * 1e3:.3f}",
                f"{t.total_cycles:,}",
                f"{base.total_cycles / t.total_cycles:.2f}x" if base else "-",
                f"{t.stall_cycles:,}",
                _mb(t.dram_read_bytes_weights),
                _mb(t.dram_read_bytes_ifmap),
                _mb(t.dram_write_bytes_ofmap),
                _mb(t.dram_read_bytes_bias + t.dram_read_bytes_weight_scales),
                _mb(traffic),
                f"{(base.dram_read_bytes + base.dram_write_bytes) / traffic:.2f}x" if base and traffic else "-",
                f"{100 * t.utilization:.1f}",
                decibels(t.sqnr_db),
                "-" if math.isnan(t.top1_agreement) else f"{100 * t.top1_agreement:.0f}",
            ]
        )
    headers = [
        "scheme",
        "latency ms",
        "cycles",
        "speedup",
        "stalls",
        "weights MB",
        "ifmap MB",
        "ofmap MB",
        "bias+scales MB",
        "DRAM MB",
        "traffic cut",
        "util %",
        "SQNR dB",
        "top-1 %",
    ]
    return headers, body
