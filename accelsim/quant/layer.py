"""One layer under one scheme, with every intermediate tensor exposed (the golden model's entry point).

Plain numpy in, plain numpy out. Layouts: conv2d activations NCHW and weights ``[O, C/groups, kh, kw]``;
linear ``x[..., in]`` and weights ``[out, in]``; matmul ``x[..., K] @ weight[K, N]``. Output channels
(what per-channel parameters index) are axis 1 for conv2d and the last axis otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from accelsim.dynamic_flavours import get_flavour
from accelsim.kernels.col2im import ConvTransposeGeometry, float_conv_transpose2d, int_conv_transpose2d
from accelsim.kernels.conv import ConvGeometry, float_conv2d, int_conv2d, pack_conv_weights, requant_conv2d
from accelsim.kernels.gemm import (
    INT32_WRAP,
    Accumulator,
    AccumulatorResult,
    PackedWeights,
    RequantEpilogue,
    accumulator_range,
    float_gemm,
    int_gemm,
    never_overflows,
    requant_gemm,
)
from accelsim.kernels.layout import value_range
from accelsim.kernels.quantize import scale_accumulator
from accelsim.kernels.requant import Requantized
from accelsim.quant.bias import bias_qparams, quantize_bias
from accelsim.quant.dynamic import dynamic_quantize
from accelsim.quant.observers import MinMaxObserver
from accelsim.quant.options import Quantization
from accelsim.quant.qparams import QParams, weight_qparams
from accelsim.quant.requant import RequantParams, make_requant_params, requantize
from accelsim.quant.rules import dequantize_tensor, quantize_tensor
from accelsim.requant_modes import RequantMode, RequantModeName, get_mode
from accelsim.schemes import SchemeName, WeightFormatName, get_weight_format

LAYER_KINDS = ("conv2d", "conv_transpose2d", "linear", "matmul")
#: the kinds whose activations are NCHW images (output channels on axis 1)
IMAGE_KINDS = ("conv2d", "conv_transpose2d")
#: a conv2d's window geometry or a conv_transpose2d's scatter geometry
Geometry = ConvGeometry | ConvTransposeGeometry


@functools.cache
def dtype_name(dtype: np.dtype) -> str:
    """``str(dtype)``, memoized: numpy builds the name in Python on every call."""
    return str(dtype)


@dataclass(frozen=True)
class TensorRecord:
    """A tensor as one unit sees it: values, dtype name and quantization parameters (None if float)."""

    values: np.ndarray
    dtype: str
    qparams: QParams | None = None

    @property
    def codes_qparams(self) -> QParams:
        """The parameters of a quantized tensor's codes (asking a float tensor for them is a bug)."""
        if self.qparams is None:
            raise ValueError(f"a {self.dtype} tensor has no quantization parameters")
        return self.qparams


@dataclass(frozen=True)
class LayerResult:
    """Intermediates and event counts of one layer; :attr:`output` is its float32 output."""

    kind: str
    scheme: str
    variant: str | None  # requant mode (static) or dynamic flavour
    tensors: dict[str, TensorRecord]
    accumulator_overflows: int = 0
    requant_saturations: int = 0
    input_saturations: int = 0
    bias_saturations: int = 0
    requant: RequantParams | None = None
    geometry: Geometry | None = None
    settings: dict[str, object] = field(default_factory=dict)
    acc_range: tuple[int, int] | None = None  # (min, max) of "acc" when its producer saw them (the requant unit)

    @property
    def accumulator_range(self) -> tuple[int, int] | None:
        """Smallest and largest accumulator value; None when the layer has no integer accumulator."""
        if self.acc_range is not None:
            return self.acc_range
        return value_range(self.tensors["acc"].values) if "acc" in self.tensors else None

    @cached_property
    def output(self) -> np.ndarray:
        """float32 output; static: the output codes dequantized, on first use (a network chains the codes)."""
        if "output" in self.tensors:
            return self.tensors["output"].values
        out = self.tensors["output_q"]
        return dequantize_tensor(out.values, out.codes_qparams)


