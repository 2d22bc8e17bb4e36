"""The Dask executor gives the local executor's results, and without dask.distributed it is a clear error."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config.sweep import load_sweep
from accelsim.sweep import DaskCluster, LocalPool, executors, run_sweep

SCHEMES = ("static", "dynamic")


def results(folder: Path) -> list[tuple]:
    db = sqlite3.connect(folder / "sweep.sqlite")
    try:
        return db.execute("SELECT * FROM results ORDER BY point_id").fetchall()
    finally:
        db.close()


def test_dask_local_cluster_matches_local_processes(tmp_path: Path, sweep_spec: Callable[..., Path]) -> None:
    pytest.importorskip("distributed")
    outcomes = {}
    for name, executor in {"local": LocalPool(2), "dask": DaskCluster("local", 1, processes=False)}.items():
        spec = sweep_spec(name, schemes=SCHEMES)
        outcomes[name] = run_sweep(load_sweep(spec), executor, batch_size=3 if name == "dask" else 1, progress=False)
    assert outcomes["dask"].ran == outcomes["local"].ran == 16
    assert results(tmp_path / "dask") == results(tmp_path / "local")
    assert (tmp_path / "dask/results.csv").read_text() == (tmp_path / "local/results.csv").read_text()


def test_missing_distributed_is_a_user_error(
    tmp_path: Path, sweep_spec: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    spec = sweep_spec("out", schemes=SCHEMES)
    assert main(["sweep", str(spec), "--dask", "local"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dask needs dask.distributed" in err and "accelsim[distributed]" in err
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def tcp_server(reply: bytes | None) -> Iterator[str]:
    """A local TCP server that is not a Dask scheduler: it sends ``reply`` to each client, or stays silent."""
    listener = socket.create_server(("127.0.0.1", 0))
    clients: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                clients.append(conn)
                if reply is not None:
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in clients:
            conn.close()


class Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` under test turns it into an error line."""


@contextlib.contextmanager
def hang_guard(seconds: int) -> Iterator[None]:
    """Fail the test (instead of hanging the suite) when the code under test blocks for ``seconds``."""

    def expire(signum: int, frame: object) -> None:
        raise Hung(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# an HTTP answer: Dask reads its first 8 bytes as a frame count and asks numpy for exabytes
GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"\xff" * 64


@pytest.mark.parametrize(
    ("reply", "fragment"), [(GARBAGE, "does not speak Dask's protocol"), (None, "nothing answered within 1 s")]
)
def test_a_server_that_is_not_dask_is_a_one_line_error(
    sweep_spec: Callable[..., Path],
    reply: bytes | None,
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Garbage or silence at the --dask address: exit 2 with one line, in bounded time, and no store."""
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1)
    spec = sweep_spec("out", schemes=SCHEMES)
    with tcp_server(reply) as address, hang_guard(8):
        assert main(["sweep", str(spec), "--dask", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--dask: no Dask scheduler at '{address}'" in err and fragment in err, err
    assert not (tmp_path / "out").exists()


def test_a_scheduler_at_a_tcp_address_runs_the_sweep(tmp_path: Path, sweep_spec: Callable[..., Path]) -> None:
    """The bounded handshake before the client lets a real scheduler through (and its results are the local ones)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        for name, executor in {"local": LocalPool(1), "remote": DaskCluster(cluster.scheduler_address)}.items():
            spec = sweep_spec(name, schemes=SCHEMES)
            assert run_sweep(load_sweep(spec), executor, progress=False).ran == 16
    assert results(tmp_path / "remote") == results(tmp_path / "local")
