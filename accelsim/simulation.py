"""One workload on one hardware config under one scheme: lower, play the engine, compute values, record."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelsim import __version__
from accelsim.config import HardwareConfig, Workload
from accelsim.config.loader import weights_digest
from accelsim.dynamic_flavours import FlavourName
from accelsim.hw import DramChannel, roofline_bound
from accelsim.lowering.program import Program, lower, lowering_options
from accelsim.results.energy import price, sum_energy
from accelsim.results.records import LayerRecord, repeated, total_record
from accelsim.schemes import SCHEMES, SchemeName, WeightFormatName, get_scheme
from accelsim.timing.engine import Engine, EngineRun

if TYPE_CHECKING:  # the values import Numba: a timing-only run never loads them
    from accelsim.quant import QParams
    from accelsim.quant.options import WeightGranularity
    from accelsim.values.runner import ErrorMetrics, NetworkValues
    from accelsim.values.tensors import WorkloadTensors

Progress = Callable[[str], None]
#: The GIL's switch interval while the engine plays beside the values' GEMMs (Python's default is 5 ms): a pool
#: thread starting or ending a GEMM waits at most this long for the calling thread, busy with an engine slice,
#: to hand it the GIL (nobody else asks for it then, so a short interval costs nothing elsewhere).
OVERLAP_SWITCH_INTERVAL_S = 0.00002
#: SimPy events the engine plays per slice while a GEMM runs on the pool (~4 us each on ResNet-50)
ENGINE_SLICE_EVENTS = 8


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What a user chooses about one run (the command line's options).

    ``flavour``: the dynamic scheme's flavour (``accelsim.quant.DYNAMIC_FLAVOURS``). ``weights``: the weight
    format (``symmetric``, ``asymmetric`` uint8 or ``asymmetric_int8``, ``accelsim.schemes.WEIGHT_FORMATS``):
    the values use weight zero points and the timing reads one zero-point byte per output channel with the
    weight scales (fp32 has neither); the int4 group-wise formats (``int4_g32`` ... ``int4_g128_zp``) run linear
    layers weight-only (woq) or W4A8 (dynamic) and read packed codes plus per-group parameters. ``observer``: the static scheme's calibration observer
    (``accelsim.quant.OBSERVERS``; None: a quantized model's own parameters, nothing calibrated). ``weight_granularity``: one weight scale per output channel or per
    tensor (the values only: the timing reads per-channel scales either way; None: a quantized model's own
    weight codes). ``ideal_memory``: DRAM never stalls. ``timing_only``: no values.
    ``log``: keep the engine's event log. ``errors_against_fp32=False`` leaves out the fp32 run and the
    error fields (a run that only needs the values and the timing). ``smoothquant``: SmoothQuant's migration
    strength alpha (``accelsim.values.smoothquant``) for the schemes that quantize activations (static, dynamic;
    None: none); folded into the weights offline, it changes the values, not the timing."""

    flavour: str = FlavourName.ONNX
    weights: str = WeightFormatName.SYMMETRIC
    observer: str | None = "minmax"
    weight_granularity: WeightGranularity | None = "per_channel"
    ideal_memory: bool = False
    timing_only: bool = False
    log: bool = False
    errors_against_fp32: bool = True
    smoothquant: float | None = None

    @property
    def run_granularity(self) -> WeightGranularity:
        """The weight granularity the lowering and the values run with: a quantized model's own weight codes
        (None) take the per-channel default, so both read the same one."""
        return self.weight_granularity or "per_channel"

    def smooths(self, scheme: str) -> bool:
        """Does ``scheme`` run on SmoothQuant-migrated weights (it quantizes activations and alpha is set)?"""
        plan = get_scheme(scheme)
        return self.smoothquant is not None and (plan.runtime_activations or plan.calibrated)


@dataclass(frozen=True, kw_only=True)
class PreparedModel:
    """What a deployed model has before it runs, and several runs may share.

    ``program``: this workload, hardware and scheme lowered before (``lower`` is deterministic: a model
    compiled once for an accelerator and run many times). ``tensors`` (``accelsim.values.tensors.materialize``):
    one draw of the weights and inputs for several schemes. ``qparams``: the static scheme's calibrated
    activation parameters (``accelsim.values.runner.calibrate``). ``reference``: the fp32 values the errors
    are measured against (computed on the same tensors when not given). ``smoothed``: ``tensors`` after
    SmoothQuant's migration at the run's alpha (computed when a run needs it and it is not given)."""

    program: Program | None = None
    tensors: WorkloadTensors | None = None
    qparams: dict[str, QParams] | None = None
    reference: NetworkValues | None = None
    smoothed: WorkloadTensors | None = None


@dataclass
class SchemeRun:
    """Everything one scheme's simulation produced."""

    scheme: SchemeName
    program: Program
    engine: EngineRun
    rows: list[LayerRecord]
    total: LayerRecord
    values: NetworkValues | None = None  # None for a timing-only run
    settings: dict[str, Any] = field(default_factory=dict)


