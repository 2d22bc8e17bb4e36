"""ONNX Runtime's integer arithmetic for the vector-unit ops of a quantized graph, on codes.

ORT's CPU kernels (ORT 1.32, MLAS) for QLinearAdd, QLinearMul, QLinearAveragePool,
QLinearGlobalAveragePool, QLinearSigmoid, QLinearConcat and QLinearSoftmax do not dequantize, compute in
float and quantize as the generic vector unit does: each writes its own order of float32 operations, and
that order decides the rounding ties (QLinearAveragePool adds the zero point before it rounds, QLinearAdd
uses fused multiply-adds). These functions are that arithmetic, once: the node-by-node emulator
(:mod:`accelsim.onnx.quantized_ops`) and the static values run under ORT's requant mode
(``float_half_even``, :mod:`accelsim.values.runner`) both call them. Every operand is per-tensor codes with
their :class:`QParams`; every function returns the output codes and how many of them the dtype range
clamped. docs/onnx.md states each formula and the test that checks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numba import njit

from accelsim.kernels.quantize import fma_float32
from accelsim.quant.qparams import QParams

Codes = tuple[np.ndarray, int]


def affine(qp: QParams) -> tuple[np.float32, int]:
    """A per-tensor ``(scale, zero point)``."""
    return np.float32(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])


def _outside(q: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    info = np.iinfo(dtype)
    return (q < info.min) | (q > info.max)


def round_clamp(v: np.ndarray, zero_point: int, dtype: np.dtype | type) -> Codes:
    """``clamp(rint(v) + z)``: float32 round half to even (``std::nearbyintf``), then the zero point."""
    info = np.iinfo(dtype)
    q = np.rint(v).astype(np.int64) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype), int(np.count_nonzero(_outside(q, dtype)))


def _scalar_span(x: np.ndarray, shape: tuple[int, ...]) -> bool:
    """ORT's broadcaster hands an operand to the kernel as one value per span when it does not vary along the
    output's innermost dim (a scalar, a per-channel ``[C, 1, 1]``)."""
    return x.size == 1 or (len(shape) > 0 and shape[-1] > 1 and (x.ndim == 0 or x.shape[-1] == 1))


#: operand ranks the add kernel iterates (5 is a batch and 4 per-sample dims; fewer are padded with 1s)
ADD_RANK = 6


def _element_strides(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The element strides of C-contiguous ``x`` broadcast to ``shape`` (0 along a broadcast dim)."""
    view = np.broadcast_to(x, shape)
    return np.array([s // x.itemsize for s in view.strides], np.int64)


def _collapsed(shape: tuple[int, ...], *strides: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """``shape`` and the operands' ``strides`` with adjacent dims merged wherever every operand steps through
    them as one (numpy's iterator does the same), padded in front to :data:`ADD_RANK` dims: a residual add
    becomes one run of all its elements, an SE block's ``[N, C, H*W]``, so the kernel's inner loop is long."""
    dims = [int(d) for d in shape if d != 1] or [1]
    kept = [i for i, d in enumerate(shape) if d != 1] or [len(shape) - 1]
    steps = [[int(s[i]) for i in kept] for s in strides]
    i = len(dims) - 1
    while i > 0:
        if all(st[i - 1] == st[i] * dims[i] for st in steps):
            dims[i - 1 : i + 1] = [dims[i - 1] * dims[i]]
            for st in steps:
                st[i - 1 : i + 1] = [st[i]]
        i -= 1
    pad = ADD_RANK - len(dims)
    return np.array([1] * pad + dims, np.int64), [np.array([0] * pad + st, np.int64) for st in steps]


@njit(cache=True, nogil=True, inline="always")
def _add_value(x, y, a_per_span, ra, rb, fixed):  # pragma: no cover - compiled
    """One float32 output value before the conversion: the per-span operand's FMA first (:func:`add`)."""
    if a_per_span:
        return fma_float32(y, rb, fma_float32(x, ra, fixed))
    return fma_float32(x, ra, fma_float32(y, rb, fixed))


@njit(cache=True, nogil=True)
def _add_kernel(a, sa, b, sb, shape, a_per_span, ra, rb, fixed, qmin, qmax, out):  # pragma: no cover - compiled
    """:func:`add`'s arithmetic over the output's elements in order; ``a`` / ``b`` flat, read at their element
    strides ``sa`` / ``sb`` (0 where broadcast) over the :data:`ADD_RANK`-dim ``shape``; returns the
    saturations. An innermost run of two contiguous operands (a residual add: all of it) is read through
    row views, whose indices LLVM knows are in bounds, so that loop vectorizes (a [256, 56, 56] add: 1.5
    ms, 2.6 ms with offset indices)."""
    sats = 0
    o = 0
    n = shape[5]
    contiguous = sa[5] == 1 and sb[5] == 1
    for i0 in range(shape[0]):
        for i1 in range(shape[1]):
            for i2 in range(shape[2]):
                for i3 in range(shape[3]):
                    for i4 in range(shape[4]):
                        ia = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4]
                        ib = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4]
                        if contiguous:
                            ar, br, orow = a[ia : ia + n], b[ib : ib + n], out[o : o + n]
                            for i in range(n):
                                v = _add_value(np.float32(ar[i]), np.float32(br[i]), a_per_span, ra, rb, fixed)
                                q = np.int64(np.rint(v))
                                if q < qmin or q > qmax:
                                    sats += 1
                                    q = qmin if q < qmin else qmax
                                orow[i] = q
                        else:
                            for i in range(n):
                                x, y = np.float32(a[ia + i * sa[5]]), np.float32(b[ib + i * sb[5]])
                                q = np.int64(np.rint(_add_value(x, y, a_per_span, ra, rb, fixed)))
                                if q < qmin or q > qmax:
                                    sats += 1
                                    q = qmin if q < qmin else qmax
                                out[o + i] = q
                        o += n
    return sats


