"""The resumable result store: SQLite in the sweep's output folder, one row per finished point.

Each batch of results is committed as it arrives (WAL journal), so killing the sweep at any moment
loses at most the points still running; a rerun reads the stored ids and runs only the rest. Tables:

- ``points``: the points of the spec as last run (id, position, workload, scheme, axis values as JSON);
  exports and ``load_results`` show these, so results of points a since-edited spec dropped stay in
  the file but out of the way.
- ``results``: one row per finished point: status ``ok`` or ``error`` (with the message), the point's
  hardware facts and the workload total's metrics. Deterministic: an interrupted-and-resumed sweep
  stores exactly the rows an uninterrupted one does.
- ``executions``: which worker ran each stored point, its wall and CPU seconds, when it was stored
  (timing varies run to run, so it is kept apart from the results).
- ``meta``: the sweep's name and axis paths.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Self

from filelock import FileLock, Timeout

from accelsim.atomic_file import write_atomic
from accelsim.errors import AccelsimError
from accelsim.sweep.points import Point
from accelsim.sweep.worker import RESULT_COLUMNS, PointResult

STORE_NAME = "sweep.sqlite"
CSV_NAME = "results.csv"
KEY_COLUMNS = ("point_id", "workload", "scheme")


LOCK_NAME = ".lock"


class ResultStore:
    """An open store; one sweep process at a time holds it (a lock file says who).

    The lock is an ``flock`` through ``filelock``: the kernel releases it when its holder dies, however it
    dies, and ``filelock`` closes its descriptor in forked children, so a worker process that outlived a
    killed sweep cannot keep the folder locked (a plain rerun resumes).
    """

    def __init__(self, folder: Path, spec_file: str | None = None) -> None:
        self.folder = Path(folder)
        check_folder(self.folder, spec_file)
        self._lock = FileLock(self.folder / LOCK_NAME, timeout=0)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise AccelsimError(
                "another accelsim sweep is writing to this folder",
                file=str(self.folder),
                allowed="wait for it to end, or end it: the lock goes with its process",
            ) from None
        except OSError as exc:
            raise _folder_error(self.folder, spec_file, f"cannot create it: {exc.strerror or exc}") from None
        try:
            self.db = sqlite3.connect(self.folder / STORE_NAME, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            self._create_tables()
        except sqlite3.Error as exc:
            self._lock.release()
            raise _folder_error(self.folder, spec_file, f"cannot open {STORE_NAME} there: {exc}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        self._lock.release()

    def _create_tables(self) -> None:
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS points (point_id TEXT PRIMARY KEY, position INTEGER NOT NULL, "
                "workload TEXT NOT NULL, scheme TEXT NOT NULL, params TEXT NOT NULL)"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS results (point_id TEXT PRIMARY KEY, workload TEXT NOT NULL, "
                "scheme TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, error TEXT)"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS executions (point_id TEXT NOT NULL, worker TEXT NOT NULL, "
                "seconds REAL NOT NULL, cpu_seconds REAL NOT NULL, stored_unix_s REAL NOT NULL)"
            )
            have = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
            for name, kind in RESULT_COLUMNS.items():  # a store from an older accelsim gains new metrics
                if name not in have:
                    self.db.execute(f'ALTER TABLE results ADD COLUMN "{name}" {kind}')

    def plan(self, meta: dict[str, str], points: list[Point]) -> None:
        """Record the points the current spec asks for, and what produced them (replacing an earlier plan).

        ``meta`` values are JSON; ``axes``, the list of axis paths, becomes the exports' columns.
        """
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            self.db.execute("DELETE FROM points")
            self.db.executemany(
                "INSERT INTO points VALUES (?, ?, ?, ?, ?)",
                ((p.id, p.position, p.workload, p.scheme, p.params) for p in points),
            )

    def finished_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT point_id FROM results")}

    def errors(self) -> int:
        """How many of the planned points failed."""
        sql = "SELECT COUNT(*) FROM points p JOIN results r ON r.point_id = p.point_id WHERE r.status = 'error'"
        return self.db.execute(sql).fetchone()[0]

    def record(self, results: Iterable[PointResult]) -> None:
        """Store finished points and commit at once: after this returns, a kill cannot lose them."""
        columns = [*KEY_COLUMNS, "params", "status", "error", *RESULT_COLUMNS]
        sql = f"INSERT OR IGNORE INTO results ({', '.join(map(_quote, columns))}) VALUES ({', '.join('?' * len(columns))})"
        now = time.time()
        results = list(results)
        with self.db:
            self.db.executemany(
                sql,
                (
                    [
                        r.point.id,
                        r.point.workload,
                        r.point.scheme,
                        r.point.params,
                        r.status,
                        r.error,
                        *(r.values.get(c) for c in RESULT_COLUMNS),
                    ]
                    for r in results
                ),
            )
            self.db.executemany(
                "INSERT INTO executions VALUES (?, ?, ?, ?, ?)",
                ((r.point.id, r.worker, r.seconds, r.cpu_seconds, now) for r in results),
            )


def check_folder(folder: Path, spec_file: str | None = None) -> None:
    """Refuse, before anything is created, an output folder a sweep cannot or must not write.

    It must be a folder (or not exist yet, below a folder), and an existing one must be empty or already a
    sweep's: results.csv and the report would otherwise land among, or over, someone else's files.
    """
    try:
        if folder.exists() and not folder.is_dir():
            raise _folder_error(folder, spec_file, "this is a file, not a folder")
        if folder.is_dir() and not (folder / STORE_NAME).exists() and {p.name for p in folder.iterdir()} - {LOCK_NAME}:
            raise _folder_error(
                folder,
                spec_file,
                f"this folder holds other files and no {STORE_NAME}",
                allowed="a new or empty folder, or a sweep's output folder",
            )
        existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    except OSError as exc:
        raise _folder_error(folder, spec_file, f"cannot use it: {exc.strerror or exc}") from None
    if not existing.is_dir():
        raise _folder_error(folder, spec_file, f"{existing} is a file, not a folder")


def _folder_error(folder: Path, spec_file: str | None, message: str, allowed: str | None = None) -> AccelsimError:
    """The error for an unusable output folder: against the spec's ``output`` field when there is a spec."""
    if spec_file is None:
        return AccelsimError(message, file=str(folder), allowed=allowed)
    return AccelsimError(f"{folder}: {message}", file=spec_file, path="output", allowed=allowed)


