"""Sweep specs: a base hardware config, axes of values by dotted path, workloads, schemes, constraints.

Every axis value is applied to the base config and validated as a whole HardwareConfig when the spec
loads, so a typo or an impossible value is reported against the spec (``axes.array.rows[2]``) before
any point runs, not as a failed point an hour into the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from accelsim.config.constraint import Constraint, ConstraintError, hardware_fields
from accelsim.config.errors import AccelsimError, format_path
from accelsim.config.hardware import HardwareConfig
from accelsim.config.loader import load_workload, resolve
from accelsim.config.overrides import parse_path
from accelsim.config.validation import FieldError, StrictModel, validate
from accelsim.config.workload import Workload
from accelsim.config.yaml_source import read_yaml_mapping

Scheme = Literal["fp32", "woq", "dynamic", "static"]
SWEEP_OUTPUT_ROOT = Path("reports/sweeps")


class SweepSpec(StrictModel):
    """A sweep as written in ``hwconfigs/sweeps/*.yaml`` (fields documented in docs/sweeps.md)."""

    schema_version: Literal[1]
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a folder name, never ".."
    description: str = ""
    base: str = Field(min_length=1)
    axes: dict[str, list[Any]]
    combine: Literal["grid", "zip"] = "grid"
    workloads: list[str] = Field(min_length=1)
    schemes: list[Scheme] = Field(["static"], min_length=1)
    flavour: Literal["onnx", "pytorch", "pytorch_qnnpack", "tflite"] = "onnx"
    constraints: list[str] = []
    timing_only: bool = True
    output: str | None = Field(None, min_length=1)

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
        for i, item in enumerate(items):
            if item in items[:i]:
                raise FieldError((i,), f"{item!r} is listed twice")
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

    @model_validator(mode="after")
    def _combinations_are_distinct(self) -> "SweepSpec":
        """A grid axis listing a value twice, or zip axes of unequal length, would not mean what it says."""
        if self.combine == "grid":
            for path, values in self.axes.items():
                seen = [canonical_json(v) for v in values]
                for i, value in enumerate(seen):
                    if value in seen[:i]:
                        raise FieldError(("axes", path, i), f"{values[i]!r} is listed twice")
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


def canonical_json(value: Any) -> str:
    """One text per value (sorted keys, no spaces): what point ids and digests are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _with_value(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``doc`` in place, creating sections the base file left to their defaults."""
    parts = parse_path(path)
    node = doc
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
    children = sorted({k.split(".")[depth] for k in known
                       if k.count(".") >= depth and (not parent or k.startswith(parent + "."))})
    raise AccelsimError(f"unknown hardware field {parts[depth]!r}" + (f" in {parent}" if parent else ""),
                        file=file, path=format_path(("axes", path)), allowed=children)


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
        raise AccelsimError(f"{kind} {entry!r} not found", file=file, path=format_path(loc), allowed=exc.allowed) from None


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
            raise AccelsimError(f"workload name {workload.name!r} is used by two entries", file=file,
                                path=format_path(("workloads", i)))
        workloads[workload.name] = workload
    sweep = Sweep(spec, file, name, base_file, base, workloads,
                  tuple(Constraint.parse(text) for text in spec.constraints),
                  Path(spec.output) if spec.output else SWEEP_OUTPUT_ROOT / name)
    for axis, values in spec.axes.items():
        _check_axis_path(axis, file)
        for i, value in enumerate(values):
            try:
                sweep.hardware({axis: value})
            except AccelsimError as exc:
                field = f"in {base_path.name}, {exc.path}: " if exc.path and exc.path != axis else ""
                raise AccelsimError(f"{field}{exc.message}", file=file,
                                    path=format_path(("axes", axis, i)), allowed=exc.allowed) from None
    return sweep
