"""Hardware sweeps: grid/zip expansion, local and Dask executors, a resumable SQLite result store."""

from accelsim.sweep.executors import DaskCluster, Executor, LocalPool
from accelsim.sweep.points import Point, expand
from accelsim.sweep.runner import SweepOutcome, run_sweep
from accelsim.sweep.store import export_csv, load_results

__all__ = [
    "DaskCluster",
    "Executor",
    "LocalPool",
    "Point",
    "SweepOutcome",
    "expand",
    "export_csv",
    "load_results",
    "run_sweep",
]
