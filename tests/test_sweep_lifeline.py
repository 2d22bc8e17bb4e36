"""Sweep processes cannot outlive or outlock a killed sweep: workers die with their parent (kernel signal or,
without it, a watch thread), and a forked child of a dead store holder does not keep the folder locked."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from accelsim.sweep.store import ResultStore

#: A parent that forks a child and exits at once, as a SIGKILLed sweep leaves its workers. The child calls
#: die_with_parent (modes prctl, poll, late) or not (none, store), then sleeps; in mode store the parent
#: holds the store of the folder argv[2] when it forks.
ORPHAN = """\
import os, sys, time
from accelsim.sweep import lifeline
from accelsim.sweep.store import ResultStore
mode = sys.argv[1]
if mode == "store":
    store = ResultStore(sys.argv[2])
parent = os.getpid()
child = os.fork()
if child == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # let the test's read of the parent's output end when the parent does
    os.dup2(null, 2)
    if mode == "poll":  # a platform without PR_SET_PDEATHSIG
        lifeline._kill_on_parent_death = lambda: False
        lifeline.POLL_SECONDS = 0.05
    if mode == "late":  # the parent dies before the lifeline is set: the kernel signal would never come
        time.sleep(0.5)
    if mode in ("prctl", "poll", "late"):
        lifeline.die_with_parent(parent)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
os._exit(0)
"""


def orphan(mode: str, folder: Path | None = None) -> psutil.Process:
    """Run ORPHAN and return the child its parent left behind."""
    out = subprocess.run(
        [sys.executable, "-c", ORPHAN, mode, str(folder)], capture_output=True, text=True, timeout=60, check=True
    )
    return psutil.Process(int(out.stdout.split()[0]))


@contextlib.contextmanager
def reaped(child: psutil.Process):
    try:
        yield child
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def gone_within(child: psutil.Process, seconds: float) -> bool:
    try:
        child.wait(seconds)
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.mark.parametrize("mode", ["prctl", "poll", "late"])
def test_worker_dies_with_its_parent(mode: str) -> None:
    with reaped(orphan(mode)) as child:
        assert gone_within(child, 5), f"{mode}: the child outlived its parent"


def test_control_a_child_without_lifeline_outlives_its_parent() -> None:
    """What the test above would see without die_with_parent: the orphan lives on."""
    with reaped(orphan("none")) as child:
        assert not gone_within(child, 1)


def test_forked_child_of_a_dead_store_holder_does_not_keep_the_lock(tmp_path: Path) -> None:
    """The holder opens the store, forks (as the local pool does), and dies; the child lives on, yet the
    folder is free: the lock's descriptor is not the child's to keep."""
    with reaped(orphan("store", tmp_path)) as child:
        assert child.is_running()
        ResultStore(tmp_path).close()