def _quote(column: str) -> str:
    return f'"{column}"'


def connect(folder: Path) -> sqlite3.Connection:
    """A connection to the store in ``folder``; readers may use it while a sweep is writing."""
    path = Path(folder) / STORE_NAME
    if not path.is_file():
        raise AccelsimError("no sweep results here", file=str(path), allowed="the output folder of an accelsim sweep")
    return sqlite3.connect(path, timeout=30)


def read_meta(folder: Path) -> dict[str, Any]:
    """What the last run of the sweep recorded about itself: name, axes, spec and base config."""
    db = connect(folder)
    try:
        return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
    finally:
        db.close()


def read_rows(folder: Path) -> tuple[list[str], Iterator[list[Any]]]:
    """Columns and rows of the planned points' results, in spec order, one column per axis.

    A planned point that has not finished yet is left out; an errored one has empty metrics.
    """
    db = connect(folder)
    axes = json.loads((db.execute("SELECT value FROM meta WHERE key = 'axes'").fetchone() or ["[]"])[0])
    columns = [*KEY_COLUMNS, *axes, "status", "error", *RESULT_COLUMNS]
    select = ", ".join(
        f"r.{_quote(c)}" for c in ("point_id", "workload", "scheme", "params", "status", "error", *RESULT_COLUMNS)
    )
    cursor = db.execute(f"SELECT {select} FROM points p JOIN results r ON r.point_id = p.point_id ORDER BY p.position")

    def rows() -> Iterator[list[Any]]:
        try:
            for point_id, workload, scheme, params, *rest in cursor:
                values = json.loads(params)
                yield [point_id, workload, scheme, *(values.get(a) for a in axes), *rest]
        finally:
            db.close()

    return columns, rows()


def export_csv(folder: Path) -> Path:
    """Write ``results.csv`` beside the store (atomically), one row per finished planned point."""
    columns, rows = read_rows(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(v) for v in row] for row in rows)
    return write_atomic(Path(folder) / CSV_NAME, buffer.getvalue())


def _csv_cell(value: Any) -> Any:
    """Empty for missing, full precision for floats, JSON for section-valued axes."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def load_results(folder: str | Path) -> Any:
    """A sweep's results as a pandas DataFrame, one row per finished point, one column per axis and metric."""
    columns, rows = read_rows(Path(folder))
    try:
        import pandas as pd
    except ImportError:
        raise AccelsimError("load_results needs pandas", allowed="pip install pandas") from None
    return pd.DataFrame(list(rows), columns=columns)
