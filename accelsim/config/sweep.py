"""Sweep specs: a base hardware config, axes of values by dotted path, workloads, schemes, constraints.

Every axis value is applied to the base config and validated as a whole HardwareConfig when the spec
loads, so a typo or an impossible value is reported against the spec (``axes.array.rows[2]``) before
any point runs, not as a failed point an hour into the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from accelsim.config.constraint import Constraint, ConstraintError, hardware_fields
from accelsim.config.hardware import HardwareConfig
from accelsim.config.loader import load_workload, resolve
from accelsim.config.overrides import parse_path
from accelsim.config.validation import FieldError, StrictModel, validate
from accelsim.config.workload import Workload
from accelsim.config.yaml_source import read_yaml_mapping
from accelsim.dynamic_flavours import FlavourName
from accelsim.errors import AccelsimError, format_path
from accelsim.schemes import SchemeName

#: a scheme as YAML names it: one of the scheme table's names (strict models take an enum from its string here)
SchemeArg = Annotated[SchemeName, Field(strict=False)]
#: the dynamic flavour, one of the flavour table's names
FlavourArg = Annotated[FlavourName, Field(strict=False)]
SWEEP_OUTPUT_ROOT = Path("reports/sweeps")
#: Points a spec may ask for unless it raises ``max_points``: expanding validates every hardware
#: combination (~0.2 ms each) and keeps every point in memory (~0.6 kB), so 100,000 points take ~20 s
#: and ~60 MB before the first one runs.
DEFAULT_MAX_POINTS = 100_000
#: The most ``max_points`` may be raised to (~3 min and ~600 MB of expansion).
MAX_POINTS_LIMIT = 1_000_000


class SweepSpec(StrictModel):
    """A sweep as written in ``hwconfigs/sweeps/*.yaml`` (fields documented in docs/sweeps.md)."""

    schema_version: Literal[1]
    name: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a folder name, never ".."
    description: str = Field("", max_length=10_000)
    base: str = Field(min_length=1)
    axes: dict[str, list[Any]]
    combine: Literal["grid", "zip"] = "grid"
    workloads: list[str] = Field(min_length=1)
    schemes: list[SchemeArg] = Field([SchemeName.STATIC], min_length=1)
    flavour: FlavourArg = FlavourName.ONNX
    constraints: list[str] = Field([], max_length=100)
    timing_only: bool = True
    output: str | None = Field(None, min_length=1, max_length=4096)
    max_points: int = Field(DEFAULT_MAX_POINTS, ge=1, le=MAX_POINTS_LIMIT)

    @field_validator("output")
    @classmethod
    def _output_is_a_plain_path(cls, output: str | None) -> str | None:
        if output is not None and any(ord(c) < 32 or ord(c) == 127 for c in output):
            raise ValueError("a folder path cannot hold control characters (NUL, newline, tab, ...)")
        return output

    @field_validator("axes")
    @classmethod
    def _axes_have_values(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not axes:
            raise ValueError("a sweep needs at least one axis")
        for path, values in axes.items():
            if not values:
                raise FieldError((path,), "an axis needs at least one value")
        return axes

    @field_validator("workloads", "schemes")
    @classmethod
    def _unique(cls, items: list[str]) -> list[str]:
        _first_repeat(items, items)
        return items

    @field_validator("constraints")
    @classmethod
    def _constraints_parse(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            try:
                Constraint.parse(text)
            except ConstraintError as exc:
                raise FieldError((i,), str(exc)) from None
        return texts

    @property
    def point_count(self) -> int:
        """Points before constraints prune any, from the axis lengths alone (nothing is expanded)."""
        configs = (
            len(next(iter(self.axes.values()))) if self.combine == "zip" else math.prod(map(len, self.axes.values()))
        )
        return configs * len(self.workloads) * len(self.schemes)

    @model_validator(mode="after")
    def _within_max_points(self) -> SweepSpec:
        """Refuse a grid too large to expand before expanding it (200 x 200 x 200 would take half an hour)."""
        if self.point_count > self.max_points:
            lengths = [len(v) for v in self.axes.values()]
            configs = " x ".join(f"{n:,}" for n in lengths) if self.combine == "grid" else f"{lengths[0]:,}"
            raise FieldError(
                ("axes",),
                f"{self.point_count:,} points ({configs} hardware configs, "
                f"{_count(len(self.workloads), 'workload')}, {_count(len(self.schemes), 'scheme')}) is "
                f"more than max_points ({self.max_points:,}): thin the axes, or raise max_points in the spec",
                allowed=f"max_points up to {MAX_POINTS_LIMIT:,}",
            )
        return self

    @model_validator(mode="after")
    def _combinations_are_distinct(self) -> SweepSpec:
        """A grid axis listing a value twice, or zip axes of unequal length, would not mean what it says."""
        if self.combine == "grid":
            for path, values in self.axes.items():
                _first_repeat(values, [canonical_json(v) for v in values], ("axes", path))
        else:
            lengths = {path: len(values) for path, values in self.axes.items()}
            first = next(iter(lengths))
            for path, n in lengths.items():
                if n != lengths[first]:
                    raise FieldError(
                        ("axes", path),
                        f"combine: zip needs axes of equal length: {first} has {lengths[first]} values, {path} has {n}",
                    )
        return self


def _first_repeat(items: list[Any], keys: list[str], loc: tuple[str | int, ...] = ()) -> None:
    """Raise at the first item whose key an earlier item has (linear: an axis may hold 100,000 values)."""
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise FieldError((*loc, i), f"{items[i]!r} is listed twice")
        seen.add(key)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def canonical_json(value: Any) -> str:
    """One text per value (sorted keys, no spaces): what point ids and digests are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _with_value(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``doc`` in place, creating sections the base file left to their defaults."""
    parts = parse_path(path)
    node: Any = doc  # sections are mappings, lists are indexed by int parts
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = copy.deepcopy(value)


def _check_axis_path(path: str, file: str) -> None:
    """An axis must name a hardware field (``array.rows``) or section (``array.accumulator``)."""
    leaves = hardware_fields()
    known = {leaf.rsplit(".", i)[0] for leaf in leaves for i in range(leaf.count(".") + 1)}
    if path in known:
        return
    parts = path.split(".")
    depth = max((i for i in range(len(parts)) if ".".join(parts[:i]) in known), default=0)
    parent = ".".join(parts[:depth])
    children = sorted(
        {k.split(".")[depth] for k in known if k.count(".") >= depth and (not parent or k.startswith(parent + "."))}
    )
    raise AccelsimError(
        f"unknown hardware field {parts[depth]!r}" + (f" in {parent}" if parent else ""),
        file=file,
        path=format_path(("axes", path)),
        allowed=children,
    )


@dataclass(frozen=True)
class Sweep:
    """A loaded, checked sweep: the spec plus the files it names, resolved and validated."""

    spec: SweepSpec
    file: str
    name: str
    base_file: str
    base: dict[str, Any]
    workloads: dict[str, Workload]
    constraints: tuple[Constraint, ...]
    output: Path

    def hardware(self, overrides: Mapping[str, Any]) -> HardwareConfig:
        """The base config with ``overrides`` (axis path -> value) applied, validated."""
        doc = copy.deepcopy(self.base)
        for path, value in overrides.items():
            _with_value(doc, path, value)
        return validate(HardwareConfig, doc, self.base_file)

    def admits(self, hw: HardwareConfig) -> bool:
        """Whether every constraint holds for ``hw`` (the spec's constraints parsed at load)."""
        for i, constraint in enumerate(self.constraints):
            try:
                if not constraint.holds(hw):
                    return False
            except ConstraintError as exc:
                raise AccelsimError(str(exc), file=self.file, path=format_path(("constraints", i))) from None
        return True

    @property
    def base_digest(self) -> str:
        return digest(self.base)


def _find(entry: str, spec_dir: Path, kind: str, file: str, loc: tuple[str | int, ...]) -> Path:
    """A path relative to the spec's folder, else one relative to the current folder or a shipped name."""
    beside = spec_dir / entry
    if beside.is_file():
        return beside
    try:
        return resolve(entry, kind)
    except AccelsimError as exc:
        raise AccelsimError(
            f"{kind} {entry!r} not found", file=file, path=format_path(loc), allowed=exc.allowed
        ) from None


def load_sweep(path: str | Path) -> Sweep:
    """Load and check a sweep spec: its base config, every axis value against it, workloads, constraints."""
    file = str(path)
    spec = validate(SweepSpec, read_yaml_mapping(path), file)
    spec_dir = Path(path).parent
    base_path = _find(spec.base, spec_dir, "hardware", file, ("base",))
    base_file = str(base_path)
    base = read_yaml_mapping(base_path)
    validate(HardwareConfig, base, base_file)
    name = spec.name or Path(path).stem
    workloads: dict[str, Workload] = {}
    for i, entry in enumerate(spec.workloads):
        workload = load_workload(_find(entry, spec_dir, "workload", file, ("workloads", i)))
        if workload.name in workloads:
            raise AccelsimError(
                f"workload name {workload.name!r} is used by two entries", file=file, path=format_path(("workloads", i))
            )
        if workload.quantized is not None:  # its points would quantize the float twin, not run the model's codes
            raise AccelsimError(
                f"workload {workload.name!r} is a quantized model (its own codes and parameters), which a sweep "
                "does not run yet",
                file=file,
                path=format_path(("workloads", i)),
                allowed="run it with accelsim run / compare, or sweep its fp32 import",
            )
        workloads[workload.name] = workload
    sweep = Sweep(
        spec,
        file,
        name,
        base_file,
        base,
        workloads,
        tuple(Constraint.parse(text) for text in spec.constraints),
        Path(spec.output) if spec.output else SWEEP_OUTPUT_ROOT / name,
    )
    for axis, values in spec.axes.items():
        _check_axis_path(axis, file)
        for i, value in enumerate(values):
            try:
                sweep.hardware({axis: value})
            except AccelsimError as exc:
                field = f"in {base_path.name}, {exc.path}: " if exc.path and exc.path != axis else ""
                raise AccelsimError(
                    f"{field}{exc.message}", file=file, path=format_path(("axes", axis, i)), allowed=exc.allowed
                ) from None
    return sweep
