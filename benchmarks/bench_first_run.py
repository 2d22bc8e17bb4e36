"""How long the README's main command takes in a fresh clone: first run (empty Numba cache) and the next.

Copies the working tree (tracked and untracked-but-not-ignored files, no ``__pycache__``) into a
temporary folder, as a fresh clone after ``pip install -e .`` has it, and runs
``accelsim compare workloads/resnet18.yaml`` there as a subprocess (``python -m accelsim``, with the
copy first on ``PYTHONPATH`` and no ``NUMBA_CACHE_DIR``, so Numba caches in the copy's
``__pycache__`` folders as it does for a user). Prints the cold and warm wall times and, from Numba's
event API (``numba:compile`` events, recorded in the cold run), the compile time of each function it
compiled, exclusive of the functions compiled inside it.

    python benchmarks/bench_first_run.py [--runs 3] [--top 25] [--command compare workloads/resnet18.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README_COMMAND = ("compare", "workloads/resnet18.yaml")

# Runs the CLI like ``python -m accelsim`` with a listener on Numba's compile events; writes
# (qualified name, signature, start, end) of every compilation to the file named in argv[1].
_RECORDING_MAIN = """
import json, sys, time
from numba.core import event
records, open_ = [], {}
class Listener(event.Listener):
    def on_start(self, ev):
        open_[id(ev.data)] = time.perf_counter()
    def on_end(self, ev):
        d = ev.data["dispatcher"]
        name = getattr(d, "py_func", d).__module__ + "." + getattr(d, "py_func", d).__qualname__
        records.append((name, str(ev.data["args"]), open_.pop(id(ev.data)), time.perf_counter()))
event.register("numba:compile", Listener())
from accelsim.cli import main
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(records, f)
sys.exit(code)
"""


def fresh_copy(dest: Path, source: Path = REPO) -> Path:
    """``source``'s files copied under ``dest``: in a git checkout those ``git ls-files`` lists (tracked or
    new, not ignored), elsewhere (an exported tree) all but ``__pycache__`` and ``reports``."""
    if (source / ".git").exists():
        listed = (
            subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=source,
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .split("\0")
        )
    else:
        listed = [
            str(p.relative_to(source)) for p in source.rglob("*") if "reports" not in p.relative_to(source).parts[:1]
        ]
    for rel in filter(None, listed):
        src = source / rel
        if src.is_file() and "__pycache__" not in src.parts:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def _env(clone: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = str(clone) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(clone: Path, command: tuple[str, ...], record: Path | None = None) -> tuple[float, float]:
    """Wall time and CPU time (its processes together) of one run of the CLI in ``clone`` (seconds);
    fails loudly if the command fails. The CPU time tells a loaded machine from a slow run."""
    argv = (
        [sys.executable, "-c", _RECORDING_MAIN, str(record), *command]
        if record
        else [sys.executable, "-m", "accelsim", *command]
    )
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(argv, cwd=clone, env=_env(clone), capture_output=True, text=True, check=False)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {clone} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed, cpu


def exclusive_times(records: list[tuple[str, str, float, float]]) -> dict[str, tuple[float, int]]:
    """(seconds, compilations) per function, exclusive of compilations nested inside its own."""
    spans = sorted(records, key=lambda r: (r[2], -r[3]))
    own: dict[str, list[float]] = {}
    for i, (name, _sig, start, end) in enumerate(spans):
        inner, reach = 0.0, start
        for _n, _s, s2, e2 in spans[i + 1 :]:
            if s2 >= end:
                break
            if s2 >= reach:  # a direct child (not nested in an earlier child)
                inner += e2 - s2
                reach = e2
        entry = own.setdefault(name, [0.0, 0])
        entry[0] += (end - start) - inner
        entry[1] += 1
    return {k: (v[0], int(v[1])) for k, v in own.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="cold runs, each in a new copy (the median is printed)")
    parser.add_argument("--top", type=int, default=25, help="functions to list by compile time")
    parser.add_argument(
        "--command", nargs="+", default=list(README_COMMAND), help="accelsim arguments (default: the README's)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--source", type=Path, default=REPO, help="the tree to copy (default: this checkout)")
    args = parser.parse_args(argv)
    command = tuple(args.command)
    cold, warm, compiled = [], [], {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="accelsim-first-run-") as tmp:
            clone = fresh_copy(Path(tmp) / "accelsim", args.source)
            record = Path(tmp) / "compiles.json"
            cold.append(run_command(clone, command, record))
            warm.append(run_command(clone, command))
            compiled = exclusive_times(json.loads(record.read_text()))
    total = sum(t for t, _ in compiled.values())
    print(f"accelsim {' '.join(command)}   (fresh copy, {os.cpu_count()} CPUs, {args.runs} run(s), median)")
    for name, runs in (("cold (empty Numba cache)", cold), ("warm (cache filled)", warm)):
        print(
            f"  {name + ':':26s}{statistics.median(w for w, _ in runs):6.2f} s wall, {statistics.median(c for _, c in runs):6.2f} s CPU"
            f"   (each run: {', '.join(f'{w:.2f}/{c:.2f}' for w, c in runs)})"
        )
    print(
        f"  Numba compiling in the main process (last cold run): {total:.2f} s in {sum(n for _, n in compiled.values())}"
        f" compilations of {len(compiled)} functions; exclusive time each:"
    )
    for name, (secs, n) in sorted(compiled.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"    {secs:6.2f} s  {n:3d}x  {name}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "cold_s": cold,
                    "warm_s": warm,
                    "compile_s": {k: v[0] for k, v in compiled.items()},
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
