"""Numba's cache misses changes in a called function's module (numba/numba#1833); numba_cache drops it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from accelsim.kernels import numba_cache

CALLER = """
from numba import njit
from pkg.callee import step

@njit(cache=True)
def run(x):
    return step(x)
"""
CALLEE = """
from numba import njit

@njit(cache=True)
def step(x):
    return x + {increment}
"""


def _run(root: Path, refresh: bool) -> int:
    """A fresh process: optionally refresh the package's cache, then call the cached caller."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(root)!r})
        from pathlib import Path
        from accelsim.kernels import numba_cache
        if {refresh}:
            numba_cache.refresh(Path({str(root / "pkg")!r}))
        from pkg.caller import run
        print(run(1))
    """)
    return int(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)


def _package(root: Path, increment: int) -> None:
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "caller.py").write_text(CALLER)
    (pkg / "callee.py").write_text(CALLEE.format(increment=increment))


def test_stale_numba_cache_is_dropped_when_a_called_module_changes(tmp_path):
    _package(tmp_path, 1)
    assert _run(tmp_path, refresh=True) == 2
    _package(tmp_path, 10)  # only the callee's module changes
    assert _run(tmp_path, refresh=False) == 2  # Numba alone replays the stale inlined callee
    assert _run(tmp_path, refresh=True) == 11


def test_digest_covers_only_numba_sources(tmp_path):
    _package(tmp_path, 1)
    pkg = tmp_path / "pkg"
    before = numba_cache.sources_digest(pkg)
    (pkg / "__init__.py").write_text("# no numba here\n")
    assert numba_cache.sources_digest(pkg) == before
    (pkg / "callee.py").write_text(CALLEE.format(increment=2))
    assert numba_cache.sources_digest(pkg) != before
    assert numba_cache.refresh(pkg) and not numba_cache.refresh(pkg)
