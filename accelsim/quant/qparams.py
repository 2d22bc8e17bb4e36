"""Quantization parameters: ``real = scale * (q - zero_point)``.

Symmetric parameters have zero point 0 (weights); affine ones carry a zero point so that the real 0
is exactly representable (activations). Granularity is a property of the shape of ``scale``:
one value (per tensor) or one per index of ``axis`` (per channel for weights, per row or per image
for dynamically quantized activations).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

DTYPE_RANGES: dict[str, tuple[int, int]] = {
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "int32": (-(1 << 31), (1 << 31) - 1),
}
NUMPY_DTYPES: dict[str, type] = {
    "int4": np.int8,
    "uint4": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
}


def dtype_range(dtype: str, *, narrow_range: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` of an integer dtype; narrow range drops the most negative code (-127..127)."""
    if dtype not in DTYPE_RANGES:
        raise ValueError(f"unknown quantized dtype {dtype!r}; allowed: {', '.join(DTYPE_RANGES)}")
    qmin, qmax = DTYPE_RANGES[dtype]
    return (qmin + 1 if narrow_range and qmin < 0 else qmin), qmax


@dataclass(frozen=True, init=False)
class QParams:
    """Scale(s), zero point(s), integer dtype and the axis the parameters vary along (None: per tensor).

    Built from scalars, lists or arrays; held as 1-D float32 scales and int32 zero points."""

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    axis: int | None = None
    narrow_range: bool = False

    def __init__(
        self, scale: ArrayLike, zero_point: ArrayLike, dtype: str, axis: int | None = None, narrow_range: bool = False
    ) -> None:
        object.__setattr__(self, "scale", np.atleast_1d(np.asarray(scale, dtype=np.float32)).reshape(-1))
        object.__setattr__(self, "zero_point", np.atleast_1d(np.asarray(zero_point, dtype=np.int32)).reshape(-1))
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "narrow_range", narrow_range)
        if self.scale.shape != self.zero_point.shape:
            raise ValueError(f"scale {self.scale.shape} and zero_point {self.zero_point.shape} differ in shape")
        if self.axis is None and self.scale.size != 1:
            raise ValueError("per-tensor QParams need exactly one scale")
        dtype_range(self.dtype)

    @property
    def qmin(self) -> int:
        return dtype_range(self.dtype, narrow_range=self.narrow_range)[0]

    @property
    def qmax(self) -> int:
        return dtype_range(self.dtype, narrow_range=self.narrow_range)[1]

    @property
    def granularity(self) -> str:
        return "per_tensor" if self.axis is None else "per_channel"

    @cached_property
    def symmetric(self) -> bool:
        """All zero points 0 (read for every layer of every run: computed once, the arrays are never changed)."""
        return bool(np.all(self.zero_point == 0))

    @property
    def numpy_dtype(self) -> type:
        return NUMPY_DTYPES[self.dtype]

    def as_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Flat arrays for an ``.npz`` (golden vectors)."""
        return {
            f"{prefix}_scale": self.scale,
            f"{prefix}_zero_point": self.zero_point,
            f"{prefix}_axis": np.array(-1 if self.axis is None else self.axis, dtype=np.int32),
            f"{prefix}_qmin": np.array(self.qmin, dtype=np.int32),
            f"{prefix}_qmax": np.array(self.qmax, dtype=np.int32),
        }


def _usable(scale: np.ndarray) -> np.ndarray:
    """float32 ``scale``, with 1 where it is 0 or subnormal (no finite ``1 / scale``): such a range holds
    only zeros at int8 resolution."""
    scale = np.asarray(scale, np.float32)
    return np.where(scale >= np.finfo(np.float32).tiny, scale, np.float32(1.0)).astype(np.float32)


def symmetric_qparams(
    absmax: np.ndarray | float, *, dtype: str = "int8", narrow_range: bool = True, axis: int | None = None
) -> QParams:
    """Zero point 0, ``scale = absmax / qmax`` in float32 (TFLite/ORT/PyTorch weight convention).

    An all-zero channel gets scale 1 so that no division by zero can occur downstream; so does a channel
    whose scale would be subnormal (pruned weights below ~1.5e-36, as in PP-OCRv4's recognizer): ``1 / scale``
    would overflow float32, and its weights quantize to 0 (within 1.5e-36 of their values).
    """
    _, qmax = dtype_range(dtype, narrow_range=narrow_range)
    absmax = np.asarray(absmax, dtype=np.float32).reshape(-1)
    scale = _usable(absmax / np.float32(qmax))
    return QParams(scale, np.zeros(scale.shape, np.int32), dtype, axis, narrow_range)


def affine_qparams(
    min_val: np.ndarray | float, max_val: np.ndarray | float, *, dtype: str = "int8", axis: int | None = None
) -> QParams:
    """Asymmetric parameters covering ``[min(min_val, 0), max(max_val, 0)]`` (scale 1 for an empty or
    subnormal range, as :func:`symmetric_qparams`).

    ``scale = (max - min) / (qmax - qmin)`` (float32) and ``zero_point = rint(qmin - min / scale)``
    clamped to the range: the ONNX Runtime quantization-tool rule; other frameworks nudge the zero
    point differently but the rule only has to be fixed, since the chosen parameters are passed to
    every reference verbatim.
    """
    qmin, qmax = dtype_range(dtype)
    lo = np.minimum(np.asarray(min_val, dtype=np.float32).reshape(-1), np.float32(0))
    hi = np.maximum(np.asarray(max_val, dtype=np.float32).reshape(-1), np.float32(0))
    scale = _usable((hi - lo) / np.float32(qmax - qmin))
    zp = np.clip(np.rint(np.float32(qmin) - lo / scale), qmin, qmax).astype(np.int32)
    return QParams(scale, zp, dtype, axis)


def weight_qparams(
    w: np.ndarray,
    *,
    granularity: str = "per_channel",
    axis: int = 0,
    dtype: str = "int8",
    narrow_range: bool = True,
    symmetric: bool = True,
) -> QParams:
    """Weight parameters per output channel (``axis``) or per tensor: symmetric (zero point 0), or
    affine over each channel's min-max (:func:`affine_qparams`, the ORT quantization tool's rule for
    ``WeightSymmetric=False`` / uint8 weights; ``narrow_range`` is then unused)."""
    if granularity not in ("per_tensor", "per_channel"):
        raise ValueError(f"weight granularity must be per_tensor or per_channel, got {granularity!r}")
    if granularity == "per_tensor":
        if symmetric:
            return symmetric_qparams(np.abs(w).max(initial=0.0), dtype=dtype, narrow_range=narrow_range)
        return affine_qparams(w.min(initial=0.0), w.max(initial=0.0), dtype=dtype)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    if symmetric:
        return symmetric_qparams(
            np.abs(moved).max(axis=1, initial=0.0), dtype=dtype, narrow_range=narrow_range, axis=axis
        )
    return affine_qparams(moved.min(axis=1, initial=0.0), moved.max(axis=1, initial=0.0), dtype=dtype, axis=axis)
