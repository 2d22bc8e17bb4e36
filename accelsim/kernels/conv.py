"""2-D convolution lowered to GEMM by im2col, the way the array runs it (DESIGN.md section 1.4).

Layouts follow PyTorch/ONNX: input NCHW, weights ``[O, C/groups, kh, kw]``. The GEMM K index runs
over ``(c, ky, kx)`` of one group, row-major, which fixes the accumulation order used by the
saturating accumulator. Padding is filled with the input zero point so that padded taps add
exactly ``(z_x - z_x) * w = 0``, as TFLite's "skip out-of-image taps" and ORT/PyTorch do.

The array writes outputs pixel by pixel (GEMM rows), so an output is NCHW in shape but channels-last
in memory (a transposed view, not a copy); im2col reads such an input in its memory order. When no
partial sum can leave the accumulator whatever the order (:func:`never_overflows`, true for int8
operands, int32 accumulators and K < 65794), the order of the K steps cannot change a result, and the
GEMM runs with K order ``(ky, kx, c)`` instead: each tap is then a run of C channels-last bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from accelsim.kernels import threads, vnni
from accelsim.kernels.gemm import (
    AccumulatorResult,
    PackedWeights,
    RequantEpilogue,
    accumulator_range,
    float_gemm,
    int_gemm,
    never_overflows,
    requant_gemm,
    requant_vnni_rows,
)
from accelsim.kernels.memory import copy_elements
from accelsim.kernels.requant import Requantized


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


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
    ) -> ConvGeometry:
        """Accept PyTorch-style ints / pairs and ONNX-style 4-tuples (top, left, bottom, right)."""
        if isinstance(padding, (int, np.integer)):
            pads = (int(padding),) * 4
        elif len(padding) == 2:
            pads = (int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1]))
        elif len(padding) == 4:
            pads = (int(padding[0]), int(padding[1]), int(padding[2]), int(padding[3]))
        else:
            raise ValueError(f"padding is an int, a pair or (top, left, bottom, right), got {padding!r}")
        return cls(_pair(stride), pads, _pair(dilation), int(groups))

    def output_size(self, height: int, width: int, kh: int, kw: int) -> tuple[int, int]:
        """Output height and width."""
        pt, pl, pb, pr = self.padding
        oh = (height + pt + pb - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (width + pl + pr - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if oh <= 0 or ow <= 0:
            raise ValueError(f"conv output would be empty ({oh}x{ow})")
        return oh, ow


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _im2col_taps(x, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, pad_value, cols):
    """Patches of an NHWC ``x`` into the first K columns of ``cols``' rows with K order (ky, kx, c): a
    tap is a run of C bytes, and a whole in-image row of taps (dilation 1) one run of kw * C."""
    n_dim, h_dim, w_dim, c_dim = x.shape
    flat = x.reshape(-1)
    run = kw * c_dim
    for n in range(n_dim):
        for oy in range(oh):
            for ox in range(ow):
                row = cols[(n * oh + oy) * ow + ox]
                ix0 = ox * sw - pl
                for ky in range(kh):
                    iy = oy * sh - pt + ky * dh
                    dst = ky * run
                    if not 0 <= iy < h_dim:
                        row[dst : dst + run] = pad_value
                    elif dw == 1 and ix0 >= 0 and ix0 + kw <= w_dim:
                        copy_elements(row, dst, flat, ((n * h_dim + iy) * w_dim + ix0) * c_dim, run)
                    else:
                        for kx in range(kw):
                            ix = ix0 + kx * dw
                            at = dst + kx * c_dim
                            if 0 <= ix < w_dim:
                                copy_elements(row, at, flat, ((n * h_dim + iy) * w_dim + ix) * c_dim, c_dim)
                            else:
                                row[at : at + c_dim] = pad_value


def im2col(
    x: np.ndarray, kh: int, kw: int, geometry: ConvGeometry, pad_value: float = 0, k_order: str = "cyx"
) -> np.ndarray:
    """Patches of NCHW ``x`` as rows ``[N*OH*OW, C*kh*kw]``, K order (c, ky, kx) or (ky, kx, c)."""
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    pt, pl, _, _ = geometry.padding
    if kh == kw == 1 and not any(geometry.padding):
        # pointwise: every patch is one pixel's channels, so im2col is a strided NCHW -> NHWC copy
        sh, sw = geometry.stride
        return np.ascontiguousarray(
            x[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw].transpose(0, 2, 3, 1)
        ).reshape(-1, x.shape[1])
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    args = (nhwc, kh, kw, *geometry.stride, pt, pl, *geometry.dilation, oh, ow, nhwc.dtype.type(pad_value))
    if k_order == "cyx":
        return _im2col(*args)
    cols = np.empty((x.shape[0] * oh * ow, kh * kw * x.shape[1]), dtype=x.dtype)
    _im2col_taps(*args, cols)
    return cols


def patches_into(
    x: np.ndarray, kh: int, kw: int, geometry: ConvGeometry, pad_value: int, flip: int, rows: np.ndarray
) -> None:
    """im2col of 1-byte NCHW ``x`` in K order (ky, kx, c), every byte xor ``flip``, written straight into
    ``rows`` (uint8, at least ``[N*OH*OW, K]``; the rest zeroed): the GEMM's A rows without an im2col
    matrix in between. The flip is applied to ``x`` (a ninth of the patches' bytes for a 3x3 kernel)."""
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    pt, pl, _, _ = geometry.padding
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).view(np.uint8)
    if flip:
        nhwc = nhwc ^ np.uint8(flip)
    m_dim, k_dim = x.shape[0] * oh * ow, kh * kw * x.shape[1]
    pad = np.uint8((pad_value ^ flip) & 0xFF)
    args = (nhwc, kh, kw, *geometry.stride, pt, pl, *geometry.dilation, oh, ow, pad, rows)
    threads.aside(_im2col_taps, *args, elements=m_dim * k_dim)
    rows[:m_dim, k_dim:] = 0
    rows[m_dim:] = 0


