"""A results folder's files as one generation, saved and read under a lock.

Why: ``run --scheme`` one at a time fills a comparison by reading the folder, merging and writing it
back, so two processes saving at once would each write back only what they read (one scheme's rows
lost), and a kill between the renames of ``results.json``, ``results.csv`` and ``timeline.json`` would
leave files of different saves side by side. So:

- every read-merge-write and every read happens under an exclusive ``flock`` on the folder itself
  (no lock file to leave behind or to create when only reading; the kernel drops the lock when its
  process dies, so a killed writer never leaves a stale lock);
- a save writes the new files into a staging folder, then ``manifest.json`` (their SHA-256 and a
  generation id) atomically: that rename is the commit point; then it renames the files into place.
  Whoever takes the lock next finishes a save killed after its commit point (roll forward), discards
  one killed before it, and removes temp files left by killed writers;
- a reader checks the files against the manifest, so files of different saves are an error, never a
  silently mixed report.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

from accelsim.atomic_file import stale_temp_files, write_atomic
from accelsim.errors import AccelsimError
from accelsim.file_checks import read_user_file

FILES = ("results.json", "results.csv", "timeline.json")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
#: how long a save or report waits for another process's save or report (each takes well under a minute)
LOCK_TIMEOUT_S = 60.0
#: a results file larger than this is not one accelsim wrote (ResNet-50, four schemes: about 2 MB)
MAX_FILE_BYTES = 512 * 2**20
_GENERATION = re.compile(r"[0-9a-f]{16}")
_held = threading.local()  # folders this thread has locked, with a nesting count: the lock is re-entrant


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (re-entrant); a folder held by another process longer than
    :data:`LOCK_TIMEOUT_S` is a "busy" error rather than an endless wait."""
    key = os.path.realpath(folder)
    counts: dict[str, int] = _held.__dict__.setdefault("counts", {})
    if key in counts:
        counts[key] += 1
        try:
            yield
        finally:
            counts[key] -= 1
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AccelsimError(
                        f"results folder busy: another accelsim process has been saving or reporting "
                        f"here for over {LOCK_TIMEOUT_S:g} s; run again when it has finished",
                        file=str(folder),
                    ) from None
                time.sleep(0.05)
        counts[key] = 1
        try:
            yield
        finally:
            del counts[key]
    finally:
        os.close(fd)  # releases the flock


def guarded(folder: Path) -> AbstractContextManager[None]:
    """:func:`locked` for a folder that exists; otherwise nothing (the reader then says what is missing)."""
    return locked(folder) if Path(folder).is_dir() else nullcontext()


def current(folder: Path) -> dict[str, bytes] | None:
    """The folder's files (name -> content) of its one current generation; None when it holds no results.

    Call under :func:`locked`. Finishes or discards an interrupted save first; files that do not match
    the manifest (of different saves, or changed since) are an error naming the file.
    """
    folder = Path(folder)
    manifest = _recover(folder)
    if manifest is None:  # written before manifests existed, by hand, or empty
        if not (folder / "results.json").exists():
            return None
        return {name: _read(folder / name) for name in FILES if name == "results.json" or (folder / name).exists()}
    files = {}
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.exists():
            raise AccelsimError(
                f"missing: {MANIFEST} lists it in generation {manifest['generation']}; the folder "
                f"is incomplete: remove it or use another --out",
                file=str(path),
            )
        data = _read(path)
        if _sha256(data) != digest:
            raise AccelsimError(
                f"from another save than the other files ({MANIFEST} generation "
                f"{manifest['generation']}): changed or copied in since; remove the folder or use "
                f"another --out",
                file=str(path),
            )
        files[name] = data
    return files


def commit(folder: Path, files: Mapping[str, bytes]) -> str:
    """Save ``files`` as the folder's new generation (call under :func:`locked`); returns its id.

    The id is a hash of the contents, so saving the same results writes byte-identical files.
    """
    folder = Path(folder)
    digests = {name: _sha256(data) for name, data in files.items()}
    generation = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]
    staging = folder / f"{STAGING_PREFIX}{generation}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, data in files.items():
        with open(staging / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    _fsync_dir(staging)
    manifest = {"format": 1, "generation": generation, "files": digests}
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")  # the commit point
    _roll_forward(folder, staging)
    return generation


@lru_cache(maxsize=len(FILES))
def _sha256(data: bytes) -> str:
    """A file's SHA-256, remembered for one generation's files: a run's save reads and checks again the files its
    check read before simulating (hashing a ResNet-50 folder's files is 10 M instructions under callgrind)."""
    return hashlib.sha256(data).hexdigest()


def _recover(folder: Path) -> dict[str, Any] | None:
    """Finish a save killed after its commit point, discard one killed before it, drop stale temp files;
    returns the manifest (None if there is none)."""
    manifest = _read_manifest(folder)
    for staging in folder.glob(f"{STAGING_PREFIX}*"):
        if staging.is_symlink() or not staging.is_dir():
            continue  # not made by commit()
        if manifest is not None and staging.name == f"{STAGING_PREFIX}{manifest['generation']}":
            _roll_forward(folder, staging)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    for temp in stale_temp_files(folder):
        temp.unlink(missing_ok=True)
    return manifest


def _roll_forward(folder: Path, staging: Path) -> None:
    for path in staging.iterdir():
        if path.name in FILES:
            os.replace(path, folder / path.name)
    _fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    manifest = load_json(_read(path), path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (
        isinstance(files, dict)
        and "results.json" in files
        and set(files) <= set(FILES)
        and all(isinstance(d, str) for d in files.values())
        and isinstance(manifest.get("generation"), str)
        and _GENERATION.fullmatch(manifest["generation"])
    ):
        raise AccelsimError(
            f"not an accelsim results manifest (a 16-hex-digit generation and the SHA-256 of "
            f"{', '.join(FILES)}); remove the folder or use another --out",
            file=str(path),
        )
    return manifest


def _read(path: Path) -> bytes:
    """A results file's bytes; anything but a regular file of plausible size is an error, not a hang."""
    return read_user_file(path, MAX_FILE_BYTES, expected="a results file as accelsim writes it")


def load_json(data: bytes, path: Path) -> Any:
    """One of the folder's JSON files, parsed; damage (not JSON, binary, nesting too deep) is one line."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AccelsimError(
            f"unreadable: not valid JSON ({first}); remove the folder or use another --out", file=str(path)
        ) from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
