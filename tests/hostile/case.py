"""One hostile input to the ``accelsim`` CLI and what must happen.

Every case module in this package exposes ``CASES: list[Case]``; tests/test_hostile_inputs.py runs each
case in-process through ``accelsim.cli.main`` in a fresh temporary folder (also the working directory),
with ``{tmp}`` in ``argv`` and ``match`` replaced by that folder's path.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """A CLI invocation on hostile input: it must fail cleanly (exit 2, one line) or succeed, and never hang."""

    id: str  # unique, e.g. "yaml-duplicate-key"
    argv: tuple[str, ...]  # accelsim CLI arguments; "{tmp}" is replaced by the case's temp dir
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # relative path -> content, written into {tmp} first
    expect: str = "error"  # "error": exit 2, <= 3 lines on stderr, no traceback; "ok": exit 0
    match: str | None = None  # regex the error output must match (name the file and the field)
    setup: Callable[[Path], None] | None = None  # e.g. make a FIFO, a directory, a symlink
    timeout_s: float = 30
    writes: bool = False  # False: the run must create nothing outside the files it was given

    def __post_init__(self) -> None:
        if self.expect not in ("error", "ok"):
            raise ValueError(f"case {self.id}: expect must be 'error' or 'ok', not {self.expect!r}")


class CaseTimeout(BaseException):
    """Raised by SIGALRM in the case's main thread; a BaseException so ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (interrupts blocking opens and reads too)."""

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
