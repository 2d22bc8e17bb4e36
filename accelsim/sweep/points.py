"""Expanding a sweep into points: hardware overrides x workload x scheme, each with a stable id.

A point's id is a hash of everything that decides its result (the base config's content, its axis
values, the workload's content and its weights file's bytes, scheme, flavour, timing/values), so rerunning
a spec finds the points it already stored, and editing the base file, a workload or its weights gives new
ids instead of stale results.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from accelsim.config.loader import weights_digest
from accelsim.config.sweep import Sweep, canonical_json, digest
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.schemes import SchemeName

ID_HEX_DIGITS = 16  # 64 bits: a million points collide with probability ~3e-8


@dataclass(frozen=True)
class Point:
    """One simulation of a sweep: which config (as axis values), which workload, which scheme."""

    id: str
    position: int
    overrides: dict[str, Any]
    workload: str
    scheme: SchemeName

    @property
    def params(self) -> str:
        """The axis values as stored beside the result (canonical JSON, axis paths as keys)."""
        return canonical_json(self.overrides)


def _combinations(sweep: Sweep) -> Iterator[dict[str, Any]]:
    axes = sweep.spec.axes
    rows = zip(*axes.values()) if sweep.spec.combine == "zip" else itertools.product(*axes.values())
    for values in rows:
        yield dict(zip(axes, values))


def _workload_identity(workload: Workload) -> dict[str, Any]:
    """What of a workload decides a point's result: its validated content and, when it names a weights
    file, the sha256 of that file's bytes (read once per workload, not per point). Without a weights file
    the content alone, so such points keep the ids earlier sweeps stored."""
    content = workload.model_dump(mode="json")
    weights = weights_digest(workload)
    return {**content, "weights_sha256": weights} if weights else content


def expand(sweep: Sweep) -> tuple[list[Point], int]:
    """The points to run, in spec order, and how many hardware configs the constraints pruned.

    Every combination is validated as a whole config (single axis values were checked at load; a
    combination can still be impossible) and tested against the constraints before any point runs.
    """
    base = sweep.base_digest
    workloads = {name: digest(_workload_identity(w)) for name, w in sweep.workloads.items()}
    points: list[Point] = []
    pruned = 0
    seen: set[str] = set()
    for overrides in _combinations(sweep):
        combination = canonical_json(overrides)
        if combination in seen:  # zip can pair the same values twice
            raise AccelsimError(f"the combination {combination} appears twice", file=sweep.file, path="axes")
        seen.add(combination)
        try:
            hw = sweep.hardware(overrides)
        except AccelsimError as exc:
            raise AccelsimError(
                f"the combination {combination} is not a valid hardware config: "
                f"{exc.path + ': ' if exc.path else ''}{exc.message}",
                file=sweep.file,
                path="axes",
                allowed=exc.allowed,
            ) from None
        if not sweep.admits(hw):
            pruned += 1
            continue
        for workload, scheme in itertools.product(sweep.workloads, sweep.spec.schemes):
            key = {
                "base": base,
                "overrides": overrides,
                "workload": workloads[workload],
                "scheme": scheme,
                "flavour": sweep.spec.flavour,
                "timing_only": sweep.spec.timing_only,
            }
            points.append(Point(digest(key)[:ID_HEX_DIGITS], len(points), overrides, workload, scheme))
    if not points:
        raise AccelsimError(
            f"the constraints remove all {pruned} hardware configs: no point is left to run",
            file=sweep.file,
            path="constraints",
        )
    return points, pruned
