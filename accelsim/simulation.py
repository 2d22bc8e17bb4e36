"""One workload on one hardware config under one scheme: lower, play the engine, compute values, record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelsim import __version__
from accelsim.config import HardwareConfig, Workload
from accelsim.hw import DramChannel, roofline_bound
from accelsim.lowering.program import Program, lower, lowering_options
from accelsim.results.records import LayerRecord, total_record
from accelsim.schemes import SCHEMES, get_scheme
from accelsim.timing.engine import Engine, EngineRun


@dataclass
class SchemeRun:
    """Everything one scheme's simulation produced."""

    scheme: str
    program: Program
    engine: EngineRun
    rows: list[LayerRecord]
    total: LayerRecord
    values: Any = None  # accelsim.values.runner.NetworkValues when values were computed
    settings: dict[str, Any] = field(default_factory=dict)


def dram_of(hw: HardwareConfig) -> DramChannel:
    return DramChannel(hw.dram_bytes_per_cycle, hw.dram.latency_cycles, hw.dram.channels)


def simulate(
    workload: Workload,
    hw: HardwareConfig,
    scheme: str,
    *,
    flavour: str = "onnx",
    ideal_memory: bool = False,
    timing_only: bool = False,
    log: bool = False,
    reference: Any = None,
    tensors: Any = None,
    progress: Callable[[str], None] | None = None,
    program: Program | None = None,
    qparams: dict[str, Any] | None = None,
    errors_against_fp32: bool = True,
    weights: str = "symmetric",
) -> SchemeRun:
    """Simulate ``workload`` on ``hw`` under ``scheme``; ``reference`` is the fp32 values run for errors.

    ``tensors`` (from ``accelsim.values.tensors.materialize``) lets several schemes share one draw of the
    weights and inputs; ``progress`` is told each step as it starts (for a progress display);
    ``program`` is this workload, hardware and scheme lowered before (``lower`` is deterministic: a
    model compiled once for an accelerator and run many times); ``qparams`` the static scheme's
    calibrated activation parameters (``accelsim.values.runner.calibrate``), as a deployed model has them;
    ``errors_against_fp32=False`` leaves out the fp32 run and the error fields (a run that only needs
    the values and the timing). ``weights``: the weight format (``symmetric``, ``asymmetric`` uint8 or
    ``asymmetric_int8``, ``accelsim.quant.WEIGHT_FORMATS``): the values use weight zero points and the
    timing reads one zero-point byte per output channel with the weight scales (fp32 has neither)."""
    step = progress or (lambda _: None)
    get_scheme(scheme)  # an unknown scheme is the AccelsimError run_values and the CLI give
    options = lowering_options(flavour, weights)
    per_tensor, asymmetric = options["dynamic_per_tensor"], options["asymmetric_weights"]
    step(f"{scheme}: timing")
    if program is not None and (program.workload, program.hardware, program.scheme) != (workload.name, hw.name, scheme):
        raise ValueError(
            f"program lowered for {program.workload} on {program.hardware} ({program.scheme}), "
            f"not {workload.name} on {hw.name} ({scheme})"
        )
    lowered, run, rows = _play(workload, hw, scheme, per_tensor, asymmetric, ideal_memory, log, program)
    values, errors = None, {}
    if not timing_only:
        from accelsim.values.runner import OUTPUT, run_values
        from accelsim.values.tensors import materialize  # numerics only when asked: timing-only sweeps stay light

        step(f"{scheme}: values")
        tensors = tensors if tensors is not None else materialize(workload)
        values = run_values(
            workload,
            hw,
            scheme,
            flavour=flavour,
            tensors=tensors,
            qparams=qparams,
            weights=weights,
            program=program or lowered,
        )  # the values compute the program the engine played
        if errors_against_fp32:
            if reference is None:  # errors are always against fp32 on the same input
                step("fp32 reference values")
                reference = values if scheme == "fp32" else run_values(workload, hw, "fp32", tensors=tensors)
            errors = values.compare_to(reference)
    program = program or lowered
    if values is not None:
        _add_values(rows, values, errors)
    total = total_record(rows, hw.pe_count, hw.clock_mhz)
    if errors:
        at_output = errors[OUTPUT]
        total.sqnr_db, total.max_abs_error = at_output.sqnr_db, at_output.max_abs_error
        if at_output.top1_agreement is not None:
            total.top1_agreement = at_output.top1_agreement
    settings = {
        "scheme": scheme,
        "flavour": flavour if scheme == "dynamic" else None,
        "requant_rounding": hw.requant.rounding if scheme == "static" else None,
        "weights": weights if get_scheme(scheme).weights.quantized else None,
        "ideal_memory": ideal_memory,
        "timing_only": timing_only,
    }
    return SchemeRun(scheme, program, run, rows, total, values, settings)


