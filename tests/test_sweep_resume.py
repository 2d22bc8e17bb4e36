"""The result store: a sweep killed at any moment finishes on rerun without running a stored point again,
and ends with exactly the store of an uninterrupted run; failed points are recorded, not fatal."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from accelsim.cli import main
from accelsim.config.sweep import load_sweep
from accelsim.errors import AccelsimError
from accelsim.sweep import LocalPool, load_results, run_sweep
from accelsim.sweep.store import ResultStore

# 4 x 4 x 3 x 2 = 96 configs x 2 schemes = 192 points of 5-20 ms each: a couple of seconds on 2 workers
KILL_SPEC = """\
schema_version: 1
base: default
axes:
  array.rows: [4, 8, 16, 32]
  array.cols: [4, 8, 16, 32]
  array.dataflow: [os, ws, is]
  sram.ofmap_kib: [2, 8]
workloads: [tiny_cnn]
schemes: [static, fp32]
output: {output}
"""
TOTAL = 192


def table(folder: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(folder / "sweep.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def stored(folder: Path) -> int:
    try:
        return table(folder, "SELECT COUNT(*) FROM results")[0][0]
    except sqlite3.OperationalError:  # no store or no table yet
        return 0


def sweep_command(spec: Path) -> list[str]:
    return [sys.executable, "-m", "accelsim", "sweep", str(spec), "--workers", "2"]


@pytest.mark.parametrize("kill", ["group", "main_only"])
def test_killed_sweep_resumes_to_the_uninterrupted_result(
    kill: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL of the CLI and its workers, or of the CLI alone (its workers must not outlive it and keep
    the folder locked): a plain rerun finishes the sweep."""
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    spec = tmp_path / "kill.yaml"
    spec.write_text(KILL_SPEC.format(output=killed))
    ref_spec = tmp_path / "ref.yaml"
    ref_spec.write_text(KILL_SPEC.format(output=reference))

    proc = subprocess.Popen(sweep_command(spec), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while stored(killed) < 20:
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) == 2
    try:
        if kill == "group":
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, mid-commit or not
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, orphans = psutil.wait_procs(workers, timeout=5)
        assert not orphans, f"workers outlived the killed sweep: {orphans}"
    finally:
        for worker in workers:  # a failed run must not leave them to the rest of the suite
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    at_kill = stored(killed)
    assert 20 <= at_kill < TOTAL

    rerun = subprocess.run(sweep_command(spec), capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    ran = int(re.search(r"ran (\d+) in", rerun.stdout).group(1))
    assert ran == TOTAL - at_kill, rerun.stdout
    assert f"{at_kill} already stored" in rerun.stdout

    assert main(["sweep", str(ref_spec), "--workers", "2"]) == 0
    capsys.readouterr()
    everything = "SELECT * FROM results ORDER BY point_id"
    assert table(killed, everything) == table(reference, everything)
    assert len(table(killed, everything)) == TOTAL
    assert table(killed, "SELECT * FROM points ORDER BY position") == table(
        reference, "SELECT * FROM points ORDER BY position"
    )
    assert (killed / "results.csv").read_text() == (reference / "results.csv").read_text()
    # every stored point was executed once: the rerun never ran a point the killed run had stored
    assert table(killed, "SELECT COUNT(*), COUNT(DISTINCT point_id) FROM executions") == [(TOTAL, TOTAL)]


def test_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    spec = tmp_path / "fail.yaml"
    spec.write_text(f"""\
schema_version: 1
base: default
axes:
  sram.filter_kib: [0.01, 64]
workloads: [mlp]
output: {tmp_path / "out"}
""")
    sweep = load_sweep(spec)
    outcome = run_sweep(sweep, LocalPool(1), progress=False)
    assert (outcome.ran, outcome.errors) == (2, 1)
    frame = load_results(tmp_path / "out")
    assert list(frame["sram.filter_kib"]) == [0.01, 64]
    assert list(frame["status"]) == ["error", "ok"]
    assert "AccelsimError" in frame["error"][0] and "no tile fits" in frame["error"][0]
    assert frame["latency_s"].isna()[0] and frame["latency_s"][1] > 0
    assert "1 points failed" in outcome.describe()
    again = run_sweep(sweep, LocalPool(1), progress=False)  # errors are deterministic: not rerun
    assert (again.ran, again.skipped, again.errors) == (0, 2, 1)


def test_results_show_the_current_spec_only(tmp_path: Path) -> None:
    """Dropping a value from an axis keeps its stored rows in the file but out of exports."""
    pytest.importorskip("pandas")
    spec = tmp_path / "s.yaml"
    text = f"schema_version: 1\nbase: default\naxes: {{array.rows: [8, 16]}}\nworkloads: [mlp]\noutput: {tmp_path / 'out'}\n"
    spec.write_text(text)
    run_sweep(load_sweep(spec), LocalPool(1), progress=False)
    spec.write_text(text.replace("[8, 16]", "[16]"))
    outcome = run_sweep(load_sweep(spec), LocalPool(1), progress=False)
    assert (outcome.ran, outcome.skipped) == (0, 1)
    assert list(load_results(tmp_path / "out")["array.rows"]) == [16]
    assert (tmp_path / "out/results.csv").read_text().count("\n") == 2
    assert stored(tmp_path / "out") == 2


def test_one_sweep_per_output_folder(tmp_path: Path) -> None:
    with ResultStore(tmp_path), pytest.raises(AccelsimError, match="another accelsim sweep"):
        ResultStore(tmp_path)
    ResultStore(tmp_path).close()  # released with its holder


def test_load_results_of_a_folder_without_a_sweep_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(AccelsimError, match="no sweep results here"):
        load_results(tmp_path)
