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
from typing import Any, NamedTuple

from accelsim.config.loader import weights_digest
from accelsim.config.sweep import WORKLOAD_AXIS_PREFIX, Sweep, canonical_json, digest
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.schemes import SCHEMES, SchemeName, WeightFormatName

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


class Expansion(NamedTuple):
    """The points to run, in spec order; how many hardware configs the constraints pruned; how many
    (scheme, weights) pairs were left out because the scheme does not run that weight format."""

    points: list[Point]
    pruned: int
    left_out: int


def runs_with(scheme: SchemeName, weights: str) -> bool:
    """Whether ``scheme`` runs weight format ``weights`` as a distinct point: int4 group-wise weights do not run
    under static, and fp32 keeps its weights float, so it runs only at the default format."""
    plan = SCHEMES[scheme]
    if weights == WeightFormatName.SYMMETRIC:
        return True
    if not plan.weights.quantized:
        return False
    try:
        plan.with_weights(weights)
    except AccelsimError:
        return False
    return True


def expand(sweep: Sweep) -> Expansion:
    """The points to run, in spec order, with what the constraints pruned and the weights left out.

    Every combination is validated as a whole config and workload (single axis values were checked at load;
    a combination can still be impossible) and tested against the constraints before any point runs.
    """
    workloads = {name: digest(_workload_identity(w)) for name, w in sweep.workloads.items()}
    points: list[Point] = []
    pruned = left_out = 0
    seen: set[str] = set()
    checked: set[str] = set()  # workload overrides already validated
    for overrides in _combinations(sweep):
        combination = canonical_json(overrides)
        if combination in seen:  # zip can pair the same values twice
            raise AccelsimError(f"the combination {combination} appears twice", file=sweep.file, path="axes")
        seen.add(combination)
        try:
            hw = sweep.hardware(overrides)
        except AccelsimError as exc:
            raise _invalid(sweep, combination, "a valid hardware config", exc) from None
        if not sweep.admits(hw):
            pruned += 1
            continue
        _check_workloads(sweep, overrides, checked)
        weights = sweep.weights(overrides)
        for workload, scheme in itertools.product(sweep.workloads, sweep.spec.schemes):
            if not runs_with(scheme, weights):
                left_out += 1
                continue
            key = {
                "base": sweep.base(overrides).digest,
                "overrides": overrides,
                "workload": workloads[workload],
                "scheme": scheme,
                "flavour": sweep.spec.flavour,
                "timing_only": sweep.spec.timing_only,
            }
            points.append(Point(digest(key)[:ID_HEX_DIGITS], len(points), overrides, workload, scheme))
    if not points:
        reasons = [f"the constraints remove all {pruned} hardware configs"] if pruned else []
        reasons += [f"{left_out} (scheme, weights) pairs do not run"] if left_out else []
        raise AccelsimError(
            f"{' and '.join(reasons)}: no point is left to run",
            file=sweep.file,
            path="constraints" if pruned else "axes.weights",
        )
    return Expansion(points, pruned, left_out)


def _check_workloads(sweep: Sweep, overrides: dict[str, Any], checked: set[str]) -> None:
    """Each workload with this combination's workload axes is valid (checked once per distinct combination)."""
    fields = {p: v for p, v in overrides.items() if p.startswith(WORKLOAD_AXIS_PREFIX)}
    key = canonical_json(fields)
    if not fields or key in checked:
        return
    checked.add(key)
    if (invalid := sweep.invalid_workload(fields)) is not None:
        name, exc = invalid
        raise _invalid(sweep, key, f"a valid workload {name}", exc)


def _invalid(sweep: Sweep, combination: str, what: str, exc: AccelsimError) -> AccelsimError:
    return AccelsimError(
        f"the combination {combination} is not {what}: {exc.path + ': ' if exc.path else ''}{exc.message}",
        file=sweep.file,
        path="axes",
        allowed=exc.allowed,
    )
