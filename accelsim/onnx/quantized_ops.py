"""ONNX Runtime's integer arithmetic per quantized operator, computed with accelsim's kernels.

Each function takes a node's attributes and its input values (``None`` for an omitted optional input) and
returns its outputs, as ORT's CPU kernels compute them (ORT 1.32, MLAS): the GEMM operators run the array
(:func:`~accelsim.quant.run_static_codes` with ``float_half_even``, the given weight codes, zero points and
int32 bias; :func:`~accelsim.kernels.int_gemm` / :func:`~accelsim.kernels.int_conv2d` for the dynamic
operators), the rest are the vector unit's element-wise arithmetic written the way MLAS writes it (the
order of float32 operations decides ties, so it is kept). docs/onnx.md states each formula and the test
that checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numba import vectorize

from accelsim.dynamic_flavours import FlavourName
from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm
from accelsim.kernels.quantize import fma_float32
from accelsim.quant import QParams, QuantizedWeight, dequantize_tensor, quantize_tensor, run_static_codes
from accelsim.quant.dynamic import dynamic_qparams
from accelsim.requant_modes import RequantModeName

#: ORT's requant arithmetic (MlasRequantizeOutput): float32 scale, round half to even
MODE = RequantModeName.FLOAT_HALF_EVEN
Args = Sequence[Any]
Attrs = dict[str, Any]
Op = Callable[[Attrs, Args], list[np.ndarray]]


def qparams(scale: Any, zero_point: Any, dtype: np.dtype, axis: int | None = None) -> QParams:
    """ONNX's (scale, zero point) inputs as :class:`QParams`; a zero point left out is 0."""
    s = np.asarray(scale, np.float32).reshape(-1)
    z = np.zeros(s.shape, np.int32) if zero_point is None else np.asarray(zero_point).astype(np.int32).reshape(-1)
    per_axis = s.size > 1
    return QParams(s, np.broadcast_to(z, s.shape), np.dtype(dtype).name, axis=axis if per_axis else None)


def _out_dtype(zero_point: Any) -> np.dtype:
    return np.dtype(np.uint8) if zero_point is None else np.asarray(zero_point).dtype