def dram_of(hw: HardwareConfig) -> DramChannel:
    return DramChannel(hw.dram_bytes_per_cycle, hw.dram.latency_cycles, hw.dram.channels, hw.dram.outstanding_transfers)


def simulate(
    workload: Workload,
    hw: HardwareConfig,
    scheme: SchemeName,
    *,
    options: RunOptions = RunOptions(),
    prepared: PreparedModel = PreparedModel(),
    progress: Progress | None = None,
) -> SchemeRun:
    """Simulate ``workload`` on ``hw`` under ``scheme``: the timing, and unless ``options.timing_only`` the
    values of the same lowered program and their errors against fp32. ``progress`` is told each step as
    it starts (for a progress display).

    With more than one GEMM thread (``accelsim.kernels.threads``) the engine, pure Python, plays the
    program in slices on this thread while the values' GEMMs run on the pool with the GIL released
    (docs/engine.md): the two share no mutable state, so the cycles and the values are the same bits as
    one after the other."""
    step = progress or (lambda _: None)
    name = get_scheme(scheme).name  # an unknown scheme is the AccelsimError run_values and the CLI give
    options_of_lowering = lowering_options(options.flavour, options.weights, options.run_granularity)
    program = prepared.program
    if program is not None and (program.workload, program.hardware, program.scheme) != (workload.name, hw.name, name):
        raise ValueError(
            f"program lowered for {program.workload} on {program.hardware} ({program.scheme}), "
            f"not {workload.name} on {hw.name} ({name})"
        )
    if program is None:
        program = lower(workload, hw, name, **options_of_lowering)
    step(f"{name}: timing")
    values: NetworkValues | None = None
    errors: dict[str, ErrorMetrics] = {}
    if options.timing_only:
        run = _play(hw, program, options)
    else:
        run, values, errors = _play_and_compute(workload, hw, program, options, prepared, step)
    rows = _timing_records(workload, hw, program, run)
    if values is not None:
        _add_values(rows, values, errors)
    price(rows, hw, get_scheme(name).float_gemm)
    # a repeated block's rows are one block's
    total = _step_total(rows, workload, hw) if workload.repeat > 1 else _total(rows, hw)
    if errors:
        from accelsim.values.runner import OUTPUT

        at_output = errors[OUTPUT]
        total.sqnr_db, total.max_abs_error = at_output.sqnr_db, at_output.max_abs_error
        if at_output.top1_agreement is not None:
            total.top1_agreement = at_output.top1_agreement
    plan = get_scheme(name)
    settings = {
        "scheme": name,
        "flavour": options.flavour if plan.runtime_activations else None,
        "requant_rounding": hw.requant.rounding if plan.calibrated else None,
        "weights": options.weights if plan.weights.quantized else None,
        "observer": options.observer if plan.calibrated else None,
        "weight_granularity": options.weight_granularity if plan.weights.quantized else None,
        "ideal_memory": options.ideal_memory,
        "timing_only": options.timing_only,
        "smoothquant": options.smoothquant if options.smooths(name) else None,
    }
    return SchemeRun(name, program, run, rows, total, values, settings)


def _total(rows: list[LayerRecord], hw: HardwareConfig) -> LayerRecord:
    """The total of ``rows`` (layer rows, or totals of parts of a run), its energy summed."""
    total = total_record(rows, hw.pe_count, hw.clock_mhz)
    sum_energy(rows, total, hw)
    return total


def _step_total(rows: list[LayerRecord], workload: Workload, hw: HardwareConfig) -> LayerRecord:
    """The total of a repeated block's run: the block's layer rows counted ``repeat`` times; the rest once: the
    final layers (a decoder's final norm and LM head) and the static scheme's input and output conversions (the
    network's input is quantized once, not per block)."""
    block = {s.layer.name for s in workload.block_shapes}
    parts: list[list[LayerRecord]] = [[r for r in rows if r.layer in block], [r for r in rows if r.layer not in block]]
    blocks = _total(parts[0], hw)
    return _total([repeated(blocks, workload.repeat, hw.pe_count), *parts[1]], hw)


def _engine(hw: HardwareConfig, program: Program, options: RunOptions) -> Engine:
    return Engine(program, None if options.ideal_memory else dram_of(hw), log=options.log)


def _play(hw: HardwareConfig, program: Program, options: RunOptions) -> EngineRun:
    """The timing simulation: the engine plays ``program``."""
    return _engine(hw, program, options).run()


