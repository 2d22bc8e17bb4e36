"""What a performance report of one results folder (a ``run`` or a ``compare``) contains, in order.

Cross-scheme comparisons (speedup, traffic cut, runner-up) appear only when the folder holds more than
one scheme; everything else is the same for a single run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from matplotlib.figure import Figure

from accelsim.report.accuracy import HEADERS, TOLERANCE_POINTS, accuracy_plot, accuracy_rows
from accelsim.report.conclusions import array_layers, conclusions, fastest_scheme
from accelsim.report.cycle_accounting import (
    busy_cycles,
    cycle_parts,
    dram_bytes,
    energy_parts,
    has_energy,
    traffic_parts,
)
from accelsim.report.document import Bullets, Document, Image, Paragraph, Section, Table
from accelsim.report.palette import SeriesStyle, scheme_styles
from accelsim.report.plots import (
    RooflinePoints,
    cycle_breakdown,
    energy_breakdown,
    layer_dots,
    roofline,
    traffic_by_operand,
)
from accelsim.report.results import Results
from accelsim.report.summary import layer_rows, scheme_rows
from accelsim.report.svg_figure import svg_bytes
from accelsim.report.table import si
from accelsim.report.timeline_plot import layer_window, timeline
from accelsim.results.records import LayerRecord
from accelsim.schemes import WeightFormatName

Styles = dict[str, SeriesStyle]

#: array/vector runs shown in the timeline: a few whole tiles with their transfers
TIMELINE_COMPUTE_EVENTS = 12


def layer_order(results: Results) -> list[str]:
    """Every layer of every scheme once, in execution order (pseudo-layers slot in where they ran)."""
    order: list[str] = []
    for scheme in results.schemes:
        position = 0
        for row in results.layers[scheme]:
            if row.layer in order:
                position = order.index(row.layer) + 1
            else:
                order.insert(position, row.layer)
                position += 1
    return order


def _per_layer(results: Results, names: list[str], value: Callable[[LayerRecord], float]) -> dict[str, list[float]]:
    """``value`` of each named layer per scheme, NaN where a scheme has no such layer."""
    by_name = {s: {r.layer: r for r in results.layers[s]} for s in results.schemes}
    return {s: [value(by_name[s][n]) if n in by_name[s] else math.nan for n in names] for s in results.schemes}


def _setup(results: Results) -> Section:
    meta, hw = results.meta, results.hardware
    workload = meta["workload"]
    any_total = results.totals[results.schemes[0]]
    runs = []
    for scheme in results.schemes:
        run = meta.get("runs", {}).get(scheme, {})
        notes = [f"{k.replace('_', ' ')} {run[k]}" for k in ("flavour", "requant_rounding") if run.get(k)]
        if run.get("smoothquant") is not None:
            notes.append(f"SmoothQuant alpha {run['smoothquant']:g}")
        if run.get("observer") not in (None, "minmax"):  # the defaults go unsaid: min-max, per-channel scales
            notes.append(f"observer {run['observer']}")
        if run.get("weight_granularity") == "per_tensor":
            notes.append("per-tensor weight scales")
        if run.get("weights") not in (None, WeightFormatName.SYMMETRIC):  # the default int8 symmetric weights go unsaid
            notes.append(f"{run['weights']} weights")
        notes += [k.replace("_", " ") for k in ("ideal_memory", "timing_only") if run.get(k)]
        runs.append(f"{scheme}" + (f" ({', '.join(notes)})" if notes else ""))
    return Section(
        "Setup",
        [
            Bullets(
                [
                    (
                        f"workload `{results.workload_name}`: {workload.get('description', '')}; batch {workload.get('batch', 1)}, "
                        f"{si(any_total.macs)}MAC"
                    ),
                    (
                        f"hardware `{hw.name}`: {hw.array.rows}x{hw.array.cols} {hw.array.dataflow.upper()} array "
                        f"({hw.array.model} model) at {hw.clock_mhz:g} MHz, SRAM {hw.sram_total_kib:g} KiB, DRAM "
                        f"{hw.dram_bytes_per_cycle:.3g} B/cycle x {hw.dram.channels} channel(s), latency {hw.dram.latency_cycles} cycles"
                    ),
                    "schemes: " + ", ".join(runs),
                ]
            )
        ],
    )


def _summary(results: Results) -> Section:
    headers, rows = scheme_rows([results.totals[s] for s in results.schemes])
    note = "MB are 10^6 bytes; latency at the hardware clock."
    if len(results.schemes) > 1:
        note = (
            "`*` fastest, `+` least DRAM traffic; speedup and traffic cut are relative to fp32 "
            "(`-` when the folder has no fp32 run). " + note
        )
    return Section("Summary" if len(results.schemes) > 1 else "Totals", [Table(headers, rows), Paragraph(note)])


def _accuracy(results: Results, styles: Styles) -> list[Section]:
    """The accuracy table and plot, when the folder's run measured accuracy on labelled data (``--data``)."""
    accuracy = results.meta.get("accuracy")
    if not accuracy:
        return []
    data, rows = accuracy["data"], accuracy["rows"]
    note = (
        f"Top-1 on the {data['test_images']} test images of `{data['name']}` (sha256 {data['sha256'][:12]}), static "
        f"calibrated on {data['calibration_images']} calibration images; every image through the bit-exact kernels. "
        f"The conclusions pick the fastest scheme within {TOLERANCE_POINTS:g} point(s) of fp32's top-1 as run."
    )
    figure = accuracy_plot(rows, styles)
    caption = "Top-1 per scheme variant, colored by scheme; the dashed line is fp32's."
    return [
        Section(
            "Accuracy on labelled data",
            [Table(HEADERS, accuracy_rows(rows)), Paragraph(note), _image("accuracy", figure, caption)],
        )
    ]