def add(a: np.ndarray, a_qp: QParams, b: np.ndarray, b_qp: QParams, out_qp: QParams) -> Codes:
    """QLinearAdd (MLAS ``MlasQLinearAddKernelAvx2Helper``), numpy broadcasting: ``r = s / s_c`` in float32, a
    fixed part ``float(z_c) - (r_a z_a + r_b z_b)``, then ``fma(b, r_b, fixed)`` and ``fma(a, r_a, that)``,
    each one float32 rounding, except that when ``a`` is one value per span (:func:`_scalar_span`: ORT swaps
    the operands so the kernel's scalar is its second) ``a``'s FMA comes first; the conversion rounds half
    to even with the zero point already inside. One Numba pass over the output (:func:`_add_kernel`),
    whatever the operands' shapes: no float32 temporaries."""
    (sa, za), (sb, zb), (sc, zc) = affine(a_qp), affine(b_qp), affine(out_qp)
    shape = np.broadcast_shapes(a.shape, b.shape)
    ra, rb = np.float32(sa / sc), np.float32(sb / sc)
    fixed = np.float32(np.float32(zc) - np.float32(ra * np.float32(za) + rb * np.float32(zb)))
    a_per_span = _scalar_span(a, shape)
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    dims, (steps_a, steps_b) = _collapsed(shape, _element_strides(a, shape), _element_strides(b, shape))
    info = np.iinfo(out_qp.numpy_dtype)
    out: np.ndarray = np.empty(shape, out_qp.numpy_dtype)
    flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    sats = _add_kernel(flat_a, steps_a, flat_b, steps_b, dims, a_per_span, ra, rb, fixed, info.min, info.max, flat_out)
    return out, sats


def mul(a: np.ndarray, a_qp: QParams, b: np.ndarray, b_qp: QParams, out_qp: QParams) -> Codes:
    """QLinearMul (MLAS ``MlasQLinearMul``, SSE2): the integer product ``(a - z_a)(b - z_b)`` to float32, times
    ``s_a s_b / s_c`` (float32), plus ``float(z_c)`` (a separate float32 add), rounded half to even: the zero
    point is inside before the rounding, which decides ties (``rint(p m) + z_c`` differs on them)."""
    (sa, za), (sb, zb), (sc, zc) = affine(a_qp), affine(b_qp), affine(out_qp)
    m = np.float32(np.float32(sa * sb) / sc)
    prod = ((a.astype(np.int32) - za) * (b.astype(np.int32) - zb)).astype(np.float32)
    return round_clamp(((prod * m).astype(np.float32) + np.float32(zc)).astype(np.float32), 0, out_qp.numpy_dtype)