def _play_and_compute(
    workload: Workload,
    hw: HardwareConfig,
    program: Program,
    options: RunOptions,
    prepared: PreparedModel,
    step: Progress,
) -> tuple[EngineRun, NetworkValues, dict[str, ErrorMetrics]]:
    """The engine's run, the values of the program it plays and their errors against fp32. With a GEMM
    thread budget above one the engine plays while the values wait for their GEMMs (``threads.beside``)."""
    from accelsim.kernels import threads as gemm_threads
    from accelsim.values.runner import run_values
    from accelsim.values.smoothquant import smooth
    from accelsim.values.tensors import materialize  # numerics only when asked: timing-only sweeps stay light

    def compute() -> tuple[WorkloadTensors, NetworkValues]:
        """The weights and inputs (drawn unless prepared) and the program's values on them (on the
        SmoothQuant-migrated weights when the run asks for them; the fp32 reference keeps the originals)."""
        step(f"{program.scheme}: values")
        tensors = prepared.tensors if prepared.tensors is not None else materialize(workload)
        run_tensors = tensors
        if options.smooths(program.scheme):
            assert options.smoothquant is not None  # smooths() says so
            run_tensors = prepared.smoothed or smooth(workload, hw, tensors, options.smoothquant)
        return tensors, run_values(
            workload,
            hw,
            program.scheme,
            flavour=options.flavour,
            tensors=run_tensors,
            qparams=prepared.qparams,
            weights=options.weights,
            program=program,
            observer=options.observer or "minmax",
            weight_granularity=options.run_granularity,
        )

    if gemm_threads.threads() > 1:
        engine = _engine(hw, program, options)
        engine.start()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(OVERLAP_SWITCH_INTERVAL_S)
        try:
            with gemm_threads.beside(lambda: engine.advance(ENGINE_SLICE_EVENTS)):
                tensors, values = compute()
        finally:
            sys.setswitchinterval(interval)
        run = engine.finish()  # what the GEMMs left of it
    else:
        run = _play(hw, program, options)
        tensors, values = compute()
    errors: dict[str, ErrorMetrics] = {}
    if options.errors_against_fp32:
        reference = prepared.reference
        if reference is None:  # errors are always against fp32 on the same input
            step("fp32 reference values")
            is_reference = get_scheme(program.scheme).is_reference
            reference = values if is_reference else run_values(workload, hw, SchemeName.FP32, tensors=tensors)
        errors = values.compare_to(reference)
    return run, values, errors


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
                scheme=str(program.scheme),  # a plain name, as the records read back from disk hold it
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
                **lowered.sram_bytes,
                tiles=len(lowered.tiles),
                roofline_cycles=bound.bound_cycles if unit == "array" else 0,
                bound_by=bound.bound_by if unit == "array" else "",
            )
        )
    return rows


def _add_values(rows: list[LayerRecord], values: NetworkValues, errors: dict[str, ErrorMetrics]) -> None:
    """Each row's overflow and saturation counts and its errors against fp32."""
    for row in rows:
        layer_values = values.layers.get(row.layer)
        if layer_values is not None:
            row.accumulator_overflows = layer_values.accumulator_overflows
            row.requant_saturations = layer_values.requant_saturations
        err = errors.get(row.layer)
        if err is not None:
            row.sqnr_db, row.max_abs_error = err.sqnr_db, err.max_abs_error


def config_tag(model: Workload | HardwareConfig, overrides: list[str]) -> str:
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
    """What produced a results file: enough to reproduce it (with the sha256 of the workload's weights file,
    when it names one: the folder's configuration includes those bytes, see results.records.shared_config)."""
    weights = weights_digest(workload)
    return {
        "accelsim_version": __version__,
        "workload": workload.model_dump(mode="json"),
        **({"weights_sha256": weights} if weights else {}),
        "hardware": hw.model_dump(mode="json"),
        "runs": {r.scheme: r.settings for r in runs},
        "events": {r.scheme: r.engine.events for r in runs},
    }


def compare_schemes(
    workload: Workload,
    hw: HardwareConfig,
    schemes: Iterable[SchemeName] = tuple(SCHEMES),
    *,
    options: RunOptions = RunOptions(),
    tensors: WorkloadTensors | None = None,
    qparams: dict[str, QParams] | None = None,
    progress: Progress | None = None,
) -> list[SchemeRun]:
    """Every scheme on the same workload and hardware, in the scheme table's order (the reference scheme,
    fp32, first), its values the others' error reference, all on one draw of weights and inputs (``tensors``,
    e.g. a model's own weights and the user's data; drawn from the workload's seed when None); ``qparams``:
    the static scheme's activation parameters when the model has its own (a quantized ONNX model)."""
    table = list(SCHEMES)
    names = sorted({get_scheme(s).name for s in schemes}, key=lambda s: (not SCHEMES[s].is_reference, table.index(s)))
    reference = smoothed = None
    if not options.timing_only:
        from accelsim.values.runner import run_values
        from accelsim.values.smoothquant import smooth
        from accelsim.values.tensors import materialize

        if tensors is None:
            tensors = materialize(workload)  # one draw of weights and inputs for every scheme
        if options.smoothquant is not None and any(options.smooths(s) for s in names):
            smoothed = smooth(workload, hw, tensors, options.smoothquant)  # measured once for every scheme
        if not any(SCHEMES[s].is_reference for s in names):
            if progress is not None:
                progress("fp32 reference values")
            reference = run_values(workload, hw, SchemeName.FP32, tensors=tensors)
    runs = []
    for name in names:
        run = simulate(
            workload,
            hw,
            name,
            options=options,
            prepared=PreparedModel(tensors=tensors, qparams=qparams, reference=reference, smoothed=smoothed),
            progress=progress,
        )
        if reference is None and SCHEMES[name].is_reference:
            reference = run.values
        runs.append(run)
    return runs
