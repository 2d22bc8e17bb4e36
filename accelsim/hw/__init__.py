"""Timing of each hardware unit: systolic array per dataflow, requant and vector units, DRAM.

Pure functions of plain numbers (no configs, no values): the lowering prices tiles with them and the
SimPy engine turns them into events. Formulas and their derivation: ``docs/timing.md``.
"""

from typing import TYPE_CHECKING

from accelsim.hw.dram import DramChannel
from accelsim.hw.lane_unit import LanePipeline, RequantUnit, VectorUnit
from accelsim.hw.roofline import RooflineBound, roofline_bound
from accelsim.hw.scalesim_conv import scalesim_conv_gemm
from accelsim.hw.systolic_array import (
    ARRAY_MODELS,
    DATAFLOWS,
    ArrayModel,
    Dataflow,
    GemmMapping,
    SystolicArray,
)
from accelsim.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from accelsim.hw.array_timing import ArrayTiming

__getattr__, __dir__ = lazy_exports(__name__, {"ArrayTiming": "array_timing"})  # built by SystolicArray.gemm only

__all__ = [
    "ARRAY_MODELS",
    "DATAFLOWS",
    "ArrayModel",
    "ArrayTiming",
    "Dataflow",
    "DramChannel",
    "GemmMapping",
    "LanePipeline",
    "RequantUnit",
    "RooflineBound",
    "SystolicArray",
    "VectorUnit",
    "roofline_bound",
    "scalesim_conv_gemm",
]
