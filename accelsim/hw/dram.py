"""Transfer timing of the off-chip DRAM channel(s).

With one outstanding transfer per channel (``outstanding = 1``) a DMA transfer holds one channel for
``latency_cycles + ceil(bytes / bandwidth_bytes_per_cycle)`` cycles (DESIGN section 5). With more, a channel
keeps that many requests in flight: each pays its latency while the others stream, and the transfers streaming
share the channels' bandwidth (the engine's ``_SharedDram``, docs/engine.md). ``bandwidth_bytes_per_cycle`` is
per channel, so ``channels`` channels give ``channels`` times the peak. Bandwidth may be fractional (GB/s
converted by the clock); it is held as an exact fraction of its decimal form so ``128 / 12.8`` is 10 cycles,
not 11 by float round-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from math import ceil


def exact_rate(value: float) -> Fraction:
    """A positive rate as the exact fraction its decimal representation reads."""
    rate = Fraction(str(value))
    if rate <= 0:
        raise ValueError(f"bandwidth must be positive, got {value}")
    return rate


@dataclass(frozen=True)
class DramChannel:
    """``channels`` identical DRAM channels, each ``bandwidth_bytes_per_cycle`` wide, each with up to
    ``outstanding`` transfers in flight."""

    bandwidth_bytes_per_cycle: float
    latency_cycles: int
    channels: int = 1
    outstanding: int = 1

    def __post_init__(self) -> None:
        self.rate  # noqa: B018 (validates the bandwidth)
        if self.latency_cycles < 0:
            raise ValueError(f"latency_cycles must be non-negative, got {self.latency_cycles}")
        if self.channels < 1:
            raise ValueError(f"channels must be at least 1, got {self.channels}")
        if self.outstanding < 1:
            raise ValueError(f"outstanding transfers must be at least 1, got {self.outstanding}")

    @cached_property
    def rate(self) -> Fraction:
        """One channel's bandwidth as an exact fraction (built once: a Fraction from a string is slow)."""
        return exact_rate(self.bandwidth_bytes_per_cycle)

    @cached_property
    def peak_bandwidth_bytes_per_cycle(self) -> Fraction:
        """All channels streaming at once: the roofline's memory slope."""
        return self.rate * self.channels

    def transfer_cycles(self, n_bytes: int) -> int:
        """Cycles one DMA transfer of ``n_bytes`` takes alone on a channel (0 bytes: no transfer, 0 cycles)."""
        if n_bytes < 0:
            raise ValueError(f"byte count must be non-negative, got {n_bytes}")
        if n_bytes == 0:
            return 0
        return self.latency_cycles + ceil(n_bytes / self.rate)