def global_average_pool(x: np.ndarray, x_qp: QParams, out_qp: QParams, axes: tuple[int, ...]) -> Codes:
    """QLinearGlobalAveragePool: the integer sum over ``axes`` less ``size * z_x``, then ``s_x / (s_y * size)``
    (float32, half to even), the zero point after the rounding."""
    (sx, zx), (sy, zy) = affine(x_qp), affine(out_qp)
    size = int(np.prod([x.shape[a] for a in axes]))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - size * zx
    scale = np.float32(sx / np.float32(sy * np.float32(size)))
    return round_clamp(acc.astype(np.float32) * scale, zy, out_qp.numpy_dtype)


def window_sums(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: Sequence[int],
    out_hw: tuple[int, int],
    count_include_pad: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Each pooling window's float32 sum of NCHW ``x``, one tap at a time in row-major order (padding adds
    zeros, which leave a float sum unchanged), and the taps it divides by: the in-image ones, or with
    ``count_include_pad`` those inside the explicit ``pads`` (top, left, bottom, right), never a
    ``ceil_mode`` overhang beyond them."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    top, left, bottom, right = pads
    height, width = x.shape[2:4]
    extent_h, extent_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    after_h, after_w = max(extent_h - top - height, 0), max(extent_w - left - width, 0)
    padded = np.pad(x, [(0, 0), (0, 0), (top, after_h), (left, after_w)])
    region = (top + height + bottom, left + width + right) if count_include_pad else None
    counted = np.zeros(padded.shape[2:], np.float32)
    if region is None:
        counted[top : top + height, left : left + width] = 1
    else:
        counted[: region[0], : region[1]] = 1
    sums = np.zeros((*x.shape[:2], oh, ow), np.float32)
    taps = np.zeros((oh, ow), np.float32)
    for dy in range(kh):
        for dx in range(kw):
            rows, cols = slice(dy, dy + sh * (oh - 1) + 1, sh), slice(dx, dx + sw * (ow - 1) + 1, sw)
            sums += padded[:, :, rows, cols]
            taps += counted[rows, cols]
    return sums, taps


def average_pool(
    x: np.ndarray,
    x_qp: QParams,
    out_qp: QParams,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: Sequence[int],
    out_hw: tuple[int, int],
    count_include_pad: bool,
) -> Codes:
    """QLinearAveragePool (``QLinearPool2DTask``): codes dequantized ``s_x * (q - z_x)``, :func:`window_sums`,
    divided by the taps, then ``rint(avg / s_y + z_y)``: the zero point enters before the rounding."""
    (sx, zx), (sy, zy) = affine(x_qp), affine(out_qp)
    real = (sx * (x.astype(np.int32) - zx).astype(np.float32)).astype(np.float32)
    sums, taps = window_sums(real, kernel, stride, pads, out_hw, count_include_pad)
    avg = (sums / taps).astype(np.float32)
    return round_clamp(((avg / sy).astype(np.float32) + np.float32(zy)).astype(np.float32), 0, out_qp.numpy_dtype)


def lookup(x: np.ndarray, x_qp: QParams, out_qp: QParams, fn: Callable[[np.ndarray], np.ndarray]) -> Codes:
    """ORT's ``QlinearBuildLookupTable``: every code of the input dtype dequantized, ``fn`` applied in float32,
    quantized to the output's parameters; the tensor is then one table read per element."""
    (sx, zx), (sy, zy) = affine(x_qp), affine(out_qp)
    info = np.iinfo(x.dtype)
    codes = np.arange(info.min, info.max + 1)
    real = (codes - zx).astype(np.float32) * sx
    scaled = (fn(real) / sy).astype(np.float32)
    table, _ = round_clamp(scaled, zy, out_qp.numpy_dtype)
    index = x.astype(np.int64) - info.min
    outside = _outside(np.rint(scaled).astype(np.int64) + zy, out_qp.numpy_dtype)
    return table[index], int(np.count_nonzero(outside[index]))


