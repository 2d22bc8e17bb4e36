"""Loading hardware and workload files: YAML -> overrides -> validated model, errors naming the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from accelsim.config.overrides import apply_overrides
from accelsim.config.validation import validate
from accelsim.config.yaml_source import read_yaml_mapping
from accelsim.errors import AccelsimError

if TYPE_CHECKING:  # each loader imports its model when called: loading a workload builds no hardware model
    from pydantic import BaseModel

    from accelsim.config.hardware import HardwareConfig
    from accelsim.config.workload import Workload

M = TypeVar("M", bound="BaseModel")

#: The checkout's shipped configs: ``--hw gemmini`` finds ``hwconfigs/gemmini.yaml`` from any folder.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"hardware": PROJECT_ROOT / "hwconfigs", "workload": PROJECT_ROOT / "workloads"}
DEFAULT_HARDWARE = SHIPPED["hardware"] / "default.yaml"


def resolve(name: str | Path, kind: str) -> Path:
    """A path as given if it exists, else the shipped file of that name (``gemmini`` -> hwconfigs/gemmini.yaml)."""
    path = Path(name)
    if path.exists():
        return path
    shipped = SHIPPED[kind] / f"{path.stem}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    choices = sorted(p.stem for p in SHIPPED[kind].glob("*.yaml"))
    raise AccelsimError("file not found", file=str(name), allowed=f"a path, or a shipped {kind}: {', '.join(choices)}")


def validate_doc(model: type[M], doc: dict[str, Any], overrides: Sequence[str], file: str) -> M:
    """Apply ``overrides`` to a loaded document and validate it as ``model``, errors naming ``file``."""
    return validate(model, apply_overrides(doc, overrides, file), file)


def _load(model: type[M], path: str | Path, overrides: Sequence[str], kind: str) -> M:
    file = resolve(path, kind)
    return validate_doc(model, read_yaml_mapping(file), overrides, str(file))


def load_hardware(path: str | Path | None = None, overrides: Sequence[str] = ()) -> HardwareConfig:
    """Load a hardware config (the shipped default when ``path`` is None)."""
    from accelsim.config.hardware import HardwareConfig

    return _load(HardwareConfig, path if path is not None else DEFAULT_HARDWARE, overrides, "hardware")


def load_workload(path: str | Path, overrides: Sequence[str] = ()) -> Workload:
    """Load a workload and infer its shapes."""
    from accelsim.config.workload import Workload

    return _load(Workload, path, overrides, "workload")