def _group_slices(x: np.ndarray, w: np.ndarray, groups: int):
    """Yield (input channels slice, output channels slice) of each group, after checking shapes."""
    c_in, o_out = x.shape[1], w.shape[0]
    if c_in % groups or o_out % groups or w.shape[1] * groups != c_in:
        raise ValueError(f"groups={groups} does not divide input {x.shape} / weights {w.shape}")
    cg, og = c_in // groups, o_out // groups
    for g in range(groups):
        yield slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)


def gemm_rows_as_nchw(y2d: np.ndarray, n_dim: int, oh: int, ow: int) -> np.ndarray:
    """GEMM rows (n, oy, ox) as an NCHW view, channels-last in memory."""
    return y2d.reshape(n_dim, oh, ow, -1).transpose(0, 3, 1, 2)


def conv_gemm_weights(w: np.ndarray, groups: int, k_order: str = "cyx") -> list[np.ndarray]:
    """Each group's ``[K, O/g]`` GEMM operand of ``w`` ``[O, C/g, kh, kw]`` with K in ``k_order``."""
    og = w.shape[0] // groups
    w = w if k_order == "cyx" else w.transpose(0, 2, 3, 1)
    return [w[g * og : (g + 1) * og].reshape(og, -1).T for g in range(groups)]


def pack_conv_weights(w: np.ndarray, groups: int, k_order: str = "cyx") -> tuple[PackedWeights, ...]:
    """Each group's int8 (or uint8) GEMM operand, packed once for a prepared model."""
    return tuple(PackedWeights.of(b) for b in conv_gemm_weights(w, groups, k_order))


#: a prepared model's packed weights by K order (see QuantizedWeight.packed)
PackedConvWeights = Callable[[str], tuple[PackedWeights, ...]]