#: MLAS's logistic (``MlasLogisticConstants``, Eigen's rational approximation): the odd numerator's and the even
#: denominator's coefficients in x^2, highest power first
_LOGISTIC_P = (
    4.37031012579801e-11,
    1.15627324459942e-07,
    6.08574864600143e-05,
    8.51377133304701e-03,
    2.48287947061529e-01,
)
_LOGISTIC_Q = (
    6.10247389755681e-13,
    5.76102136993427e-09,
    6.29106785017040e-06,
    1.70198817374094e-03,
    1.16817656904453e-01,
    9.93151921023180e-01,
)


@njit(cache=True, nogil=True)
def _logistic_flat(x, out, p_coef, q_coef):  # pragma: no cover - compiled
    for i in range(x.size):
        v = x[i]
        if math.isnan(v):
            out[i] = v
            continue
        v = min(np.float32(18.0), max(np.float32(-18.0), v))
        s = np.float32(v * v)
        p = p_coef[0]
        for c in p_coef[1:]:
            p = fma_float32(p, s, c)
        q = q_coef[0]
        for c in q_coef[1:]:
            q = fma_float32(q, s, c)
        y = np.float32(np.float32(np.float32(p * v) / q) + np.float32(0.5))
        out[i] = min(np.float32(1.0), max(np.float32(0.0), y))


def elementwise_float32(kernel: Callable[..., None], x: np.ndarray, *consts: np.ndarray) -> np.ndarray:
    """``kernel(flat, out, *consts)`` over ``x``'s elements as float32, in ``x``'s shape. (Plain Numba loops,
    not numba ufuncs: a ufunc's eager signature is built on every import, about 0.05 s each on every run.)"""
    flat = np.ascontiguousarray(x, np.float32).reshape(-1)
    out = np.empty_like(flat)
    kernel(flat, out, *consts)
    return out.reshape(np.shape(x))


def logistic(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 Sigmoid (MLAS's ``MlasComputeLogistic``, the FMA3 kernel): x clamped to [-18, 18],
    ``p(x) / q(x) + 0.5`` with the polynomials in x^2 by fused multiply-adds, clamped to [0, 1]. Equal to ORT's
    on 200,000 values and the specials; the correctly rounded logistic differs from it in the last bit of over
    half of them, so a float sigmoid's codes after it need this one."""
    return elementwise_float32(
        _logistic_flat, x, np.asarray(_LOGISTIC_P, np.float32), np.asarray(_LOGISTIC_Q, np.float32)
    )


def sigmoid(x: np.ndarray, x_qp: QParams, out_qp: QParams) -> Codes:
    """QLinearSigmoid: a 256-entry table of the logistic function."""
    return lookup(x, x_qp, out_qp, logistic)


def concat(parts: Sequence[tuple[np.ndarray, QParams]], out_qp: QParams, axis: int) -> Codes:
    """QLinearConcat: inputs with the output's parameters copied, the others requantized through a table
    (dequantize, quantize)."""
    pieces, saturated = [], 0
    for codes, qp in parts:
        if affine(qp) == affine(out_qp) and qp.dtype == out_qp.dtype:
            pieces.append(codes)
        else:
            piece, sats = lookup(codes, qp, out_qp, lambda v: v)
            pieces.append(piece)
            saturated += sats
    return np.concatenate(pieces, axis=axis), saturated


def _exp_table(x_scale: np.float32, length: int, signed: bool) -> np.ndarray:
    """QLinearSoftmax's float32 table of ``exp((i - 255 + shift) * s_x)`` for i = 0..255, in double, with
    ``shift = max(0, ln(FLT_MAX / length) - 5) / s_x`` keeping the row sum finite; int8 codes index it as
    ``uint8(i - 128)``."""
    shift = max(0.0, float(np.log(np.finfo(np.float32).max / length)) - 5.0) / float(x_scale)
    i = np.arange(256, dtype=np.float64)
    values = np.exp((i - 255 + shift) * float(x_scale)).astype(np.float32)
    index = ((np.arange(256) - 128) % 256) if signed else np.arange(256)
    table = np.empty(256, np.float32)
    table[index] = values
    return table


def softmax(x: np.ndarray, x_scale: np.float32, y_scale: np.float32, y_zero_point: int, axis: int) -> Codes:
    """QLinearSoftmax (MLAS ``MlasComputeQSoftmax``, opset 13 form): each row shifted so its largest code reads
    the table's top entry, the row sum of the table entries accumulated in float32 in order,
    ``rint(t * floor(1 / s_y) / sum) + z_y`` per element, saturated to ``x``'s dtype (values are >= 0, so only
    the top clamps: int8 at 127, measured against ORT's kernel with the zero point at the top of the range)."""
    axis %= x.ndim
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1]).astype(np.int64)
    signed = x.dtype == np.int8
    table = _exp_table(np.float32(x_scale), rows.shape[1], signed)
    top = 127 if signed else 255
    entries = table[(rows + (top - rows.max(axis=1, keepdims=True))) % 256]
    sums = np.cumsum(entries, axis=1, dtype=np.float32)[:, -1:]
    scale = np.float32(np.floor(np.float32(1.0) / np.float32(y_scale)))
    out, saturated = round_clamp(
        ((entries * scale).astype(np.float32) / sums).astype(np.float32), y_zero_point, x.dtype
    )
    return np.moveaxis(out.reshape(moved.shape), -1, axis), saturated


