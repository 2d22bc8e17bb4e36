"""The first run's compilation: the kernels a run needs, compiled ahead in parallel, with a progress line.

Numba compiles a kernel on its first call for each argument type signature and keeps the machine code
in its on-disk cache; a first run on a new machine (or after the kernel sources changed:
:mod:`accelsim.kernels.numba_cache`) spends most of its time compiling, one kernel after the other,
holding the GIL. :func:`compile_ahead` compiles them before the run instead, in this process and
``CPUs - 1`` helper processes that fill the same cache, and tells the user what is happening on a
terminal. Which kernels and signatures a scheme needs is recorded in ``first_run.json`` by
``python -m accelsim.kernels.first_run --record`` (one cold ``accelsim run`` per scheme, watching
Numba's compile events). A function compiled inside another is compiled with it; functions that
share a compiled callee or a cache index file are one job, so no two processes compile (or write the
index of) the same function. A kernel the record misses is compiled on first call, as before.

The helpers are ``python -m accelsim.kernels.first_run CLAIMS``, not a ``multiprocessing`` pool: spawn
and forkserver children import the parent's ``__main__`` again (a user's unguarded script would run
twice), and a fork would inherit the locks of the GEMM's threads. A job is taken by creating its claim file
(``O_EXCL``), so the processes share the jobs, longest first, without talking to each other.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RECORD = Path(__file__).with_name("first_run.json")
README_WORKLOAD = Path(__file__).resolve().parents[2] / "workloads" / "resnet18.yaml"
_PACKAGE = "accelsim."


def _dispatcher(entry: dict[str, Any]) -> Any:
    """The dispatcher an entry names: a module-level function, or a function a factory makes from the
    entry's closure values (``_rule_loops(**closure)``)."""
    module_name, qualname = entry["function"].split(":")
    module = importlib.import_module(module_name)
    if ".<locals>." not in qualname:
        return getattr(module, qualname)
    factory, name = qualname.split(".<locals>.")
    make = getattr(module, factory)  # called as the kernels call it (positionally): the same cached closure
    made = make(*(entry["closure"][p] for p in inspect.signature(make).parameters))
    return next(f for f in made if f.py_func.__name__ == name)


def _types(signature: str) -> tuple[Any, ...]:
    """Argument types from their recorded ``repr`` (``Array(int8, 2, 'C', False, aligned=True)``, ``int64``, ...)."""
    from numba.core import types

    names = {
        name: getattr(types, name)
        for name in (
            "int8",
            "uint8",
            "int16",
            "uint16",
            "int32",
            "uint32",
            "int64",
            "uint64",
            "float32",
            "float64",
            "none",
            "Array",
        )
    }
    return tuple(eval(signature, {"__builtins__": {}, "bool": types.boolean, **names}))


def _cached(entry: dict[str, Any]) -> bool:
    """Whether Numba's cache holds the entry's signature for this CPU and these sources (read from the
    cache's index, without loading the code). An entry the kernels no longer match (a stale record: the
    test of the record fails) counts as cached, so it is left to compile on first call as before."""
    try:
        dispatcher, signature = _dispatcher(entry), _types(entry["signature"])
    except Exception:  # noqa: BLE001
        return True
    try:
        cache = dispatcher._cache
        return cache._index_key(signature, dispatcher.targetctx.codegen()) in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba internals of another version: compile (cheap when cached)
        return False


def load_jobs() -> list[dict[str, Any]]:
    """The recorded jobs, longest first: ``{"seconds", "schemes", "entries": [{"function", "signature"}]}``."""
    try:
        return sorted(json.loads(RECORD.read_text())["jobs"], key=lambda job: -job["seconds"])
    except (OSError, ValueError, KeyError):
        return []


def pending_jobs(schemes: Iterable[str]) -> list[dict[str, Any]]:
    """The jobs a run of ``schemes`` needs that Numba's cache does not hold yet."""
    wanted = set(schemes)
    jobs = [job for job in load_jobs() if wanted & set(job["schemes"])]
    return [job for job in jobs if not all(_cached(e) for e in job["entries"])]


def _compile(job: dict[str, Any]) -> None:
    for entry in job["entries"]:
        with contextlib.suppress(Exception):  # a stale record: the kernel compiles on first call instead
            _dispatcher(entry).compile(_types(entry["signature"]))


