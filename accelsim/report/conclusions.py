"""A few generated sentences that say what the numbers mean: who wins, where time goes, what is memory-bound.

Every claim is computed from the records, so the text cannot drift from the tables and plots.
"""

from __future__ import annotations

import math

from accelsim.report.accuracy import pick
from accelsim.report.cycle_accounting import STALL_CAUSES, cycle_parts, dram_bytes, energy_parts, has_energy
from accelsim.report.results import Results
from accelsim.report.summary import decibels
from accelsim.report.table import joules, si
from accelsim.results.records import LayerRecord

_OPERAND_FIELDS = {
    "weights": "dram_read_bytes_weights",
    "ifmap": "dram_read_bytes_ifmap",
    "ofmap": "dram_write_bytes_ofmap",
}
_OPERAND_BYTE = {"weights": "weight byte", "ifmap": "ifmap byte", "ofmap": "ofmap byte"}


def duration(seconds: float) -> str:
    """``0.00234`` -> ``'2.34 ms'``: latencies span µs (tiny nets) to seconds (fp32 on a vector unit)."""
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def fastest_scheme(results: Results) -> str:
    return min(results.schemes, key=lambda s: results.totals[s].total_cycles)


def array_layers(rows: list[LayerRecord]) -> list[LayerRecord]:
    """Layers that ran on the array and moved data: the roofline's points."""
    return [r for r in rows if r.unit == "array" and r.macs > 0 and r.total_cycles > 0 and dram_bytes(r) > 0]


def _latency(results: Results) -> str:
    totals = results.totals
    best = fastest_scheme(results)
    t = totals[best]
    text = f"**{best}** takes {duration(t.latency_s)} ({t.total_cycles:,} cycles)"
    if len(results.schemes) == 1:
        return text + f", array utilization {100 * t.utilization:.1f}%."
    others = sorted((s for s in results.schemes if s != best), key=lambda s: totals[s].total_cycles)
    text = f"Fastest: {text}"
    if results.baseline and results.baseline != best:
        text += f", {totals[results.baseline].total_cycles / t.total_cycles:.2f}x faster than {results.baseline}"
    runner = others[0]
    return text + f"; the runner-up {runner} is {totals[runner].total_cycles / t.total_cycles:.2f}x slower."


def _traffic(results: Results) -> str:
    totals = results.totals
    leanest = min(results.schemes, key=lambda s: dram_bytes(totals[s]))
    t = totals[leanest]
    largest = max(_OPERAND_FIELDS, key=lambda k: getattr(t, _OPERAND_FIELDS[k]))
    share = 100 * getattr(t, _OPERAND_FIELDS[largest]) / (dram_bytes(t) or 1)
    lead = "Least DRAM traffic: " if len(results.schemes) > 1 else "DRAM traffic: "
    text = f"{lead}**{leanest}** moves {si(dram_bytes(t), 'B')}"
    if results.baseline and results.baseline != leanest:
        text += f", {dram_bytes(totals[results.baseline]) / (dram_bytes(t) or 1):.2f}x less than {results.baseline}"
    return text + f", {share:.0f}% of it {largest}."


def _energy(results: Results) -> str:
    totals = results.totals
    priced = [s for s in results.schemes if has_energy(totals[s])]
    if not priced:
        return ""
    leanest = min(priced, key=lambda s: totals[s].energy_pj)
    t = totals[leanest]
    parts = energy_parts(t)
    largest = max(parts, key=lambda p: parts[p])
    dram = sum(v for p, v in parts.items() if p.startswith("DRAM"))
    lead = "Least energy: " if len(priced) > 1 else "Energy: "
    text = f"{lead}**{leanest}** uses {joules(t.energy_pj)}"
    if t.macs:
        text += f" ({t.pj_per_mac:.3g} pJ/MAC, {t.tops_per_w:.3g} effective TOPS/W)"
    if results.baseline in priced and results.baseline != leanest:
        text += f", {totals[results.baseline].energy_pj / t.energy_pj:.2f}x less than {results.baseline}"
    return (
        text
        + f"; its largest part is {largest} ({100 * parts[largest] / t.energy_pj:.0f}%), DRAM in all {100 * dram / t.energy_pj:.0f}%."
    )


def _accuracy(results: Results) -> str:
    scored = {
        s: results.totals[s].sqnr_db
        for s in results.schemes
        if s != results.baseline and not math.isnan(results.totals[s].sqnr_db)
    }
    if not scored:
        return "Accuracy was not computed (`--timing-only` results); run without it for SQNR against fp32."
    listed = ", ".join(f"{s} {decibels(v)}" + (" dB" if math.isfinite(v) else "") for s, v in scored.items())
    if len(scored) == 1:
        return f"SQNR at the network output against fp32: {listed} (higher is better)."
    best = max(scored, key=lambda s: scored[s])
    return f"Most accurate: **{best}**; SQNR at the network output against fp32: {listed} (higher is better)."


