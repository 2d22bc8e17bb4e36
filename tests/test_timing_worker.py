"""The timing simulation in a child process while the values run: same results, errors and a dead child
handled, the GEMM's CPUs given back."""

from __future__ import annotations

import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.errors import AccelsimError
from accelsim.kernels import vnni
from accelsim.lowering.program import lower
from accelsim.sim import timing_worker
from accelsim.sim.simulation import simulate


def test_runs_play_their_timing_here_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``overlap_timing`` no child is started (a one-shot run is faster without one)."""
    monkeypatch.setattr(timing_worker, "_child", None)
    simulate(load_workload("tiny_cnn"), load_hardware(None), "static")
    assert timing_worker._child is None


@pytest.fixture
def fresh_child(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A GEMM budget of two threads (so runs use a child) and a child of this test's own."""
    previous = vnni.threads()
    vnni.set_threads(2)
    monkeypatch.setattr(timing_worker, "_child", None)
    monkeypatch.setattr(timing_worker, "_failed", False)
    yield
    if timing_worker._child is not None:
        timing_worker._child.close()
    vnni.set_threads(previous)


def in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing_worker, "_get_child", lambda: None)


@pytest.mark.parametrize("scheme", ["static", "dynamic"])
def test_timing_in_the_child_gives_the_same_run(fresh_child, monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:  # noqa: ANN001
    workload, hw = load_workload("tiny_cnn"), load_hardware(None, ["dram.bandwidth_bytes_per_cycle=4"])
    program = lower(workload, hw, scheme)
    beside = simulate(workload, hw, scheme, log=True, overlap_timing=True)
    prepared = simulate(workload, hw, scheme, program=program, overlap_timing=True)
    assert timing_worker._child is not None  # the child played them
    assert vnni._RESERVED == 0  # and the GEMM has its CPU back
    in_one_process(monkeypatch)
    alone = simulate(workload, hw, scheme, log=True)
    for run in (beside, prepared):  # repr: a NaN field (no error measured) unpickles as another NaN object
        assert repr(run.rows) == repr(alone.rows) and repr(run.total) == repr(alone.total)
        assert run.engine.total_cycles == alone.engine.total_cycles and run.engine.events == alone.engine.events
    assert beside.engine.log == alone.engine.log
    assert prepared.program is program


def test_the_childs_errors_are_raised_here(fresh_child) -> None:  # noqa: ANN001
    """A buffer too small for any tile fails the lowering in the child: the same clear error here."""
    workload, hw = load_workload("tiny_cnn"), load_hardware(None, ["sram.filter_kib=0.01"])
    with pytest.raises(AccelsimError, match="no tile fits"):
        simulate(workload, hw, "static", overlap_timing=True)
    assert timing_worker._child is not None and vnni._RESERVED == 0


def test_a_dead_child_is_replaced_by_this_process(fresh_child) -> None:  # noqa: ANN001
    workload, hw = load_workload("tiny_cnn"), load_hardware(None)
    expected = simulate(workload, hw, "static", overlap_timing=True)
    timing_worker._child.process.kill()
    timing_worker._child.process.wait()
    again = simulate(workload, hw, "static", overlap_timing=True)
    assert repr(again.rows) == repr(expected.rows)
    assert timing_worker._child is None and timing_worker._failed and vnni._RESERVED == 0


def test_one_thread_plays_the_timing_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget of one thread (``vnni.set_threads(1)``, as sweep workers run) starts no child."""
    previous = vnni.threads()
    monkeypatch.setattr(timing_worker, "_child", None)
    monkeypatch.setattr(timing_worker, "_failed", False)
    vnni.set_threads(1)
    try:
        simulate(load_workload("tiny_cnn"), load_hardware(None), "static", overlap_timing=True)
        assert timing_worker._child is None
    finally:
        vnni.set_threads(previous)


def test_the_child_plays_the_program_it_is_given(fresh_child, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """A given program is played as given, not lowered again: here one lowered with per-row dynamic
    ranges under the per-tensor flavour, which a fresh lowering would not produce; and kept by the
    child after its first run (later runs send a number)."""
    workload, hw = load_workload("tiny_cnn"), load_hardware(None, ["dram.bandwidth_bytes_per_cycle=4"])
    program = lower(workload, hw, "dynamic", dynamic_per_tensor=False)
    runs = [simulate(workload, hw, "dynamic", program=program, overlap_timing=True) for _ in range(2)]
    assert timing_worker._child is not None and id(program) in timing_worker._sent
    in_one_process(monkeypatch)
    alone = simulate(workload, hw, "dynamic", program=program)
    fresh = simulate(workload, hw, "dynamic")
    for run in runs:
        assert repr(run.rows) == repr(alone.rows)
    assert alone.engine.total_cycles != fresh.engine.total_cycles


def test_no_interpreter_to_start_plays_the_timing_here(fresh_child, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(timing_worker.sys, "executable", "")
    run = simulate(load_workload("tiny_cnn"), load_hardware(None), "static", overlap_timing=True)
    assert run.engine.total_cycles > 0 and timing_worker._child is None and timing_worker._failed
