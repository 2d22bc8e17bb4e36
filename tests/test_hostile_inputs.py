"""Every hostile-input case in tests/hostile/ ends cleanly: exit 2 with a short message, or success.

Cases run in-process through ``accelsim.cli.main`` (fast: no interpreter start per case), each in a fresh
temporary folder that is also the working directory, under a wall-clock deadline (a SIGALRM handler that
raises, which also interrupts a blocking ``open`` of a FIFO) and an address-space cap (reading
``/dev/zero`` whole must become a MemoryError here, not exhaust the machine). A case that wrote nothing
it was not allowed to is checked by comparing the folder's tree before and after.

``python tests/test_hostile_inputs.py`` prints the counts (clean, tracebacks, hangs, wrong successes).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pkgutil
import re
import resource
import sys
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also run as a script (python tests/test_hostile_inputs.py), without conftest
    sys.path.insert(0, str(REPO))

from accelsim.cli import main
from tests.hostile.case import Case, CaseTimeout, deadline

#: room a case may allocate beyond what the process already maps: far above any legitimate case
MEMORY_HEADROOM = 6 * 2**30
MAX_STDERR_LINES = 3


def load_cases() -> list[Case]:
    """``CASES`` of every module in tests/hostile/ (a part without a module yet contributes none)."""
    package = importlib.import_module("tests.hostile")
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name != "case":
            cases.extend(getattr(importlib.import_module(f"tests.hostile.{info.name}"), "CASES", []))
    return cases


@contextlib.contextmanager
def memory_cap(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = psutil.Process().memory_info().vms + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (not following links) with its mode, size and modification time."""
    tree: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            tree[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return tree


@dataclass
class Outcome:
    """What a case did, and the kind it counts as: clean, ok, traceback, hang, wrong-success, wrote, bad-output."""

    kind: str
    code: int | None
    stdout: str
    stderr: str
    changed: list[str]

    def explain(self, case: Case) -> str:
        return (
            f"{case.id}: {self.kind} (exit {self.code}); changed {self.changed}\n"
            f"argv: {case.argv}\nstderr:\n{self.stderr}\nstdout (first 2000 characters):\n{self.stdout[:2000]}"
        )


def prepare(case: Case, tmp: Path) -> None:
    for rel, content in case.files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.setup is not None:
        case.setup(tmp)


def run_case(case: Case, tmp: Path) -> Outcome:
    """Run ``case`` in the empty folder ``tmp`` and classify what happened."""
    prepare(case, tmp)
    before = snapshot(tmp)
    argv = [arg.replace("{tmp}", str(tmp)) for arg in case.argv]
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    crashed = hung = False
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), memory_cap(), deadline(case.timeout_s):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CaseTimeout:
        hung = True
    except BaseException:  # noqa: BLE001 -- any escape from main is the failure being counted
        crashed = True
        err.write(traceback.format_exc())
    finally:
        os.chdir(cwd)
    after = snapshot(tmp)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    stderr = err.getvalue()
    if hung:
        kind = "hang"
    elif crashed or "Traceback" in stderr:
        kind = "traceback"
    elif case.expect == "error" and code == 0:
        kind = "wrong-success"
    elif changed and not case.writes:
        kind = "wrote"
    elif case.expect == "ok":
        kind = "ok" if code == 0 else "bad-output"
    else:
        lines = stderr.strip().splitlines()
        pattern = case.match.replace("{tmp}", re.escape(str(tmp))) if case.match else None
        good = code == 2 and 0 < len(lines) <= MAX_STDERR_LINES and (pattern is None or re.search(pattern, stderr))
        kind = "clean" if good else "bad-output"
    return Outcome(kind, code, out.getvalue(), stderr, changed)


CASES = load_cases()


def test_case_ids_are_unique() -> None:
    counts = Counter(case.id for case in CASES)
    assert not [i for i, n in counts.items() if n > 1]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.kind in ("clean", "ok"), outcome.explain(case)


def test_runner_catches_a_hang(tmp_path: Path) -> None:
    """The deadline interrupts a blocking FIFO open (what a hanging reader does), so a hang cannot stall the suite."""
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(CaseTimeout), deadline(0.2):
        (tmp_path / "fifo").read_bytes()


def count(cases: list[Case]) -> Counter[str]:
    """Run ``cases`` in fresh temporary folders; print each one that did not end cleanly."""
    import tempfile

    kinds: Counter[str] = Counter()
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            outcome = run_case(case, Path(tmp))
        kinds[outcome.kind] += 1
        if outcome.kind not in ("clean", "ok"):
            print(f"{case.id}: {outcome.kind}: {(outcome.stderr.strip().splitlines() or [''])[-1][:200]}")
    return kinds


if __name__ == "__main__":
    wanted = sys.argv[1:]
    selected = [c for c in CASES if not wanted or any(w in c.id for w in wanted)]
    kinds = count(selected)
    print(f"{len(selected)} cases: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
