"""ONNX export: a workload and the numbers accelsim computes for it, written as an ONNX model.

Two forms, both walking the lowered program's layers (:func:`accelsim.values.runner.program_steps`, the
layers the values and the engine run):

- **fp32**: the float graph with the run's weights (the model's own, or the workload's seeded draw), so
  ONNX Runtime computes what ``accelsim run --scheme fp32`` computes;
- **static** (QDQ): the same graph with a QuantizeLinear / DequantizeLinear pair on every tensor the static
  run stores as codes, carrying the run's calibrated scales and zero points, its weight codes and int32
  biases. ONNX Runtime fuses the groups (``ORT_ENABLE_EXTENDED``: QLinearConv, QGemm, QLinearMatMul,
  QLinearAdd...) and computes accelsim's static model with its own integer kernels; with requant mode
  ``float_half_even`` (ORT's arithmetic) the codes are accelsim's (docs/onnx.md, "Export").

Each tensor the static run stores is named ``<tensor>.codes`` (the QuantizeLinear output ONNX Runtime's fused
node keeps), so a test compares codes by layer name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import (
    GEMM_LAYERS,
    INPUT,
    ActivationLayer,
    Add,
    AvgPool,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Elementwise,
    Flatten,
    LayerNorm,
    LayerShapes,
    Linear,
    Lrn,
    Matmul,
    MaxPool,
    Pool,
    ReduceMean,
    Reshape,
    Resize,
    ScaleShift,
    Slice,
    Softmax,
    Transpose,
    Workload,
    pair,
    sides,
)
from accelsim.dynamic_flavours import FlavourName
from accelsim.errors import AccelsimError
from accelsim.lowering.program import Program
from accelsim.onnx.names import unique_name
from accelsim.quant.qparams import QParams
from accelsim.requant_modes import RequantModeName
from accelsim.schemes import SchemeName, WeightFormatName
from accelsim.values.runner import PRE_ACTIVATION, NetworkValues, program_steps
from accelsim.values.tensors import LayerParams, WorkloadTensors

#: the opset written (LayerNormalization and HardSwish need 17 and 14)
OPSET = 17
#: what a static export's QuantizeLinear outputs are named: the codes the static run stores for ``tensor``
CODES = "{}.codes"
_DTYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "int32": TensorProto.INT32}


def codes_name(tensor: str) -> str:
    """The ONNX tensor holding the static run's codes of accelsim tensor ``tensor`` (a layer or a source)."""
    return CODES.format(tensor)


