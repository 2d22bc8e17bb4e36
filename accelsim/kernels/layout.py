"""Channel views: every per-channel kernel sees a tensor as ``[outer, channels, inner]``.

One 3-D layout lets a single compiled kernel serve per-tensor (channels == 1), per-channel on any
axis (NCHW conv outputs: axis 1; GEMM outputs: last axis) and per-row (axis 0) parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def elementwise_view(x: np.ndarray, axis: int | None) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """``[outer, channels, inner]`` view of ``x`` taken in its memory order, and the function giving a
    result of the view's shape ``x``'s shape.

    For kernels that treat every element alike but for its channel, which elements share an outer
    index does not matter, so an axis permutation of a contiguous array (the NCHW view of a conv's
    channels-last output) is read in place instead of copied; the result keeps that memory order.
    (Plain tuples and ``math.prod``: this runs for every tensor of a network, where numpy's per-call
    overhead showed.)
    """
    order: list[int] | None = None
    moved = x
    if not x.flags.c_contiguous:
        order = sorted(range(x.ndim), key=lambda d: -x.strides[d])
        moved = x.transpose(order)
        if not moved.flags.c_contiguous:
            order, moved = None, np.ascontiguousarray(x)
    if order is None:
        shape = x.shape

        def restore(out: np.ndarray) -> np.ndarray:
            return out.reshape(shape)
    else:
        inverse = [order.index(d) for d in range(x.ndim)]

        def restore(out: np.ndarray) -> np.ndarray:
            return out.reshape(moved.shape).transpose(inverse)

    if axis is None:
        return moved.reshape(1, 1, -1), restore
    axis %= x.ndim
    pos = axis if order is None else order.index(axis)
    return moved.reshape(math.prod(moved.shape[:pos]), moved.shape[pos], -1), restore


def channel_params(values: np.ndarray | float, channels: int, dtype: type) -> np.ndarray:
    """Broadcast a scalar or per-channel parameter to a contiguous 1-D array of ``channels`` entries."""
    arr: np.ndarray = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.size == 1:
        return np.full(channels, arr[0], dtype=dtype)
    if arr.size != channels:
        raise ValueError(f"expected 1 or {channels} per-channel values, got {arr.size}")
    return np.ascontiguousarray(arr)


def value_range(x: np.ndarray) -> tuple[int, int]:
    """Smallest and largest value of a non-empty integer tensor, read in its memory order (numpy's SIMD
    reductions are fast on contiguous memory and slow on a transposed view)."""
    flat = elementwise_view(x, None)[0].reshape(-1)
    return int(flat.min()), int(flat.max())
