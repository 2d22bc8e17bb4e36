"""Slow pure-numpy twins of every kernel, written independently of the fast paths; tests only.

They follow the C++ sources literally (one accumulation step at a time, integer arithmetic with
Python ints where C would truncate) so that a disagreement points at the fast kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _acc_step(acc: np.ndarray, term: np.ndarray, lo: int, hi: int, saturate: bool) -> tuple[np.ndarray, np.ndarray]:
    s = acc + term
    out_of_range = (s < lo) | (s > hi)
    if saturate:
        s = np.clip(s, lo, hi)
    else:
        s = (s - lo) % (hi - lo + 1) + lo
    return s, out_of_range


def ref_int_gemm(
    a: np.ndarray,
    b: np.ndarray,
    a_zero_point: int,
    bias: np.ndarray | None,
    acc_bits: int,
    overflow: str,
    b_zero_point: int | np.ndarray = 0,
) -> tuple[np.ndarray, int]:
    """Accumulate ``bias + sum_k (a - z_a) (b - z_b[n])`` one k step at a time with wrap or saturation."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    sat = overflow == "saturate"
    m_dim, n_dim = a.shape[0], b.shape[1]
    bias_row = np.zeros(n_dim, dtype=object) if bias is None else np.asarray(bias).astype(object)
    acc, flags = _acc_step(
        np.zeros((m_dim, n_dim), dtype=object), np.broadcast_to(bias_row, (m_dim, n_dim)), lo, hi, sat
    )
    a_obj = a.astype(object) - a_zero_point
    b_obj = (
        b.astype(object)
        - np.broadcast_to(np.asarray(b_zero_point, dtype=np.int64).reshape(-1), (n_dim,)).astype(object)[None, :]
    )
    for k in range(a.shape[1]):
        acc, f = _acc_step(acc, np.outer(a_obj[:, k], b_obj[k]), lo, hi, sat)
        flags |= f
    return acc.astype(np.int64), int(flags.sum())


