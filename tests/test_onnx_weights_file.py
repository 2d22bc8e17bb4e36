"""A workload's ``weights_file`` is resolved where the workload is loaded (config.loader.load_workload), so
every run of an imported workload (``simulate`` without given tensors, a sweep's points) uses the model's
own weights, not seeded random ones; and the weights file's bytes (their sha256) are part of a sweep point's
id and of a results folder's configuration, so results of other weights are neither reused nor merged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from accelsim.cli import main
from accelsim.config.loader import load_hardware, load_workload
from accelsim.config.sweep import load_sweep
from accelsim.config.workload import Workload
from accelsim.model_file import import_to_files, load_model
from accelsim.schemes import SchemeName
from accelsim.simulation import PreparedModel, simulate
from accelsim.sweep import LocalPool, run_sweep
from accelsim.sweep.points import expand
from accelsim.sweep.worker import run_point

MODEL = Path(__file__).resolve().parents[1] / "workloads" / "residual_cnn.onnx"


def _imported(tmp_path: Path) -> Path:
    """residual_cnn imported as ``models/cnn.yaml`` beside its ``cnn.npz``."""
    folder = tmp_path / "models"
    folder.mkdir()
    import_to_files(MODEL, folder / "cnn.yaml")
    return folder


def _spec(tmp_path: Path, workload: Path, timing_only: bool) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "base": "default",
                "axes": {"array.rows": [8, 16]},
                "workloads": [str(workload)],
                "schemes": ["static"],
                "timing_only": timing_only,
                "output": str(tmp_path / "out"),
            }
        )
    )
    return spec


def _change_a_weight(npz: Path) -> None:
    """Rewrite the .npz with one weight changed: same names and shapes, other bytes."""
    with np.load(npz) as stored:
        arrays = {key: stored[key] for key in stored.files}
    first = min(arrays)
    arrays[first] = arrays[first] + np.float32(0.5)
    with npz.open("wb") as out:
        np.savez(out, **arrays)


def test_a_sweep_over_an_imported_workload_uses_its_weights(tmp_path: Path) -> None:
    folder = _imported(tmp_path)
    workload = load_workload(folder / "cnn.yaml")
    assert workload.weights_file == "cnn.npz" and workload.weights_path == folder / "cnn.npz"
    sweep = load_sweep(_spec(tmp_path, folder / "cnn.yaml", timing_only=False))
    points = expand(sweep).points
    got = [run_point(sweep, p)["sqnr_db"] for p in points]
    hw = load_hardware()
    direct = load_model(MODEL)  # the .onnx: its own weights, the seeded input
    want = simulate(direct.workload, hw, SchemeName.STATIC, prepared=PreparedModel(tensors=direct.tensors())).total
    random = Workload.model_validate(workload.model_dump())  # the same workload, not loaded from its file
    assert random.weights_path is None
    drawn = simulate(random, hw, SchemeName.STATIC).total
    assert got == [want.sqnr_db] * 2 and drawn.sqnr_db != want.sqnr_db


def test_a_sweep_rerun_recomputes_points_when_the_weights_file_changes(tmp_path: Path) -> None:
    """The workload's text names the .npz but not what it holds: unchanged bytes reuse the stored points,
    changed bytes (same names and shapes) give new point ids, so the rerun computes them again."""
    folder = _imported(tmp_path)
    spec = _spec(tmp_path, folder / "cnn.yaml", timing_only=True)
    first = run_sweep(load_sweep(spec), LocalPool(1), progress=False)
    assert (first.ran, first.skipped) == (2, 0)
    again = run_sweep(load_sweep(spec), LocalPool(1), progress=False)
    assert (again.ran, again.skipped) == (0, 2)
    _change_a_weight(folder / "cnn.npz")
    changed = run_sweep(load_sweep(spec), LocalPool(1), progress=False)
    assert (changed.ran, changed.skipped) == (2, 0)


def test_a_results_folder_refuses_runs_of_other_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A run with the same workload YAML but another .npz is refused before simulating, in one line naming
    the weights' digest; with the same bytes it merges."""
    folder = _imported(tmp_path)
    argv = ["run", str(folder / "cnn.yaml"), "--timing-only", "--out", str(tmp_path / "out")]
    assert main([*argv, "--scheme", "static"]) == 0
    assert main([*argv, "--scheme", "fp32"]) == 0  # the same weights: merged
    (saved,) = (tmp_path / "out").rglob("results.json")
    before = {p.name: p.read_bytes() for p in saved.parent.iterdir()}
    _change_a_weight(folder / "cnn.npz")
    from accelsim import simulation

    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: pytest.fail("simulated before checking the folder"))
    capsys.readouterr()
    assert main([*argv, "--scheme", "woq"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{saved}: holds results of another configuration under the same name (weights_sha256 " in line
    assert "workload." not in line and "hardware." not in line
    assert {p.name: p.read_bytes() for p in saved.parent.iterdir()} == before


def test_a_weights_file_replaced_mid_run_is_read_and_hashed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run`` checks the results folder (the weights' digest), simulates (the weights' values) and saves (the
    digest again): the file is read once, so when it is replaced between the check and the simulation, the
    values and the saved ``weights_sha256`` both describe the bytes the run began with, and the folder then
    refuses a run of the new bytes."""
    import hashlib
    import json

    from accelsim import simulation

    folder = _imported(tmp_path)
    npz = folder / "cnn.npz"
    original = hashlib.sha256(npz.read_bytes()).hexdigest()
    argv = ["run", str(folder / "cnn.yaml"), "--scheme", "static", "--out"]
    assert main([*argv, str(tmp_path / "clean")]) == 0
    real = simulation.simulate
    replaced: list[str] = []

    def replace_then_simulate(*args: object, **kwargs: object) -> object:
        _change_a_weight(npz)
        replaced.append(hashlib.sha256(npz.read_bytes()).hexdigest())
        return real(*args, **kwargs)

    monkeypatch.setattr(simulation, "simulate", replace_then_simulate)
    assert main([*argv, str(tmp_path / "out")]) == 0
    monkeypatch.undo()
    assert replaced and replaced[0] != original
    (saved,) = (tmp_path / "out").rglob("results.json")
    (clean,) = (tmp_path / "clean").rglob("results.json")
    got, want = json.loads(saved.read_text()), json.loads(clean.read_text())
    assert got["meta"]["weights_sha256"] == original
    assert got["rows"] == want["rows"]  # the values (SQNR, max error) of the original weights
    assert main([*argv, str(tmp_path / "out")]) == 2  # the new bytes are another configuration
