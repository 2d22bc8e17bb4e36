"""Where points run: a pool of local processes, or a Dask cluster (``distributed`` is an optional extra).

Both take batches of points and yield each batch's results as soon as it finishes, in completion order,
keeping only a few batches per worker in flight: a million-point sweep never holds a million futures,
and an interrupted one has little queued work to throw away.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from accelsim.config.sweep import Sweep
from accelsim.errors import AccelsimError
from accelsim.sweep.points import Point
from accelsim.sweep.worker import PointResult, install, run_batch, run_installed

#: Batches queued per worker beyond the one it runs: enough to hide a Dask round trip (tens of ms on a
#: busy machine) behind millisecond points, little to redo after a kill.
IN_FLIGHT_PER_WORKER = 8
#: Seconds to wait for a Dask scheduler to answer before giving up: a wrong address fails fast.
CONNECT_TIMEOUT_S = 10
#: More worker processes than this per core only add memory and switching.
MAX_WORKERS_PER_CORE = 4

T = TypeVar("T")


class Executor(Protocol):
    """Runs batches of a sweep's points somewhere and yields their results as they finish.

    ``start`` connects (or starts workers) before the sweep touches its output folder, so an unreachable
    or wrong address fails with nothing written; ``close`` ends what ``start`` began.
    """

    workers: int

    def start(self, sweep: Sweep) -> None: ...

    def run(self, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class LocalPool:
    """Worker processes on this machine (one per core by default); each dies with the sweep process."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _worker_count(workers)
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return f"{self.workers} local worker{'s' if self.workers > 1 else ''}"

    def start(self, sweep: Sweep) -> None:
        self._pool = ProcessPoolExecutor(self.workers, initializer=install, initargs=(sweep, os.getpid()))

    def run(self, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]:
        pool = _started(self._pool)
        pending: set[Future[list[PointResult]]] = set()
        queue = iter(batches)
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
                    raise RuntimeError(
                        "a sweep worker process died (out of memory?); the finished points are "
                        "stored: run the same command to continue"
                    ) from exc
                yield results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _started(resource: T | None) -> T:
    if resource is None:
        raise RuntimeError("the executor was not started")
    return resource


def _worker_count(workers: int | None) -> int:
    """The requested count, or one per core."""
    cores = os.cpu_count() or 1
    if workers is not None and not 1 <= workers <= MAX_WORKERS_PER_CORE * cores:
        raise AccelsimError(
            f"{workers} workers on {cores} cores",
            path="--workers",
            allowed=f"1 to {MAX_WORKERS_PER_CORE * cores} ({MAX_WORKERS_PER_CORE} per core)",
        )
    return workers or cores


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
        self._client: Any = None
        self._shared: Any = None

    def describe(self) -> str:
        return (
            f"a local Dask cluster ({self.workers} workers)" if self.address == "local" else f"Dask at {self.address}"
        )

    def start(self, sweep: Sweep) -> None:
        distributed = _distributed()
        if self.address == "local":
            cluster = distributed.LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=self.processes, dashboard_address=None
            )
            self._client = distributed.Client(cluster)
        else:
            self._client = _connect(distributed, self.address)
        self.workers = max(1, sum(self._client.nthreads().values()))
        self._shared = self._client.scatter(sweep, broadcast=True)  # once per worker, not once per task

    def run(self, batches: Iterable[list[Point]]) -> Iterator[list[PointResult]]:
        distributed = _distributed()
        client, shared = _started(self._client), self._shared
        queue = iter(batches)
        first = [
            client.submit(run_batch, shared, batch, pure=False)
            for batch in _take(queue, self.workers * (1 + IN_FLIGHT_PER_WORKER))
        ]
        completed = distributed.as_completed(first, loop=client.loop)  # this client's, not a default client's
        for future in completed:
            yield future.result()
            for batch in _take(queue, 1):
                completed.add(client.submit(run_batch, shared, batch, pure=False))

    def close(self) -> None:
        if self._client is None:
            return
        cluster = self._client.cluster if self.address == "local" else None
        self._client.close()
        if cluster is not None:
            cluster.close()
        self._client = self._shared = None


def _connect(distributed: Any, address: str) -> Any:
    """A client of the scheduler at ``address``, or one line saying why there is none.

    Whatever answers at the address is remote input: a server that is not a Dask scheduler makes the
    handshake fail in arbitrary ways (a length prefix read from garbage asks numpy for exabytes), so
    every failure of the connection attempt is reported as "no Dask scheduler". A peer that accepts and
    stays silent makes ``Client`` wait forever whatever its timeout, so a bounded handshake of Dask's
    own comm layer comes first, on an event loop of its own.
    """

    class Client(distributed.Client):
        def start(self, **kwargs: Any) -> None:
            """Close a client that failed to connect at once, while its event loop runs: left to the garbage
            collector, its ``__del__`` waits 20 s for a stopped loop and prints a traceback."""
            try:
                super().start(**kwargs)
            except BaseException:
                self.close()
                raise

    async def handshake() -> None:
        comm = await asyncio.wait_for(distributed.comm.connect(address, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S)
        comm.abort()

    try:
        with ThreadPoolExecutor(1) as thread:  # asyncio.run needs a thread without a running loop (Jupyter's has one)
            thread.submit(asyncio.run, handshake()).result()
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except TimeoutError:  # refused until the deadline, or a silent peer
        reason = f"nothing answered within {CONNECT_TIMEOUT_S} s"
    except (OSError, ValueError) as exc:  # unresolvable, not an address
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - see the docstring
        reason = f"what answers there does not speak Dask's protocol ({type(exc).__name__})"
    raise AccelsimError(
        f"no Dask scheduler at {address!r}: {reason}",
        path="--dask",
        allowed="a scheduler address like tcp://host:8786, or local",
    )


def _take(queue: Iterator[list[Point]], n: int) -> list[list[Point]]:
    out = []
    for batch in queue:
        out.append(batch)
        if len(out) == n:
            break
    return out
