"""The vector unit's float <-> int conversions and range reduction.

Frameworks differ in three places when they quantize ``x`` with scale ``s`` and zero point ``z``,
and each difference changes bits on some inputs, so the kernel takes all three as switches:
- ``x / s`` (ORT, TFLite QUANTIZE) or ``x * (1/s)`` with ``1/s`` rounded to float32 (fbgemm, TFLite
  hybrid);
- round half to even (ORT, fbgemm) or half away from zero (TFLite ``std::round``);
- ``z`` added after rounding (ORT, PyTorch's fake quantize) or to the float before rounding (TFLite
  hybrid; ``torch.quantize_per_tensor`` and PyTorch's dynamic Linear, which fuse ``x * (1/s) + z``
  into one FMA rounding).
All float arithmetic is float32 like the C++ sources; rounding happens in float64 where ``v + 0.5``
is exact (a float32 ``v + 0.5`` can round up 0.49999997 to 1).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from accelsim.kernels import threads
from accelsim.kernels.lanes import LANES, V32, VF32, Lanes
from accelsim.kernels.layout import channel_params, channel_view, elementwise_view


@njit(cache=True, nogil=True, inline="always")
def fma_float32(a, b, c):
    """float32 fused multiply-add, correctly rounded, without relying on the host's FMA.

    ``a * b`` is exact in float64 (24 + 24 bits); the float64 sum is made round-to-odd from its
    TwoSum error, and round-to-odd to 53 bits followed by rounding to 24 bits equals one correct
    rounding (53 >= 24 + 2). Round-to-odd is the truncated sum with its last bit set: the sum's bits
    less one when the error points toward zero, ``| 1``. Bit arithmetic on the scalar's view, with no
    branch and no allocation, so element loops that call it vectorize (an array view per element
    cost 8.6 ns; the fused quantize of every PyTorch activation runs through here).
    """
    p = np.float64(a) * np.float64(b)
    cd = np.float64(c)
    s = p + cd
    bb = s - p
    err = (p - (s - bb)) + (cd - bb)
    bits = np.float64(s).view(np.int64)
    odd = np.int64((bits - np.int64((err < 0.0) != (s < 0.0))) | 1).view(np.float64)
    return np.float32(odd if err != 0.0 and np.abs(s) < np.inf else s)


_RINT_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a float64 below 2**51 to an integer, half to even


@njit(cache=True, inline="always")
def _round(d, half_away):
    """Round float64 ``|d| < 2**51`` to an integer float64 without calls, so element loops vectorize:
    half to even by the 1.5 * 2**52 shift (numba's ``np.rint`` is a libm call per lane), half away from
    zero as ``floor(|d| + 0.5)`` (a truncating conversion: the operand is non-negative) with ``d``'s sign."""
    if half_away:
        t = np.float64(np.int64(np.abs(d) + 0.5))
        return t if d >= 0 else -t
    return (d + _RINT_MAGIC) - _RINT_MAGIC


@njit(cache=True, inline="always")
def _quantize_one(xv, s, inv, z, qmin, qmax, reciprocal, half_away, zp_before_rounding, fused):
    """(code, clamped) of one float32 value (float64 code), without branches on the data.

    The value to round is first held within one step beyond the codes it can reach (``[qmin, qmax]``
    less a zero point added after rounding): rounding is monotonic, so a value beyond still clamps
    and counts as clamped, and the rounding only ever sees small numbers.
    """
    if fused:
        v, after = fma_float32(xv, inv, np.float32(z)), 0
    else:
        v = xv * inv if reciprocal else xv / s
        if zp_before_rounding:
            v, after = v + np.float32(z), 0
        else:
            after = z
    d = min(max(np.float64(v), np.float64(qmin - after - 1)), np.float64(qmax - after + 1))
    r = _round(d, half_away) + after
    return min(max(r, np.float64(qmin)), np.float64(qmax)), (r < qmin) | (r > qmax)


@intrinsic
def _add_lanes(
    typingctx,
    a,
    b,
    at,
    sa,
    za,
    sb,
    zb,
    low,
    high,
    s,
    z,
    hold_low,
    hold_high,
    qmin,
    qmax,
    out,
    reciprocal,
    half_away,
    zp_before_rounding,
):
    """:func:`_rule_loops`' residual add on 16 elements as float32 LLVM vector code, step for step the
    scalar loop's float32 operations (no FMA contraction): dequantize both codes, add, clamp, divide (or
    multiply by the reciprocal), hold within one step beyond the codes, round (``llvm.round``: half away
    from zero, ``llvm.roundeven``: half to even), add the zero point.
    Args: a, b, element offset, s_a, z_a, s_b, z_b (float32), clamp low/high, s (or 1/s), z (float32),
    the bounds to hold within, qmin, qmax (float32), out, then the rule's three switches. Returns the
    lanes' clamp count. For outputs of at most 16 bits, whose bounds and zero points float32 holds
    exactly. The switches choose between both paths' values: a loop passing its compile-time constants
    keeps one path (LLVM folds the choice away). (Switches as arguments, not an intrinsic built per rule
    inside the loop's closure: numba's disk cache keys a closure by its pickled cells, and an
    intrinsic's pickle changes once it has compiled, so such a loop compiled afresh in every process.)"""
    sig = types.int64(
        a,
        b,
        at,
        sa,
        za,
        sb,
        zb,
        low,
        high,
        s,
        z,
        hold_low,
        hold_high,
        qmin,
        qmax,
        out,
        reciprocal,
        half_away,
        zp_before_rounding,
    )

    def codegen(context, builder, signature, args):
        v, bb = Lanes(context, builder, signature, args), builder
        sa_, za_, sb_, zb_, low_, high_, s_, z_, hl, hh, qmin_, qmax_ = (v.splat(x, VF32) for x in args[3:15])
        at_ = args[2]
        by_reciprocal, away, zp_first = args[16:19]
        ya = bb.fmul(bb.fsub(v.to_float(v.load(0, at_), 0), za_), sa_)
        y = bb.fadd(ya, bb.fmul(bb.fsub(v.to_float(v.load(1, at_), 1), zb_), sb_))
        y = v.fmin(v.fmax(y, low_), high_)
        q = bb.select(by_reciprocal, bb.fmul(y, s_), bb.fdiv(y, s_))
        q = bb.select(zp_first, bb.fadd(q, z_), q)
        held = v.fmin(v.fmax(q, hl), hh)
        r = bb.select(away, v.call("llvm.round", VF32, held), v.call("llvm.roundeven", VF32, held))
        r = bb.select(zp_first, r, bb.fadd(r, z_))
        count = v.count(bb.or_(bb.fcmp_ordered("<", r, qmin_), bb.fcmp_ordered(">", r, qmax_)))
        v.store(bb.fptosi(v.fmin(v.fmax(r, qmin_), qmax_), V32), 15, at_)
        return count

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _count_clamped(clamped):
    """How many of a [O, C, I] loop's elements were clamped: counted after the loop, so the loop's body stays
    free of a loop-carried sum (and a plain loop compiles faster than a ravel and a sum in every first run)."""
    count = 0
    for o in range(clamped.shape[0]):
        for c in range(clamped.shape[1]):
            for i in range(clamped.shape[2]):
                count += clamped[o, c, i]
    return count


@functools.cache
def _rule_loops(reciprocal: bool, half_away: bool, zp_before_rounding: bool, fused: bool):
    """The quantize and residual-add element loops compiled for one rule: its switches are compile-time
    constants, so the loops have no branches and vectorize. Clamped elements are flagged and counted
    after the loop (a running int64 count would narrow the SIMD lanes), by a loop: ``np.count_nonzero``
    compiles a ravel, a comparison and a sum in every first run."""

    @njit(cache=True, nogil=True)
    def quantize_loop(x, scale, inv_scale, zp, qmin, qmax, out):
        clamped = np.empty(x.shape, np.bool_)
        for o in range(x.shape[0]):
            for c in range(x.shape[1]):
                s, inv, z = scale[c], inv_scale[c], zp[c]
                for i in range(x.shape[2]):
                    r, clamped[o, c, i] = _quantize_one(
                        x[o, c, i], s, inv, z, qmin, qmax, reciprocal, half_away, zp_before_rounding, fused
                    )
                    out[o, c, i] = np.int32(r)
        return _count_clamped(clamped)

    @njit(cache=True, nogil=True)
    def add_loop(a, sa, za, b, sb, zb, clamp_low, clamp_high, s, z, qmin, qmax, out):
        """Per element: dequantize both codes, add, clamp (ReLU / ReLU6 / none), quantize; all float32.
        16 lanes at a time for outputs of at most 16 bits (not the fused rule), the rest one by one."""
        n = a.shape[0]
        inv = np.float32(1.0) / s
        fza, fzb = np.float32(za), np.float32(zb)  # code - z is a small integer: exact in float32 either way
        body = n - n % LANES if not fused and out.itemsize <= 2 else 0
        after = 0 if zp_before_rounding else z
        f32 = np.float32
        count = 0
        for i in range(0, body, LANES):
            count += _add_lanes(
                a,
                b,
                i,
                sa,
                fza,
                sb,
                fzb,
                clamp_low,
                clamp_high,
                inv if reciprocal else s,
                f32(z),
                f32(qmin - after - 1),
                f32(qmax - after + 1),
                f32(qmin),
                f32(qmax),
                out,
                reciprocal,
                half_away,
                zp_before_rounding,
            )
        clamped = np.empty(n - body, np.bool_)
        for i in range(body, n):
            y = (np.float32(a[i]) - fza) * sa + (np.float32(b[i]) - fzb) * sb
            y = min(max(y, clamp_low), clamp_high)
            r, clamped[i - body] = _quantize_one(
                y, s, inv, z, qmin, qmax, reciprocal, half_away, zp_before_rounding, fused
            )
            out[i] = np.int32(r)
        for i in range(n - body):
            count += clamped[i]
        return count

    return quantize_loop, add_loop


@njit(cache=True, nogil=True)
def _dequantize(q, scale, zp):
    out = np.empty(q.shape, dtype=np.float32)
    for o in range(q.shape[0]):
        for c in range(q.shape[1]):
            for i in range(q.shape[2]):
                out[o, c, i] = np.float32(np.int64(q[o, c, i]) - zp[c]) * scale[c]
    return out


@njit(cache=True, nogil=True)
def _scale_accumulator(acc, row_scale, channel_scale, bias, fused, channel_scale_first):
    out = np.empty(acc.shape, dtype=np.float32)
    for o in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            s = row_scale[o] * channel_scale[c]
            b = bias[c]
            for i in range(acc.shape[2]):
                a = np.float32(acc[o, c, i])
                if channel_scale_first:
                    out[o, c, i] = (a * channel_scale[c]) * row_scale[o] + b
                elif fused:
                    out[o, c, i] = fma_float32(a, s, b)
                else:
                    out[o, c, i] = a * s + b
    return out


@njit(cache=True, nogil=True)
def _row_minmax(x):
    rows = x.shape[0]
    mins = np.empty(rows, dtype=np.float32)
    maxs = np.empty(rows, dtype=np.float32)
    for r in range(rows):
        lo = np.float32(np.inf)
        hi = np.float32(-np.inf)
        for v in x[r]:
            lo = min(lo, v)
            hi = max(hi, v)
        mins[r] = lo
        maxs[r] = hi
    return mins, maxs


@njit(cache=True, nogil=True)
def _quantize_wide_loop(x, inv_scale, zp, qmin, qmax, half_away, out):
    """``round(float64(x) * inv + z)`` clamped, all float64 (``inv`` float64 per channel): the arithmetic of a
    float32 tensor times a float64 one. Clamped elements are flagged and counted after the loop, as in
    :func:`_rule_loops`."""
    clamped = np.empty(x.shape, np.bool_)
    lo, hi = np.float64(qmin), np.float64(qmax)
    for o in range(x.shape[0]):
        for c in range(x.shape[1]):
            inv, z = inv_scale[c], np.float64(zp[c])
            for i in range(x.shape[2]):
                d = min(max(np.float64(x[o, c, i]) * inv + z, lo - 1.0), hi + 1.0)
                r = _round(d, half_away)
                clamped[o, c, i] = (r < lo) | (r > hi)
                out[o, c, i] = np.int32(min(max(r, lo), hi))
    return _count_clamped(clamped)


def quantize(
    x: np.ndarray,
    scale: np.ndarray | float,
    zero_point: np.ndarray | int,
    *,
    qmin: int,
    qmax: int,
    axis: int | None = None,
    reciprocal: bool = False,
    half_away: bool = False,
    zero_point_before_rounding: bool = False,
    inv_scale: np.ndarray | float | None = None,
    fused: bool = False,
    wide: bool = False,
    out_dtype: type = np.int32,
) -> tuple[np.ndarray, int]:
    """float32 ``x`` -> codes in ``[qmin, qmax]`` (``out_dtype``) and the number of clamped elements.

    ``inv_scale`` overrides the float32 ``1 / scale`` of the reciprocal rule (TFLite's symmetric
    path computes ``127 / range`` instead). ``fused``: ``round(fma(x, 1/s, z))`` (implies reciprocal
    and zero point before rounding). ``wide``: ``round(float64(x) * (1 / float64(s)) + z)`` (PyTorch's
    ``quantize_per_token`` on float64 scales).
    """
    view, restore = elementwise_view(np.asarray(x, dtype=np.float32), axis)
    ch = view.shape[1]
    out: np.ndarray = np.empty(view.shape, out_dtype)
    if wide:
        inv64 = 1.0 / channel_params(scale, ch, np.float64)
        zp64 = channel_params(zero_point, ch, np.int64)
        return restore(out), int(_quantize_wide_loop(view, inv64, zp64, qmin, qmax, half_away, out))
    scale_c = channel_params(scale, ch, np.float32)
    sats = threads.aside(
        _rule_loops(reciprocal, half_away, zero_point_before_rounding, fused)[0],
        view,
        scale_c,
        np.float32(1.0) / scale_c if inv_scale is None else channel_params(inv_scale, ch, np.float32),
        channel_params(zero_point, ch, np.int64),
        qmin,
        qmax,
        out,
        elements=view.size,
    )
    return restore(out), int(sats)


def add_codes(
    a: np.ndarray,
    a_params: tuple[float, int],
    b: np.ndarray,
    b_params: tuple[float, int],
    clamp: tuple[float, float],
    out_params: tuple[float, int],
    *,
    qmin: int,
    qmax: int,
    reciprocal: bool,
    half_away: bool,
    zero_point_before_rounding: bool,
    fused: bool,
    out_dtype: type,
) -> tuple[np.ndarray, int]:
    """The vector unit's residual add on per-tensor codes in one pass: ``dequantize(a) + dequantize(b)``,
    clamped to ``clamp`` (a fused ReLU / ReLU6, or +-inf), quantized with the rule's switches; each
    step in float32 exactly as the separate dequantize, add, activation and quantize. ``(scale, zero point)``
    pairs; the result has ``a``'s shape and memory order."""
    if b.strides != a.strides:  # lay b out like a, so that both views walk the same elements
        like = np.empty_like(a)
        like[...] = b
        b = like
    view, restore = elementwise_view(a, None)
    b_view = elementwise_view(b, None)[0]
    out: np.ndarray = np.empty(view.shape, out_dtype)
    f32 = np.float32
    sats = threads.aside(
        _rule_loops(reciprocal, half_away, zero_point_before_rounding, fused)[1],
        view.reshape(-1),
        f32(a_params[0]),
        a_params[1],
        b_view.reshape(-1),
        f32(b_params[0]),
        b_params[1],
        f32(clamp[0]),
        f32(clamp[1]),
        f32(out_params[0]),
        out_params[1],
        qmin,
        qmax,
        out.reshape(-1),
        elements=view.size,
    )
    return restore(out), int(sats)


def dequantize(
    q: np.ndarray, scale: np.ndarray | float, zero_point: np.ndarray | int, *, axis: int | None = None
) -> np.ndarray:
    """``float32(q - z) * s`` as ORT DequantizeLinear and PyTorch dequantize compute it."""
    view, restore = elementwise_view(np.asarray(q), axis)
    ch = view.shape[1]
    scale_c, zero_point_c = channel_params(scale, ch, np.float32), channel_params(zero_point, ch, np.int64)
    return restore(threads.aside(_dequantize, view, scale_c, zero_point_c, elements=view.size))


def scale_accumulator(
    acc: np.ndarray,
    row_scale: np.ndarray | float,
    channel_scale: np.ndarray | float,
    bias: np.ndarray | float | None,
    *,
    axis: int,
    fused: bool = False,
    channel_scale_first: bool = False,
) -> np.ndarray:
    """Dynamic-quantization output ``float(acc) * float32(s_x[row] * s_w[c]) + bias[c]`` in float32.

    ``fused``: one rounding for multiply and add (an FMA, as PyTorch's fbgemm build does);
    otherwise the product and the sum are rounded separately. ``channel_scale_first``:
    ``(float(acc) * s_w[c]) * s_x[row] + bias[c]``, three roundings (TFLite's hybrid conv).

    Rows are the leading dims before ``axis`` (per-row or per-image activation scale), channels the
    ``axis`` dim (per-channel weight scale); scalars broadcast.
    """
    view = channel_view(acc, axis)
    outer, ch = view.shape[0], view.shape[1]
    out = _scale_accumulator(
        view,
        channel_params(row_scale, outer, np.float32),
        channel_params(channel_scale, ch, np.float32),
        channel_params(0.0 if bias is None else bias, ch, np.float32),
        fused,
        channel_scale_first,
    )
    return out.reshape(acc.shape)


def row_minmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each row of a 2-D float32 array (the vector unit's range pass)."""
    return _row_minmax(np.ascontiguousarray(x, dtype=np.float32))


def tensor_minmax(x: np.ndarray) -> tuple[float, float]:
    """Min and max of a whole float32 tensor."""
    mins, maxs = _row_minmax(np.ascontiguousarray(x, dtype=np.float32).reshape(1, -1))
    return float(mins[0]), float(maxs[0])
