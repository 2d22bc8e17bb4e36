"""Validated models of hardware and workloads, loaded from YAML (DESIGN.md sections 1, 3, 7)."""

from accelsim.lazy_exports import lazy_exports

# Each public name's module, imported on first use: `accelsim --help` must not pay for pydantic and the models.
_HOME = {
    "DEFAULT_HARDWARE": "loader",
    "load_hardware": "loader",
    "load_workload": "loader",
    "HardwareConfig": "hardware",
    "load_any": "any_config",
    "GEMM_LAYERS": "workload",
    "LayerShapes": "workload",
    "Workload": "workload",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)


__all__ = [
    "DEFAULT_HARDWARE",
    "GEMM_LAYERS",
    "HardwareConfig",
    "LayerShapes",
    "Workload",
    "load_any",
    "load_hardware",
    "load_workload",
]