def _work(jobs: list[dict[str, Any]], claims: Path) -> None:
    """Compile every job this process claims first (claim file ``i``; ``i.done`` when compiled)."""
    for i, job in enumerate(jobs):
        try:
            os.close(os.open(claims / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        _compile(job)
        (claims / f"{i}.done").touch()


def compile_ahead(schemes: Iterable[str], *, show: bool | None = None) -> int:
    """Compile the kernels a run of ``schemes`` needs that are not cached yet, in this process and
    helper processes (one per further CPU); returns the number of jobs compiled. ``show``: the
    progress line on stderr (None: only on a terminal). Nothing happens when the cache holds them."""
    jobs = pending_jobs(schemes)
    if not jobs:
        return 0
    from tqdm import tqdm

    from accelsim.kernels.threads import CPUS

    helpers = min(CPUS, len(jobs)) - 1
    estimate = max(jobs[0]["seconds"], sum(job["seconds"] for job in jobs) / (helpers + 1)) + 0.5
    bar = tqdm(
        total=len(jobs),
        file=sys.stderr,
        disable=None if show is None else not show,
        leave=False,
        desc=f"compiling accelsim's kernels for this CPU (first run only, ~{estimate:.0f} s)",
        bar_format="{desc}… {n}/{total} [{elapsed}]",
    )
    with tempfile.TemporaryDirectory(prefix="accelsim-compile-") as tmp:
        claims = Path(tmp)
        (claims / "jobs.json").write_text(json.dumps(jobs))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the parent's accelsim
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", __name__, str(claims)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(helpers)
        ]
        stop = threading.Event()

        def advance() -> None:
            bar.update(len(list(claims.glob("*.done"))) - bar.n)

        def watch() -> None:  # the bar moves while this thread's owner compiles (numba's compiler is Python)
            while not stop.wait(0.2):
                advance()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            _work(jobs, claims)
            for proc in procs:
                proc.wait()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            stop.set()
            watcher.join()
            advance()  # the jobs done since the watcher's last look: the line ends at the true count
            bar.refresh()  # drawn now: tqdm skips redraws within its minimum interval of the last one
            bar.close()
        # a helper that died left its claimed job uncompiled: compile it here (cheap if it got cached)
        for i, job in enumerate(jobs):
            if not (claims / f"{i}.done").exists():
                _compile(job)
    return len(jobs)


# ---------------------------------------------------------------------------------------------------
# recording which kernels each scheme compiles

_RECORDER = r"""
import json, sys, time
from numba.core import event
from accelsim.kernels import first_run
from accelsim.kernels.first_run import describe
first_run.load_jobs = lambda: []  # every kernel compiled here, as it is called
stack, tops = [], []
class Listener(event.Listener):  # records the outermost accelsim compilations, with their CPU time
    def on_start(self, ev):
        stack.append((ev.data["dispatcher"], ev.data["args"], time.process_time()))
    def on_end(self, ev):
        d, args, start = stack.pop()
        item = describe(d, args)
        if item is not None and all(describe(s[0], s[1]) is None for s in stack):
            tops.append({**item, "seconds": time.process_time() - start})
event.register("numba:compile", Listener())
from accelsim.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(tops, f)
sys.exit(code)
"""


def _name(func: Any) -> str:
    return f"{func.__module__}:{func.__qualname__}"


def _callees(func: Any, found: set[str] | None = None) -> set[str]:
    """``func`` and the accelsim Numba functions it calls, directly or not (the globals its code names)."""
    found = set() if found is None else found
    found.add(_name(func))
    codes = [func.__code__, *(c for c in func.__code__.co_consts if inspect.iscode(c))]
    for name in {n for code in codes for n in code.co_names}:
        dispatcher = func.__globals__.get(name)
        callee = getattr(dispatcher, "py_func", None)
        if callee is not None and callee.__module__.startswith(_PACKAGE) and _name(callee) not in found:
            _callees(callee, found)
            if dispatcher.targetoptions.get("inline") == "always":  # inlined into its callers, never compiled alone
                found.discard(_name(callee))
    return found


def describe(dispatcher: Any, args: tuple[Any, ...]) -> dict[str, Any] | None:
    """A compile event's entry (function, closure values, signature, the functions compiled with it),
    None for numba's own functions."""
    func = getattr(dispatcher, "py_func", None)
    if func is None or not func.__module__.startswith(_PACKAGE):
        return None
    entry: dict[str, Any] = {
        "function": _name(func),
        "signature": repr(tuple(args)),
        "functions": sorted(_callees(func)),
    }
    if func.__closure__:
        entry["closure"] = {
            name: cell.cell_contents
            for name, cell in zip(func.__code__.co_freevars, func.__closure__)
            if isinstance(cell.cell_contents, (bool, int))
        }
    return entry


def record(workload: Path = README_WORKLOAD, schemes: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Run ``accelsim run WORKLOAD --scheme S`` for each scheme with an empty Numba cache, and group what
    each compiled into jobs (functions sharing a callee or an index file: one job)."""
    from accelsim.schemes import SCHEMES

    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for scheme in schemes or SCHEMES:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "NUMBA_CACHE_DIR": tmp}
            out = Path(tmp) / "events.json"
            subprocess.run(
                [sys.executable, "-c", _RECORDER, str(out), "run", str(workload), "--scheme", scheme, "--out", tmp],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for top in json.loads(out.read_text()):
                item = seen.setdefault(
                    (top["function"], top["signature"], json.dumps(top.get("closure"))), {**top, "schemes": []}
                )
                item["schemes"].append(scheme)
    groups: list[dict[str, Any]] = []
    for item in seen.values():  # union of the groups sharing a function with this item
        names = set(item["functions"])
        joined = [g for g in groups if g["names"] & names]
        group = {
            "names": names.union(*(g["names"] for g in joined)),
            "items": [item, *(i for g in joined for i in g["items"])],
        }
        groups = [g for g in groups if g not in joined] + [group]
    jobs = []
    for group in groups:
        items = sorted(group["items"], key=lambda i: (i["function"], i["signature"]))
        jobs.append(
            {
                "seconds": round(sum(i["seconds"] for i in items), 2),
                "schemes": sorted({s for i in items for s in i["schemes"]}),
                "entries": [{k: i[k] for k in ("function", "signature", "closure") if k in i} for i in items],
            }
        )
    return sorted(jobs, key=lambda job: -job["seconds"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--record"]:
        RECORD.write_text(
            json.dumps({"recorded_by": "python -m accelsim.kernels.first_run --record", "jobs": record()}, indent=1)
            + "\n"
        )
    else:  # a helper of compile_ahead
        folder = Path(sys.argv[1])
        _work(json.loads((folder / "jobs.json").read_text()), folder)
