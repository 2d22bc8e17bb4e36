"""The one place that decides how many threads the kernels split a GEMM over, and the pool they run on.

The budget defaults to the CPUs this process may run on; a sweep worker, one of a sweep's processes
sharing the machine, sets it to one (:func:`set_threads`) so workers do not oversubscribe the cores.
The pool is created by the first GEMM big enough to split, not at import: a timing-only run, or one
on a one-thread budget, starts no threads. A pool, not OpenMP: it degrades gracefully on a loaded
machine, where an OpenMP barrier waits for descheduled threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CPUS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
PARALLEL_MIN_MACS = 1 << 25  # below ~33M MACs a thread hand-off costs more than it saves (measured)

_budget = CPUS
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def set_threads(n: int) -> None:
    """Split GEMMs over ``n`` threads from now on (default: the CPUs this process may run on)."""
    global _budget, _pool
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _budget, _pool = n, None


def threads() -> int:
    """The GEMM's thread budget (:func:`set_threads`)."""
    return _budget


def for_gemm(macs: int) -> int:
    """Threads to split a GEMM of ``macs`` multiply-accumulates over: one below :data:`PARALLEL_MIN_MACS`."""
    return _budget if macs >= PARALLEL_MIN_MACS else 1


def _executor() -> ThreadPoolExecutor:
    """The pool, created on first use with the current budget."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_budget, thread_name_prefix="accelsim-gemm")
        return _pool


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    step = -(-n // parts)
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def in_parallel(fn: Callable[..., Any], n: int, parts: int, *args: Any) -> list[Any]:
    """Run ``fn(*args, first, last)`` over [0, n) in up to ``parts`` chunks, the first on this thread and
    the others on the pool (the kernels release the GIL); the results in order of ``first``."""
    chunks = _split(n, parts)
    if len(chunks) == 1:
        return [fn(*args, 0, n)]
    futures = [_executor().submit(fn, *args, lo, hi) for lo, hi in chunks[1:]]
    return [fn(*args, *chunks[0]), *(future.result() for future in futures)]
