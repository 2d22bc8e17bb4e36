"""Keeps Numba's on-disk cache true to accelsim's sources.

Numba invalidates a cached function only when its own file changes, not when a function it calls
from another module does (numba/numba#1833): after an edit to ``requant.py`` the cached
``vnni._run_requant`` kept the old requant arithmetic inlined and gave other bits. With the README's
editable install, a ``git pull`` does the same to a user. So the package's Numba cache files are
stamped with one digest of every accelsim source that compiles Numba code, and dropped when the
digest changes. Runs once at import of :mod:`accelsim.kernels`, before anything is compiled or loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
STAMP = "accelsim-numba-sources.sha256"
_COMPILED = (b"njit", b"@vectorize", b"@intrinsic", b"@jit")


def sources_digest(package: Path = PACKAGE) -> str:
    """sha256 over the paths and contents of the package's sources that define Numba code."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if any(marker in text for marker in _COMPILED):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


def refresh(package: Path = PACKAGE) -> bool:
    """Drop the package's Numba cache files (``__pycache__/*.nbi|nbc``) if the sources changed since
    they were written; True if it dropped them. A read-only install is left alone (Numba then caches in
    the user's cache folder, keyed by the same file stamps; nothing better can be done there)."""
    stamp = package / "__pycache__" / STAMP
    digest = sources_digest(package)
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for cached in (*package.rglob("__pycache__/*.nbi"), *package.rglob("__pycache__/*.nbc")):
            cached.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        temp = stamp.with_suffix(f".{digest[:8]}.tmp")
        temp.write_text(digest)
        temp.replace(stamp)
    except OSError:
        return False
    return True
