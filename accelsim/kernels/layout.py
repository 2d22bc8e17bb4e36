"""Channel views: every per-channel kernel sees a tensor as ``[outer, channels, inner]``.

One 3-D layout lets a single compiled kernel serve per-tensor (channels == 1), per-channel on any
axis (NCHW conv outputs: axis 1; GEMM outputs: last axis) and per-row (axis 0) parameters.
"""

from __future__ import annotations

import numpy as np


def channel_view(x: np.ndarray, axis: int | None) -> np.ndarray:
    """Reshape ``x`` (C-contiguous copy if needed) to ``[outer, x.shape[axis], inner]``; axis None -> one channel."""
    x = np.ascontiguousarray(x)
    if axis is None:
        return x.reshape(1, 1, -1)
    axis = axis % x.ndim
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    return x.reshape(outer, x.shape[axis], inner)


def channel_params(values: np.ndarray | float | int, channels: int, dtype: type) -> np.ndarray:
    """Broadcast a scalar or per-channel parameter to a contiguous 1-D array of ``channels`` entries."""
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.size == 1:
        return np.full(channels, arr[0], dtype=dtype)
    if arr.size != channels:
        raise ValueError(f"expected 1 or {channels} per-channel values, got {arr.size}")
    return np.ascontiguousarray(arr)