def _round_clamp(v: np.ndarray, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """``clamp(rint(v) + z)``: float32 round half to even (``std::nearbyintf``), then the zero point."""
    info = np.iinfo(dtype)
    return np.clip(np.rint(v).astype(np.int64) + zero_point, info.min, info.max).astype(dtype)


# -- edges ---------------------------------------------------------------------------------------------


def quantize_linear(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """QuantizeLinear: ``rint(x / s) + z`` (float32 division, half to even), per tensor or per axis."""
    x, s, z = (*args, None)[:3]
    dtype = _out_dtype(z)
    qp = qparams(s, z, dtype, int(attrs.get("axis", 1)) % max(np.ndim(x), 1))
    return [quantize_tensor(np.asarray(x, np.float32), qp)[0]]


def dequantize_linear(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """DequantizeLinear: ``float32(q - z) * s``."""
    q, s, z = (*args, None)[:3]
    qp = qparams(s, z, q.dtype, int(attrs.get("axis", 1)) % max(q.ndim, 1))
    return [dequantize_tensor(q, qp)]


def dynamic_quantize_linear(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """DynamicQuantizeLinear: the ``onnx`` dynamic flavour's range, parameters and codes (uint8)."""
    x = np.asarray(args[0], np.float32)
    qp = dynamic_qparams(x.reshape(1, -1), FlavourName.ONNX)
    codes = quantize_tensor(x, qp)[0]
    return [codes, qp.scale.reshape(()).copy(), qp.zero_point.astype(np.uint8).reshape(())]


# -- the array: static --------------------------------------------------------------------------------


def _weight(codes: np.ndarray, scale: Any, zero_point: Any, axis: int) -> QuantizedWeight:
    return QuantizedWeight(np.ascontiguousarray(codes), qparams(scale, zero_point, codes.dtype, axis))


def conv_geometry(attrs: Attrs, hw: Sequence[int], kernel: Sequence[int]) -> ConvGeometry:
    """Stride, the explicit (top, left, bottom, right) pads (auto_pad resolved as ORT does), dilation, groups."""
    strides = [int(v) for v in attrs.get("strides", [1, 1])]
    dilations = [int(v) for v in attrs.get("dilations", [1, 1])]
    mode = attrs.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [
            max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            for size, k, s, d in zip(hw, kernel, strides, dilations)
        ]
        small = [t // 2 for t in totals]
        big = [t - t // 2 for t in totals]
        begin, end = (small, big) if mode == "SAME_UPPER" else (big, small)
        pads = [*begin, *end]
    elif mode == "VALID":
        pads = [0, 0, 0, 0]
    else:
        pads = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    return ConvGeometry(
        (strides[0], strides[1]),
        (pads[0], pads[1], pads[2], pads[3]),
        (dilations[0], dilations[1]),
        int(attrs.get("group", 1)),
    )


def qlinear_conv(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """QLinearConv: the array on the given codes, int32 bias verbatim, ``float_half_even`` requant."""
    x, sx, zx, w, sw, zw, sy, zy, bias = (*args, None)[:9]
    geometry = conv_geometry(attrs, x.shape[2:], w.shape[2:])
    res = run_static_codes(
        "conv2d",
        x,
        qparams(sx, zx, x.dtype),
        _weight(w, sw, zw, 0),
        bias,
        qparams(sy, zy, _out_dtype(zy)),
        requant_mode=MODE,
        geometry=geometry,
        keep_accumulators=False,
    )
    return [res.tensors["output_q"].values]


def _batched(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Both operands broadcast over their batch dims as ``[G, M, K]`` and ``[G, K, N]``."""
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = np.broadcast_to(a, (*lead, *a.shape[-2:])).reshape(-1, *a.shape[-2:])
    b3 = np.broadcast_to(b, (*lead, *b.shape[-2:])).reshape(-1, *b.shape[-2:])
    return a3, b3, lead


def _requant_gemms(
    a: np.ndarray, a_qp: QParams, b: np.ndarray, w_scale: Any, w_zp: Any, bias: np.ndarray | None, out_qp: QParams
) -> np.ndarray:
    """``a @ b`` (batched, ``b`` per column parameters or per tensor) through the array and the requant unit."""
    squeeze = a.ndim == 1
    a2 = a.reshape(1, -1) if squeeze else a
    a3, b3, lead = _batched(a2, b)
    outs = [
        run_static_codes(
            "matmul",
            np.ascontiguousarray(a3[i]),
            a_qp,
            _weight(b3[i], w_scale, w_zp, 1),
            bias,
            out_qp,
            requant_mode=MODE,
            keep_accumulators=False,
        )
        .tensors["output_q"]
        .values
        for i in range(a3.shape[0])
    ]
    y = np.stack(outs).reshape(*lead, a3.shape[1], b3.shape[2])
    return y.reshape(y.shape[:-2] + y.shape[-1:]) if squeeze else y


def qlinear_matmul(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """QLinearMatMul: every (batch) product on the array, the second operand's zero point the weight's."""
    a, sa, za, b, sb, zb, sy, zy = args[:8]
    out_qp = qparams(sy, zy, _out_dtype(zy))
    return [_requant_gemms(a, qparams(sa, za, a.dtype), b, sb, zb, None, out_qp)]


def qgemm(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QGemm: ``alpha * A' B' + C`` with C int32 in ``s_a * s_b`` units; the requant
    multiplier absorbs ``alpha`` (``s_a * s_b * alpha / s_y``); without ``y_scale`` the output is float."""
    a, sa, za, b, sb, zb, c, sy, zy = (*args, None, None, None)[:9]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    alpha = np.float32(attrs.get("alpha", 1.0))
    bias = None if c is None else np.asarray(c, np.int32).reshape(-1)
    if sy is None:
        acc = int_gemm(
            np.ascontiguousarray(a),
            np.ascontiguousarray(b),
            a_zero_point=int(np.asarray(za).reshape(())),
            b_zero_point=np.asarray(zb).astype(np.int64).reshape(-1) if np.size(zb) > 1 else int(np.asarray(zb)),
            bias=bias,
        ).values
        scale = (np.float32(sa) * np.asarray(sb, np.float32).reshape(-1) * alpha).astype(np.float32)
        return [(acc.astype(np.float32) * scale).astype(np.float32)]
    out_qp = qparams(np.float32(sy) / alpha, zy, _out_dtype(zy))
    return [_requant_gemms(a, qparams(sa, za, a.dtype), b, sb, zb, bias, out_qp)]


# -- the array: dynamic (int32 out; the float rescale is ordinary Cast / Mul / Add nodes) ----------------


def _zero_point(z: Any) -> int | np.ndarray:
    if z is None:
        return 0
    arr = np.asarray(z).astype(np.int64).reshape(-1)
    return int(arr[0]) if arr.size == 1 else arr


def matmul_integer(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """MatMulInteger: ``sum (a - z_a)(b - z_b)`` in int32 on the array, batched."""
    a, b, za, zb = (*args, None, None)[:4]
    a3, b3, lead = _batched(a, b)
    outs = [
        int_gemm(
            np.ascontiguousarray(a3[i]),
            np.ascontiguousarray(b3[i]),
            a_zero_point=int(_zero_point(za)),
            b_zero_point=_zero_point(zb),
        ).values
        for i in range(a3.shape[0])
    ]
    return [np.stack(outs).reshape(*lead, a3.shape[1], b3.shape[2])]


def conv_integer(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """ConvInteger: int32 convolution of the codes less their zero points (padding holds ``z_x``)."""
    x, w, zx, zw = (*args, None, None)[:4]
    geometry = conv_geometry(attrs, x.shape[2:], w.shape[2:])
    return [int_conv2d(x, w, geometry, x_zero_point=int(_zero_point(zx)), w_zero_point=_zero_point(zw)).values]


# -- the vector unit ------------------------------------------------------------------------------------


def _scalars(args: Args, at: int) -> tuple[np.float32, int]:
    zero = args[at + 1] if len(args) > at + 1 and args[at + 1] is not None else 0
    return np.float32(np.asarray(args[at]).reshape(())), int(np.asarray(zero).reshape(()))


@vectorize(["float32(float32, float32, float32)"], cache=True)
def _fma(a, b, c):  # pragma: no cover - compiled
    """float32 ``a * b + c`` with one rounding (the AVX2 ``vfmadd`` QLinearAdd uses)."""
    return fma_float32(a, b, c)


def _scalar_span(x: np.ndarray, shape: tuple[int, ...]) -> bool:
    """ORT's broadcaster hands an operand to the kernel as one value per span when it does not vary along the
    output's innermost dim (a scalar, a per-channel ``[C, 1, 1]``)."""
    return x.size == 1 or (len(shape) > 0 and shape[-1] > 1 and (x.ndim == 0 or x.shape[-1] == 1))


def qlinear_add(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearAdd (MLAS ``MlasQLinearAddKernelAvx2Helper``): ``r = s / s_c`` in float32, a
    fixed part ``float(z_c) - (r_a z_a + r_b z_b)`` (plus ``r * v`` for an operand that is one value per
    span), then ``fma(b, r_b, fixed)`` and ``fma(a, r_a, that)``, each one float32 rounding, and the
    conversion rounds half to even with the zero point already inside."""
    (sa, za), (sb, zb), (sc, zc) = _scalars(args, 1), _scalars(args, 4), _scalars(args, 6)
    a, b = np.asarray(args[0]), np.asarray(args[3])
    shape = np.broadcast_shapes(a.shape, b.shape)
    ra, rb = np.float32(sa / sc), np.float32(sb / sc)
    fixed = np.float32(np.float32(zc) - np.float32(ra * np.float32(za) + rb * np.float32(zb)))
    fa, fb = (np.broadcast_to(x.astype(np.float32), shape) for x in (a, b))
    if _scalar_span(a, shape):
        v = _fma(fb, rb, (fixed + (fa * ra).astype(np.float32)).astype(np.float32))
    elif _scalar_span(b, shape):
        v = _fma(fa, ra, (fixed + (fb * rb).astype(np.float32)).astype(np.float32))
    else:
        v = _fma(fa, ra, _fma(fb, rb, np.broadcast_to(fixed, shape)))
    return [_round_clamp(v, 0, _out_dtype(args[7] if len(args) > 7 else None))]


def qlinear_mul(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearMul (MLAS ``MlasQLinearMul``): ``rint((a - z_a)(b - z_b) * (s_a s_b / s_c)) + z_c``."""
    (sa, za), (sb, zb), (sc, zc) = _scalars(args, 1), _scalars(args, 4), _scalars(args, 6)
    a, b = np.asarray(args[0]), np.asarray(args[3])
    m = np.float32(np.float32(sa * sb) / sc)
    prod = (a.astype(np.int32) - za).astype(np.float32) * (b.astype(np.int32) - zb).astype(np.float32)
    return [_round_clamp((prod * m).astype(np.float32), zc, _out_dtype(args[7] if len(args) > 7 else None))]


def qlinear_global_average_pool(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearGlobalAveragePool: the integer sum of each channel less ``size * z_x``, then the
    requant unit with ``s_x / (s_y * size)`` (float32, half to even)."""
    x = np.asarray(args[0])
    (sx, zx), (sy, zy) = _scalars(args, 1), _scalars(args, 3)
    channels_last = int(attrs.get("channels_last", 0))
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    size = int(np.prod([x.shape[a] for a in axes]))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - size * zx
    scale = np.float32(sx / np.float32(sy * np.float32(size)))
    return [_round_clamp(acc.astype(np.float32) * scale, zy, _out_dtype(args[4] if len(args) > 4 else None))]


def qlinear_average_pool(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearAveragePool (``QLinearPool2DTask``): codes dequantized ``s_x * (q - z_x)``, each
    window's in-image taps summed in float32 row by row, divided by the tap count (all kernel taps with
    ``count_include_pad``), then ``rint(avg / s_y + z_y)``: the zero point enters before the rounding."""
    x = np.asarray(args[0])
    (sx, zx), (sy, zy) = _scalars(args, 1), _scalars(args, 3)
    sums, taps = _window_sums(attrs, (sx * (x.astype(np.int32) - zx).astype(np.float32)).astype(np.float32))
    avg = (sums / taps).astype(np.float32)
    v = ((avg / sy).astype(np.float32) + np.float32(zy)).astype(np.float32)
    return [_round_clamp(v, 0, _out_dtype(args[4] if len(args) > 4 else None))]


def _window_sums(attrs: Attrs, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pooling window's float32 sum of NCHW ``x``, one tap at a time in row-major order (the padding
    adds zeros, which leave a float sum unchanged), and the taps it divides by."""
    kh, kw = (int(v) for v in attrs["kernel_shape"])
    geometry = conv_geometry({**attrs, "dilations": [1, 1]}, x.shape[2:], (kh, kw))
    pt, pl, pb, pr = geometry.padding
    sh, sw = geometry.stride
    oh, ow = geometry.output_size(x.shape[2], x.shape[3], kh, kw)
    padded = np.pad(x, [(0, 0), (0, 0), (pt, pb), (pl, pr)])
    inside = np.pad(np.ones(x.shape[2:], np.float32), [(pt, pb), (pl, pr)])
    sums = np.zeros((*x.shape[:2], oh, ow), np.float32)
    taps = np.zeros((oh, ow), np.float32)
    for dy in range(kh):
        for dx in range(kw):
            rows, cols = slice(dy, dy + sh * (oh - 1) + 1, sh), slice(dx, dx + sw * (ow - 1) + 1, sw)
            sums += padded[:, :, rows, cols]
            taps += inside[rows, cols]
    if int(attrs.get("count_include_pad", 0)):
        taps = np.full((oh, ow), kh * kw, np.float32)
    return sums, taps


def _lookup(args: Args, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """ORT's ``QlinearBuildLookupTable``: every code of the input dtype dequantized, ``fn`` applied in float32,
    quantized to the output's parameters; the tensor is then one table read per element."""
    x = np.asarray(args[0])
    (sx, zx), (sy, zy) = _scalars(args, 1), _scalars(args, 3)
    info = np.iinfo(x.dtype)
    codes = np.arange(info.min, info.max + 1)
    real = (codes - zx).astype(np.float32) * sx
    table = _round_clamp((fn(real) / sy).astype(np.float32), zy, _out_dtype(args[4] if len(args) > 4 else None))
    return table[x.astype(np.int64) - info.min]


def qlinear_sigmoid(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearSigmoid: a 256-entry table of the logistic function."""
    return [_lookup(args, lambda v: (1.0 / (1.0 + np.exp(-v.astype(np.float64)))).astype(np.float32))]


def qlinear_concat(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearConcat (y_scale, y_zp, then (x, s, z) triples): inputs with the output's
    parameters are copied, the others requantized through a table (dequantize, quantize)."""
    sy, zy = args[0], args[1]
    parts = []
    for i in range(2, len(args), 3):
        x, sx, zx = args[i : i + 3]
        same = np.float32(sx) == np.float32(sy) and int(np.asarray(zx)) == int(np.asarray(zy))
        parts.append(x if same else _lookup([x, sx, zx, sy, zy], lambda v: v))
    return [np.concatenate(parts, axis=int(attrs["axis"]))]


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


def qlinear_softmax(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearSoftmax (MLAS ``MlasComputeQSoftmax``, opset 13 form): each row shifted so its
    largest code reads the table's top entry, the row sum of the table entries accumulated in float32 in
    order, ``rint(t * floor(1 / s_y) / sum) + z_y`` per element."""
    x = np.asarray(args[0])
    xs, (_, zy) = np.float32(np.asarray(args[1]).reshape(())), _scalars(args, 3)
    axis = int(attrs.get("axis", -1)) % x.ndim
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1]).astype(np.int64)
    signed = x.dtype == np.int8
    table = _exp_table(xs, rows.shape[1], signed)
    top = 127 if signed else 255
    index = (rows + (top - rows.max(axis=1, keepdims=True))) % 256
    entries = table[index]
    sums = np.cumsum(entries, axis=1, dtype=np.float32)[:, -1:]
    y_scale = np.float32(np.floor(np.float32(1.0) / np.float32(np.asarray(args[3]).reshape(()))))
    q = np.rint(((entries * y_scale).astype(np.float32) / sums).astype(np.float32)).astype(np.int64) + zy
    q = np.where(q > 255, 255, q)
    out = q.astype(np.uint8).view(x.dtype) if signed else q.astype(np.uint8)
    return [np.moveaxis(out.reshape(moved.shape), -1, axis)]


#: (domain-qualified) op type -> its arithmetic; the other ops are float32 or layout ops
OPS: dict[str, Op] = {
    "QuantizeLinear": quantize_linear,
    "DequantizeLinear": dequantize_linear,
    "DynamicQuantizeLinear": dynamic_quantize_linear,
    "QLinearConv": qlinear_conv,
    "QLinearMatMul": qlinear_matmul,
    "com.microsoft.QGemm": qgemm,
    "MatMulInteger": matmul_integer,
    "ConvInteger": conv_integer,
    "com.microsoft.QLinearAdd": qlinear_add,
    "com.microsoft.QLinearMul": qlinear_mul,
    "com.microsoft.QLinearGlobalAveragePool": qlinear_global_average_pool,
    "com.microsoft.QLinearAveragePool": qlinear_average_pool,
    "com.microsoft.QLinearSigmoid": qlinear_sigmoid,
    "com.microsoft.QLinearConcat": qlinear_concat,
    "com.microsoft.QLinearSoftmax": qlinear_softmax,
}
