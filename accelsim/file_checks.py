"""Checks on the files and folders a user names, made before touching them.

A name on the command line or in a config can point anywhere: at a FIFO (a plain ``open`` blocks
forever), at ``/dev/zero`` (a plain ``read`` never ends), at a 3 GB file (read whole before any size
check), at a folder where a file is needed, or at ``/dev/null`` as an output (an atomic write would
*replace* the device). Every reader and writer goes through this module, so each of those becomes one
:class:`AccelsimError` naming the path and what is wrong, before any work starts.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from accelsim.errors import AccelsimError

#: the largest array file and array read (a protobuf-sized model's weights fit; a decompression bomb does not)
MAX_ARRAY_BYTES = 2 * 2**30

#: what an ``OSError``'s errno means for a path the user gave, in words a user knows
_REASONS = {
    errno.ENOENT: "file not found",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "too many levels of symbolic links (a link loop?)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EEXIST: "already exists",
    errno.EIO: "input/output error",
    errno.EXDEV: "cannot move a file across file systems",
}


def describe_type(mode: int) -> str:
    """The kind of file ``mode`` says, as a user would name it."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def os_error(exc: OSError, file: str | None = None, *, path: str = "") -> AccelsimError:
    """An ``OSError`` on a path the user named, as the one-line user error it is."""
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return AccelsimError(reason, file=file if file is not None else _display(exc.filename), path=path)


def _display(name: object) -> str | None:
    if name is None:
        return None
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    return text if text and text.isprintable() else repr(text)


def check_name(path: str | os.PathLike[str], *, field: str = "") -> str:
    """``path`` as a string, refusing what no file system accepts: an empty name, a NUL or other control character."""
    text = os.fspath(path)
    if text == "":
        raise AccelsimError("empty file name", file="''", path=field, allowed="a file or folder path")
    if not text.isprintable():
        raise AccelsimError("file name contains a NUL or control character", file=repr(text), path=field)
    return text


def read_user_file(
    path: str | os.PathLike[str], max_bytes: int, *, expected: str = "a regular file", field: str = ""
) -> bytes:
    """The contents of the regular file at ``path``, refused before reading if it is anything else or larger
    than ``max_bytes``. ``expected`` says what the file should be ("a YAML file"), for the message.

    Opened with ``O_NONBLOCK`` (a FIFO opens at once instead of waiting for a writer) and checked with
    ``fstat`` on the open descriptor (no race with a rename between the check and the read); the read is
    bounded too, since ``/proc`` files report size 0.
    """
    file = check_name(path, field=field)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise os_error(exc, file, path=field) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AccelsimError(f"is {describe_type(st.st_mode)}, expected {expected}", file=file, path=field)
        if st.st_size > max_bytes:
            raise AccelsimError(
                f"file is {st.st_size:,} bytes, larger than the {_mib(max_bytes)} limit", file=file, path=field
            )
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise os_error(exc, file, path=field) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise AccelsimError(f"file is larger than the {_mib(max_bytes)} limit", file=file, path=field)
    return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def _existing_ancestor(path: Path) -> Path:
    """The nearest part of ``path`` (itself included) that exists; it must be a folder to create anything under."""
    for candidate in (path, *path.parents):
        try:
            mode = os.stat(candidate).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise os_error(exc, str(candidate)) from None
        if candidate != path and not stat.S_ISDIR(mode):
            raise AccelsimError(f"{candidate} is {describe_type(mode)}, not a directory", file=str(path))
        return candidate
    return Path(".")


def _check_parts(path: Path, file: str, field: str) -> None:
    base = _existing_ancestor(path.parent if path.parent != path else path)
    limit = os.pathconf(base, "PC_NAME_MAX") if os.path.isdir(base) else 255
    if any(len(os.fsencode(part)) > limit for part in path.parts):
        raise AccelsimError(f"a part of the name is longer than {limit} bytes", file=file, path=field)
    if not os.access(base, os.W_OK):
        raise AccelsimError(f"cannot write into {base}: permission denied", file=file, path=field)


def check_output_file(path: str | os.PathLike[str], *, field: str = "") -> Path:
    """``path`` as a file a command will write (by temp file and rename), refused before any work if it cannot be.

    An existing target must be a regular file: renaming over ``/dev/null`` or a FIFO would replace it, and
    over a folder fails only at the end of a long run.
    """
    file = check_name(path, field=field)
    if file.endswith(os.sep):
        raise AccelsimError("names a folder, expected a file name", file=file, path=field)
    target = Path(file)
    mode = _existing_mode(target, file, field)
    if mode is not None and not stat.S_ISREG(mode):
        raise AccelsimError(f"is {describe_type(mode)}, expected a file name to write", file=file, path=field)
    _check_parts(target, file, field)
    return target


def _existing_mode(target: Path, file: str, field: str) -> int | None:
    """The file type bits of what already sits at ``target``, None if nothing does."""
    try:
        return os.stat(target).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error(exc, file, path=field) from None


def check_output_folder(path: str | os.PathLike[str], *, field: str = "") -> Path:
    """``path`` as a folder a command will create or write into, refused before any work if it cannot be."""
    file = check_name(path, field=field)
    target = Path(file)
    mode = _existing_mode(target, file, field)
    if mode is not None and not stat.S_ISDIR(mode):
        raise AccelsimError(f"is {describe_type(mode)}, expected a directory", file=file, path=field)
    _check_parts(target / "x", file, field)
    return target