@dataclass
class _Builder:
    """The graph under construction: nodes, initializers, and the ONNX tensor each accelsim tensor is read as.

    ``values`` is the static run (None: fp32); with it every stored tensor passes a QuantizeLinear /
    DequantizeLinear pair of the run's parameters, and array layers read their weights as DequantizeLinear
    of the run's codes."""

    values: NetworkValues | None
    batch: int = 1  # the workload's (ONNX Resize's sizes name it)
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    read: dict[str, str] = field(default_factory=dict)  # accelsim tensor -> the ONNX tensor consumers read
    held: dict[str, QParams] = field(default_factory=dict)  # static: ONNX tensor -> the parameters of its codes
    _names: set[str] = field(default_factory=set)

    def unique(self, name: str) -> str:
        return unique_name(name, self._names)

    def const(self, name: str, array: np.ndarray | np.generic) -> str:
        name = self.unique(name)
        # np.array keeps a 0-d scale 0-d (ascontiguousarray would not): ORT fuses Add / Mul on scalar scales only
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        output = self.unique(output)
        self.nodes.append(helper.make_node(op, list(inputs), [output], output, **attrs))
        return output

    def shape(self, name: str, dims: Sequence[int]) -> str:
        return self.const(f"{name}.shape", np.asarray(dims, np.int64))

    # -- quantization --------------------------------------------------------------------------------
    def _qparams(self, name: str, qp: QParams, per_channel_shape: int | None = None) -> list[str]:
        scale = qp.scale.astype(np.float32)
        zero = qp.zero_point.astype(np.dtype(qp.numpy_dtype))
        if per_channel_shape is None:
            scale, zero = scale.reshape(()), zero.reshape(())
        return [self.const(f"{name}.scale", scale), self.const(f"{name}.zero_point", zero)]

    def stored(self, x: str, tensor: str, qp: QParams | None) -> str:
        """Float ``x`` as the run stores accelsim tensor ``tensor``: itself (fp32), or quantized with ``qp``
        to ``<tensor>.codes`` and dequantized (static)."""
        if self.values is None or qp is None:
            return x
        params = self._qparams(tensor, qp)
        codes = self.node("QuantizeLinear", [x, *params], codes_name(tensor))
        real = self.node("DequantizeLinear", [codes, *params], f"{tensor}.dequantized")
        self.held[real] = qp
        return real

    def moved(self, op: str, x: str, output: str, *extra: str, **attrs: object) -> str:
        """A layout op inside a layer (a head split, a rank alignment): under static the codes move with
        their parameters, so the op sits between a DequantizeLinear and a QuantizeLinear of the same ones
        (ONNX Runtime drops the pair and moves the codes)."""
        y = self.node(op, [x, *extra], output, **attrs)
        return self.stored(y, output, self.held.get(x))

    def weight(self, layer: str, params: LayerParams, record: str = "weight_q") -> str:
        """An array layer's weight: the float tensor, or DequantizeLinear of the run's codes."""
        if self.values is None:
            return self.const(f"{layer}.weight", params.weight.astype(np.float32))
        rec = self.values.layers[layer].results[0].tensors[record]
        assert rec.qparams is not None
        per_channel = rec.qparams.scale.size > 1
        codes = self.const(f"{layer}.{record}", rec.values)
        qp = self._qparams(f"{layer}.{record}", rec.qparams, 0 if per_channel else None)
        axis = {"axis": 0} if per_channel else {}
        return self.node("DequantizeLinear", [codes, *qp], f"{layer}.{record}.dequantized", **axis)

    def transposed_weight(self, layer: ConvTranspose2d, params: LayerParams) -> str:
        """A conv_transpose2d's weight in ONNX's ``[C, O/groups, kh, kw]``: the float tensor, or (one group, per
        output channel on axis 1) DequantizeLinear of the run's codes."""
        groups = layer.groups

        def onnx_layout(w: np.ndarray) -> np.ndarray:
            o_per = w.shape[0] // groups
            return np.concatenate([w[g * o_per : (g + 1) * o_per].transpose(1, 0, 2, 3) for g in range(groups)])

        if self.values is None:
            return self.const(f"{layer.name}.weight", onnx_layout(params.weight.astype(np.float32)))
        rec = self.values.layers[layer.name].results[0].tensors["weight_q"]
        assert rec.qparams is not None
        per_channel = rec.qparams.scale.size > 1
        if per_channel and groups > 1:
            raise AccelsimError(
                f"layer {layer.name!r}: per-channel weights of a grouped conv_transpose2d have no QDQ form "
                "(ONNX puts a group's output channels on axis 1)",
                path="layers",
                allowed="groups 1, or per-tensor weights",
            )
        codes = self.const(f"{layer.name}.weight_q", onnx_layout(rec.values))
        qp = self._qparams(f"{layer.name}.weight_q", rec.qparams, 0 if per_channel else None)
        axis = {"axis": 1} if per_channel else {}
        return self.node("DequantizeLinear", [codes, *qp], f"{layer.name}.weight_q.dequantized", **axis)

    def bias(self, layer: str, params: LayerParams) -> list[str]:
        if params.bias is None:
            return []
        if self.values is None:
            return [self.const(f"{layer}.bias", params.bias.astype(np.float32))]
        return [self.weight(layer, params, "bias_q")]

    def qparams_of(self, tensor: str) -> QParams | None:
        """The parameters the static run stores ``tensor`` with (a layer's output, a calibrated source or a
        layer's pre-activation result)."""
        if self.values is None:
            return None
        if tensor in self.values.layers:
            return self.values.layers[tensor].qparams
        return self.values.qparams[tensor]


# ---------------------------------------------------------------------------------------------------
# activations


