"""The mapping of the IR's nodes to today's workload layers, and the one table of what maps and what not.

:data:`SUPPORTED` says, per ONNX op, which layer it becomes and under which attributes;
:data:`UNSUPPORTED` says, per op the workload layer types cannot express yet, why. docs/onnx.md lists
both tables and a test holds them equal. Every refusal is one :class:`AccelsimError` naming the node,
its op type and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from accelsim.config.workload import INPUT, MAX_DIM
from accelsim.errors import AccelsimError
from accelsim.onnx.graph import ACTIVATION, Graph, Node, batchnorm_scale
from accelsim.onnx.names import unique_name

#: op -> what it becomes (docs/onnx.md's table of importable ops)
SUPPORTED: dict[str, str] = {
    "Conv": "conv2d (2-D; groups, dilations, strides; pads on each side, auto_pad SAME_UPPER / SAME_LOWER / VALID)",
    "Gemm": "linear (transB either way; alpha and beta folded into weight and bias; transA: a transpose layer "
    "before it, the model imported as one sample)",
    "MatMul": "linear when B is a constant 2-D weight; matmul when both are activations (leading dims broadcast)",
    "MaxPool": "maxpool (pads on each side at most half the kernel, ceil_mode; dilations 1)",
    "AveragePool": "avgpool (pads on each side at most half the kernel, ceil_mode, count_include_pad)",
    "GlobalAveragePool": "avgpool with global_pool",
    "GlobalMaxPool": "maxpool with global_pool",
    "Add": "add of two activations of one shape; elementwise add with a constant or a broadcast; a "
    "per-channel constant after a Conv or weight MatMul folds into its bias, after a BatchNormalization into "
    "its shift",
    "Sub": "elementwise sub (two activations broadcasting, or one and a constant on either side)",
    "Mul": "elementwise mul (SE scales; a per-channel constant after a Conv folds into its weight, after a "
    "BatchNormalization into its scale); part of a written-out hard-swish or Erf-GELU",
    "Div": "elementwise div; part of a written-out hard-swish or Erf-GELU",
    "Sigmoid": "the preceding conv2d / linear's activation sigmoid, else an activation layer",
    "Tanh": "the preceding conv2d / linear's activation tanh, else an activation layer",
    "HardSwish": "the preceding conv2d / linear's activation hard_swish, else an activation layer; also "
    "x * Clip(x + 3, 0, 6) / 6 and x * HardSigmoid(x, 1/6, 0.5) written out",
    "HardSigmoid": "activation hard_sigmoid (alpha, beta)",
    "LeakyRelu": "activation leaky_relu (alpha)",
    "Erf": "activation erf, ORT's float32 Erf bit for bit (the Erf-GELU pattern 0.5 * x * (1 + Erf(x / sqrt(2))) imports as gelu; a quantized "
    "model's twin keeps its steps)",
    "Sum": "add (a chain of adds for more than two inputs)",
    "Flatten": "flatten at axis 1; reshape at any other axis; a no-op on an already flat tensor",
    "Reshape": "flatten when the result is [N, rest], else reshape to the per-sample target; a no-op when it "
    "keeps the shape",
    "Squeeze": "reshape (a no-op when it keeps the shape)",
    "Unsqueeze": "reshape",
    "Concat": "concat along a per-sample axis (any number of activations)",
    "Transpose": "transpose of the per-sample axes (the batch stays first; a no-op for the identity perm); a "
    "Transpose that moves the batch dim and is read only by Slices (then Squeezes) moves after them",
    "Slice": "slice on activations: one slice layer per sliced per-sample axis (constant starts / ends / axes, "
    "steps >= 1; the batch dim whole); folded at import on constants",
    "Resize": "resize of H and W (nearest with any nearest_mode, or linear; coordinate_transformation_mode "
    "half_pixel, pytorch_half_pixel, align_corners or asymmetric; constant scales [1, 1, sh, sw] or sizes)",
    "ConvTranspose": "conv_transpose2d (2-D; groups, dilations, strides, pads, output_padding, output_shape, "
    "auto_pad); a following bias Add, BatchNormalization, per-channel Mul and activation fold into it",
    "LRN": "lrn (size, alpha, beta, bias)",
    "Softmax": "softmax over any per-sample axis (the layer's axis; also the Flatten / Softmax / Reshape onnx's "
    "version converter writes for an opset < 13 Softmax on the last axis)",
    "Cast": "removed when it casts an activation to FLOAT or DOUBLE (every float32 value kept); a cast to any "
    "other type (float16, bfloat16, integers, bool) changes values and is refused, naming the type",
    "LayerNormalization": "layernorm over the last axis (eps 1e-12..1); also written out as ReduceMean, Sub, "
    "Pow 2, ReduceMean, Add eps, Sqrt, Div, then Mul gamma / Add beta",
    "ReduceMean": "reduce_mean over the last axis, dims kept (other axes and keepdims 0 are refused)",
    "Pow": "activation square (a constant exponent of 2 only)",
    "Sqrt": "activation sqrt",
    "Relu": "the preceding conv2d / linear / add's activation relu, else an activation layer",
    "Clip": "Clip(0, 6): the preceding layer's activation relu6; Clip(0, none): relu; other constant bounds: "
    "activation clip (min, max); no bounds: removed",
    "Gelu": "the preceding conv2d / linear's activation gelu (approximate none), else an activation layer; "
    "also 0.5 * x * (1 + Erf(x / sqrt(2))) written out",
    "BatchNormalization": "folded into the preceding Conv's weight and bias; else scale_shift (per channel)",
    "Identity": "removed",
    "Dropout": "removed (inference)",
    "Constant": "a constant, folded at import",
    "ConstantOfShape": "a constant, folded at import",
    "Shape, Size, Gather, Concat, Unsqueeze, Squeeze, Cast, ... on constants": "folded at import "
    "with onnx's ReferenceEvaluator (any deterministic op whose inputs are all constants or static shapes)",
}
#: op -> why the workload layer types cannot express it today (each is refused, naming the node)
UNSUPPORTED: dict[str, str] = {
    "Pad": "no explicit padding layer",
    "Split": "no split layer",
    "QuantizeLinear": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "DequantizeLinear": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "QLinearConv": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "QLinearMatMul": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "MatMulInteger": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "ConvInteger": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
    "DynamicQuantizeLinear": "a quantized model's op: read by accelsim.onnx.quantized_workload, as the CLI does",
}

Handler = Callable[["Builder", Node], None]


class Builder:
    """Workload layers and their weights, built node by node in graph order."""

    def __init__(self, graph: Graph, batch: int) -> None:
        self.graph = graph
        self.batch = batch
        self.layers: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}
        #: tensor name -> the workload name that holds it (a layer, ``input`` or an extra input)
        self.holder: dict[str, str] = {}
        self.names: set[str] = {INPUT}
        #: layer index -> the node it came from, to name the node in a validation error
        self.origin: list[Node] = []
        #: leading dims of a tensor that are not per sample: 1 (the batch), or 0 when some node moves
        #: the batch dim (a Gemm transA, a Transpose of axis 0) and the model runs as one sample
        self.lead = 1
        #: the node that made ``lead`` 0, named by the refusals of layers that need a batch dim
        self.mover: Node | None = None

    def one_sample_error(self, node: Node) -> AccelsimError:
        """A layer with a channel axis in a model imported as one sample (no batch dim to keep first)."""
        mover = f"node {self.mover.label!r} ({self.mover.op})" if self.mover else "a node"
        return self.graph.error(
            node,
            f"needs [N, C, ...] but {mover} moves the batch dim, so the model imports as one sample",
            "[N, C, ...]",
        )

    def axis(self, node: Node, axis: int, rank: int) -> int:
        """ONNX axis ``axis`` of a tensor of ``rank`` per-sample dims as a per-sample axis."""
        full = rank + self.lead
        if not -full <= axis < full or axis % full < self.lead:
            raise self.graph.error(
                node, f"axis {axis} is the batch dim or outside the rank {full}", "a per-sample axis"
            )
        return axis % full - self.lead

    # -- tensors ------------------------------------------------------------------------------------

    def shape(self, node: Node, tensor: str) -> tuple[int, ...]:
        """The per-sample shape of activation ``tensor`` (batch dim checked and dropped)."""
        full = self.graph.shapes.get(tensor)
        if full is None:
            raise self.graph.error(node, f"the shape of {tensor!r} is not static after shape inference")
        if not self.lead:
            return full
        if len(full) < 2 or full[0] != self.batch:
            raise self.graph.error(
                node, f"tensor {tensor!r} has shape {list(full)}, not [batch={self.batch}, ...] with a per-sample part"
            )
        return full[1:]

    def source(self, node: Node, tensor: str) -> str:
        """The workload name holding activation ``tensor``."""
        if tensor in self.holder:
            return self.holder[tensor]
        if self.graph.constant(tensor) is not None:
            raise self.graph.error(node, f"input {tensor!r} is a constant where the layer reads an activation")
        raise self.graph.error(node, f"input {tensor!r} comes from no imported layer or graph input")

    def constant(self, node: Node, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` as a float32 constant, None if omitted; an activation there is refused."""
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        value = self.graph.constant(node.inputs[index])
        if value is None:
            raise self.graph.error(node, f"the {what} {node.inputs[index]!r} is computed at run time, not a constant")
        return np.ascontiguousarray(value, dtype=np.float32)

    def integers(self, node: Node, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` as an int64 constant (Slice's starts / ends: INT64_MAX means "to the end", which
        float32 would not keep), None if omitted; an activation there is refused."""
        if index >= len(node.inputs) or not node.inputs[index]:
            return None
        value = self.graph.constant(node.inputs[index])
        if value is None:
            raise self.graph.error(node, f"the {what} {node.inputs[index]!r} is computed at run time, not a constant")
        return np.asarray(value, dtype=np.int64).reshape(-1)

    def weight(self, node: Node, index: int) -> np.ndarray:
        value = self.constant(node, index, "weight")
        if value is None:
            raise self.graph.error(node, "has no weight input")
        return value

    def alias(self, node: Node, tensor: str) -> None:
        """``node`` computes nothing: its output is ``tensor`` under another name."""
        self.holder[node.outputs[0]] = self.source(node, tensor)

    # -- layers -------------------------------------------------------------------------------------

    def _name(self, node: Node) -> str:
        base = node.name if node.name and node.name.isprintable() else node.outputs[0]
        base = base[:90] if base.isprintable() else f"node{len(self.layers)}"
        return unique_name(base, self.names)

    def emit(
        self,
        node: Node,
        layer: dict[str, Any],
        inputs: Sequence[str],
        weight: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        output: str | None = None,
    ) -> str:
        """Append ``layer`` (its fields but name and inputs), reading workload names ``inputs``."""
        name = self._name(node)
        self.layers.append({"name": name, **layer, "inputs": list(inputs)})
        self.origin.append(node)
        if weight is not None:
            self.weights[f"{name}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        if bias is not None:
            self.weights[f"{name}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        self.holder[output if output is not None else node.outputs[0]] = name
        return name


def _activation(node: Node) -> dict[str, str]:
    kind = node.attrs.get(ACTIVATION)
    return {"activation": kind} if kind else {}


def _ints(node: Node, key: str, default: Sequence[int]) -> list[int]:
    return [int(v) for v in node.attrs.get(key, default)]


def _text(node: Node, key: str, default: str) -> str:
    """A string attribute (onnx gives bytes)."""
    value = node.attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _auto_pad(node: Node) -> str:
    return _text(node, "auto_pad", "NOTSET")


def _window_padding(
    b: Builder, node: Node, hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> list[int]:
    """The workload padding: ``[h, w]`` when both sides of each axis agree, else ``[top, left, bottom,
    right]`` (ONNX pads are ``[begin h, begin w, end h, end w]``, the same order). SAME_UPPER puts an odd
    total's extra row or column at the end, SAME_LOWER at the beginning."""
    mode = _auto_pad(node)
    if mode == "VALID":
        return [0, 0]
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [
            max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
            for size, k, s, d in zip(hw, kernel, strides, dilations)
        ]
        small = [t // 2 for t in totals]
        large = [t - t // 2 for t in totals]
        pads = [*small, *large] if mode == "SAME_UPPER" else [*large, *small]
    else:
        pads = _ints(node, "pads", [0, 0, 0, 0])
        if len(pads) != 4:
            raise b.graph.error(node, f"pads {pads} are not [begin h, begin w, end h, end w]")
    return pads[:2] if pads[:2] == pads[2:] else pads


def _conv(b: Builder, node: Node) -> None:
    if not b.lead:
        raise b.one_sample_error(node)
    shape = b.shape(node, node.inputs[0])
    weight = b.weight(node, 1)
    if len(shape) != 3 or weight.ndim != 4:
        raise b.graph.error(node, f"only 2-D convolutions import; the input is [N, {', '.join(map(str, shape))}]")
    kernel = list(weight.shape[2:])
    strides = _ints(node, "strides", [1, 1])
    dilations = _ints(node, "dilations", [1, 1])
    padding = _window_padding(b, node, shape[1:], kernel, strides, dilations)
    bias = b.constant(node, 2, "bias")
    layer = {
        "type": "conv2d",
        "out_channels": weight.shape[0],
        "kernel": kernel,
        "stride": strides,
        "padding": padding,
        "dilation": dilations,
        "groups": int(node.attrs.get("group", 1)),
        "bias": bias is not None,
        **_activation(node),
    }
    b.emit(node, layer, [b.source(node, node.inputs[0])], weight, bias)


def _conv_transpose(b: Builder, node: Node) -> None:
    """ConvTranspose (its weight already ``[O, C/groups, kh, kw]``, graph.conv_transpose_weights): the pads
    the output shape shape inference gave implies (explicit pads, output_shape, auto_pad alike), the begin
    side from the attributes, ONNX's rule for the split of a computed total."""
    if not b.lead:
        raise b.one_sample_error(node)
    shape = b.shape(node, node.inputs[0])
    weight = b.weight(node, 1)
    groups = int(node.attrs.get("group", 1))
    if len(shape) != 3 or weight.ndim != 4:
        raise b.graph.error(
            node, f"only 2-D transposed convolutions import; the input is [N, {', '.join(map(str, shape))}]"
        )
    if weight.shape[1] * groups != shape[0]:
        raise b.graph.error(
            node, f"the weight {list(weight.shape)} does not fit {shape[0]} input channels in {groups} groups"
        )
    kernel = list(weight.shape[2:])
    strides, dilations = _ints(node, "strides", [1, 1]), _ints(node, "dilations", [1, 1])
    output_padding = _ints(node, "output_padding", [0, 0])
    out = b.shape(node, node.outputs[0])[1:]
    full = [
        (i - 1) * s + d * (k - 1) + 1 + p
        for i, s, d, k, p in zip(shape[1:], strides, dilations, kernel, output_padding)
    ]
    totals = [f - o for f, o in zip(full, out)]
    mode = _auto_pad(node)
    if "output_shape" in node.attrs or mode in ("SAME_UPPER", "SAME_LOWER"):
        begin = [t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in totals]
    else:
        begin = _ints(node, "pads", [0, 0, 0, 0])[:2] if mode != "VALID" else [0, 0]
    end = [t - lo for t, lo in zip(totals, begin)]
    for axis in (0, 1):  # a negative end is output padding (an output_shape past the full extent)
        if end[axis] < 0:
            output_padding[axis] -= end[axis]
            end[axis] = 0
    bias = b.constant(node, 2, "bias")
    pads = [*begin, *end]
    layer = {
        "type": "conv_transpose2d",
        "out_channels": weight.shape[0],
        "kernel": kernel,
        "stride": strides,
        "padding": pads[:2] if pads[:2] == pads[2:] else pads,
        "dilation": dilations,
        "groups": groups,
        "bias": bias is not None,
        **({"output_padding": output_padding} if any(output_padding) else {}),
        **_activation(node),
    }
    b.emit(node, layer, [b.source(node, node.inputs[0])], weight, bias)


def _linear(b: Builder, node: Node, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """A linear layer with ``weight`` ``[out, in]`` on the last axis of the node's first input."""
    shape = b.shape(node, node.inputs[0])
    if shape[-1] != weight.shape[1]:
        raise b.graph.error(node, f"the weight {list(weight.shape)} does not fit the input's {shape[-1]} features")
    layer = {"type": "linear", "out_features": weight.shape[0], "bias": bias is not None, **_activation(node)}
    b.emit(node, layer, [b.source(node, node.inputs[0])], weight, bias)


def _gemm(b: Builder, node: Node) -> None:
    if len(b.shape(node, node.inputs[0])) != 2 - b.lead:
        raise b.graph.error(node, "A is not a [N, K] matrix")
    matrix = b.weight(node, 1)
    weight = matrix if node.attrs.get("transB", 0) else matrix.T
    weight = weight * np.float32(node.attrs.get("alpha", 1.0))
    c = b.constant(node, 2, "bias C")
    bias = None
    if c is not None:
        if c.size not in (1, weight.shape[0]) or c.ndim > 2 or c.ndim == 2 and c.shape[0] != 1:
            raise b.graph.error(node, f"C of shape {list(c.shape)} is not a per-output bias", "[N], [1, N] or a scalar")
        bias = np.broadcast_to(c.reshape(-1), (weight.shape[0],)) * np.float32(node.attrs.get("beta", 1.0))
    if node.attrs.get("transA", 0):  # A^T: its rows are the batch; imported as one sample (Builder.lead 0)
        transposed = f"{node.outputs[0]}:A^T"
        b.emit(node, {"type": "transpose", "perm": [1, 0]}, [b.source(node, node.inputs[0])], output=transposed)
        b.graph.shapes[transposed] = b.graph.shapes[node.inputs[0]][::-1]
        node = Node(node.op, node.name, [transposed, *node.inputs[1:]], node.outputs, node.attrs)
    _linear(b, node, weight, bias)


def _matmul(b: Builder, node: Node) -> None:
    weight = b.graph.constant(node.inputs[1])
    if b.graph.constant(node.inputs[0]) is not None:
        raise b.graph.error(node, "the constant is the left operand", "a constant right operand (x @ W)")
    if weight is not None:
        if weight.ndim != 2:
            raise b.graph.error(node, f"a constant weight of {weight.ndim} dims", "a 2-D [K, N] weight")
        _linear(b, node, np.asarray(weight, np.float32).T, b.constant(node, 2, "bias"))
        return
    a, c = (b.shape(node, t) for t in node.inputs[:2])
    if len(a) < 2 or len(c) < 2:
        raise b.graph.error(node, f"per-sample operands {list(a)} x {list(c)}", "at least 2 dims each (no vectors)")
    heads = a[0] if len(a) == len(c) == 3 and a[0] == c[0] else 1  # else the leading dims broadcast
    layer: dict[str, Any] = {"type": "matmul", **({"heads": heads} if heads > 1 else {})}
    if "alpha" in node.attrs:  # a scalar Mul / Div folded by the IR (graph.fold_matmul_scale)
        layer["alpha"] = node.attrs["alpha"]
    b.emit(node, layer, [b.source(node, t) for t in node.inputs[:2]])


def _pool(b: Builder, node: Node) -> None:
    shape = b.shape(node, node.inputs[0])
    if len(shape) != 3:
        raise b.graph.error(node, f"only 2-D pooling imports; the input is [N, {', '.join(map(str, shape))}]")
    kind = "maxpool" if node.op.startswith(("Max", "GlobalMax")) else "avgpool"
    if node.op.startswith("Global"):
        b.emit(node, {"type": kind, "global_pool": True}, [b.source(node, node.inputs[0])])
        return
    kernel = _ints(node, "kernel_shape", [])
    strides = _ints(node, "strides", [1, 1])
    if _ints(node, "dilations", [1, 1]) != [1, 1] or int(node.attrs.get("storage_order", 0)):
        raise b.graph.error(node, "dilated or column-major pooling", "dilations 1, storage_order 0")
    if len(node.outputs) > 1 and b.graph.consumers(node.outputs[1]):
        raise b.graph.error(node, "its Indices output is read", "MaxPool's values only")
    padding = _window_padding(b, node, shape[1:], kernel, strides, [1, 1])
    if any(2 * p > k for p, k in zip(padding, kernel * 2)):
        raise b.graph.error(node, f"padding {padding} is more than half the kernel {kernel} on a side")
    layer: dict[str, Any] = {"type": kind, "kernel": kernel, "stride": strides, "padding": padding}
    if node.attrs.get("ceil_mode", 0):
        layer["ceil_mode"] = True
    if kind == "avgpool" and node.attrs.get("count_include_pad", 0):
        layer["count_include_pad"] = True
    b.emit(node, layer, [b.source(node, node.inputs[0])])


def _add(b: Builder, node: Node) -> None:
    operands = [t for t in node.inputs if t]
    if any(b.graph.constant(t) is not None for t in operands):
        raise b.graph.error(node, "adds a constant that is no Conv / weight-MatMul bias", "two activations")
    shapes = [b.shape(node, t) for t in operands]
    if len(operands) < 2 or any(s != shapes[0] for s in shapes):
        raise b.graph.error(node, f"operand shapes {[list(s) for s in shapes]} differ", "equal shapes (no broadcast)")
    total = b.source(node, operands[0])
    for i, tensor in enumerate(operands[1:], 2):
        last = i == len(operands)
        fields = {"type": "add", **(_activation(node) if last else {})}
        output = node.outputs[0] if last else f"{node.outputs[0]}:partial{i}"
        total = b.emit(node, fields, [total, b.source(node, tensor)], output=output)


def _binary(b: Builder, node: Node) -> None:
    """Add / Sub / Mul / Div: the add layer for two activations of one shape summed, else elementwise."""
    operands = node.inputs[:2]
    constants = [b.graph.constant(t) for t in operands]
    op = node.op.lower()
    if constants[0] is None and constants[1] is None:
        shapes = [b.shape(node, t) for t in operands]
        if op == "add" and shapes[0] == shapes[1]:
            _add(b, node)
            return
        if len(shapes[0]) != len(shapes[1]):
            raise b.graph.error(
                node,
                f"operands {[list(s) for s in shapes]} of different ranks (the batch would meet a per-sample dim)",
                "activations of one rank, broadcasting per sample",
            )
        b.emit(node, {"type": "elementwise", "op": op, **_activation(node)}, [b.source(node, t) for t in operands])
        return
    first = constants[0] is not None
    value = np.asarray(constants[0] if first else constants[1], np.float32)
    x = operands[1] if first else operands[0]
    rank = len(b.shape(node, x)) + b.lead
    if value.ndim > rank or b.lead and value.ndim == rank and value.shape[0] != 1:
        raise b.graph.error(
            node, f"the constant of shape {list(value.shape)} varies along the batch", "a constant per sample"
        )
    per_sample = value.shape[1:] if b.lead and value.ndim == rank else value.shape
    while len(per_sample) > 1 and per_sample[0] == 1:  # leading unit dims broadcast away
        per_sample = per_sample[1:]
    per_sample = per_sample or (1,)
    layer: dict[str, Any] = {"type": "elementwise", "op": op, "constant": list(per_sample), **_activation(node)}
    if first:
        layer["constant_first"] = True
    b.emit(node, layer, [b.source(node, x)], weight=value.reshape(per_sample))


#: ONNX activation ops and the workload activation function each becomes (Clip: see _clip_fields)
ACTIVATION_FUNCTIONS = {
    "Relu": "relu",
    "Clip": "clip",
    "Gelu": "gelu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
    "HardSigmoid": "hard_sigmoid",
    "LeakyRelu": "leaky_relu",
    "Erf": "erf",
    "Sqrt": "sqrt",
}
#: a Clip bound at least this large is float32's "no bound" (exporters write FLT_MAX)
NO_BOUND = 3.0e38


def _attr(node: Node, key: str, default: float) -> float:
    """A float32 attribute as the float it holds."""
    return float(np.float32(node.attrs.get(key, default)))


def _clip_fields(b: Builder, node: Node) -> dict[str, Any] | None:
    """A standalone Clip's activation fields (relu6 / relu where the bounds are theirs); None: no bounds."""
    bounds = [b.constant(node, i, what) for i, what in ((1, "min"), (2, "max"))]
    low, high = (None if v is None or abs(float(v.reshape(()))) >= NO_BOUND else float(v.reshape(())) for v in bounds)
    if low is None and high is None:
        return None
    if low == 0.0 and high in (6.0, None):
        return {"function": "relu6" if high else "relu"}
    return {
        "function": "clip",
        **({"min": low} if low is not None else {}),
        **({"max": high} if high is not None else {}),
    }


def _activation_layer(b: Builder, node: Node) -> None:
    """An activation op no layer before it could fuse: a standalone activation layer."""
    fields: dict[str, Any] | None = {"function": ACTIVATION_FUNCTIONS[node.op]}
    if node.op == "Gelu" and node.attrs.get("approximate", "none") not in ("none", b"none"):
        raise b.graph.error(node, f"approximate {node.attrs['approximate']!r}", "approximate none (erf)")
    if node.op == "LeakyRelu":
        fields = {"function": "leaky_relu", "alpha": _attr(node, "alpha", 0.01)}
    elif node.op == "HardSigmoid":
        fields = {"function": "hard_sigmoid", "alpha": _attr(node, "alpha", 0.2), "beta": _attr(node, "beta", 0.5)}
    elif node.op == "Clip":
        fields = _clip_fields(b, node)
    if fields is None:
        b.alias(node, node.inputs[0])
        return
    b.emit(node, {"type": "activation", **fields}, [b.source(node, node.inputs[0])])


def _batchnorm(b: Builder, node: Node) -> None:
    """A BatchNormalization no Conv before it absorbed: scale_shift with ``s = gamma / sqrt(var + eps)``,
    ``shift = beta - mean * s``."""
    if not b.lead:  # per-sample axis 0 is ONNX's batch dim there, not the channels
        raise b.one_sample_error(node)
    folded = batchnorm_scale(b.graph, node)
    if folded is None:
        raise b.graph.error(node, "training mode, or statistics computed at run time", "constant inference statistics")
    if len(node.outputs) > 1 and any(b.graph.consumers(o) for o in node.outputs[1:]):
        raise b.graph.error(node, "its running statistics outputs are read", "the normalized output only")
    scale, shift = folded
    fields = {"type": "scale_shift", **_activation(node)}
    b.emit(node, fields, [b.source(node, node.inputs[0])], scale.astype(np.float32), shift.astype(np.float32))


def _reshape(b: Builder, node: Node) -> None:
    """Reshape, Flatten, Squeeze, Unsqueeze: the output shape shape inference gave, the batch kept first."""
    shape = b.shape(node, node.inputs[0])
    out = b.shape(node, node.outputs[0])
    if out == shape:
        b.alias(node, node.inputs[0])
        return
    layer = {"type": "flatten"} if out == (math.prod(shape),) else {"type": "reshape", "shape": list(out)}
    b.emit(node, layer, [b.source(node, node.inputs[0])])


def _concat(b: Builder, node: Node) -> None:
    operands = [t for t in node.inputs if t]
    rank = len(b.shape(node, operands[0]))
    if len(operands) == 1:
        b.alias(node, operands[0])
        return
    layer = {"type": "concat", "axis": b.axis(node, int(node.attrs["axis"]), rank)}
    b.emit(node, layer, [b.source(node, t) for t in operands])


def _transpose(b: Builder, node: Node) -> None:
    rank = len(b.shape(node, node.inputs[0])) + b.lead
    perm = _ints(node, "perm", list(range(rank))[::-1])
    if perm[: b.lead] != list(range(b.lead)):
        raise b.graph.error(node, f"perm {perm} moves the batch dim", "perm[0] = 0")
    per_sample = [p - b.lead for p in perm[b.lead :]]
    if per_sample == sorted(per_sample):
        b.alias(node, node.inputs[0])
        return
    b.emit(node, {"type": "transpose", "perm": per_sample}, [b.source(node, node.inputs[0])])


def _slice(b: Builder, node: Node) -> None:
    """Slice of an activation: one slice layer per per-sample axis it narrows (ONNX's clamping of starts and
    ends; steps >= 1); the batch dim only whole."""
    shape = b.shape(node, node.inputs[0])
    starts, ends, axes, steps = (
        b.integers(node, i, what) for i, what in enumerate(("starts", "ends", "axes", "steps"), 1)
    )
    assert starts is not None and ends is not None  # required inputs
    rank = len(shape) + b.lead
    full = (b.batch, *shape) if b.lead else shape
    source = b.source(node, node.inputs[0])
    cuts: list[dict[str, Any]] = []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist())):
        axis = int(axes[i]) % rank if axes is not None else i
        step = int(steps[i]) if steps is not None else 1
        extent = full[axis]
        if step < 1:
            raise b.graph.error(node, f"step {step} on axis {axis}", "steps >= 1 (no reversal)")
        first, stop = (int(min(max(v + extent if v < 0 else v, 0), extent)) for v in (start, end))
        if first == 0 and stop == extent and step == 1:
            continue
        if stop <= first:
            raise b.graph.error(node, f"selects nothing of axis {axis} ([{first}:{stop}])", "a non-empty slice")
        cuts.append({"axis": b.axis(node, axis, len(shape)), "start": first, "end": stop, "step": step})
    if not cuts:
        b.alias(node, node.inputs[0])
        return
    for i, cut in enumerate(cuts):
        last = i == len(cuts) - 1
        output = node.outputs[0] if last else f"{node.outputs[0]}:axis{cut['axis']}"
        fields = {"type": "slice", **{k: v for k, v in cut.items() if (k, v) not in (("start", 0), ("step", 1))}}
        source = b.emit(node, fields, [source], output=output)


#: Resize's coordinate transformations a resize layer computes
RESIZE_COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _resize(b: Builder, node: Node) -> None:
    """Resize of the last two axes of a ``[N, C, H, W]`` activation by constant scales or to constant sizes."""
    if not b.lead:
        raise b.one_sample_error(node)
    shape = b.shape(node, node.inputs[0])
    mode, coordinates = _text(node, "mode", "nearest"), _text(node, "coordinate_transformation_mode", "half_pixel")
    if len(shape) != 3:
        raise b.graph.error(node, f"resizes a [N, {', '.join(map(str, shape))}] tensor", "[N, C, H, W]")
    if mode not in ("nearest", "linear"):
        raise b.graph.error(node, f"mode {mode!r}", "nearest or linear")
    if coordinates not in RESIZE_COORDINATES:
        raise b.graph.error(node, f"coordinate_transformation_mode {coordinates!r}", ", ".join(RESIZE_COORDINATES))
    if int(node.attrs.get("antialias", 0)) or _text(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise b.graph.error(node, "antialias or a kept aspect ratio", "antialias 0, keep_aspect_ratio_policy stretch")
    axes = [int(a) % 4 for a in node.attrs.get("axes", [0, 1, 2, 3])]
    scales, sizes = (b.constant(node, i, what) for i, what in ((2, "scales"), (3, "sizes")))
    layer: dict[str, Any] = {"type": "resize", "mode": mode, "coordinate_transformation": coordinates}
    given = scales if scales is not None and scales.size else sizes
    if given is None or given.size != len(axes):
        raise b.graph.error(node, "has no constant scales or sizes for its axes", "scales [1, 1, sh, sw] or sizes")
    full = dict(zip(axes, given.reshape(-1).tolist()))
    unchanged = [1.0] * 4 if given is scales else [b.batch, *shape]  # what keeps an axis as it is
    if any(full.get(a, unchanged[a]) != unchanged[a] for a in (0, 1)):
        raise b.graph.error(node, f"resizes the batch or channel axis ({given.tolist()})", "H and W only")
    hw = [full.get(a, unchanged[a]) for a in (2, 3)]
    if given is scales:
        layer["scale"] = [float(v) for v in hw]
    else:
        layer["size"] = [int(v) for v in hw]
    if mode == "nearest":
        layer["nearest_mode"] = _text(node, "nearest_mode", "round_prefer_floor")
    b.emit(node, layer, [b.source(node, node.inputs[0])])


def _lrn(b: Builder, node: Node) -> None:
    if not b.lead:
        raise b.one_sample_error(node)
    layer: dict[str, Any] = {
        "type": "lrn",
        "size": int(node.attrs["size"]),
        # the float32 attributes' shortest spellings
        **{key: float(str(np.float32(node.attrs[key]))) for key in ("alpha", "beta", "bias") if key in node.attrs},
    }
    b.emit(node, layer, [b.source(node, node.inputs[0])])


def _reduce_mean(b: Builder, node: Node) -> None:
    """ReduceMean over the last axis with its dims kept (a written-out LayerNorm's mean and variance, kept as
    steps in a quantized model's twin); other axes would need a reduction layer over them."""
    rank = len(b.shape(node, node.inputs[0]))
    given = b.integers(node, 1, "axes") if len(node.inputs) > 1 else node.attrs.get("axes")
    listed = None if given is None else [int(a) for a in np.ravel(np.asarray(given))]
    axes = None if listed is None else sorted({b.axis(node, a, rank) for a in listed})
    if axes != [rank - 1] or not int(node.attrs.get("keepdims", 1)):
        what = "all axes" if listed is None else f"axes {listed}"
        raise b.graph.error(
            node, f"reduces {what} with keepdims {node.attrs.get('keepdims', 1)}", "the last axis, keepdims 1"
        )
    b.emit(node, {"type": "reduce_mean"}, [b.source(node, node.inputs[0])])


def _pow(b: Builder, node: Node) -> None:
    """Pow by a constant 2: the square (ORT's float32 Pow gives the product rounded once)."""
    exponent = b.constant(node, 1, "exponent")
    if exponent is None or exponent.size != 1 or float(exponent.reshape(())) != 2.0:
        shown = "none" if exponent is None else np.ravel(exponent)[:4].tolist()
        raise b.graph.error(node, f"exponent {shown}", "a constant exponent of 2")
    b.emit(node, {"type": "activation", "function": "square"}, [b.source(node, node.inputs[0])])


def _softmax(b: Builder, node: Node) -> None:
    rank = len(b.shape(node, node.inputs[0]))
    axis = b.axis(node, int(node.attrs.get("axis", -1)), rank)
    layer = {"type": "softmax"} if axis == rank - 1 else {"type": "softmax", "axis": axis}
    b.emit(node, layer, [b.source(node, node.inputs[0])])


#: Cast targets that keep every float32 value (a widening): the cast is the identity on the values
EXACT_CASTS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})


def _cast(b: Builder, node: Node) -> None:
    to = int(node.attrs["to"])
    if to not in EXACT_CASTS:
        target = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else str(to)
        raise b.graph.error(
            node,
            f"casts an activation to {target}, which changes its values (the imported network runs in float32)",
            "a cast to FLOAT or DOUBLE",
        )
    b.alias(node, node.inputs[0])


def _layernorm(b: Builder, node: Node) -> None:
    shape = b.shape(node, node.inputs[0])
    rank = len(shape) + 1
    if int(node.attrs.get("axis", -1)) % rank != rank - 1:
        raise b.graph.error(node, f"normalizes from axis {node.attrs.get('axis')}", "the last axis only")
    if len(node.outputs) > 1 and any(b.graph.consumers(o) for o in node.outputs[1:]):
        raise b.graph.error(node, "its Mean / InvStdDev outputs are read", "the normalized output only")
    eps = float(str(np.float32(node.attrs.get("epsilon", 1e-5))))  # the float32 attribute's shortest spelling
    if not 1e-12 <= eps <= 1.0:
        raise b.graph.error(node, f"epsilon {eps:g}", "1e-12 .. 1")
    gamma = b.weight(node, 1).reshape(-1)
    beta = b.constant(node, 2, "bias")
    layer = {"type": "layernorm", "eps": eps}
    b.emit(node, layer, [b.source(node, node.inputs[0])], gamma, None if beta is None else beta.reshape(-1))


HANDLERS: dict[str, Handler] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _pool,
    "GlobalMaxPool": _pool,
    "Add": _binary,
    "Sub": _binary,
    "Mul": _binary,
    "Div": _binary,
    "Sum": _add,
    "Flatten": _reshape,
    "Reshape": _reshape,
    "Squeeze": _reshape,
    "Unsqueeze": _reshape,
    "Concat": _concat,
    "Transpose": _transpose,
    "Slice": _slice,
    "Resize": _resize,
    "LRN": _lrn,
    "Softmax": _softmax,
    "ReduceMean": _reduce_mean,
    "Pow": _pow,
    "Cast": _cast,
    "LayerNormalization": _layernorm,
    **dict.fromkeys(ACTIVATION_FUNCTIONS, _activation_layer),
    "BatchNormalization": _batchnorm,
}
#: SUPPORTED entries that never reach the mapping (removed or folded by the IR rewrites)
FOLDED_AWAY = frozenset(SUPPORTED) - frozenset(HANDLERS)


def map_node(b: Builder, node: Node) -> None:
    """Add ``node``'s layers to ``b``, or refuse it naming why."""
    handler = HANDLERS.get(node.op)
    if handler is not None:
        handler(b, node)
        return
    if node.op in UNSUPPORTED:
        raise b.graph.error(node, UNSUPPORTED[node.op], "the ops in docs/onnx.md")
    raise b.graph.error(node, "not an op the importer maps", "the ops in docs/onnx.md")


def check_batch(batch: int, file: str, where: str) -> int:
    if not 1 <= batch <= 4096:
        raise AccelsimError(f"batch {batch} (the first dim of {where})", file=file, allowed="1 .. 4,096")
    return batch


def check_dims(shape: Sequence[int], file: str, where: str) -> list[int]:
    if not 1 <= len(shape) <= 4 or any(not 1 <= d <= MAX_DIM for d in shape):
        raise AccelsimError(
            f"{where} has the per-sample shape {list(shape)}", file=file, allowed="1 to 4 dims of 1 .. 2^20"
        )
    return list(shape)
