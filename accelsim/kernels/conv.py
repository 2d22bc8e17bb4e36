"""2-D convolution lowered to GEMM by im2col, the way the array runs it (DESIGN.md section 1.4).

Layouts follow PyTorch/ONNX: input NCHW, weights ``[O, C/groups, kh, kw]``. The GEMM K index runs
over ``(c, ky, kx)`` of one group, row-major, which fixes the accumulation order used by the
saturating accumulator. Padding is filled with the input zero point so that padded taps add
exactly ``(z_x - z_x) * w = 0``, as TFLite's "skip out-of-image taps" and ORT/PyTorch do.

The array writes outputs pixel by pixel (GEMM rows), so an output is NCHW in shape but channels-last
in memory (a transposed view, not a copy); im2col reads such an input in its memory order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from accelsim.kernels.gemm import AccumulatorResult, PackedWeights, int_gemm


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, padding (top, left, bottom, right), dilation and groups of one conv2d."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @classmethod
    def from_args(
        cls,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | tuple[int, int, int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
    ) -> "ConvGeometry":
        """Accept PyTorch-style ints / pairs and ONNX-style 4-tuples (top, left, bottom, right)."""
        if np.isscalar(padding):
            pads = (int(padding),) * 4
        elif len(padding) == 2:
            pads = (int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1]))
        else:
            pads = tuple(int(p) for p in padding)
        return cls(_pair(stride), pads, _pair(dilation), int(groups))  # type: ignore[arg-type]

    def output_size(self, height: int, width: int, kh: int, kw: int) -> tuple[int, int]:
        """Output height and width."""
        pt, pl, pb, pr = self.padding
        oh = (height + pt + pb - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (width + pl + pr - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if oh <= 0 or ow <= 0:
            raise ValueError(f"conv output would be empty ({oh}x{ow})")
        return oh, ow


@njit(cache=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, pad_value):
    """Patches of an NHWC ``x`` (read in memory order) as rows with K order (c, ky, kx)."""
    n_dim, h_dim, w_dim, c_dim = x.shape
    taps = kh * kw
    cols = np.empty((n_dim * oh * ow, c_dim * taps), dtype=x.dtype)
    for n in range(n_dim):
        for oy in range(oh):
            for ox in range(ow):
                row = cols[(n * oh + oy) * ow + ox]
                for ky in range(kh):
                    iy = oy * sh - pt + ky * dh
                    for kx in range(kw):
                        ix = ox * sw - pl + kx * dw
                        tap = ky * kw + kx
                        if 0 <= iy < h_dim and 0 <= ix < w_dim:
                            pixel = x[n, iy, ix]
                            for c in range(c_dim):
                                row[c * taps + tap] = pixel[c]
                        else:
                            for c in range(c_dim):
                                row[c * taps + tap] = pad_value
    return cols


def im2col(x: np.ndarray, kh: int, kw: int, geometry: ConvGeometry, pad_value: float | int = 0) -> np.ndarray:
    """Patches of NCHW ``x`` as rows ``[N*OH*OW, C*kh*kw]`` (K order c, ky, kx)."""
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    pt, pl, _, _ = geometry.padding
    if kh == kw == 1 and not any(geometry.padding):
        # pointwise: every patch is one pixel's channels, so im2col is a strided NCHW -> NHWC copy
        sh, sw = geometry.stride
        return np.ascontiguousarray(x[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw].transpose(0, 2, 3, 1)).reshape(-1, x.shape[1])
    pad = x.dtype.type(pad_value)
    return _im2col(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), kh, kw, *geometry.stride, pt, pl, *geometry.dilation, oh, ow, pad)


def _group_slices(x: np.ndarray, w: np.ndarray, groups: int):
    """Yield (input channels slice, output channels slice) of each group, after checking shapes."""
    c_in, o_out = x.shape[1], w.shape[0]
    if c_in % groups or o_out % groups or w.shape[1] * groups != c_in:
        raise ValueError(f"groups={groups} does not divide input {x.shape} / weights {w.shape}")
    cg, og = c_in // groups, o_out // groups
    for g in range(groups):
        yield slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)


def _to_nchw(y2d: np.ndarray, n_dim: int, oh: int, ow: int) -> np.ndarray:
    """GEMM rows (n, oy, ox) as an NCHW view, channels-last in memory."""
    return y2d.reshape(n_dim, oh, ow, -1).transpose(0, 3, 1, 2)


def pack_conv_weights(w: np.ndarray, groups: int) -> tuple[PackedWeights, ...]:
    """Each group's ``[C/g * kh * kw, O/g]`` GEMM operand of int8 ``w``, packed once for a prepared model."""
    og = w.shape[0] // groups
    return tuple(PackedWeights.of(w[g * og : (g + 1) * og].reshape(og, -1).T) for g in range(groups))


def int_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    geometry: ConvGeometry,
    *,
    x_zero_point: int = 0,
    bias: np.ndarray | None = None,
    acc_bits: int = 32,
    overflow: str = "wrap",
    method: str = "auto",
    packed: tuple[PackedWeights, ...] | None = None,
) -> AccumulatorResult:
    """Integer conv2d into the accumulator, one GEMM per group: NCHW int32 (or int64) output.

    ``packed`` is :func:`pack_conv_weights` of ``w``, kept by the caller between calls."""
    n_dim, kh, kw = x.shape[0], w.shape[2], w.shape[3]
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    parts = [
        int_gemm(
            im2col(x[:, cs], kh, kw, geometry, x_zero_point),
            packed[g] if packed is not None else w[os_].reshape(w[os_].shape[0], -1).T,
            a_zero_point=x_zero_point,
            bias=None if bias is None else np.asarray(bias)[os_],
            acc_bits=acc_bits,
            overflow=overflow,
            method=method,
        )
        for g, (cs, os_) in enumerate(_group_slices(x, w, geometry.groups))
    ]
    out = parts[0].values if len(parts) == 1 else np.concatenate([p.values for p in parts], axis=1)
    return AccumulatorResult(_to_nchw(out, n_dim, oh, ow), sum(p.overflows for p in parts))


def float_conv2d(x: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """float32 conv2d (fp32 and weight-only schemes) by the same im2col, zero padding, no bias."""
    x = x.astype(np.float32, copy=False)
    w = w.astype(np.float32, copy=False)
    n_dim, kh, kw = x.shape[0], w.shape[2], w.shape[3]
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    out = np.empty((n_dim * oh * ow, w.shape[0]), dtype=np.float32)
    for cs, os_ in _group_slices(x, w, geometry.groups):
        cols = im2col(x[:, cs], kh, kw, geometry, 0.0)
        out[:, os_] = cols @ w[os_].reshape(w[os_].shape[0], -1).T
    return np.ascontiguousarray(_to_nchw(out, n_dim, oh, ow))