def int_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    geometry: ConvGeometry,
    *,
    x_zero_point: int = 0,
    w_zero_point: int | np.ndarray = 0,
    bias: np.ndarray | None = None,
    acc_bits: int = 32,
    overflow: str = "wrap",
    method: str = "auto",
    packed: PackedConvWeights | None = None,
) -> AccumulatorResult:
    """Integer conv2d into the accumulator, one GEMM per group: NCHW int32 (or int64) output.

    ``w_zero_point``: the weights' zero point, scalar or one per output channel (ONNX ConvInteger /
    QLinearConv ``w_zero_point``); padded taps hold ``x_zero_point``, so they add ``0 * (w - z_w) = 0``.
    ``packed(k_order)`` gives :func:`pack_conv_weights` of ``w``, kept by the caller between calls."""
    n_dim, kh, kw = x.shape[0], w.shape[2], w.shape[3]
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    max_bias = 0 if bias is None else int(np.abs(np.asarray(bias, dtype=np.int64)).max(initial=0))
    free = kh * kw > 1 and never_overflows(
        x.dtype, x_zero_point, w.dtype, w[0].size, max_bias, accumulator_range(acc_bits)[1], w_zero_point
    )
    k_order = "yxc" if free else "cyx"
    weights = packed(k_order) if packed is not None else conv_gemm_weights(w, geometry.groups, k_order)
    w_zp = np.asarray(w_zero_point).reshape(-1)
    parts = [
        int_gemm(
            im2col(x[:, cs], kh, kw, geometry, x_zero_point, k_order),
            weights[g],
            a_zero_point=x_zero_point,
            b_zero_point=int(w_zp[0]) if w_zp.size == 1 else w_zp[os_],
            bias=None if bias is None else np.asarray(bias)[os_],
            acc_bits=acc_bits,
            overflow=overflow,
            method=method,
        )
        for g, (cs, os_) in enumerate(_group_slices(x, w, geometry.groups))
    ]
    out = parts[0].values if len(parts) == 1 else np.concatenate([p.values for p in parts], axis=1)
    return AccumulatorResult(gemm_rows_as_nchw(out, n_dim, oh, ow), sum(p.overflows for p in parts))


def float_conv2d(x: np.ndarray, w: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """float32 conv2d (fp32 and weight-only schemes) by the same im2col, zero padding, no bias."""
    x = x.astype(np.float32, copy=False)
    w = w.astype(np.float32, copy=False)
    n_dim, kh, kw = x.shape[0], w.shape[2], w.shape[3]
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    out = np.empty((n_dim * oh * ow, w.shape[0]), dtype=np.float32)
    for cs, os_ in _group_slices(x, w, geometry.groups):
        cols = im2col(x[:, cs], kh, kw, geometry, 0.0)
        out[:, os_] = float_gemm(cols, w[os_].reshape(w[os_].shape[0], -1).T)
    return np.ascontiguousarray(gemm_rows_as_nchw(out, n_dim, oh, ow))


def requant_conv2d(
    x: np.ndarray,
    kernel: tuple[int, int],
    geometry: ConvGeometry,
    packed: PackedConvWeights,
    epilogue: RequantEpilogue,
) -> Requantized:
    """One-group conv2d handing its int32 accumulators straight to the requant unit (:func:`requant_gemm`):
    NCHW 1-byte codes. ``kernel``: (kh, kw); the caller proves no accumulator can leave int32, so K runs in
    order (ky, kx, c) (runs of C channels-last bytes). On a VNNI host the patches are gathered straight
    into the GEMM's A rows (no im2col matrix)."""
    if geometry.groups != 1:
        raise ValueError(f"requant_conv2d runs one group, got groups={geometry.groups}")
    kh, kw = kernel
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    b = packed("yxc" if kh * kw > 1 else "cyx")[0]
    pointwise = kh * kw == 1 and not any(geometry.padding)  # A is (a strided copy of) x's pixels
    if pointwise or not vnni.AVAILABLE:
        out = requant_gemm(im2col(x, kh, kw, geometry, epilogue.a_zero_point, "yxc"), b, epilogue)
    else:
        m_dim, k_dim = x.shape[0] * oh * ow, b.matrix.shape[0]
        words = vnni.a_rows(m_dim, k_dim)
        flip = 0x80 if x.dtype == np.int8 else 0  # int8 A runs as a + 128
        patches_into(x, kh, kw, geometry, epilogue.a_zero_point, flip, words.view(np.uint8))
        out = requant_vnni_rows(words, m_dim, x.dtype, b, epilogue)
    return Requantized(gemm_rows_as_nchw(out.codes, x.shape[0], oh, ow), *out[1:])
