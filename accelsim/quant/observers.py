"""Calibration observers for static quantization: they watch float activations, then choose QParams.

The three users expect from PyTorch / ORT / TensorRT: running min-max, moving-average min-max
(PyTorch's ``MovingAverageMinMaxObserver``, robust to one outlier batch, in PyTorch's float32
arithmetic) and percentile (clips the tails; ORT/TensorRT "percentile" calibration). All are per
tensor, as static activations are.

Parameters from the calibrated range follow one of two rules (``Observer.qparams(rule=...)``):
``onnxruntime`` (default, :func:`accelsim.quant.qparams.affine_qparams` / ``symmetric_qparams``) or
``pytorch``, the observers' own ``_calculate_qparams`` (:func:`pytorch_observer_qparams`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from accelsim.kernels.quantize import tensor_minmax
from accelsim.quant.qparams import QParams, affine_qparams, dtype_range, symmetric_qparams

_F32_EPS = np.finfo(np.float32).eps  # torch.finfo(torch.float32).eps: the observers' smallest scale


def pytorch_observer_qparams(lo: float, hi: float, *, dtype: str = "uint8", symmetric: bool = False) -> QParams:
    """``torch.ao.quantization`` observers' ``_calculate_qparams`` for a per-tensor range, float32 as
    torch computes it, the default (not reduced, not customized) quant range of ``dtype``.

    Affine: ``scale = max((max - min) / (qmax - qmin), eps)``, ``zp = clamp(qmin - round(min / scale))``
    with ``torch.round`` (half to even) applied to ``min / scale`` before ``qmin`` is added (the ORT
    rule rounds ``qmin - min / scale``, one float32 rounding more). Symmetric:
    ``scale = max(max|x| / ((qmax - qmin) / 2), eps)`` (127.5 for 8 bits, not 127), zero point 128
    for uint8 and 0 for int8.
    """
    qmin, qmax = dtype_range(dtype)
    f32 = np.float32
    lo_neg, hi_pos = min(f32(lo), f32(0)), max(f32(hi), f32(0))
    if symmetric:
        scale = max(f32(max(-lo_neg, hi_pos) / f32((qmax - qmin) / 2)), _F32_EPS)
        return QParams(scale, 128 if dtype == "uint8" else 0, dtype)
    scale = max(f32((hi_pos - lo_neg) / f32(qmax - qmin)), _F32_EPS)
    zp = qmin - int(np.rint(f32(lo_neg / scale)))
    return QParams(scale, min(max(zp, qmin), qmax), dtype)


class Observer(ABC):
    """Accumulates statistics over calibration batches and turns them into parameters."""

    @abstractmethod
    def observe(self, x: np.ndarray) -> None:
        """Record one calibration batch."""

    @abstractmethod
    def range(self) -> tuple[float, float]:
        """The calibrated ``(min, max)``."""

    def qparams(self, *, dtype: str = "int8", symmetric: bool = False, rule: str = "onnxruntime") -> QParams:
        """Affine (default) or symmetric per-tensor parameters covering the calibrated range, by the
        ``onnxruntime`` quantization tool's rule or the ``pytorch`` observers' one."""
        lo, hi = self.range()
        if rule == "pytorch":
            return pytorch_observer_qparams(lo, hi, dtype=dtype, symmetric=symmetric)
        if rule != "onnxruntime":
            raise ValueError(f"unknown parameter rule {rule!r}; allowed: onnxruntime, pytorch")
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
    """Exponential moving average of per-batch min and max (first batch taken as is).

    PyTorch's arithmetic: its running min/max are float32 tensors and the constant a Python float
    that the scalar multiply rounds to float32, so ``old + float32(c) * (new - old)`` is three
    float32 roundings (the same formula in double differs from torch in the last bit on about one
    update in four).
    """

    def __init__(self, averaging_constant: float = 0.01) -> None:
        self.averaging_constant = averaging_constant
        self._range: tuple[np.float32, np.float32] | None = None

    def observe(self, x: np.ndarray) -> None:
        lo, hi = (np.float32(v) for v in tensor_minmax(x))
        if self._range is None:
            self._range = (lo, hi)
            return
        c = np.float32(self.averaging_constant)
        old_lo, old_hi = self._range
        self._range = (old_lo + c * (lo - old_lo), old_hi + c * (hi - old_hi))

    def range(self) -> tuple[float, float]:
        if self._range is None:
            raise ValueError("observer has seen no data")
        return float(self._range[0]), float(self._range[1])


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
