"""A workload's ``weights_file`` is resolved where the workload is loaded (config.loader.load_workload), so
every run of an imported workload (``simulate`` without given tensors, a sweep's points) uses the model's
own weights, not seeded random ones."""

from __future__ import annotations

from pathlib import Path

import yaml

from accelsim.config.loader import load_hardware, load_workload
from accelsim.config.sweep import load_sweep
from accelsim.config.workload import Workload
from accelsim.model_file import import_to_files, load_model
from accelsim.schemes import SchemeName
from accelsim.simulation import PreparedModel, simulate
from accelsim.sweep.points import expand
from accelsim.sweep.worker import run_point

MODEL = Path(__file__).resolve().parents[1] / "workloads" / "residual_cnn.onnx"


def test_a_sweep_over_an_imported_workload_uses_its_weights(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    import_to_files(MODEL, folder / "cnn.yaml")
    workload = load_workload(folder / "cnn.yaml")
    assert workload.weights_file == "cnn.npz" and workload.weights_path == folder / "cnn.npz"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "base": "default",
                "axes": {"array.rows": [8, 16]},
                "workloads": [str(folder / "cnn.yaml")],
                "schemes": ["static"],
                "timing_only": False,
                "output": str(tmp_path / "out"),
            }
        )
    )
    sweep = load_sweep(spec)
    points, _ = expand(sweep)
    got = [run_point(sweep, p)["sqnr_db"] for p in points]
    hw = load_hardware()
    direct = load_model(MODEL)  # the .onnx: its own weights, the seeded input
    want = simulate(direct.workload, hw, SchemeName.STATIC, prepared=PreparedModel(tensors=direct.tensors())).total
    random = Workload.model_validate(workload.model_dump())  # the same workload, not loaded from its file
    assert random.weights_path is None
    drawn = simulate(random, hw, SchemeName.STATIC).total
    assert got == [want.sqnr_db] * 2 and drawn.sqnr_db != want.sqnr_db
