"""Transposed 2-D convolution as the array runs it: one GEMM per group, then col2im (docs/lowering.md).

Layouts: input NCHW, weights ``[O, C/groups, kh, kw]`` (conv2d's, so per-channel parameters index axis 0).
Each input pixel is a GEMM row ``X[N*H*W, C/g]``; the weight operand is ``W[C/g, (o, ky, kx)]``, so a row
of the product holds the pixel's whole kernel-sized patch of every output channel. col2im adds the value
of column ``(o, ky, kx)`` of pixel ``(iy, ix)`` into output ``(o, iy*sh - top + ky*dh, ix*sw - left +
kx*dw)`` and drops it where that lies in the cropped padding. Integer partial sums add exactly (in int64),
then the layer's accumulator range applies to each output's total; float partial sums add in float32 in
pixel order, as ONNX Runtime's col2im does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from accelsim.kernels.gemm import AccumulatorResult, accumulator_range, float_gemm, int_gemm


@dataclass(frozen=True)
class ConvTransposeGeometry:
    """Stride, padding (top, left, bottom, right: cropped from the full output), output padding (added at
    the bottom / right), dilation and groups of one conv_transpose2d."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def output_size(self, height: int, width: int, kh: int, kw: int) -> tuple[int, int]:
        """Output height and width (ONNX ConvTranspose's formula, explicit pads)."""
        top, left, bottom, right = self.padding
        oh = (height - 1) * self.stride[0] + self.dilation[0] * (kh - 1) + 1 + self.output_padding[0] - top - bottom
        ow = (width - 1) * self.stride[1] + self.dilation[1] * (kw - 1) + 1 + self.output_padding[1] - left - right
        if oh <= 0 or ow <= 0:
            raise ValueError(f"conv_transpose2d output would be empty ({oh}x{ow})")
        return oh, ow


@njit(cache=True, nogil=True)
def _col2im(cols, out, kh, kw, sh, sw, dh, dw, top, left):  # pragma: no cover - compiled
    """``cols[n, iy, ix, o, ky, kx]`` added into ``out[n, o, oy, ox]`` in pixel order; cropped taps dropped."""
    n_dim, h, w, o_dim = cols.shape[0], cols.shape[1], cols.shape[2], cols.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for n in range(n_dim):
        for iy in range(h):
            for ix in range(w):
                for o in range(o_dim):
                    for ky in range(kh):
                        oy = iy * sh - top + ky * dh
                        if oy < 0 or oy >= oh:
                            continue
                        for kx in range(kw):
                            ox = ix * sw - left + kx * dw
                            if 0 <= ox < ow:
                                out[n, o, oy, ox] += cols[n, iy, ix, o, ky, kx]


def _pixels(x: np.ndarray, channels: slice) -> np.ndarray:
    """One group's input channels as GEMM rows ``[N*H*W, C/g]`` (channels-last)."""
    part = x[:, channels]
    return np.ascontiguousarray(part.transpose(0, 2, 3, 1)).reshape(-1, part.shape[1])


def _operand(w: np.ndarray, outputs: slice) -> np.ndarray:
    """One group's weights ``[O/g, C/g, kh, kw]`` as the GEMM operand ``[C/g, O/g * kh * kw]``."""
    part = w[outputs]
    return np.ascontiguousarray(part.transpose(1, 0, 2, 3)).reshape(part.shape[1], -1)


def _scatter(
    columns: np.ndarray,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    geometry: ConvTransposeGeometry,
    out: np.ndarray,
) -> None:
    """col2im of one group's GEMM product into its output channels ``out`` (``[N, O/g, Ho, Wo]``, added to)."""
    n_dim, _, h, w = x_shape
    og, _, kh, kw = w_shape
    cols = columns.reshape(n_dim, h, w, og, kh, kw)
    top, left = geometry.padding[:2]
    _col2im(cols, out, kh, kw, *geometry.stride, *geometry.dilation, top, left)


def _groups(x: np.ndarray, w: np.ndarray, groups: int) -> list[tuple[slice, slice]]:
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    return [(slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)) for g in range(groups)]


def float_conv_transpose2d(x: np.ndarray, w: np.ndarray, geometry: ConvTransposeGeometry) -> np.ndarray:
    """float32 conv_transpose2d (fp32 and weight-only schemes, calibration): GEMM per group, col2im, no bias."""
    x = x.astype(np.float32, copy=False)
    w = w.astype(np.float32, copy=False)
    kh, kw = w.shape[2:]
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), np.float32)
    for cs, os_ in _groups(x, w, geometry.groups):
        columns = float_gemm(_pixels(x, cs), _operand(w, os_))
        part = np.zeros((x.shape[0], os_.stop - os_.start, oh, ow), np.float32)
        _scatter(columns, x[:, cs].shape, w[os_].shape, geometry, part)
        out[:, os_] = part
    return out


def int_conv_transpose2d(
    xq: np.ndarray,
    wq: np.ndarray,
    geometry: ConvTransposeGeometry,
    *,
    x_zero_point: int = 0,
    w_zero_point: int | np.ndarray = 0,
    bias: np.ndarray | None = None,
    acc_bits: int = 32,
    overflow: str = "wrap",
) -> AccumulatorResult:
    """The array's integer conv_transpose2d: ``sum (x - z_x)(w - z_w[o])`` per GEMM column (the accumulator
    semantics of :func:`int_gemm`), columns added into their outputs exactly, the int32 ``bias`` once per
    output, then the accumulator's range on each output's total: wrapped (two's complement, the same bits
    whatever the order) or saturated. ``w_zero_point``: scalar or one per output channel."""
    kh, kw = wq.shape[2:]
    oh, ow = geometry.output_size(xq.shape[2], xq.shape[3], kh, kw)
    total = np.zeros((xq.shape[0], wq.shape[0], oh, ow), np.int64)
    zero_points = np.broadcast_to(np.asarray(w_zero_point, np.int64).reshape(-1), (wq.shape[0],))
    overflows = 0
    for cs, os_ in _groups(xq, wq, geometry.groups):
        part = np.zeros((xq.shape[0], os_.stop - os_.start, oh, ow), np.int64)
        columns = int_gemm(
            _pixels(xq, cs),
            _operand(wq, os_),
            a_zero_point=x_zero_point,
            b_zero_point=np.repeat(zero_points[os_], kh * kw),
            acc_bits=acc_bits,
            overflow=overflow,
        )
        overflows += columns.overflows
        _scatter(columns.values.astype(np.int64), xq[:, cs].shape, wq[os_].shape, geometry, part)
        total[:, os_] = part
    if bias is not None:
        total += np.asarray(bias, np.int64).reshape(1, -1, 1, 1)
    lo, hi = accumulator_range(acc_bits)
    outside = (total < lo) | (total > hi)
    overflows += int(outside.sum())
    if overflow == "saturate":
        total = np.clip(total, lo, hi)
    elif acc_bits < 64:
        total = (total - lo) % (1 << acc_bits) + lo
    return AccumulatorResult(total.astype(np.int32 if acc_bits <= 32 else np.int64), overflows)
