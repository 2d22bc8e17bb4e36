"""With more than one GEMM thread, ``simulate`` plays the engine on its own thread while the values'
kernels run: the records, the engine's log and every value must be the bits of one after the other."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from accelsim import simulation
from accelsim.config import load_hardware, load_workload
from accelsim.kernels import threads as gemm_threads
from accelsim.schemes import SchemeName
from accelsim.simulation import RunOptions, SchemeRun, simulate

PLAY = simulation._play  # the engine's run, recorded by the tests below


def _run(scheme: SchemeName, threads: int, monkeypatch: pytest.MonkeyPatch) -> tuple[SchemeRun, set[str]]:
    """``scheme`` on resnet18 with ``threads`` GEMM threads; also the threads the engine played on."""
    played_on: set[str] = set()

    def recorded(*args: object) -> object:
        played_on.add(threading.current_thread().name)
        return PLAY(*args)

    monkeypatch.setattr(simulation, "_play", recorded)
    gemm_threads.set_threads(threads)
    try:
        run = simulate(load_workload("resnet18"), load_hardware(None), scheme, options=RunOptions(log=True))
    finally:
        gemm_threads.set_threads(gemm_threads.CPUS)
    return run, played_on


@pytest.mark.parametrize("scheme", [SchemeName.STATIC, SchemeName.DYNAMIC])
def test_engine_beside_the_values_gives_the_same_bits(scheme: SchemeName, monkeypatch: pytest.MonkeyPatch) -> None:
    alone, alone_on = _run(scheme, 1, monkeypatch)
    beside, beside_on = _run(scheme, 2, monkeypatch)
    assert alone_on == {threading.current_thread().name}  # one thread: the engine, then the values
    assert len(beside_on) == 1 and beside_on.pop().startswith("accelsim-engine")
    assert beside.rows == alone.rows and beside.total == alone.total
    assert beside.engine.log == alone.engine.log and beside.engine.total_cycles == alone.engine.total_cycles
    assert alone.values is not None and beside.values is not None
    assert list(beside.values.layers) == list(alone.values.layers)
    for name, layer in alone.values.layers.items():
        assert np.array_equal(beside.values.layers[name].stored, layer.stored), name
