"""The first run's compilation (accelsim.kernels.first_run): the recorded jobs cover the README's command,
compile ahead in parallel with a progress line on a terminal, and nothing is left to compile after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# In a fresh Numba cache: compile ahead (progress line forced on), then the README's command with a
# listener on Numba's compile events; prints what happened as JSON.
_SCRIPT = r"""
import contextlib, io, json, sys
from numba.core import event
from accelsim.cli import main
from accelsim.kernels import first_run
from accelsim.schemes import SCHEMES
pending = len(first_run.pending_jobs(SCHEMES))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    compiled_ahead = first_run.compile_ahead(SCHEMES, show=True)
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        f = getattr(ev.data["dispatcher"], "py_func", None)
        if f is not None and f.__module__.startswith("accelsim."):
            compiled.append(f.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
quiet = io.StringIO()
with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(io.StringIO()):
    code = main(["compare", "workloads/resnet18.yaml", "--out", sys.argv[1]])
print(json.dumps({"pending": pending, "compiled_ahead": compiled_ahead, "progress": err.getvalue(), "code": code,
                  "compiled_in_run": compiled, "run_stderr": quiet.getvalue(),
                  "pending_after": len(first_run.pending_jobs(SCHEMES))}))
"""


def test_compile_ahead_covers_the_readme_command(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["code"] == 0
    assert seen["pending"] == seen["compiled_ahead"] > 5  # an empty cache: every recorded job compiled ahead
    assert "compiling accelsim's kernels for this CPU (first run only" in seen["progress"]
    assert f"{seen['compiled_ahead']}/{seen['compiled_ahead']}" in seen["progress"]  # the count reached the end
    assert seen["compiled_in_run"] == []  # the record misses nothing the README's command compiles
    assert seen["pending_after"] == 0
    assert "compiling" not in seen["run_stderr"]  # cached now, and not a terminal: quiet


def test_the_record_names_real_kernels() -> None:
    from accelsim.kernels import first_run

    jobs = first_run.load_jobs()
    assert jobs and all(job["schemes"] and job["entries"] for job in jobs)
    for job in jobs:
        for entry in job["entries"]:
            dispatcher = first_run._dispatcher(entry)
            assert len(first_run._types(entry["signature"])) == dispatcher.py_func.__code__.co_argcount