def _timing_records(workload: Workload, hw: HardwareConfig, program: Program, run: EngineRun) -> list[LayerRecord]:
    """Per-layer records of a played program; the value fields are filled by :func:`_add_values`."""
    dram = dram_of(hw)
    rows = []
    previous_end = 0
    for lowered, timing in zip(program.layers, run.layers):
        total = timing.end_cycle - previous_end
        previous_end = timing.end_cycle
        reads = {f"dram_read_bytes_{k}": v for k, v in timing.dram_read_bytes.items()}
        read_total = sum(reads.values())
        bound = roofline_bound(lowered.array_compute_cycles, read_total + timing.dram_write_bytes, dram)
        stalls = {f"stall_cycles_{k}": v for k, v in timing.stall_cycles.items()}
        unit = lowered.unit
        macs = lowered.macs
        rows.append(
            LayerRecord(
                workload=workload.name,
                hardware=hw.name,
                scheme=program.scheme,
                layer=lowered.name,
                type=lowered.type,
                unit=unit,
                macs=macs,
                compute_cycles=timing.compute_cycles,
                **stalls,
                stall_cycles=sum(stalls.values()),
                total_cycles=total,
                latency_s=total / (hw.clock_mhz * 1e6),
                utilization=macs / (hw.pe_count * total) if total and unit == "array" else 0.0,
                vector_busy_cycles=timing.vector_cycles,
                requant_busy_cycles=timing.requant_cycles,
                **reads,
                dram_write_bytes_ofmap=timing.dram_write_bytes,
                dram_read_bytes=read_total,
                dram_write_bytes=timing.dram_write_bytes,
                sram_read_bytes=lowered.sram_read_bytes,
                sram_write_bytes=lowered.sram_write_bytes,
                tiles=len(lowered.tiles),
                roofline_cycles=bound.bound_cycles if unit == "array" else 0,
                bound_by=bound.bound_by if unit == "array" else "",
            )
        )
    return rows


def _add_values(rows: list[LayerRecord], values: Any, errors: dict[str, Any]) -> None:
    """Each row's overflow and saturation counts and its errors against fp32."""
    for row in rows:
        layer_values = values.layers.get(row.layer)
        row.accumulator_overflows = getattr(layer_values, "accumulator_overflows", 0) or 0
        row.requant_saturations = getattr(layer_values, "requant_saturations", 0) or 0
        err = errors.get(row.layer)
        if err is not None:
            row.sqnr_db, row.max_abs_error = err.sqnr_db, err.max_abs_error


def _play(
    workload: Workload,
    hw: HardwareConfig,
    scheme: str,
    per_tensor: bool,
    asymmetric: bool,
    ideal_memory: bool,
    log: bool,
    program: Program | None,
) -> tuple[Program | None, EngineRun, list[LayerRecord]]:
    """The timing simulation: lower unless ``program`` is given, play the engine, the records' timing
    fields. Returns the program it lowered (None if it was given one), the engine run, the records."""
    lowered = (
        None
        if program is not None
        else lower(workload, hw, scheme, dynamic_per_tensor=per_tensor, asymmetric_weights=asymmetric)
    )
    played = program if program is not None else lowered
    run = Engine(played, None if ideal_memory else dram_of(hw), log=log).run()
    return lowered, run, _timing_records(workload, hw, played, run)


def config_tag(model: Any, overrides: list[str]) -> str:
    """Folder name of a config: its name, plus a short hash of its contents when overrides changed it."""
    if not overrides:
        return model.name
    digest = hashlib.sha256(json.dumps(model.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]
    return f"{model.name}-{digest}"


def results_folder(
    root: Path, workload: Workload, hw: HardwareConfig, wl_overrides: list[str], hw_overrides: list[str]
) -> Path:
    return Path(root) / config_tag(workload, wl_overrides) / config_tag(hw, hw_overrides)


def run_meta(workload: Workload, hw: HardwareConfig, runs: list[SchemeRun]) -> dict[str, Any]:
    """What produced a results file: enough to reproduce it."""
    return {
        "accelsim_version": __version__,
        "workload": workload.model_dump(mode="json"),
        "hardware": hw.model_dump(mode="json"),
        "runs": {r.scheme: r.settings for r in runs},
        "events": {r.scheme: r.engine.events for r in runs},
    }


def compare_schemes(
    workload: Workload,
    hw: HardwareConfig,
    schemes: tuple[str, ...] = tuple(SCHEMES),
    *,
    flavour: str = "onnx",
    ideal_memory: bool = False,
    timing_only: bool = False,
    log: bool = False,
    progress: Any = None,
    weights: str = "symmetric",
) -> list[SchemeRun]:
    """Every scheme on the same workload and hardware; fp32 runs first as the error reference; ``weights``
    is the weight format of the schemes that quantize weights."""
    reference = tensors = None
    if not timing_only:
        from accelsim.values.runner import run_values
        from accelsim.values.tensors import materialize

        tensors = materialize(workload)  # one draw of weights and inputs for every scheme
        if "fp32" not in schemes:
            if progress is not None:
                progress("fp32 reference values")
            reference = run_values(workload, hw, "fp32", tensors=tensors)
    runs = []
    for scheme in sorted(schemes, key=lambda s: s != "fp32"):
        run = simulate(
            workload,
            hw,
            scheme,
            flavour=flavour,
            ideal_memory=ideal_memory,
            timing_only=timing_only,
            log=log,
            reference=reference,
            tensors=tensors,
            progress=progress,
            weights=weights,
        )
        reference = reference if reference is not None else (run.values if scheme == "fp32" else None)
        runs.append(run)
    return sorted(runs, key=lambda r: list(SCHEMES).index(r.scheme))
