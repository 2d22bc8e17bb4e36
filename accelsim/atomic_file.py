"""Write-then-rename, so a reader (or an interrupted run) never sees a half-written file."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: what :func:`write_atomic`'s temporary files are named: ``.<name>.<mkstemp's 8 characters>.tmp``
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def stale_temp_files(folder: str | Path) -> Iterator[Path]:
    """Temporary files :func:`write_atomic` left in ``folder`` when its process was killed mid-write.

    Only a caller that knows no write is in progress there (one holding the folder's lock) may remove them.
    """
    for path in Path(folder).iterdir():
        if _TEMP_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            yield path