def _cycles(results: Results, scheme: str) -> str:
    parts = cycle_parts(results.layers[scheme])
    total = sum(parts.values()) or 1
    stalls = {label: parts[label] for label in STALL_CAUSES.values()}
    stall_total = sum(stalls.values())
    compute = ", ".join(
        f"{100 * parts[p] / total:.0f}% {p}" for p in ("array compute", "vector-unit layers") if parts[p]
    )
    text = f"Under {scheme}, the cycles are {compute or 'no compute'}, {100 * stall_total / total:.0f}% stalls"
    if stall_total:
        worst = max(stalls, key=lambda k: stalls[k])
        text += f" (mostly {worst.removeprefix('stall: ')}, {100 * stalls[worst] / stall_total:.0f}% of them)"
    return text + f" and {100 * parts['exposed latency and drain'] / total:.0f}% exposed latency and drain."


def _why_memory_bound(r: LayerRecord) -> str:
    """Name the operand that dominates a layer's traffic and how little compute each of its bytes feeds."""
    operand = max(_OPERAND_FIELDS, key=lambda k: getattr(r, _OPERAND_FIELDS[k]))
    moved = getattr(r, _OPERAND_FIELDS[operand])
    return (
        f"`{r.layer}` ({r.macs / dram_bytes(r):.1f} MAC/B; most of its traffic is {operand}, "
        f"{100 * moved / dram_bytes(r):.0f}%, only {r.macs / moved:.0f} MACs per {_OPERAND_BYTE[operand]})"
    )


def _memory_bound(results: Results, scheme: str) -> str:
    layers = array_layers(results.layers[scheme])
    ridge = results.ridge_macs_per_byte
    if not layers:
        return f"No layer ran on the array under {scheme}, so none is placed on the roofline."
    bound = [r for r in layers if r.bound_by == "memory"]
    # left of the ridge yet compute-bound: the array's own fill/drain and idle PEs outlast the transfers
    slow_compute = [r for r in layers if r.bound_by != "memory" and r.macs / dram_bytes(r) < ridge]
    if bound:
        share = 100 * sum(r.total_cycles for r in bound) / (results.totals[scheme].total_cycles or 1)
        longest = "; ".join(_why_memory_bound(r) for r in sorted(bound, key=lambda r: -r.total_cycles)[:3])
        verb = "is" if len(bound) == 1 else "are"
        text = (
            f"{len(bound)} of {len(layers)} array layers {verb} memory-bound under {scheme} ({share:.0f}% of "
            f"its cycles): their operational intensity is below the ridge at {ridge:.3g} MAC/B, so DRAM at "
            f"{results.peak_dram_bytes_per_cycle:g} B/cycle cannot feed {results.peak_macs_per_cycle} PEs. "
            f"The longest: {longest}."
        )
    elif slow_compute:
        text = f"No array layer is memory-bound under {scheme}."
    else:
        return (
            f"No array layer is memory-bound under {scheme}: every one's operational intensity is above the "
            f"ridge at {ridge:.3g} MAC/B."
        )
    if slow_compute:
        low = min(slow_compute, key=lambda r: r.macs / dram_bytes(r))
        text += (
            f" {len(slow_compute)} layer(s) left of the ridge (lowest: `{low.layer}`, "
            f"{low.macs / dram_bytes(low):.1f} MAC/B) are still compute-bound: their array compute, with fill, "
            "drain and partly used folds, outlasts their transfers at peak bandwidth."
        )
    return text


def _bound_counts(results: Results) -> str:
    counts = []
    for s in results.schemes:
        layers = array_layers(results.layers[s])
        if layers:
            counts.append(f"{s} {sum(r.bound_by == 'memory' for r in layers)}/{len(layers)}")
    return "Memory-bound array layers per scheme: " + ", ".join(counts) + "." if len(counts) > 1 else ""


def conclusions(results: Results) -> list[str]:
    """The report's opening bullets, most decision-relevant first."""
    best = fastest_scheme(results)
    accuracy = results.meta.get("accuracy")
    items = [
        pick(accuracy["rows"], results.totals, results.meta.get("runs", {})) if accuracy else "",
        _latency(results),
        _traffic(results),
        _energy(results),
        _accuracy(results),
        _cycles(results, best),
        _memory_bound(results, best),
        _bound_counts(results),
    ]
    return [item for item in items if item]