def _activation(b: _Builder, x: str, function: str, out: str, parameters: dict | None = None) -> str:
    """An activation function by its workload name, as ONNX ops (GELU written out with Erf)."""
    p = parameters or {}
    if function == "none":
        return x
    if function == "relu":
        return b.node("Relu", [x], out)
    if function in ("relu6", "clip"):
        low, high = (0.0, 6.0) if function == "relu6" else (p["min"], p["max"])
        bounds = [
            b.const(f"{out}.{k}", np.float32(v)) if v is not None else "" for k, v in (("min", low), ("max", high))
        ]
        return b.node("Clip", [x, *bounds], out)
    if function == "leaky_relu":
        return b.node("LeakyRelu", [x], out, alpha=float(p["alpha"]))
    if function == "hard_sigmoid":
        return b.node("HardSigmoid", [x], out, alpha=float(p["alpha"]), beta=float(p["beta"]))
    if function == "gelu":
        scaled = b.node("Div", [x, b.const(f"{out}.sqrt2", np.float32(np.sqrt(2.0)))], f"{out}.scaled")
        gate = b.node(
            "Add", [b.node("Erf", [scaled], f"{out}.erf"), b.const(f"{out}.one", np.float32(1))], f"{out}.gate"
        )
        half = b.node("Mul", [x, b.const(f"{out}.half", np.float32(0.5))], f"{out}.half")
        return b.node("Mul", [half, gate], out)
    if function == "silu":
        return b.node("Mul", [x, b.node("Sigmoid", [x], f"{out}.sigmoid")], out)
    if function == "square":
        return b.node("Pow", [x, b.const(f"{out}.two", np.float32(2))], out)
    op = {"sigmoid": "Sigmoid", "tanh": "Tanh", "hard_swish": "HardSwish", "erf": "Erf", "sqrt": "Sqrt"}[function]
    return b.node(op, [x], out)


def _output_activation(b: _Builder, y: str, layer: str, activation: str) -> str:
    """A layer's fused ``activation`` on its float result ``y``. relu / relu6 are the requant clamp (the
    output's range starts at its lowest code); the others run on the vector unit after the array's codes
    are stored with the layer's pre-activation parameters (as the static run does)."""
    if activation in ("none", "relu", "relu6"):
        return _activation(b, y, activation, f"{layer}.activated")
    pre = layer + PRE_ACTIVATION
    y = b.stored(y, pre, b.qparams_of(pre))
    return _activation(b, y, activation, f"{layer}.activated")


# ---------------------------------------------------------------------------------------------------
# layers: each returns its float result (its fused activation applied), which the caller stores


def _unsqueezed(b: _Builder, x: str, rank: int, have: int, name: str) -> str:
    """Batch-first ``x`` of ``have`` dims with unit dims after the batch up to ``rank`` (per-sample shapes
    broadcast aligned on the right: the batch never meets a per-sample dim)."""
    if have >= rank:
        return x
    axes = b.const(f"{name}.axes", np.arange(1, 1 + rank - have, dtype=np.int64))
    return b.moved("Unsqueeze", x, f"{name}.unsqueezed", axes)