#: MLAS's erf (``MlasErfConstants``): the small-argument odd polynomial in x^2 up to |x| = 0.921875, above it
#: ``1 - exp(-p(|x|))`` with MLAS's own exp (a Cody-Waite split of ln 2, a degree-6 polynomial, 2^k)
_ERF_SMALL = (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1, -3.76124859e-1, 1.28379151e-1)
_ERF_BIG = (1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2, 1.06777847e-1, 6.34846687e-1, 1.28717512e-1)
_EXP = (1.38319808e-3, 8.37550033e-3, 4.16689515e-2, 1.66664466e-1, 4.99999851e-1, 1.0, 1.0)


@njit(cache=True, nogil=True)
def _erf_flat(x, out, small, big, exp):  # pragma: no cover - compiled
    for i in range(x.size):
        v = x[i]
        a = abs(v)
        if math.isnan(v):
            out[i] = v
            continue
        if a <= np.float32(0.921875):
            s = np.float32(a * a)
            r = small[0]
            for c in small[1:]:
                r = fma_float32(r, s, c)
            r = fma_float32(r, a, a)
        else:
            r = big[0]
            for c in big[1:]:
                r = fma_float32(r, a, c)
            t = max(np.float32(-88.3762626647949), -fma_float32(r, a, a))
            magic = np.float32(1.25829120e7)  # 1.5 * 2^23: adding it rounds to an integer
            k = np.float32(fma_float32(np.float32(1.44269504088896341), t, magic) - magic)
            f = fma_float32(k, np.float32(-1.42860677e-6), fma_float32(k, np.float32(-6.93145752e-1), t))
            y = exp[0]
            for c in exp[1:]:
                y = fma_float32(y, f, c)
            r = np.float32(np.float32(1.0) - np.float32(y * np.float32(2.0 ** int(k))))
        out[i] = np.float32(math.copysign(r, v))  # MLAS ORs the sign back: erf(-0) = -0


