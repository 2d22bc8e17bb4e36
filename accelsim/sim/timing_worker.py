"""A child process that plays the timing simulation while the values run in this one.

The timing simulation (lowering and the SimPy engine) is pure Python and holds the GIL throughout; the
values are numba kernels that release it but need it back between kernels. In two threads of one
process they take turns at the GIL (a ResNet-50 run gained little: each hand-off waits out the other
thread's switch interval); in two processes they run on two CPUs. A run that asks for it
(``simulate(..., overlap_timing=True)``: it pays for a prepared model run again and again, not for a
one-shot run), has values to compute and a GEMM thread budget of two or more (``vnni.set_threads``,
default: every CPU) sends its timing here first, and its GEMMs leave one of those CPUs to the child
until the timing is back. The child runs the same deterministic code on the same inputs: same cycles
as in one process.

The child is ``python -m accelsim.sim.timing_worker`` reading pickled calls on stdin and writing
pickled results on stdout, not a ``multiprocessing`` pool: spawn and forkserver children import the
parent's ``__main__`` again (a user's unguarded script would run twice), and a fork would inherit the
locks of the GEMM's threads.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO, TypeVar

from accelsim.kernels import vnni

T = TypeVar("T")


class ChildDied(RuntimeError):
    """The child process exited before it answered (killed, out of memory)."""


class _Child:
    """One child process; its answers come back in the order of the calls, read by one thread."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the parent's accelsim
        self.process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        self.lock = threading.Lock()
        self.waiting: deque[Future[Any]] = deque()
        threading.Thread(target=self._answers, daemon=True, name="accelsim-timing").start()

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        future: Future[T] = Future()
        with self.lock:
            self.waiting.append(future)
            pickle.dump((fn, args), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        return future

    def _answers(self) -> None:
        while True:
            try:
                ok, value = pickle.load(self.process.stdout)
            except Exception as exc:  # noqa: BLE001 - EOF, a broken pipe or stream: nothing more will come
                with self.lock:
                    while self.waiting:
                        self.waiting.popleft().set_exception(ChildDied(f"the timing worker process exited ({exc!r})"))
                return
            with self.lock:
                future = self.waiting.popleft()
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        try:
            self.process.stdin.close()  # the child ends at the end of its input
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):  # pragma: no cover - a stuck child
            self.process.kill()


_child: _Child | None = None
_failed = False


def _get_child() -> _Child | None:
    """The child, started on first use; None when the GEMM has no CPU to spare for it or after it died."""
    global _child, _failed
    if _child is None and not _failed and vnni.threads() >= 2:
        try:
            if not sys.executable:  # an embedded interpreter: nothing to start
                raise OSError("no Python executable")
            _child = _Child()
        except OSError:
            _failed = True
            return None
        atexit.register(_child.close)
    return _child


def start(fn: Callable[..., T], *args: Any) -> Future[T] | None:
    """``fn(*args)`` sent to the child; None when there is no child (the caller runs it itself). ``fn``
    and its arguments must pickle. Until the answer is back, the GEMM leaves one CPU to the child."""
    child = _get_child()
    if child is None:
        return None
    vnni.reserve_cpus(1)
    try:
        future = child.submit(fn, args)
    except OSError:  # the child's stdin is closed: it died between two runs
        vnni.reserve_cpus(-1)
        _forget()
        return None
    future.add_done_callback(lambda _: vnni.reserve_cpus(-1))
    return future


def finish(future: Future[T], fallback: Callable[[], T]) -> T:
    """The child's answer (its exception raised here); ``fallback()`` in this process if the child died,
    and no child from then on."""
    try:
        return future.result()
    except ChildDied:
        _forget()
        return fallback()


class Kept:
    """An argument the child keeps: sent whole with the first call that carries it, by a number after
    (a prepared program, its workload and hardware are sent run after run; pickling them every time
    cost ~1.5 ms of a ResNet-50 run). For immutable objects only: the child never sees a change. The
    parent mirrors the child's store, the last ``KEPT`` objects, so both agree on what it holds."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        key = id(self.obj)
        if key in _sent:
            return _held_object, (_sent[key][0],)
        token = next(_tokens)
        _sent[key] = (token, self.obj)  # holding the object keeps its id from being reused
        while len(_sent) > KEPT:
            _sent.pop(next(iter(_sent)))
        return _hold, (token, self.obj)


KEPT = 24
_sent: dict[int, tuple[int, Any]] = {}  # parent: id of a kept object -> (token, the object)
_held: dict[int, Any] = {}  # child: token -> object, the same last KEPT
_tokens = itertools.count()


def _hold(token: int, obj: Any) -> Any:
    _held[token] = obj
    while len(_held) > KEPT:
        _held.pop(next(iter(_held)))
    return obj


def _held_object(token: int) -> Any:
    return _held[token]


def _forget() -> None:
    global _child, _failed
    _child, _failed = None, True


def _serve(calls: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: each pickled ``(fn, args)`` answered by ``(True, result)`` or ``(False, exception)``."""
    while True:
        try:
            fn, args = pickle.load(calls)
        except EOFError:
            return
        try:
            answer = (True, fn(*args))
        except Exception as exc:  # noqa: BLE001 - the parent raises it
            answer = (False, exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)  # whole, before any byte is written
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
            data = pickle.dumps((False, RuntimeError(f"timing worker: {answer[1]!r} ({exc})")))
        answers.write(data)
        answers.flush()


if __name__ == "__main__":
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a stray print must not land in the answers
    _serve(sys.stdin.buffer, answers)
