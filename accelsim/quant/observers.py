"""Calibration observers for static quantization: they watch float activations, then choose QParams.

The three users expect from PyTorch / ORT / TensorRT: running min-max, moving-average min-max
(PyTorch's ``MovingAverageMinMaxObserver``, robust to one outlier batch) and percentile
(clips the tails; ORT/TensorRT "percentile" calibration). All are per tensor, as static
activations are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from accelsim.kernels.quantize import tensor_minmax
from accelsim.quant.qparams import QParams, affine_qparams, symmetric_qparams


class Observer(ABC):
    """Accumulates statistics over calibration batches and turns them into parameters."""

    @abstractmethod
    def observe(self, x: np.ndarray) -> None:
        """Record one calibration batch."""

    @abstractmethod
    def range(self) -> tuple[float, float]:
        """The calibrated ``(min, max)``."""

    def qparams(self, *, dtype: str = "int8", symmetric: bool = False) -> QParams:
        """Affine (default) or symmetric per-tensor parameters covering the calibrated range."""
        lo, hi = self.range()
        if symmetric:
            return symmetric_qparams(max(abs(lo), abs(hi)), dtype=dtype, narrow_range=False)
        return affine_qparams(lo, hi, dtype=dtype)


class MinMaxObserver(Observer):
    """Smallest and largest value ever seen."""

    def __init__(self) -> None:
        self._lo = np.inf
        self._hi = -np.inf

    def observe(self, x: np.ndarray) -> None:
        lo, hi = tensor_minmax(x)
        self._lo, self._hi = min(self._lo, lo), max(self._hi, hi)

    def range(self) -> tuple[float, float]:
        if self._lo > self._hi:
            raise ValueError("observer has seen no data")
        return float(self._lo), float(self._hi)


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of per-batch min and max (first batch taken as is)."""

    def __init__(self, averaging_constant: float = 0.01) -> None:
        self.averaging_constant = averaging_constant
        self._range: tuple[float, float] | None = None

    def observe(self, x: np.ndarray) -> None:
        lo, hi = tensor_minmax(x)
        if self._range is None:
            self._range = (lo, hi)
            return
        c = self.averaging_constant
        old_lo, old_hi = self._range
        self._range = (old_lo + c * (lo - old_lo), old_hi + c * (hi - old_hi))

    def range(self) -> tuple[float, float]:
        if self._range is None:
            raise ValueError("observer has seen no data")
        return self._range


class PercentileObserver(Observer):
    """Lower/upper percentile of all values seen, from a histogram (resolution: range / bins).

    The histogram's range grows to cover new batches; old counts are re-binned at their bin centres,
    which keeps memory bounded for large calibration sets.
    """

    def __init__(self, percentile: float = 99.99, bins: int = 2048) -> None:
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile
        self.bins = bins
        self._counts = np.zeros(bins, dtype=np.float64)
        self._edges: np.ndarray | None = None

    def observe(self, x: np.ndarray) -> None:
        lo, hi = tensor_minmax(x)
        if self._edges is None:
            self._edges = np.linspace(lo, hi if hi > lo else lo + 1.0, self.bins + 1)
        elif lo < self._edges[0] or hi > self._edges[-1]:
            centres = 0.5 * (self._edges[:-1] + self._edges[1:])
            new_edges = np.linspace(min(lo, self._edges[0]), max(hi, self._edges[-1]), self.bins + 1)
            self._counts, _ = np.histogram(centres, bins=new_edges, weights=self._counts)
            self._edges = new_edges
        counts, _ = np.histogram(np.asarray(x, dtype=np.float32), bins=self._edges)
        self._counts += counts

    def range(self) -> tuple[float, float]:
        if self._edges is None:
            raise ValueError("observer has seen no data")
        cdf = np.concatenate([[0.0], np.cumsum(self._counts) / self._counts.sum()])
        tail = 1.0 - self.percentile / 100.0
        return float(np.interp(tail, cdf, self._edges)), float(np.interp(1.0 - tail, cdf, self._edges))


OBSERVERS: dict[str, type[Observer]] = {
    "minmax": MinMaxObserver,
    "moving_average_minmax": MovingAverageMinMaxObserver,
    "percentile": PercentileObserver,
}
