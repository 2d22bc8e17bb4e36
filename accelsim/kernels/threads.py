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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

CPUS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
PARALLEL_MIN_MACS = 1 << 25  # below ~33M MACs a thread hand-off costs more than it saves (measured)
#: inside :func:`beside`, smaller GEMMs run here: handing one to the pool and the GIL back and forth costs
#: tens of microseconds, the time of a 16M-MAC GEMM (every ResNet-50 GEMM but the classifier is larger)
BESIDE_MIN_MACS = 1 << 24
#: the same for a memory-bound kernel (a residual add, a patch gather, A's row copy), in elements: ~50 us of work
#: (the residual add runs at ~0.2 ns per element), so the engine plays beside it rather than the caller waiting
BESIDE_MIN_ELEMENTS = 1 << 18

_budget = CPUS
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_local = threading.local()  # .side: this thread's work done while its GEMMs run on the pool (:func:`beside`)


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
    """Threads to split a GEMM of ``macs`` multiply-accumulates over: one below :data:`PARALLEL_MIN_MACS`,
    and while the calling thread has work of its own beside the GEMMs (:func:`beside`)."""
    return _budget if macs >= PARALLEL_MIN_MACS and getattr(_local, "side", None) is None else 1


@contextmanager
def beside(work: Callable[[], bool]) -> Iterator[None]:
    """While inside, with a budget above one thread, each GEMM runs whole on the pool while the calling
    thread does slices of ``work`` (each call one short slice; False when there is nothing left).

    Cooperative, on purpose: the calling thread's own Python work (a GEMM's set-up, the next layer's)
    is never interrupted for the side work, which only fills the time the caller would spend waiting
    for a kernel that released the GIL. (Side work on a thread of its own takes the GIL from the caller
    every switch interval, and the caller waits as long to get it back.)"""
    if _budget < 2:
        yield
        return
    _local.side = work
    try:
        yield
    finally:
        _local.side = None


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


def in_parallel(fn: Callable[..., Any], n: int, parts: int, *args: Any, macs: int) -> list[Any]:
    """Run ``fn(*args, first, last)`` over [0, n) in up to ``parts`` chunks, the first on this thread and
    the others on the pool (the kernels release the GIL); the results in order of ``first``. ``macs``:
    the GEMM's size (inside :func:`beside` a large one runs whole, :func:`call`)."""
    if getattr(_local, "side", None) is not None:
        return [call(fn, *args, 0, n, macs=macs)]
    chunks = _split(n, parts)
    if len(chunks) == 1:
        return [fn(*args, 0, n)]
    futures = [_executor().submit(fn, *args, lo, hi) for lo, hi in chunks[1:]]
    return [fn(*args, *chunks[0]), *(future.result() for future in futures)]


def call(fn: Callable[..., Any], *args: Any, macs: int) -> Any:
    """``fn(*args)``, a GEMM of ``macs`` multiply-accumulates whose kernel releases the GIL: here, or inside
    :func:`beside`, from :data:`BESIDE_MIN_MACS` on, on the pool while this thread does slices of its side work."""
    return _beside(fn, args, macs >= BESIDE_MIN_MACS)


def aside(fn: Callable[..., Any], *args: Any, elements: int) -> Any:
    """``fn(*args)``, a memory-bound kernel over ``elements`` elements that releases the GIL, as :func:`call`
    runs a GEMM: inside :func:`beside`, from :data:`BESIDE_MIN_ELEMENTS` on, on the pool beside the side work."""
    return _beside(fn, args, elements >= BESIDE_MIN_ELEMENTS)


def _beside(fn: Callable[..., Any], args: tuple[Any, ...], worth: bool) -> Any:
    """``fn(*args)`` here, or on the pool while this thread does slices of its side work (inside :func:`beside`,
    when the kernel is ``worth`` a hand-off)."""
    side = getattr(_local, "side", None)
    if side is None or not worth:
        return fn(*args)
    future = _executor().submit(fn, *args)
    while not future.done():
        if not side():  # none left: from the next GEMM on, split as usual
            _local.side = None
            break
    return future.result()
