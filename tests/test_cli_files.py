"""accelsim.file_checks: what a user names is checked before it is read or written (issue 14 items 8, 9)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from accelsim.errors import AccelsimError
from accelsim.file_checks import check_output_file, check_output_folder, os_error, read_user_file


def test_reads_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"x: 1\n")
    assert read_user_file(tmp_path / "a.yaml", 100) == b"x: 1\n"


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    """No writer ever opens the FIFO: a plain open would wait forever."""
    os.mkfifo(tmp_path / "f")
    start = time.monotonic()
    with pytest.raises(AccelsimError, match="is a FIFO"):
        read_user_file(tmp_path / "f", 100)
    assert time.monotonic() - start < 1


def test_size_checked_before_reading(tmp_path: Path) -> None:
    with open(tmp_path / "big", "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: no disk used, and reading it would take seconds and 3 GiB
    start = time.monotonic()
    with pytest.raises(AccelsimError, match="3,221,225,472 bytes, larger than the 1 MiB limit"):
        read_user_file(tmp_path / "big", 2**20)
    assert time.monotonic() - start < 1


def test_files_that_lie_about_their_size_are_read_bounded() -> None:
    """/proc files report size 0; the read stops one byte past the limit."""
    with pytest.raises(AccelsimError, match="larger than"):
        read_user_file("/proc/self/maps", 10)
    with pytest.raises(AccelsimError, match="character device"):
        read_user_file("/dev/zero", 10)


@pytest.mark.parametrize("name", ["", "a\0b", "a\nb"])
def test_unusable_names(name: str) -> None:
    for check in (check_output_file, check_output_folder):
        with pytest.raises(AccelsimError):
            check(name)
    with pytest.raises(AccelsimError):
        read_user_file(name, 10)


def test_outputs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(AccelsimError, match="character device"):
        check_output_file("/dev/null")  # a rename over it would replace the device
    with pytest.raises(AccelsimError, match="is a directory"):
        check_output_file(tmp_path)
    with pytest.raises(AccelsimError, match="is a regular file, expected a directory"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(AccelsimError, match="not a directory"):
        check_output_file(tmp_path / "file" / "out.npz")
    assert check_output_file(tmp_path / "new" / "deeper" / "out.npz") == tmp_path / "new" / "deeper" / "out.npz"
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_os_errors_become_one_line() -> None:
    err = os_error(OSError(errno.ENOSPC, "No space left on device", "/data/out.npz"))
    assert str(err) == "/data/out.npz: no space left on the device"
    assert str(os_error(OSError(errno.EBADMSG, "Bad message", b"x\0y"))) == "'x\\x00y': bad message"
