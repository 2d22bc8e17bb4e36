"""Files of any kind: tell a workload, a hardware config and a sweep spec apart by their top-level keys.

For ``accelsim validate`` and ``accelsim show``, which take whatever they are given. It sits above both
the loader and the sweep spec (which builds on the loader), so neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelsim.config.loader import resolve, validate_doc
from accelsim.config.yaml_source import read_yaml_mapping
from accelsim.errors import AccelsimError


def _shipped(name: str | Path) -> Path:
    """``name`` as given if it exists, else the shipped hardware config or workload of that name."""
    if Path(name).exists():
        return Path(name)
    for kind in ("hardware", "workload"):
        try:
            return resolve(name, kind)
        except AccelsimError:
            continue
    return Path(name)  # read_yaml_mapping reports the missing file


def kind_of(doc: dict[str, Any], file: str) -> str:
    """Tell a workload from a hardware config by its top-level keys."""
    if "layers" in doc:
        return "workload"
    if "array" in doc:
        return "hardware"
    if "axes" in doc:
        return "sweep"
    raise AccelsimError(
        "cannot tell what this file describes",
        file=file,
        allowed="a workload (with 'layers'), a hardware config (with 'array') or a sweep spec (with 'axes')",
    )


def load_any(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Load a workload, hardware config or sweep spec, whichever the file is (``validate``, ``show``)."""
    path = _shipped(path)
    file = str(path)
    doc = read_yaml_mapping(path)
    kind = kind_of(doc, file)
    if kind == "sweep":
        if overrides:
            raise AccelsimError("--set applies to hardware and workload files, not sweep specs", file=file)
        from accelsim.config.sweep import load_sweep  # each kind imports its own models only

        return load_sweep(path)
    if kind == "workload":
        from accelsim.config.workload import Workload

        return validate_doc(Workload, doc, overrides, file)
    from accelsim.config.hardware import HardwareConfig

    return validate_doc(HardwareConfig, doc, overrides, file)
