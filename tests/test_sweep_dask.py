"""The Dask executor gives the local executor's results, and without dask.distributed it is a clear error."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config.sweep import load_sweep
from accelsim.sweep import DaskCluster, LocalPool, run_sweep

SPEC = """\
schema_version: 1
base: default
axes:
  array.rows: [8, 16]
  array.dataflow: [os, ws]
workloads: [tiny_cnn, mlp]
schemes: [static, dynamic]
output: {output}
"""


def results(folder: Path) -> list[tuple]:
    db = sqlite3.connect(folder / "sweep.sqlite")
    try:
        return db.execute("SELECT * FROM results ORDER BY point_id").fetchall()
    finally:
        db.close()


def test_dask_local_cluster_matches_local_processes(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    outcomes = {}
    for name, executor in {"local": LocalPool(2), "dask": DaskCluster("local", 1, processes=False)}.items():
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(SPEC.format(output=tmp_path / name))
        outcomes[name] = run_sweep(load_sweep(spec), executor, batch_size=3 if name == "dask" else 1, progress=False)
    assert outcomes["dask"].ran == outcomes["local"].ran == 16
    assert results(tmp_path / "dask") == results(tmp_path / "local")
    assert (tmp_path / "dask/results.csv").read_text() == (tmp_path / "local/results.csv").read_text()


def test_missing_distributed_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(output=tmp_path / "out"))
    assert main(["sweep", str(spec), "--dask", "local"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dask needs dask.distributed" in err and "accelsim[distributed]" in err
    assert not (tmp_path / "out").exists()
