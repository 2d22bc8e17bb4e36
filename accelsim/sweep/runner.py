"""Running a sweep: expand, skip what the store already has, run the rest, store each result, export."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from accelsim.config.sweep import Sweep, canonical_json
from accelsim.errors import AccelsimError
from accelsim.sweep.executors import Executor
from accelsim.sweep.points import Point, expand
from accelsim.sweep.store import STORE_NAME, ResultStore, check_folder, export_csv


@dataclass(frozen=True)
class SweepOutcome:
    """What a run of ``accelsim sweep`` did, for its closing lines."""

    name: str
    folder: Path
    points: int
    pruned_configs: int
    left_out: int
    skipped: int
    ran: int
    errors: int
    csv: Path
    seconds: float

    def describe(self) -> str:
        rate = f", {self.ran / self.seconds:.1f} points/s" if self.ran and self.seconds > 0 else ""
        lines = [
            (
                f"sweep {self.name}: {self.points} points ({self.pruned_configs} hardware configs pruned by constraints"
                f"{f', {self.left_out} (scheme, weights) pairs left out' if self.left_out else ''}); "
                f"ran {self.ran} in {self.seconds:.1f} s{rate}, {self.skipped} already stored"
            ),
            f"results: {self.folder / 'sweep.sqlite'}, {self.csv}",
        ]
        if self.errors:
            lines.insert(1, f"{self.errors} points failed: their error is in the 'error' column")
        return "\n".join(lines)


def batches(points: list[Point], size: int) -> Iterator[list[Point]]:
    """Consecutive groups of ``size`` points: one task each, to amortize per-task overhead."""
    for start in range(0, len(points), size):
        yield points[start : start + size]


def run_sweep(sweep: Sweep, executor: Executor, *, batch_size: int = 1, progress: bool = True) -> SweepOutcome:
    """Run every point of ``sweep`` that its store does not hold yet, committing each as it finishes."""
    if batch_size < 1:
        raise AccelsimError(f"batches of {batch_size} points: need at least 1", path="--batch", allowed="1 or more")
    points, pruned, left_out = expand(sweep)
    start = time.perf_counter()
    check_folder(sweep.output, sweep.file)
    try:
        executor.start(sweep)  # connect before creating anything: a wrong --dask address leaves no empty store
        with ResultStore(sweep.output, spec_file=sweep.file) as store:
            store.plan(
                {
                    "name": canonical_json(sweep.name),
                    "axes": canonical_json(list(sweep.spec.axes)),
                    "spec": canonical_json(sweep.spec.model_dump(mode="json")),
                    "base": canonical_json(sweep.bases[""].doc if "" in sweep.bases else None),
                    "hardware": canonical_json(
                        {label: base.doc["name"] for label, base in sweep.bases.items() if label}
                    ),
                },
                points,
            )
            finished = store.finished_ids()
            todo = [p for p in points if p.id not in finished]
            bar = tqdm(
                total=len(points),
                initial=len(points) - len(todo),
                unit="pt",
                desc=sweep.name,
                file=sys.stderr,
                disable=None if progress else True,
                smoothing=0.05,
                dynamic_ncols=True,
            )
            with bar:
                if todo:
                    bar.set_postfix_str(executor.describe())
                    for results in executor.run(batches(todo, batch_size)):
                        store.record(results)
                        bar.update(len(results))
            errors = store.errors()
    except sqlite3.Error as exc:  # a store another program wrote, a full disk
        raise AccelsimError(
            f"cannot use the sweep store: {exc}",
            file=str(sweep.output / STORE_NAME),
            allowed="delete it to start the sweep afresh",
        ) from None
    finally:
        executor.close()
    return SweepOutcome(
        sweep.name,
        sweep.output,
        len(points),
        pruned,
        left_out,
        len(points) - len(todo),
        len(todo),
        errors,
        export_csv(sweep.output),
        time.perf_counter() - start,
    )
