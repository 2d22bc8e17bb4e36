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

from accelsim.dynamic_flavours import FlavourName
from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm
from accelsim.quant import QParams, QuantizedWeight, dequantize_tensor, ort_vector, quantize_tensor, run_static_codes
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


# -- the vector unit (accelsim.quant.ort_vector: the arithmetic the static values run shares) ------------


def _input_qp(args: Args, at: int) -> QParams:
    """The per-tensor parameters of the codes at ``args[at]`` (scale and zero point follow them)."""
    zero = args[at + 2] if len(args) > at + 2 else None
    return qparams(args[at + 1], zero, np.asarray(args[at]).dtype)


def _output_qp(args: Args, at: int) -> QParams:
    """The output's per-tensor parameters from its scale at ``args[at]`` and optional zero point after it."""
    zero = args[at + 1] if len(args) > at + 1 else None
    return qparams(args[at], zero, _out_dtype(zero))


def qlinear_add(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearAdd: :func:`accelsim.quant.ort_vector.add`."""
    return [
        ort_vector.add(
            np.asarray(args[0]), _input_qp(args, 0), np.asarray(args[3]), _input_qp(args, 3), _output_qp(args, 6)
        )[0]
    ]


def qlinear_mul(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearMul: :func:`accelsim.quant.ort_vector.mul`."""
    return [
        ort_vector.mul(
            np.asarray(args[0]), _input_qp(args, 0), np.asarray(args[3]), _input_qp(args, 3), _output_qp(args, 6)
        )[0]
    ]


def qlinear_global_average_pool(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearGlobalAveragePool over the spatial axes (channels first or last)."""
    x = np.asarray(args[0])
    axes = tuple(range(1, x.ndim - 1)) if int(attrs.get("channels_last", 0)) else tuple(range(2, x.ndim))
    return [ort_vector.global_average_pool(x, _input_qp(args, 0), _output_qp(args, 3), axes)[0]]


def qlinear_average_pool(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearAveragePool: :func:`accelsim.quant.ort_vector.average_pool`."""
    x = np.asarray(args[0])
    kernel = (int(attrs["kernel_shape"][0]), int(attrs["kernel_shape"][1]))
    geometry = conv_geometry({**attrs, "dilations": [1, 1]}, x.shape[2:], kernel)
    out_hw = geometry.output_size(x.shape[2], x.shape[3], *kernel)
    codes, _ = ort_vector.average_pool(
        x,
        _input_qp(args, 0),
        _output_qp(args, 3),
        kernel,
        geometry.stride,
        geometry.padding,
        out_hw,
        bool(int(attrs.get("count_include_pad", 0))),
    )
    return [codes]


def qlinear_sigmoid(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearSigmoid: :func:`accelsim.quant.ort_vector.sigmoid`."""
    return [ort_vector.sigmoid(np.asarray(args[0]), _input_qp(args, 0), _output_qp(args, 3))[0]]


def qlinear_concat(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearConcat (y_scale, y_zp, then (x, s, z) triples)."""
    parts = [(np.asarray(args[i]), _input_qp(args, i)) for i in range(2, len(args), 3)]
    return [ort_vector.concat(parts, _output_qp(args, 0), int(attrs["axis"]))[0]]


def qlinear_softmax(attrs: Attrs, args: Args) -> list[np.ndarray]:
    """com.microsoft QLinearSoftmax: :func:`accelsim.quant.ort_vector.softmax`."""
    x = np.asarray(args[0])
    zero = args[4] if len(args) > 4 and args[4] is not None else 0
    y_scale, y_zero = np.float32(np.asarray(args[3]).reshape(())), int(np.asarray(zero).reshape(()))
    axis = int(attrs.get("axis", -1))
    return [ort_vector.softmax(x, np.float32(np.asarray(args[1]).reshape(())), y_scale, y_zero, axis)[0]]


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
