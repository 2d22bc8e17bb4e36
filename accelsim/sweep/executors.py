"""Where points run: a pool of local processes, or a Dask cluster (``distributed`` is an optional extra).

Both take batches of points and yield each batch's results as soon as it finishes, in completion order,
keeping only a few batches per worker in flight: a million-point sweep never holds a million futures,
and an interrupted one has little queued work to throw away.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from accelsim.config.errors import AccelsimError
from accelsim.config.sweep import Sweep
from accelsim.sweep.points import Point
from accelsim.sweep.worker import PointResult, install, run_batch, run_installed

#: Batches queued per worker beyond the one it runs: enough to hide a Dask round trip (tens of ms on a
#: busy machine) behind millisecond points, little to redo after a kill.
IN_FLIGHT_PER_WORKER = 8


class Executor(Protocol):
    """Runs batches of a sweep's points somewhere and yields their results as they finish."""

    workers: int

    def run(self, sweep: Sweep, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]: ...

    def describe(self) -> str: ...


class LocalPool:
    """Worker processes on this machine (one per core by default)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _worker_count(workers)

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers > 1 else ''}"

    def run(self, sweep: Sweep, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]:
        pool = ProcessPoolExecutor(self.workers, initializer=install, initargs=(sweep,))
        pending: set[Future[list[PointResult]]] = set()
        queue = iter(batches)
        try:
            while True:
                for batch in _take(queue, self.workers * (1 + IN_FLIGHT_PER_WORKER) - len(pending)):
                    pending.add(pool.submit(run_installed, batch))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        results = future.result()
                    except BrokenProcessPool as exc:
                        raise RuntimeError("a sweep worker process died (out of memory?); the finished points are "
                                           "stored: run the same command to continue") from exc
                    yield results
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_count(workers: int | None) -> int:
    """The requested count, or one per core."""
    if workers is not None and workers < 1:
        raise AccelsimError(f"{workers} workers: need at least one", path="--workers", allowed="1 or more")
    return workers or os.cpu_count() or 1


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise AccelsimError("--dask needs dask.distributed", allowed="pip install 'accelsim[distributed]'") from None
    return distributed


class DaskCluster:
    """A Dask scheduler at ``address``, or ``local``: a LocalCluster of ``workers`` single-threaded workers."""

    def __init__(self, address: str, workers: int | None = None, *, processes: bool = True) -> None:
        _distributed()  # fail on a missing extra before the sweep touches its output folder
        self.address = address
        self.workers = _worker_count(workers)
        self.processes = processes

    def describe(self) -> str:
        return f"a local Dask cluster ({self.workers} workers)" if self.address == "local" else f"Dask at {self.address}"

    def _client(self) -> Any:
        distributed = _distributed()
        if self.address == "local":
            cluster = distributed.LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=self.processes,
                                               dashboard_address=None)
            return distributed.Client(cluster)
        try:
            return distributed.Client(self.address, timeout="30s")
        except OSError as exc:
            raise AccelsimError(f"cannot reach the Dask scheduler: {exc}", path="--dask",
                                allowed="a scheduler address like tcp://host:8786, or local") from None

    def run(self, sweep: Sweep, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]:
        distributed = _distributed()
        client = self._client()
        try:
            self.workers = max(1, sum(client.nthreads().values()))
            shared = client.scatter(sweep, broadcast=True)  # once per worker, not once per task
            queue = iter(batches)
            first = [client.submit(run_batch, shared, batch, pure=False)
                     for batch in _take(queue, self.workers * (1 + IN_FLIGHT_PER_WORKER))]
            completed = distributed.as_completed(first)
            for future in completed:
                yield future.result()
                for batch in _take(queue, 1):
                    completed.add(client.submit(run_batch, shared, batch, pure=False))
        finally:
            cluster = client.cluster if self.address == "local" else None
            client.close()
            if cluster is not None:
                cluster.close()


def _take(queue: Iterator[list[Point]], n: int) -> list[list[Point]]:
    out = []
    for batch in queue:
        out.append(batch)
        if len(out) == n:
            break
    return out