def _conv(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    layer = s.layer
    assert isinstance(layer, Conv2d) and params is not None
    y = b.node(
        "Conv",
        [inputs[0], b.weight(layer.name, params), *b.bias(layer.name, params)],
        f"{layer.name}.real",
        **_window_attributes(layer),
    )
    return _output_activation(b, y, layer.name, layer.activation)


def _window_attributes(layer: Conv2d | ConvTranspose2d) -> dict[str, Any]:
    """Conv's and ConvTranspose's shared attributes: the kernel window and the groups."""
    return {
        "kernel_shape": list(pair(layer.kernel)),
        "strides": list(pair(layer.stride)),
        "dilations": list(pair(layer.dilation)),
        "pads": list(sides(layer.padding)),
        "group": layer.groups,
    }


def _conv_transpose(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    layer = s.layer
    assert isinstance(layer, ConvTranspose2d) and params is not None
    y = b.node(
        "ConvTranspose",
        [inputs[0], b.transposed_weight(layer, params), *b.bias(layer.name, params)],
        f"{layer.name}.real",
        output_padding=list(pair(layer.output_padding)),
        **_window_attributes(layer),
    )
    return _output_activation(b, y, layer.name, layer.activation)


def _linear(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """Gemm (transB) on ``[rows, in]``: a per-sample ``[..., in]`` input is folded into rows and back (under
    static the rows are stored with the layer's parameters first, so the Gemm keeps its QuantizeLinear)."""
    layer, shape, name = s.layer, s.input_shapes[0], s.layer.name
    assert isinstance(layer, Linear) and params is not None
    x = inputs[0]
    if len(shape) > 1:
        x = b.moved("Reshape", x, f"{name}.rows_in", b.shape(f"{name}.rows_in", [-1, shape[-1]]))
    y = b.node("Gemm", [x, b.weight(name, params), *b.bias(name, params)], f"{name}.real", transB=1)
    y = _output_activation(b, y, name, layer.activation)
    if len(shape) == 1:
        return y
    y = b.stored(y, f"{name}.rows", b.qparams_of(name))
    return b.node("Reshape", [y, b.shape(f"{name}.rows_out", [-1, *s.output_shape])], f"{name}.shaped")


def _heads(b: _Builder, x: str, shape: tuple[int, ...], heads: int, name: str) -> tuple[str, int]:
    """A per-sample ``[T, D]`` operand split into ``[heads, T, D/heads]`` (batch first), and its rank."""
    if heads == 1 or len(shape) == 3:
        return x, len(shape) + 1
    t, d = shape
    split = b.moved("Reshape", x, f"{name}.split", b.shape(f"{name}.split", [-1, t, heads, d // heads]))
    return b.moved("Transpose", split, f"{name}.heads", perm=[0, 2, 1, 3]), 4


def _matmul(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """MatMul of two activations: heads split, ``B`` transposed, leading dims aligned after the batch;
    ``alpha`` a Mul (under static it is the requant multiplier's, so ONNX Runtime leaves the group unfused)."""
    layer, name = s.layer, s.layer.name
    assert isinstance(layer, Matmul)
    (a, rank_a), (m, rank_b) = (
        _heads(b, x, shape, layer.heads, f"{name}.{side}") for x, shape, side in zip(inputs, s.input_shapes, ("a", "b"))
    )
    if layer.transpose_b:
        m = b.moved("Transpose", m, f"{name}.b_transposed", perm=[*range(rank_b - 2), rank_b - 1, rank_b - 2])
    rank = max(rank_a, rank_b)
    a, m = _unsqueezed(b, a, rank, rank_a, f"{name}.a"), _unsqueezed(b, m, rank, rank_b, f"{name}.b")
    y = b.node("MatMul", [a, m], f"{name}.real")
    if layer.alpha != 1.0:
        y = b.node("Mul", [y, b.const(f"{name}.alpha", np.float32(layer.alpha))], f"{name}.scaled")
    if not layer.merge_heads:
        return y
    y = b.stored(y, f"{name}.heads", b.qparams_of(name))
    merged = b.node("Transpose", [y], f"{name}.merging", perm=[0, 2, 1, 3])
    return b.node("Reshape", [merged, b.shape(f"{name}.merged", [-1, *s.output_shape])], f"{name}.merged")


def _pool(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    layer = s.layer
    assert isinstance(layer, Pool)
    op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
    if layer.global_pool:
        return b.node(f"Global{op}", inputs, f"{layer.name}.real")
    attrs: dict[str, object] = {
        "kernel_shape": list(pair(layer.kernel or 1)),
        "strides": list(layer.strides),
        "pads": list(sides(layer.padding)),
        "ceil_mode": int(layer.ceil_mode),
    }
    if isinstance(layer, AvgPool):
        attrs["count_include_pad"] = int(layer.count_include_pad)
    return b.node(op, inputs, f"{layer.name}.real", **attrs)


def _add(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    assert isinstance(s.layer, Add)
    y = b.node("Add", inputs, f"{s.layer.name}.real")
    return _activation(b, y, s.layer.activation, f"{s.layer.name}.activated")


def _elementwise(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """``a op b`` as the runner broadcasts it: per-sample shapes aligned on the right, after the batch; a
    constant operand is an initializer with a leading unit dim for the batch."""
    layer, name = s.layer, s.layer.name
    assert isinstance(layer, Elementwise)
    ranks = [len(shape) + 1 for shape in s.input_shapes]
    if layer.constant is None:
        rank = max(ranks)
        operands = [_unsqueezed(b, x, rank, r, f"{name}.{i}") for i, (x, r) in enumerate(zip(inputs, ranks))]
    else:
        assert params is not None  # materialize gives every constant operand its weight
        rank = max(ranks[0], len(layer.constant) + 1)
        c = params.weight.astype(np.float32)
        constant = b.const(f"{name}.constant", c.reshape((1,) * (rank - c.ndim) + c.shape))
        x = _unsqueezed(b, inputs[0], rank, ranks[0], name)
        operands = [constant, x] if layer.constant_first else [x, constant]
    y = b.node(layer.op.capitalize(), operands, f"{name}.real")
    return _activation(b, y, layer.activation, f"{name}.activated")


def _scale_shift(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    layer, name = s.layer, s.layer.name
    assert isinstance(layer, ScaleShift) and params is not None
    per_channel = (1, -1, *(1,) * (len(s.input_shapes[0]) - 1))
    y = b.node("Mul", [inputs[0], b.const(f"{name}.scale", params.weight.reshape(per_channel))], f"{name}.scaled")
    if params.bias is not None:
        y = b.node("Add", [y, b.const(f"{name}.shift", params.bias.reshape(per_channel))], f"{name}.real")
    return _activation(b, y, layer.activation, f"{name}.activated")


def _layernorm(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    layer, name = s.layer, s.layer.name
    assert isinstance(layer, LayerNorm) and params is not None
    beta = [] if params.bias is None else [b.const(f"{name}.beta", params.bias.astype(np.float32))]
    gamma = b.const(f"{name}.gamma", params.weight.astype(np.float32))
    return b.node("LayerNormalization", [inputs[0], gamma, *beta], f"{name}.real", axis=-1, epsilon=layer.eps)


def _layout(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """Flatten, Reshape, Transpose, Slice, Concat: the per-sample axes are the tensor's from 1 on."""
    layer, name = s.layer, s.layer.name
    if isinstance(layer, Flatten):
        return b.node("Flatten", inputs, f"{name}.real", axis=1)
    if isinstance(layer, Reshape):
        return b.node("Reshape", [inputs[0], b.shape(name, [-1, *s.output_shape])], f"{name}.real")
    if isinstance(layer, Transpose):
        return b.node("Transpose", inputs, f"{name}.real", perm=[0, *(a + 1 for a in layer.perm)])
    if isinstance(layer, Slice):
        bounds = [
            b.const(f"{name}.{key}", np.asarray([value], np.int64))
            for key, value in (
                ("starts", layer.start),
                ("ends", layer.end),
                ("axes", layer.axis % len(s.output_shape) + 1),
                ("steps", layer.step),
            )
        ]
        return b.node("Slice", [inputs[0], *bounds], f"{name}.real")
    assert isinstance(layer, Concat)
    return b.node("Concat", inputs, f"{name}.real", axis=layer.axis % len(s.output_shape) + 1)


def _resize(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """Resize of H and W by the layer's scales, or to its size (ONNX's sizes name every axis, the batch too)."""
    layer, name = s.layer, s.layer.name
    assert isinstance(layer, Resize)
    if layer.scale is not None:
        targets = ["", b.const(f"{name}.scales", np.asarray([1, 1, *layer.scale], np.float32))]
    else:
        assert layer.size is not None  # a scale or a size
        sizes = np.asarray([b.batch, s.output_shape[0], *layer.size], np.int64)
        targets = ["", "", b.const(f"{name}.sizes", sizes)]
    nearest = {"nearest_mode": layer.nearest_mode or "round_prefer_floor"} if layer.mode == "nearest" else {}
    return b.node(
        "Resize",
        [inputs[0], *targets],
        f"{name}.real",
        mode=layer.mode,
        coordinate_transformation_mode=layer.coordinate_transformation,
        **nearest,
    )


def _vector(b: _Builder, s: LayerShapes, inputs: list[str], params: LayerParams | None) -> str:
    """Softmax, LRN, reduce_mean and standalone activations."""
    layer, name = s.layer, s.layer.name
    if isinstance(layer, Softmax):
        return b.node("Softmax", inputs, f"{name}.real", axis=layer.axis % len(s.output_shape) + 1)
    if isinstance(layer, ReduceMean):
        return b.node("ReduceMean", inputs, f"{name}.real", axes=[-1], keepdims=1)  # opset 17: axes an attribute
    if isinstance(layer, Lrn):
        attrs = {"size": layer.size, "alpha": layer.alpha, "beta": layer.beta, "bias": layer.bias}
        return b.node("LRN", inputs, f"{name}.real", **attrs)
    assert isinstance(layer, ActivationLayer)
    return _activation(b, inputs[0], layer.function, f"{name}.real", layer.parameters)


_EMITTERS = {
    "conv2d": _conv,
    "conv_transpose2d": _conv_transpose,
    "linear": _linear,
    "matmul": _matmul,
    "maxpool": _pool,
    "avgpool": _pool,
    "add": _add,
    "elementwise": _elementwise,
    "scale_shift": _scale_shift,
    "layernorm": _layernorm,
    "flatten": _layout,
    "reshape": _layout,
    "transpose": _layout,
    "concat": _layout,
    "slice": _layout,
    "resize": _resize,
    "softmax": _vector,
    "lrn": _vector,
    "reduce_mean": _vector,
    "activation": _vector,
}


@dataclass(frozen=True)
class Exported:
    """An exported model and the ONNX tensor holding each accelsim tensor (sources and layer outputs; float,
    or under static the dequantized codes, whose codes are :func:`codes_name`)."""

    model: onnx.ModelProto
    tensors: dict[str, str]


def export_model(
    workload: Workload, program: Program, tensors: WorkloadTensors, static: NetworkValues | None = None
) -> Exported:
    """``workload`` as an ONNX model over ``program``'s layers with ``tensors``' weights: fp32, or (``static``:
    the static run of those tensors, kept results for every array layer) the QDQ model of that run."""
    b = _Builder(static, workload.batch)
    sources = {INPUT: tuple(workload.input_shape)} | {k: tuple(v) for k, v in workload.extra_inputs.items()}
    graph_inputs = []
    for name, shape in sources.items():
        graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [workload.batch, *shape]))
        b.unique(name)
        b.read[name] = b.stored(name, name, b.qparams_of(name))
    last = ""
    for s, _view in program_steps(program, workload):
        layer = s.layer
        emit = _EMITTERS.get(layer.type)
        if emit is None:
            raise AccelsimError(
                f"layer {layer.name!r} ({layer.type}) has no ONNX form in the export",
                path="layers",
                allowed=", ".join(_EMITTERS),
            )
        inputs = [b.read[n] for n in s.input_names]
        y = emit(b, s, inputs, tensors.params.get(layer.name))
        last = b.read[layer.name] = b.stored(y, layer.name, b.qparams_of(layer.name))
    output = helper.make_tensor_value_info(last, TensorProto.FLOAT, [workload.batch, *workload.shapes[-1].output_shape])
    graph = helper.make_graph(b.nodes, workload.name, graph_inputs, [output], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="accelsim")
    model.ir_version = 8
    return Exported(model, b.read)


def export(
    workload: Workload,
    hw: HardwareConfig,
    scheme: str,
    tensors: WorkloadTensors | None = None,
    *,
    weights: str = WeightFormatName.SYMMETRIC,
) -> Exported:
    """``workload`` (with ``tensors``: its weights and data; None: its seeded draw) exported under ``scheme``:
    ``fp32``, or ``static``, which runs accelsim's static scheme (calibrated on ``tensors``' calibration batch,
    weights in format ``weights``) and writes that run. ``hw``'s requant mode must be ``float_half_even``,
    the arithmetic ONNX Runtime's fused QDQ kernels compute; the CLI sets it."""
    from accelsim.lowering.program import lower, lowering_options
    from accelsim.values.runner import run_values
    from accelsim.values.tensors import materialize

    tensors = tensors if tensors is not None else materialize(workload)
    if scheme == SchemeName.FP32:
        return export_model(workload, lower(workload, hw, scheme), tensors)
    if scheme != SchemeName.STATIC:
        raise AccelsimError(f"scheme {scheme!r} has no ONNX export", path="--scheme", allowed="fp32, static")
    if hw.requant.rounding != RequantModeName.FLOAT_HALF_EVEN:
        raise AccelsimError(
            f"requant mode {hw.requant.rounding} is not ONNX Runtime's arithmetic",
            path="requant.rounding",
            allowed=RequantModeName.FLOAT_HALF_EVEN,
        )
    program = lower(workload, hw, scheme, **lowering_options(FlavourName.ONNX, weights))
    array_layers = [s.layer.name for s in workload.shapes if isinstance(s.layer, GEMM_LAYERS)]
    values = run_values(
        workload, hw, scheme, tensors=tensors, keep_results=array_layers, weights=weights, program=program
    )
    return export_model(workload, program, tensors, values)


def serialized(model: onnx.ModelProto, file: str) -> bytes:
    """The model's bytes; protobuf's 2 GiB limit is one error naming the file."""
    try:
        return model.SerializeToString()
    except ValueError as exc:  # protobuf refuses a message over 2 GiB
        raise AccelsimError(f"the ONNX model is over protobuf's 2 GiB limit ({exc})", file=file) from None