def _image(name: str, figure: Figure, caption: str) -> Image:
    return Image(name, caption, svg_bytes(figure))


def _cycles(results: Results, styles: Styles) -> Section:
    layers = results.layers
    figure = cycle_breakdown(
        {s: cycle_parts(layers[s]) for s in results.schemes},
        {s: busy_cycles(layers[s]) for s in results.schemes},
        styles,
    )
    return Section(
        "Where the cycles go",
        [
            _image(
                "cycles",
                figure,
                (
                    "Left: each scheme's cycles split into compute (array, vector-unit layers), stalls by cause, and the "
                    "exposed rest (pipeline fill/drain, DMA latency, last requant and store); the parts add up to the total "
                    "under the scheme's name. Right: how long each unit was busy, as a share of the same total; these run in "
                    "parallel with the critical path."
                ),
            )
        ],
    )


def _traffic(results: Results, styles: Styles) -> Section:
    figure = traffic_by_operand({s: traffic_parts(results.totals[s]) for s in results.schemes}, styles)
    return Section(
        "DRAM traffic by operand",
        [
            _image(
                "traffic",
                figure,
                (
                    "Bytes read (weights, weight scales or requant multipliers, bias, ifmap) and written (ofmap) per scheme, "
                    "re-reads included."
                ),
            )
        ],
    )


def _energy(results: Results, styles: Styles) -> Section:
    priced = [s for s in results.schemes if has_energy(results.totals[s])]
    if not priced:
        return Section(
            "Energy",
            [
                Paragraph(
                    f"No energy: hardware {results.hardware.name} has no `energy` table, so energy is absent "
                    "(docs/energy.md says how to add one)."
                )
            ],
        )
    figure = energy_breakdown({s: energy_parts(results.totals[s]) for s in priced}, styles)
    return Section(
        "Energy by component",
        [
            _image(
                "energy",
                figure,
                (
                    "Energy per scheme stacked by component: array MACs, the vector and requant units (lane-cycles), "
                    "each SRAM buffer's reads and writes, DRAM by operand, and static power over the run "
                    "(counts x the hardware's energy table, docs/energy.md)."
                ),
            )
        ],
    )


def _latency(results: Results, styles: Styles, names: list[str]) -> Section:
    latency_us = _per_layer(results, names, lambda r: r.latency_s * 1e6 if r.total_cycles else math.nan)
    figure = layer_dots(names, latency_us, styles, "layer latency (µs, log scale)", log=True)
    return Section(
        "Per-layer latency",
        [
            _image(
                "layer_latency",
                figure,
                (
                    "Each layer's latency per scheme in µs on a log axis, layers in execution order (a layer's latency is its "
                    "part of the run, so a scheme's markers add up to its total). Each scheme has its own line within a row, "
                    "top to bottom as in the legend, so equal latencies stay visible. A wide spread in a row marks the layer "
                    "where the scheme choice matters most."
                ),
            )
        ],
    )