def ref_int_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
    x_zero_point: int,
    bias: np.ndarray | None,
    acc_bits: int,
    overflow: str,
    w_zero_point: int | np.ndarray = 0,
) -> tuple[np.ndarray, int]:
    """Direct convolution (no im2col) over a zero-point padded input, K order (c, ky, kx); each step adds
    ``(x - z_x) * (w - z_w[o])``."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    sat = overflow == "saturate"
    pt, pl, pb, pr = padding
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=x_zero_point) - x_zero_point
    n_dim, o_dim, _, kh, kw = x.shape[0], w.shape[0], w.shape[1], w.shape[2], w.shape[3]
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cg, og = x.shape[1] // groups, o_dim // groups
    b0 = np.zeros(o_dim, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
    w = (
        w.astype(np.int64)
        - np.broadcast_to(np.asarray(w_zero_point, dtype=np.int64).reshape(-1), (o_dim,))[:, None, None, None]
    )
    acc, flags = _acc_step(np.zeros((n_dim, o_dim, oh, ow), dtype=np.int64), b0[None, :, None, None], lo, hi, sat)
    for g in range(groups):
        osl = slice(g * og, (g + 1) * og)
        for c in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    y0, x0 = ky * dilation[0], kx * dilation[1]
                    patch = xp[
                        :,
                        g * cg + c,
                        y0 : y0 + stride[0] * (oh - 1) + 1 : stride[0],
                        x0 : x0 + stride[1] * (ow - 1) + 1 : stride[1],
                    ]
                    term = patch[:, None] * w[osl, c, ky, kx].astype(np.int64)[None, :, None, None]
                    acc[:, osl], f = _acc_step(acc[:, osl], term, lo, hi, sat)
                    flags[:, osl] |= f
    return acc, int(flags.sum())


def _clamp(r: np.ndarray, zp: int, act_min: int, act_max: int, qmin: int, qmax: int) -> tuple[np.ndarray, int]:
    v = r + zp
    sats = int(((v < qmin) | (v > qmax)).sum())
    return np.clip(v, act_min, act_max), sats


def ref_requant_fixed_point(
    acc2d: np.ndarray,
    multiplier: np.ndarray,
    shift: np.ndarray,
    zp: int,
    act_min: int,
    act_max: int,
    qmin: int,
    qmax: int,
    multiply: Callable[[int, int, int], int],
) -> tuple[np.ndarray, int]:
    """Per-channel (last axis) fixed-point requant, element by element. ``multiply(acc, M0, shift)`` is
    MultiplyByQuantizedMultiplier on Python ints: the library has one implementation (the kernels'), so
    the independent transcription of TFLite's formula is the tests' (``tests/numerics_refs.py``)."""
    acc2d = np.clip(acc2d.astype(np.int64), INT32_MIN, INT32_MAX)
    m = np.broadcast_to(np.asarray(multiplier).reshape(-1), (acc2d.shape[1],))
    s = np.broadcast_to(np.asarray(shift).reshape(-1), (acc2d.shape[1],))
    r = np.empty(acc2d.shape, dtype=np.int64)
    for (i, c), v in np.ndenumerate(acc2d):
        r[i, c] = multiply(int(v), int(m[c]), int(s[c]))
    return _clamp(r, zp, act_min, act_max, qmin, qmax)


def ref_requant_float(
    acc2d: np.ndarray,
    scale: np.ndarray,
    bias_term: np.ndarray | float,
    zp: int,
    act_min: int,
    act_max: int,
    qmin: int,
    qmax: int,
) -> tuple[np.ndarray, int]:
    """Per-channel (last axis) fp32 requant with numpy float32 arithmetic."""
    v = (acc2d.astype(np.float32) + np.float32(bias_term)) * np.asarray(scale, dtype=np.float32)
    return _clamp(np.rint(v).astype(np.float64), zp, act_min, act_max, qmin, qmax)


def ref_fma_float32(a: float | np.floating, b: float | np.floating, c: float | np.floating) -> np.float32:
    """``a * b + c`` rounded once to float32 (nearest, ties to even), with exact rationals."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    errors = [abs(Fraction(float(f)) - exact) for f in candidates]
    best = min(errors)
    ties = [f for f, e in zip(candidates, errors) if e == best]
    return min(ties, key=lambda f: int(np.array(f, np.float32).view(np.int32)) & 1)


def ref_quantize(
    x: np.ndarray,
    scale: float,
    zp: int,
    qmin: int,
    qmax: int,
    reciprocal: bool,
    half_away: bool,
    zp_before_rounding: bool,
    fused: bool = False,
) -> tuple[np.ndarray, int]:
    """Per-tensor quantization with numpy float32 arithmetic (``fused``: exact-rational FMA)."""
    x = np.asarray(x, dtype=np.float32)
    s = np.float32(scale)
    v: np.ndarray
    if fused:
        inv = np.float32(1.0) / s
        v = np.array([ref_fma_float32(e, inv, np.float32(zp)) for e in x.reshape(-1)], np.float32).reshape(x.shape)
    else:
        v = x * (np.float32(1.0) / s) if reciprocal else x / s
    if zp_before_rounding and not fused:
        v = v + np.float32(zp)
    d = v.astype(np.float64)
    r = np.sign(d) * np.floor(np.abs(d) + 0.5) if half_away else np.rint(d)
    if not (zp_before_rounding or fused):
        r = r + zp
    sats = int(((r < qmin) | (r > qmax)).sum())
    return np.clip(r, qmin, qmax).astype(np.int32), sats


def ref_dequantize(q: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int) -> np.ndarray:
    """``float32(q - z) * s`` (broadcasting over the last axis)."""
    return (q.astype(np.int64) - np.asarray(zp, dtype=np.int64)).astype(np.float32) * np.asarray(
        scale, dtype=np.float32
    )


def ref_scale_accumulator(
    acc2d: np.ndarray,
    row_scale: np.ndarray | float,
    channel_scale: np.ndarray | float,
    bias: np.ndarray | float,
    channel_scale_first: bool = False,
) -> np.ndarray:
    """``float(acc) * float32(s_x[row] * s_w[c]) + bias`` (or ``(acc * s_w) * s_x + bias``), float32 roundings."""
    rs = np.asarray(row_scale, dtype=np.float32).reshape(-1, 1)
    cs = np.asarray(channel_scale, dtype=np.float32).reshape(1, -1)
    if channel_scale_first:
        return (acc2d.astype(np.float32) * cs) * rs + np.asarray(bias, dtype=np.float32)
    return acc2d.astype(np.float32) * (rs * cs) + np.asarray(bias, dtype=np.float32)


def ref_scale_accumulator_fused(
    acc2d: np.ndarray, row_scale: np.ndarray | float, channel_scale: np.ndarray | float, bias: np.ndarray | float
) -> np.ndarray:
    """The same with product and sum rounded once (FMA)."""
    s = np.asarray(row_scale, dtype=np.float32).reshape(-1, 1) * np.asarray(channel_scale, dtype=np.float32).reshape(
        1, -1
    )
    s, b = np.broadcast_to(s, acc2d.shape), np.broadcast_to(np.asarray(bias, dtype=np.float32), acc2d.shape)
    out = np.empty(acc2d.shape, np.float32)
    for idx, v in np.ndenumerate(acc2d):
        out[idx] = ref_fma_float32(np.float32(v), float(s[idx]), float(b[idx]))
    return out


def ref_minmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise min and max."""
    return x.min(axis=1), x.max(axis=1)
