"""What runs inside a worker process: simulate a batch of points, turn each into a result row.

The sweep (base config, validated workloads) reaches a worker once, not with every task: local pools
install it with ``install`` at process start, Dask scatters it to every worker. Tasks then carry only
points (axis values, workload name, scheme), so a task costs bytes, not a pickled ResNet-50.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from accelsim.config.hardware import HardwareConfig
from accelsim.config.sweep import Sweep
from accelsim.config.workload import Workload
from accelsim.kernels import threads as gemm_threads
from accelsim.results.records import LayerRecord
from accelsim.schemes import SchemeName, get_scheme
from accelsim.simulation import PreparedModel, RunOptions, simulate
from accelsim.sweep.lifeline import die_with_parent
from accelsim.sweep.points import Point

#: The hardware a point ran on, for plots that need it without re-resolving the config.
HARDWARE_COLUMNS = {
    "pe_count": "INTEGER",
    "sram_total_kib": "REAL",
    "dram_bytes_per_cycle": "REAL",
    "area_mm2": "REAL",  # NaN (NULL) without an area table
}
#: What a point's workload and scheme make of the hardware, for per-token and roofline plots (NULL when not
#: meaningful): tokens one step processes (batch x the input's tokens, for a [tokens, features] input), and the
#: MACs per cycle the scheme's GEMMs can reach (the int8 array, its float datapath at float_rate, or the vector
#: unit's lanes for float GEMMs on an array without one).
POINT_COLUMNS = {"tokens_per_step": "INTEGER", "peak_macs_per_cycle": "REAL"}
#: The workload total's numeric fields (docs/metrics.md), one store column each.
METRIC_COLUMNS = {f.name: "INTEGER" if f.type is int else "REAL" for f in fields(LayerRecord) if f.type in (int, float)}
RESULT_COLUMNS = {**HARDWARE_COLUMNS, **POINT_COLUMNS, **METRIC_COLUMNS}


@dataclass(frozen=True)
class PointResult:
    """A finished point: its metrics, or the error it raised (then ``values`` is empty)."""

    point: Point
    values: dict[str, Any]
    error: str | None
    seconds: float
    cpu_seconds: float
    worker: str

    @property
    def status(self) -> str:
        return "error" if self.error is not None else "ok"


_installed: Sweep | None = None


def install(sweep: Sweep, parent_pid: int) -> None:
    """Process initializer of local pools: die with the sweep process, keep the sweep for every later task."""
    global _installed
    die_with_parent(parent_pid)
    _installed = sweep


def run_installed(batch: list[Point]) -> list[PointResult]:
    """A local pool task: run ``batch`` against the sweep ``install`` left in this process."""
    if _installed is None:
        raise RuntimeError("worker has no sweep installed")
    return run_batch(_installed, batch)


def tokens_per_step(workload: Workload) -> int | None:
    """Tokens one run of ``workload`` processes: batch x the input's tokens for a sequence input
    ``[tokens, features]`` (a prefill's prompt, a decode step's one token); None for other inputs."""
    return workload.batch * workload.input_shape[0] if len(workload.input_shape) == 2 else None


def peak_macs_per_cycle(hw: HardwareConfig, scheme: SchemeName) -> float:
    """The MACs per cycle ``scheme``'s GEMMs can reach on ``hw``: integer GEMMs the whole array, float ones its
    float datapath (``float_rate``) or, without one, the vector unit's lanes (one MAC per lane per cycle)."""
    if not get_scheme(scheme).float_gemm:
        return float(hw.pe_count)
    return hw.pe_count * hw.array.float_rate if hw.array.float_rate else float(hw.vector.lanes)


def run_point(sweep: Sweep, point: Point) -> dict[str, Any]:
    """The result columns of one point (hardware facts, then the workload total's metrics)."""
    hw = sweep.hardware(point.overrides)
    workload = sweep.workload(point.workload, point.overrides)
    options = RunOptions(
        flavour=sweep.spec.flavour, weights=sweep.weights(point.overrides), timing_only=sweep.spec.timing_only
    )
    prepared = PreparedModel()
    given = sweep.quantized.get(point.workload)
    if given is not None:  # a quantized model: its own codes and parameters, its runtime's requant mode
        hw = given.runtime_hardware(hw)
        options = replace(options, weights=given.weights, observer=None, weight_granularity=None)
        from accelsim.values.tensors import materialize  # NumPy: a values point only

        tensors = None if options.timing_only else given.given_tensors(materialize(workload))
        prepared = PreparedModel(tensors=tensors, qparams=given.qparams or None)
    run = simulate(workload, hw, point.scheme, options=options, prepared=prepared)
    return {
        **{name: getattr(hw, name) for name in HARDWARE_COLUMNS},
        "tokens_per_step": tokens_per_step(workload),
        "peak_macs_per_cycle": peak_macs_per_cycle(hw, point.scheme),
        **{name: getattr(run.total, name) for name in METRIC_COLUMNS},
    }


def run_batch(sweep: Sweep, batch: list[Point]) -> list[PointResult]:
    """Run each point; one that raises becomes an error result and the batch goes on. A sweep worker is
    one of the sweep's CPUs: its GEMMs run on one thread (a worker per core, each splitting its GEMMs
    over every core, would oversubscribe them)."""
    gemm_threads.set_threads(1)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out = []
    for point in batch:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            values, error = run_point(sweep, point), None
        except Exception as exc:  # noqa: BLE001 - any failure of one point is that point's result
            values, error = {}, f"{type(exc).__name__}: {exc}"
        out.append(PointResult(point, values, error, time.perf_counter() - start, time.process_time() - cpu, worker))
    return out
