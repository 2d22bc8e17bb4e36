"""Validated models of hardware and workloads, loaded from YAML (DESIGN.md sections 1, 3, 7)."""

from accelsim.config.errors import AccelsimError
from accelsim.config.hardware import HardwareConfig
from accelsim.config.any_config import load_any
from accelsim.config.loader import DEFAULT_HARDWARE, load_hardware, load_workload
from accelsim.config.workload import GEMM_LAYERS, LayerShapes, Workload

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