@dataclass(frozen=True)
class _Layer:
    """The layer's shape logic: which axis holds output channels and how to run it as GEMM/conv."""

    kind: str
    geometry: Geometry | None

    @property
    def channel_axis(self) -> int:
        """Output channels: axis 1 of NCHW conv outputs, the last axis of linear/matmul outputs."""
        return 1 if self.kind in IMAGE_KINDS else -1

    @property
    def weight_axis(self) -> int:
        """The weight axis holding output channels (per-channel scales index it)."""
        return 1 if self.kind == "matmul" else 0

    def gemm_weights(self, w: np.ndarray) -> np.ndarray:
        """Weights as the GEMM's ``[K, N]`` operand."""
        return w.T if self.kind == "linear" else w

    def run_float(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """float32 reference of the layer (fp32 and woq schemes, and static calibration)."""
        if isinstance(self.geometry, ConvTransposeGeometry):
            y = float_conv_transpose2d(x, w, self.geometry)
        elif self.geometry is not None:
            y = float_conv2d(x, w, self.geometry)
        else:
            y = float_gemm(
                x.astype(np.float32).reshape(-1, x.shape[-1]), self.gemm_weights(w).astype(np.float32)
            ).reshape(*x.shape[:-1], -1)
        if bias is not None:
            y = y + _channel_broadcast(np.asarray(bias, np.float32), y.ndim, self.channel_axis)
        return y.astype(np.float32)

    def run_requantized(
        self, xq: np.ndarray, wq: QuantizedWeight, zero_point: int, setup: _RequantSetup
    ) -> Requantized | None:
        """The array handing its int32 accumulators straight to the requant unit (no int32 tensor in
        memory), where that gives the same bits as :meth:`run_int` then the requant unit: int32
        accumulators that provably never wrap, one group, a requant mode with a plan (fixed point, float64,
        or ORT's / fbgemm's float32) and 1-byte codes in and out. None otherwise. The kernels choose how
        (AMX, VNNI or not)."""
        rq, plan = setup.requant, setup.lanes
        if (
            plan is None
            or xq.dtype.itemsize != 1
            or np.dtype(rq.output.numpy_dtype).itemsize != 1
            or self.kind in ("matmul", "conv_transpose2d")
            or (self.geometry is not None and self.geometry.groups != 1)
            or plan[0].size != wq.codes.shape[0]  # per-tensor weights: the epilogue reads one multiplier per channel
        ):
            return None
        k_dim = wq.codes[0].size
        if not never_overflows(
            xq.dtype, zero_point, wq.codes.dtype, k_dim, setup.max_bias, accumulator_range(32)[1], wq.zero_point
        ):
            return None
        epilogue = RequantEpilogue(
            a_zero_point=zero_point,
            b_zero_point=wq.zero_point,
            bias=None if setup.bias is None else setup.bias[0],
            plan=plan,
            out_dtype=rq.output.numpy_dtype,
        )
        if isinstance(self.geometry, ConvGeometry):
            kernel = (wq.codes.shape[2], wq.codes.shape[3])
            return requant_conv2d(xq, kernel, self.geometry, lambda k_order: wq.packed(1, k_order), epilogue)
        out = requant_gemm(xq.reshape(-1, xq.shape[-1]), wq.packed(1)[0], epilogue)
        return out._replace(codes=out.codes.reshape(*xq.shape[:-1], -1))

    def run_int(
        self,
        xq: np.ndarray,
        wq: QuantizedWeight,
        zero_point: int,
        bias_q: np.ndarray | None,
        acc: Accumulator,
    ) -> AccumulatorResult:
        """The array's integer accumulation, output laid out like the float output."""
        if isinstance(self.geometry, ConvTransposeGeometry):
            return int_conv_transpose2d(
                xq,
                wq.codes,
                self.geometry,
                x_zero_point=zero_point,
                w_zero_point=wq.zero_point,
                bias=bias_q,
                acc_bits=acc.bits,
                overflow=acc.overflow,
            )
        if self.geometry is not None:
            groups = self.geometry.groups
            return int_conv2d(
                xq,
                wq.codes,
                self.geometry,
                x_zero_point=zero_point,
                w_zero_point=wq.zero_point,
                packed=lambda order: wq.packed(groups, order),
                bias=bias_q,
                acc_bits=acc.bits,
                overflow=acc.overflow,
            )
        b = wq.packed(1)[0] if self.kind == "linear" else wq.codes  # a matmul's operand is used once
        res = int_gemm(
            xq.reshape(-1, xq.shape[-1]),
            b,
            a_zero_point=zero_point,
            b_zero_point=wq.zero_point,
            bias=bias_q,
            acc_bits=acc.bits,
            overflow=acc.overflow,
        )
        return AccumulatorResult(res.values.reshape(*xq.shape[:-1], -1), res.overflows)


def _channel_broadcast(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _apply_float_activation(y: np.ndarray, activation: str | None) -> np.ndarray:
    if activation is None:
        return y
    if activation not in ("relu", "relu6"):  # what the requant clamp can fuse; GELU runs after the layer
        raise ValueError(f"unknown fused activation {activation!r}; allowed: None, 'relu', 'relu6'")
    y = np.maximum(y, np.float32(0))
    return np.minimum(y, np.float32(6)) if activation == "relu6" else y


def _calibrated(qp: QParams | None, data: Callable[[], np.ndarray], dtype: str) -> QParams:
    """``qp`` if given, else min-max of ``data()`` (computed only then: the float reference is costly)."""
    if qp is not None:
        return qp
    obs = MinMaxObserver()
    obs.observe(data())
    return obs.qparams(dtype=dtype)


@dataclass(frozen=True)
class QuantizedWeight:
    """A layer's weight codes (int8, or uint8 / int8 with a zero point) and parameters; a caller that
    keeps it between runs (a prepared model) also keeps the GEMM operands packed on first use.

    Built by :func:`quantize_weight`, or directly from codes and :class:`QParams` given elsewhere (an
    imported ONNX model's ``w`` and ``w_scale`` / ``w_zero_point``): the zero point is a scalar or
    one per output channel."""

    codes: np.ndarray
    qparams: QParams
    _packed: dict[tuple[int, str], tuple[PackedWeights, ...]] = field(default_factory=dict, compare=False, repr=False)
    _requant: dict[tuple, _RequantSetup] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.codes.dtype != np.dtype(self.qparams.numpy_dtype) or self.qparams.dtype not in ("int8", "uint8"):
            raise ValueError(
                f"weight codes are {self.codes.dtype}, their parameters {self.qparams.dtype}: "
                "the array takes int8 or uint8 weights of the parameters' dtype"
            )

    @cached_property
    def zero_point(self) -> int | np.ndarray:
        """The zero point the array subtracts: 0 (symmetric), a scalar, or int64 per output channel."""
        zp = self.qparams.zero_point
        if zp.size == 1:
            return int(zp[0])
        return zp.astype(np.int64) if zp.any() else 0

    def packed(self, groups: int, k_order: str = "cyx") -> tuple[PackedWeights, ...]:
        """Each group's packed ``[K, N]`` conv operand with K in ``k_order`` (a linear layer's weight
        ``[out, in]`` is its own single operand, transposed)."""
        key = (groups, k_order)
        if key not in self._packed:
            self._packed[key] = (
                pack_conv_weights(self.codes, groups, k_order)
                if self.codes.ndim == 4
                else (PackedWeights.of(self.codes.T),)
            )
        return self._packed[key]

    def requant_setup(
        self, mode: RequantMode, s_x: float, bias: np.ndarray | None, out_qp: QParams, activation: str | None
    ) -> _RequantSetup:
        """The int32 bias and the requant unit's parameters for this weight between ``s_x`` and ``out_qp``,
        derived once per input/output parameters (a deployed model's are fixed, as in ORT's prepared kernels)."""
        key = (
            mode.name,
            s_x,
            None if bias is None else (bias.dtype.str, bias.tobytes()),
            out_qp.scale.tobytes(),
            out_qp.zero_point.tobytes(),
            out_qp.dtype,
            activation,
        )
        if key not in self._requant:
            given = (
                bias is not None and bias.dtype == np.int32
            )  # already int32 with scale s_x * s_w[c] (ONNX QLinearConv's B)
            if given and mode.bias_domain != "int32":
                raise ValueError(
                    f"requant mode {mode.name!r} adds a float bias; an int32 bias needs an int32-bias mode"
                )
            bias_q: tuple[np.ndarray, QParams, int] | None = None
            if bias is not None and given:
                bias_q = (bias, bias_qparams(s_x, self.qparams.scale), 0)
            elif bias is not None and mode.bias_domain == "int32":
                bias_q = quantize_bias(bias, s_x, self.qparams.scale)
            rq = make_requant_params(
                mode.name, s_x, self.qparams.scale, out_qp, activation=activation, bias=None if given else bias
            )
            self._requant[key] = _RequantSetup(bias_q, rq)
        return self._requant[key]


@dataclass(frozen=True)
class _RequantSetup:
    """A prepared layer's constants between given input and output parameters."""

    bias: tuple[np.ndarray, QParams, int] | None  # int32 bias, its parameters, saturations (quantize_bias)
    requant: RequantParams

    @cached_property
    def max_bias(self) -> int:
        return 0 if self.bias is None else int(np.abs(self.bias[0].astype(np.int64)).max(initial=0))

    @cached_property
    def lanes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The requant unit's plan for :func:`~accelsim.kernels.requant.requant_region` (every mode with scales:
        fixed point, float64, float32)."""
        return self.requant.lanes()


def quantize_weight(
    kind: str, weight: np.ndarray, granularity: str = "per_channel", weights: str = WeightFormatName.SYMMETRIC
) -> QuantizedWeight:
    """Codes and parameters of a layer's weight, per output channel or per tensor, in the weight format
    ``weights`` (``accelsim.schemes.WEIGHT_FORMATS``: symmetric int8, asymmetric uint8 or int8)."""
    fmt = get_weight_format(weights)
    weight = np.asarray(weight, dtype=np.float32)
    w_qp = weight_qparams(
        weight, granularity=granularity, axis=_Layer(kind, None).weight_axis, dtype=fmt.dtype, symmetric=fmt.symmetric
    )
    return QuantizedWeight(quantize_tensor(weight, w_qp)[0], w_qp)


def input_row_sums(result: LayerResult) -> np.ndarray:
    """``sum_k (x_q - z_x)`` of every GEMM row of a result's input codes, int64: the per-row sum the weight
    zero point multiplies. Linear/matmul ``[..., 1]``; conv2d and conv_transpose2d ``[N, groups, OH, OW]``
    (a ones-kernel convolution, or transposed convolution, per group over the zero-point padded input).
    Dynamic per-row zero points included."""
    xq = result.tensors["input_q"]
    zp = xq.codes_qparams.zero_point.astype(np.int64)
    if result.kind not in IMAGE_KINDS:
        codes = xq.values.reshape(-1, xq.values.shape[-1])
        sums = codes.sum(axis=1, dtype=np.int64) - codes.shape[1] * (zp if zp.size > 1 else zp[0])
        return sums.reshape(*xq.values.shape[:-1], 1)
    g = result.geometry
    if g is None:
        raise ValueError(f"a {result.kind} result carries its geometry")
    kh, kw = result.tensors["weight_q"].values.shape[2:]
    codes = (
        xq.values if zp.size == 1 else (xq.values.astype(np.int16) - zp.reshape(-1, 1, 1, 1).astype(np.int16))
    )  # per image
    ones = np.ones((g.groups, codes.shape[1] // g.groups, kh, kw), np.int8)
    x_zero_point = int(zp[0]) if zp.size == 1 else 0
    if isinstance(g, ConvTransposeGeometry):
        sums = int_conv_transpose2d(codes, ones, g, x_zero_point=x_zero_point, acc_bits=64)
    else:
        sums = int_conv2d(codes, ones, g, x_zero_point=x_zero_point, acc_bits=64)
    return sums.values.astype(np.int64)


def zero_point_correction(result: LayerResult) -> np.ndarray | None:
    """``-z_w[c] * rowsum(x_q - z_x)``, shaped like the accumulators: what the weight zero point adds to
    ``sum (x_q - z_x) * w_q`` (golden vectors and ``accelsim explain`` show it); None when the weights
    are symmetric."""
    w_qp = result.tensors["weight_q"].codes_qparams
    if w_qp.symmetric:
        return None
    sums = input_row_sums(result)
    zw = np.broadcast_to(
        w_qp.zero_point.astype(np.int64),
        (result.tensors["weight_q"].values.shape[_Layer(result.kind, None).weight_axis],),
    )
    if result.kind not in IMAGE_KINDS:
        return -sums * zw
    groups = sums.shape[1]
    return -np.repeat(sums, zw.size // groups, axis=1) * zw.reshape(1, -1, 1, 1)


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """What a caller already holds for a layer, so it is not derived again: ``weight`` (codes and parameters
    from :func:`quantize_weight`, or given by an imported model), and the static run's ``input_qparams`` and
    ``output_qparams`` (else min-max calibration on ``x`` and on the fp32 output). Under dynamic,
    ``input_qparams`` are per-tensor parameters the run-time range pass took over a larger tensor than ``x``
    (an attention matmul's whole first operand, of which ``x`` is one sample and head)."""

    weight: QuantizedWeight | None = None
    input_qparams: QParams | None = None
    output_qparams: QParams | None = None


#: the defaults of :func:`run_layer`: static with TFLite's requant unit, nothing prepared
STATIC_TFLITE = Quantization()
NOTHING_PREPARED = Prepared()


#: the geometry each image kind takes, and its default (stride 1, no padding, one group)
GEOMETRIES: dict[str, type[ConvGeometry | ConvTransposeGeometry]] = {
    "conv2d": ConvGeometry,
    "conv_transpose2d": ConvTransposeGeometry,
}


def _layer(kind: str, geometry: Geometry | None) -> _Layer:
    """The layer's shape logic; a conv2d / conv_transpose2d without ``geometry`` has stride 1, no padding,
    one group."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; allowed: {', '.join(LAYER_KINDS)}")
    takes = GEOMETRIES.get(kind)
    if geometry is not None and takes is None:
        raise ValueError(f"a {kind} layer has no conv geometry")
    if geometry is not None and takes is not None and not isinstance(geometry, takes):
        raise ValueError(f"a {kind} layer takes a {takes.__name__}, not a {type(geometry).__name__}")
    return _Layer(kind, geometry or takes() if takes is not None else None)


def _settings(activation: str | None, acc: Accumulator, weight_granularity: str) -> dict[str, object]:
    return {
        "activation": activation,
        "acc_bits": acc.bits,
        "overflow": str(acc.overflow),
        "weight_granularity": weight_granularity,
    }


def run_layer(
    kind: str,
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    quantization: Quantization = STATIC_TFLITE,
    activation: str | None = None,
    geometry: Geometry | None = None,
    accumulator: Accumulator = INT32_WRAP,
    prepared: Prepared = NOTHING_PREPARED,
) -> LayerResult:
    """Run one conv2d / linear / matmul layer under ``quantization`` (scheme fp32, woq, dynamic or static,
    and its variant), with ``activation`` (None, relu, relu6) fused, a conv's ``geometry``, the array's
    ``accumulator``, and whatever the caller has ``prepared`` (kept weight codes, given parameters)."""
    layer = _layer(kind, geometry)
    sch = quantization.plan
    x = np.asarray(x, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    bias_f = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    settings = _settings(activation, accumulator, quantization.weight_granularity)
    w_given = prepared.weight
    if sch.weights.quantized:
        settings["weights"] = _weight_format_name(w_given.qparams) if w_given is not None else quantization.weights
    tensors = {"input": TensorRecord(x, "float32"), "weight": TensorRecord(weight, "float32")}
    if bias_f is not None:
        tensors["bias"] = TensorRecord(bias_f, "float32")

    def reference() -> np.ndarray:
        return _apply_float_activation(layer.run_float(x, weight, bias_f), activation)

    if not sch.weights.quantized:
        y = reference()
        return LayerResult(
            kind,
            sch.name,
            None,
            tensors | {"output": TensorRecord(y, "float32")},
            geometry=layer.geometry,
            settings=settings,
        )
    w_q = (
        w_given
        if w_given is not None
        else quantize_weight(kind, weight, quantization.weight_granularity, quantization.weights)
    )
    w_qp = w_q.qparams
    tensors["weight_q"] = TensorRecord(w_q.codes, w_qp.dtype, w_qp)
    if sch.float_gemm:  # weights dequantized on the way in (woq)
        w_deq = dequantize_tensor(w_q.codes, w_qp)
        y = _apply_float_activation(layer.run_float(x, w_deq, bias_f), activation)
        tensors |= {"weight_dequantized": TensorRecord(w_deq, "float32"), "output": TensorRecord(y, "float32")}
        return LayerResult(kind, sch.name, None, tensors, geometry=layer.geometry, settings=settings)
    if sch.runtime_activations:
        return _run_dynamic(
            layer,
            x,
            w_q,
            bias_f,
            quantization.flavour,
            prepared.input_qparams,
            activation,
            accumulator,
            tensors,
            settings,
        )
    mode = get_mode(quantization.requant_mode)
    in_qp = _calibrated(prepared.input_qparams, lambda: x, mode.activation_dtype)
    out_qp = _calibrated(prepared.output_qparams, reference, mode.activation_dtype)
    xq, in_sats = quantize_tensor(x, in_qp, mode.input_rule)
    array = _StaticArray(layer, mode, activation, accumulator)
    return array.run(xq, in_qp, in_sats, w_q, bias_f, out_qp, tensors, settings)


def _run_dynamic(
    layer: _Layer,
    x: np.ndarray,
    w_q: QuantizedWeight,
    bias_f: np.ndarray | None,
    flavour: str,
    in_qp: QParams | None,
    activation: str | None,
    accumulator: Accumulator,
    tensors: dict[str, TensorRecord],
    settings: dict[str, object],
) -> LayerResult:
    f = get_flavour(flavour)
    rows = x.reshape(x.shape[0], -1) if layer.kind in IMAGE_KINDS else x.reshape(-1, x.shape[-1])
    if in_qp is None:
        xq_rows, x_qp = dynamic_quantize(rows, f)
    else:
        if in_qp.axis is not None or f.granularity != "per_tensor":
            raise ValueError(f"dynamic input_qparams must be per tensor, for a per-tensor flavour (not {f.name!r})")
        xq_rows, x_qp = quantize_tensor(rows, in_qp, f.rule)[0], in_qp
    xq = xq_rows.reshape(x.shape)
    if x_qp.axis is None:
        acc = layer.run_int(xq, w_q, int(x_qp.zero_point[0]), None, accumulator)
    else:  # per-row zero points: centre each row first (9-bit operands), no scalar zero point left
        centred = (xq_rows.astype(np.int16) - x_qp.zero_point.astype(np.int16)[:, None]).reshape(x.shape)
        acc = layer.run_int(centred, w_q, 0, None, accumulator)
    row_scale = x_qp.scale if x_qp.axis is not None else x_qp.scale[0]
    y = scale_accumulator(
        acc.values,
        row_scale,
        w_q.qparams.scale,
        bias_f,
        axis=layer.channel_axis % acc.values.ndim,
        fused=f.fused_output,
        channel_scale_first=f.conv_channel_scale_first and layer.kind in IMAGE_KINDS,
    )
    y = _apply_float_activation(y, activation)
    tensors |= {
        "input_q": TensorRecord(xq, x_qp.dtype, x_qp),
        "acc": TensorRecord(acc.values, dtype_name(acc.values.dtype)),
        "output": TensorRecord(y, "float32"),
    }
    return LayerResult(
        layer.kind, SchemeName.DYNAMIC, flavour, tensors, acc.overflows, geometry=layer.geometry, settings=settings
    )


def _weight_format_name(qp: QParams) -> WeightFormatName:
    """The weight format a weight's parameters are in (given codes may come from elsewhere)."""
    if qp.dtype == "uint8":
        return WeightFormatName.ASYMMETRIC
    return WeightFormatName.SYMMETRIC if qp.symmetric else WeightFormatName.ASYMMETRIC_INT8


def run_static_codes(
    kind: str,
    xq: np.ndarray,
    input_qparams: QParams,
    weight_q: QuantizedWeight,
    bias: np.ndarray | None,
    output_qparams: QParams,
    *,
    requant_mode: str = RequantModeName.TFLITE,
    activation: str | None = None,
    geometry: Geometry | None = None,
    accumulator: Accumulator = INT32_WRAP,
    keep_accumulators: bool = True,
) -> LayerResult:
    """A static layer on input codes already in memory (a network's previous output), as the array reads
    them: the same datapath as :func:`run_layer` after its input quantization, with no float input.
    ``requant_mode`` is a key of ``REQUANT_MODES``. Without ``keep_accumulators`` the int32 accumulators go
    straight to the requant unit where that gives the same bits (:meth:`_Layer.run_requantized`): the result
    then has no ``"acc"`` tensor, only the accumulator range. ``weight_q`` may be built from given codes and
    parameters with zero points (:class:`QuantizedWeight`) and ``bias`` may be int32 codes of scale
    ``s_x * s_w[c]`` (taken verbatim; a float bias is quantized), as an imported QLinearConv /
    QLinearMatMul hands them in."""
    layer = _layer(kind, geometry)
    bias_f = None if bias is None else np.asarray(bias).reshape(-1)
    bias_f = bias_f if bias_f is None or bias_f.dtype == np.int32 else bias_f.astype(np.float32, copy=False)
    settings = _settings(activation, accumulator, weight_q.qparams.granularity) | {
        "weights": _weight_format_name(weight_q.qparams)
    }
    tensors = {"weight_q": TensorRecord(weight_q.codes, weight_q.qparams.dtype, weight_q.qparams)}
    array = _StaticArray(layer, get_mode(requant_mode), activation, accumulator, keep_accumulators)
    return array.run(xq, input_qparams, 0, weight_q, bias_f, output_qparams, tensors, settings)


@dataclass(frozen=True)
class _StaticArray:
    """A static layer from its input codes on: int32 bias, the array's accumulation, the requant unit."""

    layer: _Layer
    mode: RequantMode
    activation: str | None
    accumulator: Accumulator
    keep_accumulators: bool = True

    def run(
        self,
        xq: np.ndarray,
        in_qp: QParams,
        in_sats: int,
        w_q: QuantizedWeight,
        bias_f: np.ndarray | None,
        out_qp: QParams,
        tensors: dict[str, TensorRecord],
        settings: dict[str, object],
    ) -> LayerResult:
        layer, acc_bits = self.layer, self.accumulator.bits
        setup = w_q.requant_setup(self.mode, float(in_qp.scale[0]), bias_f, out_qp, self.activation)
        bias_q, bias_sats, rq = None, 0, setup.requant
        if setup.bias is not None:
            bias_q, b_qp, bias_sats = setup.bias
            tensors["bias_q"] = TensorRecord(bias_q, "int32", b_qp)
        zero_point = int(in_qp.zero_point[0])
        tensors["input_q"] = TensorRecord(xq, in_qp.dtype, in_qp)
        fused = not self.keep_accumulators and acc_bits == 32
        out = layer.run_requantized(xq, w_q, zero_point, setup) if fused else None
        overflows = 0  # run_requantized runs only where no accumulator can overflow
        if out is None:
            acc = layer.run_int(xq, w_q, zero_point, bias_q, self.accumulator)
            out, overflows = requantize(acc.values, rq, axis=layer.channel_axis % acc.values.ndim), acc.overflows
            tensors["acc"] = TensorRecord(acc.values, dtype_name(acc.values.dtype))
        tensors["output_q"] = TensorRecord(out.codes, out_qp.dtype, out_qp)
        settings = settings | {"act_range": (rq.act_min, rq.act_max)}  # the fused activation's clamp
        return LayerResult(
            layer.kind,
            SchemeName.STATIC,
            self.mode.name,
            tensors,
            overflows,
            out.saturations,
            in_sats,
            bias_sats,
            rq,
            layer.geometry,
            settings,
            (out.acc_min, out.acc_max),
        )
