"""Sweep specs: a base hardware config, axes of values by dotted path, workloads, schemes, constraints.

Every axis value is applied to the base config and validated as a whole HardwareConfig when the spec
loads, so a typo or an impossible value is reported against the spec (``axes.array.rows[2]``) before
any point runs, not as a failed point an hour into the sweep.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from accelsim.config.constraint import Constraint, ConstraintError, hardware_fields
from accelsim.config.hardware import HardwareConfig
from accelsim.config.loader import resolve, workload_from
from accelsim.config.overrides import parse_path, set_path
from accelsim.config.validation import FieldError, StrictModel, validate
from accelsim.config.workload import Workload
from accelsim.config.yaml_source import read_yaml_mapping
from accelsim.dynamic_flavours import FlavourName
from accelsim.errors import AccelsimError, format_path
from accelsim.schemes import SchemeName, WeightFormatName

if TYPE_CHECKING:
    from accelsim.onnx.quantized_workload import QuantizedImport

#: a scheme as YAML names it: one of the scheme table's names (strict models take an enum from its string here)
SchemeArg = Annotated[SchemeName, Field(strict=False)]
#: the dynamic flavour, one of the flavour table's names
FlavourArg = Annotated[FlavourName, Field(strict=False)]
SWEEP_OUTPUT_ROOT = Path("reports/sweeps")
#: the axis of whole hardware configs (paths or shipped names); the other hardware axes apply to each
HARDWARE_AXIS = "hardware"
#: the axis of the run's weight format (``--weights``)
WEIGHTS_AXIS = "weights"
#: axes ``workload.<field>`` set that top-level field of every workload of the spec
WORKLOAD_AXIS_PREFIX = "workload."
#: the workload fields an axis may set: they mean the same in every workload (docs/workloads.md)
WORKLOAD_AXES = ("batch", "context", "kv_cache_dtype", "repeat")
#: Points a spec may ask for unless it raises ``max_points``: expanding validates every hardware
#: combination (~0.2 ms each) and keeps every point in memory (~0.6 kB), so 100,000 points take ~20 s
#: and ~60 MB before the first one runs.
DEFAULT_MAX_POINTS = 100_000
#: The most ``max_points`` may be raised to (~3 min and ~600 MB of expansion).
MAX_POINTS_LIMIT = 1_000_000


class WorkloadEntry(StrictModel):
    """A workload of a sweep with fields changed as ``--set-workload`` changes them (``set``: path -> value), e.g.
    a shorter prompt or another name, so one file serves several entries."""

    workload: str = Field(min_length=1)
    set: dict[str, Any] = Field(min_length=1, max_length=100)


class SweepSpec(StrictModel):
    """A sweep as written in ``hwconfigs/sweeps/*.yaml`` (fields documented in docs/sweeps.md)."""

    schema_version: Literal[1]
    name: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a folder name, never ".."
    description: str = Field("", max_length=10_000)
    base: str | None = Field(None, min_length=1)
    axes: dict[str, list[Any]]
    combine: Literal["grid", "zip"] = "grid"
    workloads: list[str | WorkloadEntry] = Field(min_length=1)
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

    @field_validator("workloads", mode="before")
    @classmethod
    def _entries(cls, items: Any) -> Any:
        """A mapping entry is a WorkloadEntry: its errors name the entry's own field, not the str | entry union."""
        if not isinstance(items, list):
            return items
        out = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                try:
                    item = WorkloadEntry.model_validate(item)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    raise FieldError((i, *first["loc"]), first["msg"]) from None
            out.append(item)
        return out

    @field_validator("workloads", "schemes")
    @classmethod
    def _unique(cls, items: list[Any]) -> list[Any]:
        _first_repeat(
            items, [canonical_json(item.model_dump() if isinstance(item, StrictModel) else item) for item in items]
        )
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
    def _one_source_of_hardware(self) -> SweepSpec:
        """Every point's config starts from ``base`` or from a whole config of the ``hardware`` axis: one of them."""
        if self.base is None and HARDWARE_AXIS not in self.axes:
            raise FieldError(("base",), "missing", "a hardware config, or an axis `hardware` of whole configs")
        if self.base is not None and HARDWARE_AXIS in self.axes:
            raise FieldError(
                ("base",),
                "a spec with a `hardware` axis takes each point's config from that axis",
                "base or axes.hardware, not both",
            )
        return self

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
    """An axis names a hardware field (``array.rows``) or section (``array.accumulator``), a workload field
    (``workload.batch``) or the weight format (``weights``)."""
    if path == WEIGHTS_AXIS:
        return
    if path.startswith(WORKLOAD_AXIS_PREFIX):
        if path.removeprefix(WORKLOAD_AXIS_PREFIX) not in WORKLOAD_AXES:
            raise AccelsimError(
                f"a sweep does not vary the workload field {path.removeprefix(WORKLOAD_AXIS_PREFIX)!r}",
                file=file,
                path=format_path(("axes", path)),
                allowed=[WORKLOAD_AXIS_PREFIX + f for f in WORKLOAD_AXES],
            )
        return
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


def _is_hardware_field(axis: str) -> bool:
    return axis not in (HARDWARE_AXIS, WEIGHTS_AXIS) and not axis.startswith(WORKLOAD_AXIS_PREFIX)


@dataclass(frozen=True)
class BaseConfig:
    """A hardware config the points start from: the spec's ``base`` or one value of its ``hardware`` axis."""

    file: str
    doc: dict[str, Any]

    @functools.cached_property
    def digest(self) -> str:
        """Part of every point's id: hashed once, not once per point."""
        return digest(self.doc)


@dataclass(frozen=True)
class Sweep:
    """A loaded, checked sweep: the spec plus the files it names, resolved and validated.

    ``bases``: the hardware configs by ``hardware`` axis value ("" for the spec's ``base``). ``documents``: each
    workload as written and its file, which ``workload.<field>`` axes are applied to."""

    spec: SweepSpec
    file: str
    name: str
    bases: dict[str, BaseConfig]
    workloads: dict[str, Workload]
    documents: dict[str, tuple[dict[str, Any], Path]]
    constraints: tuple[Constraint, ...]
    output: Path
    #: a quantized model's workload (a ``quantized`` section) by name: its own weight codes, int32 biases and
    #: activation parameters, read and checked once at load (``accelsim.onnx.quantized_file.read_quantized``)
    quantized: dict[str, QuantizedImport] = field(default_factory=dict)
    #: workloads built with ``workload.<field>`` axes, by (name, the fields' canonical JSON): built and
    #: validated once, however many points and schemes use them
    _built: dict[tuple[str, str], Workload] = field(default_factory=dict, compare=False, repr=False)

    def base(self, overrides: Mapping[str, Any]) -> BaseConfig:
        """The config a point with ``overrides`` starts from."""
        return self.bases[overrides.get(HARDWARE_AXIS, "")]

    def hardware(self, overrides: Mapping[str, Any]) -> HardwareConfig:
        """The point's base config with its hardware field axes (path -> value) applied, validated."""
        base = self.base(overrides)
        doc = copy.deepcopy(base.doc)
        for path, value in overrides.items():
            if _is_hardware_field(path):
                _with_value(doc, path, value)
        return validate(HardwareConfig, doc, base.file)

    def workload(self, name: str, overrides: Mapping[str, Any]) -> Workload:
        """Workload ``name`` with the point's ``workload.<field>`` axes applied (the loaded one when it has none)."""
        fields = {
            p.removeprefix(WORKLOAD_AXIS_PREFIX): v for p, v in overrides.items() if p.startswith(WORKLOAD_AXIS_PREFIX)
        }
        loaded = self.workloads[name]
        if not fields:
            return loaded
        key = (name, canonical_json(fields))
        built = self._built.get(key)
        if built is None:
            doc, file = self.documents[name]
            built = self._built[key] = workload_from(copy.deepcopy({**doc, **fields}), file)
        if built._weights_bytes is None:  # the bytes the point ids' weights_sha256 hashed, not read again
            built._weights_bytes = loaded._weights_bytes
        return built

    def invalid_workload(self, overrides: Mapping[str, Any]) -> tuple[str, AccelsimError] | None:
        """The first workload that ``overrides``' ``workload.<field>`` axes make invalid, with its error (None:
        every one is valid). The check of one axis value at load and of each combination of them word it each
        their way, at their own place in the spec."""
        for name in self.workloads:
            try:
                self.workload(name, overrides)
            except AccelsimError as exc:
                return name, exc
        return None

    @staticmethod
    def weights(overrides: Mapping[str, Any]) -> str:
        """The point's weight format (the ``weights`` axis; ``symmetric`` int8 without one)."""
        return str(overrides.get(WEIGHTS_AXIS, WeightFormatName.SYMMETRIC))

    def admits(self, hw: HardwareConfig) -> bool:
        """Whether every constraint holds for ``hw`` (the spec's constraints parsed at load)."""
        for i, constraint in enumerate(self.constraints):
            try:
                if not constraint.holds(hw):
                    return False
            except ConstraintError as exc:
                raise AccelsimError(str(exc), file=self.file, path=format_path(("constraints", i))) from None
        return True


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


def _base(entry: str, spec_dir: Path, file: str, loc: tuple[str | int, ...]) -> BaseConfig:
    path = _find(entry, spec_dir, "hardware", file, loc)
    doc = read_yaml_mapping(path)
    validate(HardwareConfig, doc, str(path))
    return BaseConfig(str(path), doc)


def _bases(spec: SweepSpec, spec_dir: Path, file: str) -> dict[str, BaseConfig]:
    if spec.base is not None:
        return {"": _base(spec.base, spec_dir, file, ("base",))}
    bases = {}
    for i, entry in enumerate(spec.axes[HARDWARE_AXIS]):
        if not isinstance(entry, str) or not entry:
            raise AccelsimError(
                f"{entry!r} is not a hardware config",
                file=file,
                path=format_path(("axes", HARDWARE_AXIS, i)),
                allowed="a hardware config's path or a shipped config's name",
            )
        bases[entry] = _base(entry, spec_dir, file, ("axes", HARDWARE_AXIS, i))
    return bases


def _check_value(sweep: Sweep, axis: str, i: int, value: Any) -> None:
    """One axis value applied alone to every base config, or to every workload: valid, or an error at ``axes.<axis>[i]``."""
    loc = format_path(("axes", axis, i))
    if axis == WEIGHTS_AXIS:
        if not isinstance(value, str) or value not in {str(w) for w in WeightFormatName}:
            raise AccelsimError(
                f"{value!r} is not a weight format",
                file=sweep.file,
                path=loc,
                allowed=[str(w) for w in WeightFormatName],
            )
        return
    if axis.startswith(WORKLOAD_AXIS_PREFIX):
        if (invalid := sweep.invalid_workload({axis: value})) is not None:
            name, exc = invalid
            field = f"{exc.path}: " if exc.path else ""
            raise AccelsimError(
                f"workload {name} ({sweep.documents[name][1].name}): {field}{exc.message}",
                file=sweep.file,
                path=loc,
                allowed=exc.allowed,
            )
        return
    for label in sweep.bases:
        try:
            sweep.hardware({HARDWARE_AXIS: label, axis: value} if label else {axis: value})
        except AccelsimError as exc:
            field = f"in {Path(sweep.bases[label].file).name}, {exc.path}: " if exc.path and exc.path != axis else ""
            raise AccelsimError(f"{field}{exc.message}", file=sweep.file, path=loc, allowed=exc.allowed) from None


def _workload_document(entry: str | WorkloadEntry, spec_dir: Path, file: str, i: int) -> tuple[Path, dict[str, Any]]:
    """The file of workload entry ``i`` and its document with the entry's ``set`` applied (as ``--set-workload``)."""
    name = entry if isinstance(entry, str) else entry.workload
    where: tuple[str | int, ...] = ("workloads", i) if isinstance(entry, str) else ("workloads", i, "workload")
    workload_file = _find(name, spec_dir, "workload", file, where)
    doc = read_yaml_mapping(workload_file)
    if isinstance(entry, WorkloadEntry):
        for path, value in entry.set.items():
            try:
                set_path(doc, path, copy.deepcopy(value), str(workload_file), option="")
            except AccelsimError as exc:
                raise AccelsimError(
                    exc.message,
                    file=file,
                    path=format_path(("workloads", i, "set", path)),
                    allowed=exc.allowed,
                ) from None
    return workload_file, doc


def _quantized(workload: Workload, spec: SweepSpec, file: str, i: int) -> QuantizedImport:
    """A quantized model's own quantization (its weights file's codes and parameters, checked against the
    workload). Its weight codes are its weight format, so a ``weights`` axis has nothing to vary for it."""
    assert workload.quantized is not None  # the caller's test
    if WEIGHTS_AXIS in spec.axes:
        raise AccelsimError(
            f"workload {workload.name!r} is a quantized model: its weight codes are its format "
            f"({workload.quantized.weights}), which a weights axis cannot change",
            file=file,
            path=format_path(("workloads", i)),
            allowed="a weights axis over workloads without a quantized section",
        )
    from accelsim.onnx.quantized_file import read_quantized  # onnx: only for a quantized model's sweep

    return read_quantized(workload)


def load_sweep(path: str | Path) -> Sweep:
    """Load and check a sweep spec: its base configs, every axis value against them or the workloads, workloads,
    constraints."""
    file = str(path)
    spec = validate(SweepSpec, read_yaml_mapping(path), file)
    spec_dir = Path(path).parent
    bases = _bases(spec, spec_dir, file)
    name = spec.name or Path(path).stem
    workloads: dict[str, Workload] = {}
    documents: dict[str, tuple[dict[str, Any], Path]] = {}
    quantized: dict[str, QuantizedImport] = {}
    for i, entry in enumerate(spec.workloads):
        workload_file, doc = _workload_document(entry, spec_dir, file, i)
        try:
            workload = workload_from(copy.deepcopy(doc), workload_file)
        except AccelsimError as exc:
            if isinstance(entry, str):
                raise
            raise AccelsimError(
                f"{workload_file.name} with its set: {exc.path + ': ' if exc.path else ''}{exc.message}",
                file=file,
                path=format_path(("workloads", i, "set")),
                allowed=exc.allowed,
            ) from None
        if workload.name in workloads:
            raise AccelsimError(
                f"workload name {workload.name!r} is used by two entries", file=file, path=format_path(("workloads", i))
            )
        if workload.quantized is not None:  # its points run the model's own codes and parameters
            quantized[workload.name] = _quantized(workload, spec, file, i)
        workloads[workload.name] = workload
        documents[workload.name] = (doc, workload_file)
    sweep = Sweep(
        spec,
        file,
        name,
        bases,
        workloads,
        documents,
        tuple(Constraint.parse(text) for text in spec.constraints),
        Path(spec.output) if spec.output else SWEEP_OUTPUT_ROOT / name,
        quantized,
    )
    for axis, values in spec.axes.items():
        if axis == HARDWARE_AXIS:
            continue
        _check_axis_path(axis, file)
        for i, value in enumerate(values):
            _check_value(sweep, axis, i, value)
    return sweep
