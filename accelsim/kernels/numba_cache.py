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


def cache_folders(package: Path = PACKAGE) -> list[Path]:
    """Where Numba caches the package's functions: each source folder's ``__pycache__``, or with
    ``NUMBA_CACHE_DIR`` set, the folders Numba names after them there (the package's own first)."""
    from numba.core import caching, config

    folders = sorted({path.parent for path in package.rglob("*.py")}, key=lambda f: (f != package, f))
    locator = getattr(caching, "UserProvidedCacheLocator", None) or getattr(caching, "_UserProvidedCacheLocator", None)
    cache_dir = getattr(config, "CACHE_DIR", "")  # set at import from NUMBA_CACHE_DIR
    if cache_dir and locator is not None:
        return [Path(cache_dir) / locator.get_suitable_cache_subpath(str(f / "x.py")) for f in folders]
    return [f / "__pycache__" for f in folders]


def refresh(package: Path = PACKAGE) -> bool:
    """Drop the package's Numba cache files (``*.nbi|nbc`` in :func:`cache_folders`) if the sources
    changed since they were written; True if it dropped them. A read-only install is left alone (Numba
    then caches in the user's cache folder, keyed by the same file stamps; nothing better can be done there)."""
    folders = cache_folders(package)
    stamp = folders[0] / STAMP
    digest = sources_digest(package)
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for cached in (path for folder in folders for pattern in ("*.nbi", "*.nbc") for path in folder.glob(pattern)):
            cached.unlink(missing_ok=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        temp = stamp.with_suffix(f".{digest[:8]}.tmp")
        temp.write_text(digest)
        temp.replace(stamp)
    except OSError:
        return False
    return True
