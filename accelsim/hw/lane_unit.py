"""Throughput/latency timing of the post-processing units that sit beside the array.

Both the requant unit (int32 accumulators -> int8 outputs) and the vector unit (fp32 range reduction,
quantize, dequantize, activations) are pipelines of ``lanes`` parallel lanes: ``lanes`` elements enter
per cycle and each leaves ``latency_cycles`` later, so a batch of ``n`` elements takes
``latency_cycles + ceil(n / lanes)`` cycles (0 for an empty batch: nothing is issued).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil


@dataclass(frozen=True)
class LanePipeline:
    """``lanes`` elements per cycle through a pipeline ``latency_cycles`` deep."""

    lanes: int
    latency_cycles: int

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {self.lanes}")
        if self.latency_cycles < 0:
            raise ValueError(f"latency_cycles must be non-negative, got {self.latency_cycles}")

    def cycles(self, n_elements: int) -> int:
        """Cycles from the first element in to the last element out."""
        if n_elements < 0:
            raise ValueError(f"element count must be non-negative, got {n_elements}")
        if n_elements == 0:
            return 0
        return self.latency_cycles + ceil(n_elements / self.lanes)


class RequantUnit(LanePipeline):
    """Requantizes ``lanes`` int32 accumulators to int8 outputs per cycle (DESIGN section 4)."""


class VectorUnit(LanePipeline):
    """Processes ``lanes`` fp32 elements per cycle: range reduction, (de)quantize, activations."""
