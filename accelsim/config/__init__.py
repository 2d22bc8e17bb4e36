"""Validated models of hardware and workloads, loaded from YAML (DESIGN.md sections 1, 3, 7)."""

import importlib
from typing import Any

from accelsim.config.errors import AccelsimError

# Each public name's module, imported on first use: `accelsim` and the CLI import `accelsim.config.errors`,
# which runs this file, and `accelsim --help` must not pay for pydantic and the models.
_HOME = {
    "DEFAULT_HARDWARE": "loader", "load_hardware": "loader", "load_workload": "loader",
    "HardwareConfig": "hardware",
    "load_any": "any_config",
    "GEMM_LAYERS": "workload", "LayerShapes": "workload", "Workload": "workload",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "AccelsimError",
    "DEFAULT_HARDWARE",
    "GEMM_LAYERS",
    "HardwareConfig",
    "LayerShapes",
    "Workload",
    "load_any",
    "load_hardware",
    "load_workload",
]
