"""With more than one GEMM thread, ``simulate`` plays the engine in slices on the calling thread while the
values' GEMMs (and their larger memory-bound kernels) run on the pool: the records, the engine's log and every value must be the bits of one
after the other."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future

import numpy as np
import pytest

from accelsim import simulation
from accelsim.config import load_hardware, load_workload
from accelsim.kernels import threads as gemm_threads
from accelsim.schemes import SchemeName
from accelsim.simulation import RunOptions, SchemeRun, simulate
from accelsim.timing.engine import Engine

ADVANCE = Engine.advance


def _waiting_for_a_kernel() -> bool:
    """Whether this call comes from ``threads.call`` / ``threads.aside`` waiting for a kernel (a GEMM, a residual
    add, a patch gather) it handed to the pool."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not gemm_threads._beside.__code__:
        frame = frame.f_back
    return frame is not None and isinstance(frame.f_locals.get("future"), Future)


def _run(scheme: SchemeName, threads: int, monkeypatch: pytest.MonkeyPatch) -> tuple[SchemeRun, list[bool]]:
    """``scheme`` on resnet18 with ``threads`` GEMM threads; also, per engine slice played beside the
    values, whether it was played on the calling thread while a kernel ran on the pool."""
    beside_a_kernel: list[bool] = []

    def recorded(engine: Engine, events: int) -> bool:
        if events == simulation.ENGINE_SLICE_EVENTS:
            beside_a_kernel.append(threading.current_thread() is threading.main_thread() and _waiting_for_a_kernel())
        return ADVANCE(engine, events)

    monkeypatch.setattr(Engine, "advance", recorded)
    gemm_threads.set_threads(threads)
    try:
        run = simulate(load_workload("resnet18"), load_hardware(None), scheme, options=RunOptions(log=True))
    finally:
        gemm_threads.set_threads(gemm_threads.CPUS)
    return run, beside_a_kernel


@pytest.mark.parametrize("scheme", [SchemeName.STATIC, SchemeName.DYNAMIC, SchemeName.FP32])
def test_engine_beside_the_values_gives_the_same_bits(scheme: SchemeName, monkeypatch: pytest.MonkeyPatch) -> None:
    alone, alone_slices = _run(scheme, 1, monkeypatch)
    beside, beside_slices = _run(scheme, 2, monkeypatch)
    assert alone_slices == []  # one thread: the engine, then the values
    assert beside_slices and all(beside_slices)  # played in slices, each while a kernel ran on the pool
    assert beside.rows == alone.rows and beside.total == alone.total
    assert beside.engine.log == alone.engine.log and beside.engine.total_cycles == alone.engine.total_cycles
    assert beside.engine.events == alone.engine.events
    assert alone.values is not None and beside.values is not None
    assert list(beside.values.layers) == list(alone.values.layers)
    for name, layer in alone.values.layers.items():
        assert np.array_equal(beside.values.layers[name].stored, layer.stored), name
