"""Loading hardware and workload files: YAML -> overrides -> validated model, errors naming the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, TypeVar

from accelsim.config.overrides import apply_overrides
from accelsim.config.validation import validate
from accelsim.config.yaml_source import read_yaml_mapping
from accelsim.errors import AccelsimError
from accelsim.file_checks import MAX_ARRAY_BYTES, read_user_file

if TYPE_CHECKING:  # each loader imports its model when called: loading a workload builds no hardware model
    from pydantic import BaseModel

    from accelsim.config.hardware import HardwareConfig
    from accelsim.config.workload import WeightsBytes, Workload

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
    """Load a workload and infer its shapes; its ``weights_file`` resolved against the file's folder
    (``Workload.weights_path``), so every run of it (``simulate``, sweeps) reads those weights."""
    file = resolve(path, "workload")
    return workload_from(apply_overrides(read_yaml_mapping(file), overrides, str(file)), file)


def workload_from(doc: dict[str, Any], file: Path) -> Workload:
    """Validate a workload document read from ``file`` (errors name the file), its ``weights_file`` resolved
    against the file's folder."""
    from accelsim.config.workload import Workload

    workload = validate(Workload, doc, str(file))
    if workload.weights_file:
        workload._weights_path = weights_beside(file, workload.weights_file)
    return workload


def weights_beside(yaml_file: Path, name: str) -> Path:
    """A workload's ``weights_file``, which must name a file in the workload's own folder (or below it): a
    workload someone sends cannot make the simulator read ``/etc/...`` or climb out with ``..``."""
    relative = PurePath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise AccelsimError(
            f"{name!r} leaves the workload's folder",
            file=str(yaml_file),
            path="weights_file",
            allowed="a path relative to the workload file, without ..",
        )
    return yaml_file.parent / relative


def read_weights(workload: Workload) -> WeightsBytes | None:
    """A loaded workload's ``weights_file`` (None without one), read through the same bounded reader as every
    user file on the first call and kept with the workload: every later use (the results folder's check, the
    values, the saved ``weights_sha256``) sees those bytes, not whatever the file holds by then."""
    path = workload.weights_path
    if path is None:
        return None
    kept = workload._weights_bytes
    if kept is None or kept.path != path:
        import hashlib  # here: loading OpenSSL's hashes is a millisecond `validate` does not need

        from accelsim.config.workload import WeightsBytes  # loaded already: ``workload`` is one

        data = read_user_file(path, MAX_ARRAY_BYTES, expected="a .npy or .npz file", field="weights_file")
        kept = workload._weights_bytes = WeightsBytes(path, data, hashlib.sha256(data).hexdigest())
    return kept


def weights_digest(workload: Workload) -> str:
    """The sha256 of a loaded workload's ``weights_file`` bytes ("" without one; :func:`read_weights`, so the
    bytes the values use): part of a sweep point's id and of a results folder's configuration, since the
    workload's text names the file but says nothing of what it holds, and results computed with other
    weights must be neither reused nor merged."""
    kept = read_weights(workload)
    return "" if kept is None else kept.sha256