def _roofline(results: Results, styles: Styles) -> Section:
    points = {
        s: RooflinePoints(
            [r.macs / dram_bytes(r) for r in layers],
            [r.macs / r.total_cycles for r in layers],
            [r.bound_by == "memory" for r in layers],
        )
        for s in results.schemes
        if (layers := array_layers(results.layers[s]))
    }
    if not points:
        return Section("Roofline", [Paragraph("No layer ran on the array, so there is no roofline.")])
    absent = [s for s in results.schemes if s not in points]
    figure = roofline(points, results.peak_macs_per_cycle, results.peak_dram_bytes_per_cycle, styles)
    return Section(
        "Roofline",
        [
            _image(
                "roofline",
                figure,
                (
                    "Each array layer is a point: its MACs per DRAM byte against the MACs per cycle it attained. Left of the "
                    "ridge DRAM cannot feed the array at full rate; the gap below a roof is time lost to stalls, fill and "
                    "drain. Hollow points are memory-bound layers (their DRAM time at peak bandwidth exceeds their array "
                    "compute); a filled point left of the ridge is a layer whose array compute, with its fill, drain and "
                    "partly used folds, takes even longer."
                    + (f" Not shown: {', '.join(absent)} (ran no layer on the array)." if absent else "")
                ),
            )
        ],
    )


def _sqnr(results: Results, styles: Styles, names: list[str]) -> Section:
    sqnr = {
        s: series
        for s, series in _per_layer(results, names, lambda r: r.sqnr_db).items()
        if s != results.baseline and not all(math.isnan(v) for v in series)
    }
    if not sqnr:
        return Section(
            "Per-layer accuracy (SQNR)",
            [Paragraph("No SQNR in these results (`--timing-only`, or only the fp32 baseline).")],
        )
    figure = layer_dots(names, sqnr, styles, "SQNR against fp32 (dB, higher is better)")
    return Section(
        "Per-layer accuracy (SQNR)",
        [
            _image(
                "layer_sqnr",
                figure,
                (
                    "Signal-to-quantization-noise ratio of each layer's output against the fp32 run; a triangle at the "
                    "right edge is an exact layer."
                ),
            )
        ],
    )


def _timeline(results: Results, styles: Styles) -> Section:
    if not results.timeline:
        return Section("Timeline", [Paragraph("No `timeline.json` in the folder, so no timeline.")])
    best = fastest_scheme(results)
    candidates = array_layers(results.layers[best]) or results.layers[best]
    layer = max(candidates, key=lambda r: (r.stall_cycles, r.total_cycles)).layer
    windows = {
        s: layer_window(results.timeline[s], layer, TIMELINE_COMPUTE_EVENTS)
        for s in results.schemes
        if s in results.timeline
    }
    return Section(
        "Timeline",
        [
            _image(
                "timeline",
                timeline(windows, styles, layer),
                (
                    f"Layer `{layer}`, the one with the most stall cycles under {best}, up to its "
                    f"{TIMELINE_COMPUTE_EVENTS + 1}th array or vector-unit run, per scheme. Gaps in the array lane are stalls; "
                    "DMA bars span request to completion, so stacked bars in one lane queued for the channel. Cycle 0 is the "
                    "layer's first event, which may be a prefetch issued during the previous layer."
                ),
            )
        ],
    )


def performance_document(results: Results) -> Document:
    """The report of a ``run`` or ``compare`` folder, plots rendered."""
    styles = scheme_styles(results.schemes)
    names = layer_order(results)
    sections = [
        _setup(results),
        Section("Conclusions", [Bullets(conclusions(results))]),
        _summary(results),
        *_accuracy(results, styles),
        _cycles(results, styles),
        _traffic(results, styles),
        _energy(results, styles),
        _latency(results, styles, names),
        _roofline(results, styles),
        _sqnr(results, styles, names),
        _timeline(results, styles),
    ] + [
        Section(f"Per-layer numbers: {s}", [Table(*layer_rows(results.layers[s], results.totals[s]))], collapsed=True)
        for s in results.schemes
    ]
    kind = "scheme comparison" if len(results.schemes) > 1 else f"{results.schemes[0]} run"
    return Document(f"{results.workload_name} on {results.hardware.name}: {kind}", sections)
