"""Analytical per-layer lower bound, reported beside every simulated figure as a sanity check.

A layer can finish no sooner than its array compute and no sooner than DRAM can stream its bytes at
peak bandwidth (latency ignored): ``bound = max(compute_cycles, ceil(dram_bytes / peak_bandwidth))``.
A simulated total below the bound is a bug; far above it means stalls the overlap did not hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from accelsim.hw.dram import DramChannel


@dataclass(frozen=True)
class RooflineBound:
    compute_cycles: int
    memory_cycles: int

    @property
    def bound_cycles(self) -> int:
        return max(self.compute_cycles, self.memory_cycles)

    @property
    def bound_by(self) -> str:
        """``"compute"`` or ``"memory"``, whichever sets the bound (compute on a tie)."""
        return "compute" if self.compute_cycles >= self.memory_cycles else "memory"


def roofline_bound(compute_cycles: int, dram_bytes: int, dram: DramChannel) -> RooflineBound:
    """Bound of a layer that computes for ``compute_cycles`` and moves ``dram_bytes`` over ``dram``."""
    if compute_cycles < 0 or dram_bytes < 0:
        raise ValueError(f"cycles and bytes must be non-negative, got {compute_cycles}, {dram_bytes}")
    return RooflineBound(compute_cycles, ceil(dram_bytes / dram.peak_bandwidth_bytes_per_cycle))