def erf(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 Erf (MLAS's ``MlasErfKernel``, FMA form): faithfully rounded, within one ulp of
    the exact erf (about one value in ten differs from the correctly rounded one); equal to ORT's on a million
    normal values times 3, +-[0, 5] in steps of 5e-5 and the specials (+-0, subnormals, +-inf, NaN, 3e38).
    A quantized model quantizes it (Erf-GELU's Erf output), so its last bit decides codes at boundaries."""
    return elementwise_float32(_erf_flat, x, *(np.asarray(c, np.float32) for c in (_ERF_SMALL, _ERF_BIG, _EXP)))


#: MLAS's exp for Softmax (``MlasExpConstants`` as ``MlasComputeSumExpF32KernelAvx512F`` uses them): the lower
#: clamp, ``1 / ln 2``, the Cody-Waite split of ln 2 (high, low) and the degree-6 polynomial (its last two
#: coefficients 1)
_SOFTMAX_EXP_LOW = -103.9720840454
_SOFTMAX_LN2 = (1.44269504088896341, -6.93145752e-1, -1.42860677e-6)
_SOFTMAX_POLY = tuple(
    float.fromhex(c)
    for c in ("0x1.694p-10", "0x1.125edcp-7", "0x1.555b5ap-5", "0x1.55545p-3", "0x1.fffff6p-2", "1", "1")
)


@njit(cache=True, nogil=True)
def _softmax_rows(x, visible, out, ln2, poly, low):  # pragma: no cover - compiled
    """Each row of ``x`` as ONNX Runtime's float32 Softmax (MLAS ``MlasComputeSoftmax`` on AVX-512) over its first
    ``visible[r]`` entries, the others 0 (a causal mask): the maximum; ``e = exp(x - max)`` by MLAS's exp
    (``x - max`` clamped below at -103.97, ``m = round(v / ln 2)`` by the 1.5 * 2^23 trick, ``v - m ln2_high -
    m ln2_low`` and the polynomial by FMAs, scaled by ``2^m`` as VSCALEFPS rounds, subnormals included); ``e``
    summed in 16 lanes (element ``j`` into lane ``j % 16``, in order), the lanes folded ``c_i = a_(i+8) +
    a_i``, then ``((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7))``; each ``e`` times ``1 / sum``."""
    magic = np.float32(12582912.0)
    lanes = np.zeros(16, np.float32)
    for r in range(x.shape[0]):
        n = visible[r]
        top = x[r, 0]
        for j in range(1, n):
            top = max(top, x[r, j])
        lanes[:] = 0
        for j in range(n):
            v = max(low, np.float32(x[r, j] - top))
            m = np.float32(fma_float32(v, ln2[0], magic) - magic)
            v = fma_float32(m, ln2[2], fma_float32(m, ln2[1], v))
            p = poly[0]
            for c in poly[1:]:
                p = fma_float32(p, v, c)
            e = np.float32(np.float64(p) * 2.0 ** np.float64(m))
            out[r, j] = e
            lanes[j % 16] = np.float32(lanes[j % 16] + e)
        c0 = np.float32(lanes[8] + lanes[0])
        c1 = np.float32(lanes[9] + lanes[1])
        c2 = np.float32(lanes[10] + lanes[2])
        c3 = np.float32(lanes[11] + lanes[3])
        c4 = np.float32(lanes[12] + lanes[4])
        c5 = np.float32(lanes[13] + lanes[5])
        c6 = np.float32(lanes[14] + lanes[6])
        c7 = np.float32(lanes[15] + lanes[7])
        total = np.float32(
            np.float32(np.float32(c0 + c1) + np.float32(c2 + c3))
            + np.float32(np.float32(c4 + c5) + np.float32(c6 + c7))
        )
        scale = np.float32(np.float32(1.0) / total)
        for j in range(n):
            out[r, j] = np.float32(out[r, j] * scale)
        for j in range(n, x.shape[1]):
            out[r, j] = np.float32(0.0)


def float_softmax(x: np.ndarray, axis: int, visible: np.ndarray | None = None) -> np.ndarray:
    """ONNX Runtime's float32 Softmax over ``axis`` of ``x`` (:func:`_softmax_rows`; ORT moves the axis last
    too), bit for bit; numpy's ``exp`` and pairwise sum differ from it in the last bits of most values.
    ``visible``: per row of the moved array (``axis`` last, leading dims flattened), how many leading entries
    take part; the rest weigh exactly 0 (a causal mask; None: all)."""
    moved = np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float32), axis, -1))
    rows = moved.reshape(-1, moved.shape[-1])
    counts = np.full(rows.shape[0], rows.shape[1], np.int64) if visible is None else visible.astype(np.int64)
    out = np.empty_like(rows)
    ln2, poly = (np.asarray(c, np.float32) for c in (_SOFTMAX_LN2, _SOFTMAX_POLY))
    _softmax_rows(rows, counts, out, ln2, poly, np.float32(_SOFTMAX_EXP_LOW))
    return np.moveaxis(out.reshape(moved.shape), -1, axis)
