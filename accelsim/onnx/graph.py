"""A small graph IR of an ONNX model, and the import-time rewrites deployment tools also make.

The IR keeps what the mapping to workload layers reads: each node's op type, name, input and output
tensor names and attributes (as Python values); every constant (initializers, Constant nodes and
whatever folds) as a numpy array; every tensor's static shape, batch dim included.

Rewrites, in order (each keeps the graph's function, up to float rounding for the BatchNormalization
fold):

1. **constant folding** (:func:`fold_constants`, on the ModelProto): Constant, ConstantOfShape and every
   node whose inputs are all constants, plus Shape/Size of a tensor whose shape is static, are evaluated
   with onnx's own ``ReferenceEvaluator`` and become constants; shapes are then inferred again (and
   folding repeats while that makes another Shape's input static);
2. **ConvTranspose weights** in a Conv's layout (:func:`conv_transpose_weights`), **Slices and Squeezes moved
   before a batch-moving Transpose** (:func:`slice_before_transpose`), **pass-throughs removed**: Identity,
   Dropout (inference: the identity, its mask unread);
   then **written-out LayerNorm** matched (:func:`match_layernorm`: ReduceMean / Sub / Pow 2 /
   ReduceMean / Add eps / Sqrt / Div, then Mul gamma / Add beta, becomes one LayerNormalization) and
   the converter's **Flatten / Softmax / Reshape** of an opset < 13 Softmax back to one Softmax;
3. **BatchNormalization folded into the preceding Conv or ConvTranspose** (a bias Add between them is
   folded first): ``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, when
   the conv feeds only the BatchNormalization;
4. **bias Add folded** into a preceding Conv or ConvTranspose (a ``[C, 1, 1]`` constant) or a MatMul with a
   constant weight (a ``[N]`` constant), as exporters of ``nn.Linear`` write it;
5. **activations fused**: Relu, Clip(0, 6) and Gelu (erf) after a Conv, ConvTranspose, Gemm, weight MatMul,
   Add or Sum become that node's ``activation`` attribute; Sigmoid, Tanh and HardSwish likewise, after a
   Conv, ConvTranspose, Gemm or weight MatMul.

Between 3 and 4, **per-channel Mul / Add folded** (:func:`fold_channel_affine`): a Mul by a per-channel
constant after a Conv or ConvTranspose scales its weight and bias; a per-channel Mul or Add after a BatchNormalization
scales / shifts its gamma and beta (onnx's light DenseNet and Inception v2 write BatchNorm's affine so).
Between 4 and 5, **activations written out** (:func:`match_written_activations`): ``x * Clip(x + 3, 0, 6)
/ 6`` (and ``x * HardSigmoid(x, 1/6, 0.5)``) becomes one HardSwish node, ``0.5 * x * (1 + Erf(x /
sqrt(2)))`` one Gelu node, in any order of the product's factors.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, helper, numpy_helper

from accelsim.errors import AccelsimError
from accelsim.onnx.reading import default_opset, evaluator, graph_inputs, infer_shapes

#: ops never folded even on constant inputs: their outputs differ run to run
NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"})
#: ops that only read their input's shape, folded once that shape is static
SHAPE_READERS = frozenset({"Shape", "Size"})
#: constants up to this many elements go to the second shape inference as values (shape operands)
SMALL = 4096
#: attribute key the fusion pass sets on a node, read by the mapping (the workload's activation names)
ACTIVATION = "activation"
#: ops an activation fuses into (the workload layers with an ``activation`` field)
FUSES_ACTIVATION = frozenset(
    {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sum", "Sub", "Mul", "Div", "BatchNormalization"}
)
#: convolutions: their constant weight is ``[O, C/groups, kh, kw]`` in the IR (a ConvTranspose's is
#: rewritten so, :func:`conv_transpose_weights`), so folds scale and shift output channels on axis 0
CONVS = ("Conv", "ConvTranspose")


@dataclass
class Node:
    """One operator: ``inputs`` may hold ``""`` for an omitted optional input."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How an error names the node: its name, else its first output."""
        return self.name or self.outputs[0]


@dataclass
class Graph:
    """The model as the mapping reads it; ``shapes`` are static and include the batch dim."""

    nodes: list[Node]
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    inputs: list[str]
    outputs: list[str]
    file: str

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: str) -> Node | None:
        return next((n for n in self.nodes if tensor in n.outputs), None)

    def only_feeds(self, tensor: str, node: Node) -> bool:
        """``tensor`` is read by ``node`` alone and is not a graph output (so it may disappear)."""
        return tensor not in self.outputs and self.consumers(tensor) == [node]

    def constant(self, tensor: str) -> np.ndarray | None:
        return self.constants.get(tensor) if tensor else None

    def rename(self, old: str, new: str) -> None:
        """Every read of tensor ``old`` reads ``new`` instead (graph outputs included)."""
        for node in self.nodes:
            node.inputs = [new if t == old else t for t in node.inputs]
        self.outputs = [new if t == old else t for t in self.outputs]

    def error(self, node: Node, message: str, allowed: str | None = None) -> AccelsimError:
        """The one-line error for ``node``: the file, the node and its op type, what is wrong."""
        return AccelsimError(f"node {node.label!r} ({node.op}): {message}", file=self.file, allowed=allowed)


# ---------------------------------------------------------------------------------------------------
# 1. constant folding, on the ModelProto (shapes are inferred again afterwards)


def _static_shape(model: ModelProto) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[value.name] = tuple(d.dim_value for d in dims)
    return out


def _fold_node(node: onnx.NodeProto, args: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    feeds = {name: value for name, value in zip(node.input, args) if name and value is not None}
    return [np.asarray(v) for v in evaluator(node, opset).run(None, feeds)]


def _fold_pass(
    nodes: list[onnx.NodeProto],
    constants: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    opset: int,
    file: str,
) -> list[onnx.NodeProto]:
    """One pass over ``nodes`` in order: each that folds adds its outputs to ``constants``; the rest."""
    kept: list[onnx.NodeProto] = []
    for node in nodes:
        control_flow = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        args: list[np.ndarray | None]
        if node.op_type in SHAPE_READERS and node.input[0] in shapes:
            # only the shape is read: a zero-strided view of the right shape, no data
            args = [np.broadcast_to(np.float32(0), shapes[node.input[0]])]
        elif (
            node.domain in ("", "ai.onnx")
            and node.op_type not in NONDETERMINISTIC
            and not control_flow  # If, Loop: left to the mapping, which refuses them
            and all(i in constants for i in node.input if i)
        ):
            args = [constants.get(i) for i in node.input]
        else:
            kept.append(node)
            continue
        try:
            values = _fold_node(node, args, opset)
        except (ValueError, TypeError, RuntimeError, IndexError, ArithmeticError) as exc:  # numpy's, in the op
            label = node.name or node.output[0]
            raise AccelsimError(
                f"node {label!r} ({node.op_type}): cannot be evaluated on its constant inputs: {exc}", file=file
            ) from None
        constants.update(zip(node.output, values))
    return kept


def fold_constants(model: ModelProto, file: str) -> tuple[Graph, ModelProto]:
    """Every constant-computable node of ``model`` evaluated: an IR holding the constants and the shapes
    inferred again (no nodes yet), and the model of the nodes left. Repeated while a pass leaves a Shape
    whose input the new inference made static (a shape computed from a Reshape whose target was itself
    computed: paddle2onnx's exports)."""
    opset = default_opset(model)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    shapes = _static_shape(model)
    inputs = graph_inputs(model)
    nodes = list(model.graph.node)
    while True:
        kept = _fold_pass(nodes, constants, shapes, opset, file)
        used = {i for n in kept for i in n.input} | {o.name for o in model.graph.output}
        constants = {name: value for name, value in constants.items() if name in used}
        # shape inference needs the values of small constants (shape operands) but only the shapes of
        # weights: large constants go in as typed inputs, sparing a serialization of every weight
        small = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in constants.items() if v.size <= SMALL]
        large = [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in constants.items()
            if v.size > SMALL
        ]
        graph = helper.make_graph(kept, model.graph.name, [*inputs, *large], list(model.graph.output), small)
        folded = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=max(model.ir_version, 4))
        shapes = _static_shape(infer_shapes(folded, file))
        if len(kept) == len(nodes) or not any(n.op_type in SHAPE_READERS and n.input[0] in shapes for n in kept):
            break
        nodes = kept
    return Graph([], constants, shapes, [i.name for i in inputs], [o.name for o in model.graph.output], file), folded


# ---------------------------------------------------------------------------------------------------
# the IR


def from_model(model: ModelProto, file: str) -> Graph:
    """The IR of a read model, constants folded."""
    graph, folded = fold_constants(model, file)
    graph.nodes = [
        Node(
            n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}",
            n.name,
            list(n.input),
            list(n.output),
            {a.name: helper.get_attribute_value(a) for a in n.attribute},
        )
        for n in folded.graph.node
    ]
    return graph


# ---------------------------------------------------------------------------------------------------
# 2. to 5. rewrites on the IR


def _drop(graph: Graph, node: Node, keep: str) -> None:
    """Remove ``node``, whose first output equals its input ``keep``."""
    graph.nodes.remove(node)
    graph.rename(node.outputs[0], keep)


def conv_transpose_weights(graph: Graph) -> None:
    """A ConvTranspose's constant weight ``[C, O/groups, kh, kw]`` (ONNX) becomes ``[O, C/groups, kh, kw]``,
    a Conv's layout, so the folds below and the workload's conv_transpose2d read output channels on axis 0."""
    for node in [n for n in graph.nodes if n.op == "ConvTranspose"]:
        weight = graph.constant(node.inputs[1]) if len(node.inputs) > 1 else None
        groups = int(node.attrs.get("group", 1))
        if weight is None or weight.ndim != 4 or weight.shape[0] % groups:
            continue  # refused by the mapping, naming what is wrong
        c_per = weight.shape[0] // groups
        parts = [weight[g * c_per : (g + 1) * c_per].transpose(1, 0, 2, 3) for g in range(groups)]
        name = f"{node.label}::weight"
        graph.constants[name] = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        node.inputs = [node.inputs[0], name, *node.inputs[2:]]


def _moves_batch_dim(perm: list[int]) -> bool:
    return perm[:1] != [0]


def slice_before_transpose(graph: Graph) -> None:
    """``Slice(Transpose(x, perm))`` is ``Transpose(Slice(x), perm)`` with the slice's axes mapped through
    ``perm``, and ``Squeeze(Transpose(y, perm))`` of unit axes is ``Transpose(Squeeze(y), perm')``. Where a
    Transpose moves the batch dim and only Slices read it (SVTR's q / k / v split: Reshape to ``[N, T, 3, h,
    d]``, Transpose ``[2, 0, 3, 1, 4]``, Slice and Squeeze axis 0), the slices and squeezes move before it
    and the transposes left keep the batch first (``[N, h, T, d]``): the model keeps its batch."""
    for transpose in [n for n in graph.nodes if n.op == "Transpose"]:
        x, perm = transpose.inputs[0], [int(p) for p in transpose.attrs.get("perm", [])]
        readers = graph.consumers(transpose.outputs[0])
        if not perm or not _moves_batch_dim(perm) or transpose.outputs[0] in graph.outputs or x not in graph.shapes:
            continue
        if not readers or any(not _constant_slice(graph, r) for r in readers):
            continue
        for i, reader in enumerate(readers):
            axes = graph.constant(reader.inputs[3]) if len(reader.inputs) > 3 and reader.inputs[3] else None
            rank = len(perm)
            axes = np.arange(len(graph.constants[reader.inputs[1]])) if axes is None else axes
            moved = np.asarray([perm[int(a) % rank] for a in axes], np.int64)
            name = f"{reader.outputs[0]}::axes{len(graph.constants)}"
            graph.constants[name] = moved
            sliced = f"{reader.outputs[0]}::before_transpose"
            out = graph.shapes[reader.outputs[0]]
            shape = [0] * rank
            for a, p in enumerate(perm):
                shape[p] = out[a]
            graph.shapes[sliced] = tuple(shape)
            inputs = [x, reader.inputs[1], reader.inputs[2], name, *reader.inputs[4:5]]
            where = graph.nodes.index(reader)
            graph.nodes[where] = Node("Slice", reader.name, inputs, [sliced])
            moved_transpose = Node("Transpose", f"{transpose.label}#{i + 1}", [sliced], reader.outputs, {"perm": perm})
            graph.nodes.insert(where + 1, moved_transpose)
            _squeeze_before_transpose(graph, moved_transpose)
        graph.nodes.remove(transpose)


def _constant_slice(graph: Graph, node: Node) -> bool:
    return node.op == "Slice" and all(graph.constant(t) is not None for t in node.inputs[1:] if t)


def _squeeze_before_transpose(graph: Graph, transpose: Node) -> None:
    """A Squeeze of unit axes that alone reads ``transpose`` runs before it, the transpose's perm narrowed."""
    readers = graph.consumers(transpose.outputs[0])
    if len(readers) != 1 or readers[0].op != "Squeeze" or transpose.outputs[0] in graph.outputs:
        return
    squeeze, perm = readers[0], transpose.attrs["perm"]
    before, after = graph.shapes[transpose.inputs[0]], graph.shapes.get(squeeze.outputs[0])
    shape = graph.shapes[transpose.outputs[0]]
    if after is None:
        return
    axes = graph.constant(squeeze.inputs[1]) if len(squeeze.inputs) > 1 and squeeze.inputs[1] else None
    gone = (
        [a for a in range(len(perm)) if shape[a] == 1]
        if axes is None
        else sorted({int(a) % len(perm) for a in np.asarray(axes).reshape(-1)})
    )
    kept = [a for a in range(len(perm)) if a not in gone]
    if [shape[a] for a in kept] != list(after) or any(shape[a] != 1 for a in gone):
        return
    dropped = sorted(perm[a] for a in gone)
    narrowed = [perm[a] - sum(d < perm[a] for d in dropped) for a in kept]
    squeezed = f"{squeeze.outputs[0]}::before_transpose"
    graph.shapes[squeezed] = tuple(d for i, d in enumerate(before) if i not in dropped)
    squeeze.inputs, squeeze.outputs[0], output = [transpose.inputs[0]], squeezed, squeeze.outputs[0]
    transpose.inputs, transpose.outputs, transpose.attrs = [squeezed], [output], {"perm": narrowed}
    graph.nodes.remove(transpose)
    graph.nodes.insert(graph.nodes.index(squeeze) + 1, transpose)


def remove_passthroughs(graph: Graph) -> None:
    """Identity and Dropout (inference mode, mask unread) disappear."""
    for node in list(graph.nodes):
        if node.op == "Identity" or node.op == "Dropout" and not any(graph.consumers(o) for o in node.outputs[1:]):
            _drop(graph, node, node.inputs[0])


def batchnorm_scale(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    params = [graph.constant(t) for t in bn.inputs[1:5]]
    if len(params) != 4 or any(p is None for p in params) or bn.attrs.get("training_mode", 0):
        return None
    gamma, beta, mean, var = (np.asarray(p, np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return scale, beta - mean * scale


def fold_batchnorm(graph: Graph) -> None:
    """BatchNormalization after a Conv (that feeds nothing else) becomes that Conv's weight and bias."""
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        conv = graph.producer(bn.inputs[0])
        folded = batchnorm_scale(graph, bn)
        if conv is None or conv.op not in CONVS or folded is None or not graph.only_feeds(bn.inputs[0], bn):
            continue
        weight = graph.constant(conv.inputs[1])
        if weight is None or len(bn.outputs) > 1 and any(graph.consumers(o) for o in bn.outputs[1:]):
            continue
        scale, shift = folded
        bias = graph.constant(conv.inputs[2]) if len(conv.inputs) > 2 else None
        base = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
        _set_params(
            graph,
            conv,
            (weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32),
            (base * scale + shift).astype(np.float32),
        )
        conv.outputs[0] = bn.outputs[0]
        graph.nodes.remove(bn)


def _set_params(graph: Graph, node: Node, weight: np.ndarray, bias: np.ndarray) -> None:
    """Give ``node`` its own weight and bias constants (a shared initializer is left as it was)."""
    names = [f"{node.label}::weight", f"{node.label}::bias"]
    graph.constants[names[0]], graph.constants[names[1]] = weight, bias
    node.inputs = [node.inputs[0], *names]


def _bias_vector(graph: Graph, add: Node, tensor: str, channels: int, spatial: bool) -> np.ndarray | None:
    """The ``[channels]`` bias an Add of ``tensor`` applies, if the other operand is such a constant."""
    other = next((t for t in add.inputs if t != tensor), None)
    value = graph.constant(other) if other is not None and add.inputs.count(tensor) == 1 else None
    if value is None:
        return None
    want = (channels, 1, 1) if spatial else (channels,)
    squeezed = value.reshape(value.shape[-len(want) :]) if value.ndim > len(want) and value.size == channels else value
    if squeezed.shape == want or (not spatial and squeezed.shape == (1, channels)):
        return squeezed.reshape(channels).astype(np.float32)
    return None


def fold_bias_add(graph: Graph) -> None:
    """Add of a per-channel constant after a Conv, or a per-feature one after a weight MatMul, is its bias."""
    for add in [n for n in graph.nodes if n.op == "Add"]:
        for tensor in add.inputs:
            node = graph.producer(tensor)
            if node is None or node.op not in (*CONVS, "MatMul") or not graph.only_feeds(tensor, add):
                continue
            weight = graph.constant(node.inputs[1])
            if weight is None or node.op == "MatMul" and weight.ndim != 2:
                continue
            channels = weight.shape[0] if node.op in CONVS else weight.shape[1]
            bias = _bias_vector(graph, add, tensor, channels, node.op in CONVS)
            if bias is None or add.attrs.get(ACTIVATION):
                continue
            current = graph.constant(node.inputs[2]) if len(node.inputs) > 2 else None
            _set_params(graph, node, weight, bias if current is None else (current + bias).astype(np.float32))
            node.outputs[0] = add.outputs[0]
            graph.nodes.remove(add)
            break


#: activation ops without parameters, by the workload activation they are
PLAIN_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hard_swish"}
#: workload activations the requant unit applies as a clamp (the others fuse into array layers only)
CLAMPS = ("relu", "relu6")


def _activation_of(graph: Graph, node: Node) -> str | None:
    """The workload activation ``node`` computes, if it is one a layer can fuse."""
    if node.op in PLAIN_ACTIVATIONS:
        return PLAIN_ACTIVATIONS[node.op]
    if node.op == "Gelu" and node.attrs.get("approximate", "none") in ("none", b"none"):
        return "gelu"
    if node.op == "Clip":
        low, high = (graph.constant(t) if i < len(node.inputs) else None for i, t in enumerate(node.inputs[1:3], 1))
        bounds = [None if b is None else float(np.asarray(b).reshape(())) for b in (low, high)]
        if bounds == [0.0, 6.0]:
            return "relu6"
        if bounds[0] == 0.0 and high is None and (len(node.inputs) < 3 or not node.inputs[2]):
            return "relu"
    return None


def fuse_activations(graph: Graph) -> None:
    """Relu / Clip(0, 6) / Gelu after a layer that has an ``activation`` field becomes that field."""
    for act in list(graph.nodes):
        kind = _activation_of(graph, act)
        producer = graph.producer(act.inputs[0]) if kind else None
        if producer is None or producer.op not in FUSES_ACTIVATION or producer.attrs.get(ACTIVATION):
            continue
        if not graph.only_feeds(act.inputs[0], act):
            continue
        weight_matmul = producer.op != "MatMul" or graph.constant(producer.inputs[1]) is not None
        if not weight_matmul or kind not in CLAMPS and producer.op not in (*CONVS, "Gemm", "MatMul"):
            continue
        producer.attrs[ACTIVATION] = kind
        producer.outputs[0] = act.outputs[0]
        graph.nodes.remove(act)


def fold_matmul_scale(graph: Graph) -> None:
    """A Mul (or Div) of a scalar constant after a MatMul of two activations that feeds only it becomes the
    MatMul's ``alpha`` (attention's ``Q K^T / sqrt(d)``): the matmul layer folds it into its requant
    multiplier, as ONNX Runtime's FusedMatMul does."""
    for mul in [n for n in graph.nodes if n.op in ("Mul", "Div")]:
        scalars = [graph.constant(t) for t in mul.inputs]
        for i, tensor in enumerate(mul.inputs[:2]):
            other = scalars[1 - i]
            matmul = graph.producer(tensor)
            if other is None or other.size != 1 or mul.op == "Div" and i != 0:
                continue
            if matmul is None or matmul.op != "MatMul" or graph.constant(matmul.inputs[1]) is not None:
                continue
            if not graph.only_feeds(tensor, mul) or len(graph.shapes.get(mul.outputs[0], ())) != len(
                graph.shapes.get(tensor, (0,))
            ):
                continue
            value = float(np.asarray(other, np.float64).reshape(()))
            alpha = value if mul.op == "Mul" else 1.0 / value
            matmul.attrs["alpha"] = float(matmul.attrs.get("alpha", 1.0)) * alpha
            matmul.outputs[0] = mul.outputs[0]
            graph.nodes.remove(mul)
            break


def channel_vector(value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` as a float64 ``[C]`` vector if it broadcasts against a ``[N, C, ...]`` tensor per channel
    (a scalar, ``[C, 1, 1]``, ``[1, C, 1, 1]``...), else None."""
    if value is None or len(shape) < 2 or value.ndim > len(shape):
        return None
    full = (1,) * (len(shape) - value.ndim) + value.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, shape[1]):
        return None
    return np.broadcast_to(np.asarray(value, np.float64).reshape(-1), (shape[1],))


def fold_channel_affine(graph: Graph) -> None:
    """A per-channel Mul after a Conv scales its weight and bias; a per-channel Mul or Add after a
    BatchNormalization scales or shifts its gamma and beta (each feeding only that Mul / Add)."""
    for node in [n for n in graph.nodes if n.op in ("Mul", "Add")]:
        for tensor, other in (node.inputs[:2], node.inputs[1::-1]):
            producer = graph.producer(tensor)
            if producer is None or not graph.only_feeds(tensor, node) or tensor not in graph.shapes:
                continue
            vector = channel_vector(graph.constant(other), graph.shapes[tensor])
            if vector is None or producer.op in CONVS and node.op == "Add":  # a Conv's bias Add: fold_bias_add
                continue
            weight = graph.constant(producer.inputs[1]) if producer.op in CONVS else None
            if weight is not None:
                bias = graph.constant(producer.inputs[2]) if len(producer.inputs) > 2 else None
                base = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
                scaled = weight.astype(np.float64) * vector.reshape(-1, *(1,) * (weight.ndim - 1))
                _set_params(graph, producer, scaled.astype(np.float32), (base * vector).astype(np.float32))
            elif producer.op == "BatchNormalization" and batchnorm_scale(graph, producer) is not None:
                gamma, beta = (np.asarray(graph.constants[t], np.float64) for t in producer.inputs[1:3])
                gamma, beta = (gamma * vector, beta * vector) if node.op == "Mul" else (gamma, beta + vector)
                names = [f"{producer.label}::{key}{len(graph.constants)}" for key in ("gamma", "beta")]
                graph.constants[names[0]], graph.constants[names[1]] = gamma.astype(np.float32), beta.astype(np.float32)
                producer.inputs[1:3] = names
            else:
                continue
            producer.outputs[0] = node.outputs[0]
            graph.nodes.remove(node)
            break


def _scalar(graph: Graph, tensor: str) -> float | None:
    value = graph.constant(tensor)
    return float(value.reshape(())) if value is not None and value.size == 1 else None


def _factors(graph: Graph, tensor: str, parent: Node | None, inner: list[Node]) -> list[str | float]:
    """The factors of the product computing ``tensor``, through Mul nodes and Div by a constant (its
    reciprocal) whose outputs feed only the product; ``inner`` collects those nodes."""
    scalar = _scalar(graph, tensor)
    if scalar is not None:
        return [scalar]
    node = graph.producer(tensor)
    divisor = _scalar(graph, node.inputs[1]) if node is not None and node.op == "Div" else None
    if node is None or not (node.op == "Mul" or divisor) or parent is not None and not graph.only_feeds(tensor, parent):
        return [tensor]
    inner.append(node)
    if divisor:
        return [*_factors(graph, node.inputs[0], node, inner), 1.0 / divisor]
    return [f for t in node.inputs[:2] for f in _factors(graph, t, node, inner)]


def _private(graph: Graph, node: Node | None, op: str) -> bool:
    """``node`` is an ``op`` whose output one node reads and the graph does not return."""
    return (
        node is not None
        and node.op == op
        and len(graph.consumers(node.outputs[0])) == 1
        and node.outputs[0] not in graph.outputs
    )


def _other(node: Node, tensor: str) -> str:
    return node.inputs[1] if node.inputs[0] == tensor else node.inputs[0]


def _hard_swish_gate(graph: Graph, gate: str, x: str) -> tuple[list[Node], float] | None:
    """The nodes of ``gate = Clip(x + 3, 0, 6)`` (product factor 1/6) or ``HardSigmoid(x, 1/6, 0.5)`` (1)."""
    node = graph.producer(gate)
    if node is not None and _private(graph, node, "HardSigmoid") and node.inputs[0] == x:
        alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
        return ([node], 1.0) if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5) else None
    if node is None or not _private(graph, node, "Clip") or _activation_of(graph, node) != "relu6":
        return None
    add = graph.producer(node.inputs[0])
    if add is not None and _private(graph, add, "Add") and x in add.inputs and _scalar(graph, _other(add, x)) == 3.0:
        return [node, add], 1 / 6
    return None


def _gelu_gate(graph: Graph, gate: str, x: str) -> tuple[list[Node], float] | None:
    """The nodes of ``gate = 1 + Erf(x / sqrt(2))`` (or ``x * (1 / sqrt(2))``); the product's factor is 0.5."""
    add = graph.producer(gate)
    if add is None or not _private(graph, add, "Add") or len(add.inputs) != 2:
        return None
    ones = [t for t in add.inputs if _scalar(graph, t) == 1.0]
    erf = graph.producer(_other(add, ones[0])) if ones else None
    if erf is None or not _private(graph, erf, "Erf"):
        return None
    scaled = graph.producer(erf.inputs[0])
    if scaled is None or scaled.op not in ("Div", "Mul") or not _private(graph, scaled, scaled.op):
        return None
    if scaled.inputs[0] != x and (scaled.op == "Div" or scaled.inputs[1] != x):
        return None
    factor = _scalar(graph, _other(scaled, x))
    root2 = factor if scaled.op == "Div" else 1 / factor if factor else None
    if root2 is None or not math.isclose(root2, math.sqrt(2.0), rel_tol=1e-6):
        return None
    return [add, erf, scaled], 0.5


def match_written_activations(graph: Graph) -> None:
    """Hard-swish and Erf-GELU written out as products become one HardSwish / Gelu node."""
    for root in list(graph.nodes):
        if root not in graph.nodes or root.op not in ("Mul", "Div"):
            continue
        inner: list[Node] = []
        factors = _factors(graph, root.outputs[0], None, inner)
        tensors = [f for f in factors if isinstance(f, str)]
        scale = math.prod(f for f in factors if isinstance(f, float))
        if len(tensors) != 2:
            continue
        for (x, gate), (op, matcher) in itertools.product(
            (tensors, tensors[::-1]), (("HardSwish", _hard_swish_gate), ("Gelu", _gelu_gate))
        ):
            found = matcher(graph, gate, x)
            if found is None or not math.isclose(scale, found[1], rel_tol=1e-6):
                continue
            attrs = {"approximate": "none"} if op == "Gelu" else {}
            graph.nodes.insert(graph.nodes.index(root), Node(op, root.name, [x], [root.outputs[0]], attrs))
            for node in {id(n): n for n in (*inner, *found[0])}.values():
                graph.nodes.remove(node)
            break


def _reduce_last(graph: Graph, node: Node | None, x: str) -> bool:
    """``node`` is ``ReduceMean(x)`` over the last axis only, dims kept (axes as attribute or input)."""
    if node is None or node.op != "ReduceMean" or node.inputs[0] != x or not node.attrs.get("keepdims", 1):
        return False
    given = node.attrs.get("axes") if len(node.inputs) < 2 else graph.constant(node.inputs[1])
    rank = len(graph.shapes.get(x, ()))
    return given is not None and rank > 0 and [int(a) % rank for a in np.ravel(given)] == [rank - 1]


def _last_axis_vector(graph: Graph, node: Node, tensor: str, size: int) -> np.ndarray | None:
    """The other operand of ``node`` as a ``[size]`` vector if it is a constant broadcasting on the last axis."""
    value = graph.constant(_other(node, tensor)) if len(node.inputs) == 2 else None
    if value is None or value.size != size or value.ndim and value.shape[-1] != size:
        return None
    return np.asarray(value, np.float32).reshape(size)


def _layernorm_at(graph: Graph, div: Node) -> tuple[str, float, list[Node]] | None:
    """``x`` and epsilon if ``div`` ends ``(x - mean(x)) / Sqrt(mean((x - mean(x))^2) + eps)`` over the last
    axis, with the pattern's nodes (each feeding only the pattern)."""
    centred, root = div.inputs[:2]
    sqrt, sub = graph.producer(root), graph.producer(centred)
    add = graph.producer(sqrt.inputs[0]) if _private(graph, sqrt, "Sqrt") and sqrt is not None else None
    if add is None or not _private(graph, add, "Add") or sub is None or sub.op != "Sub" or len(add.inputs) != 2:
        return None
    eps = _scalar(graph, add.inputs[1]) if _scalar(graph, add.inputs[0]) is None else _scalar(graph, add.inputs[0])
    variance = graph.producer(add.inputs[0] if _scalar(graph, add.inputs[1]) is not None else add.inputs[1])
    power = (
        graph.producer(variance.inputs[0]) if variance is not None and _private(graph, variance, "ReduceMean") else None
    )
    if eps is None or power is None or not _private(graph, power, "Pow") or power.inputs[0] != centred:
        return None
    x = sub.inputs[0]
    mean = graph.producer(sub.inputs[1])
    if _scalar(graph, power.inputs[1]) != 2.0 or not _reduce_last(graph, variance, power.outputs[0]):
        return None
    if mean is None or variance is None or sqrt is None:
        return None
    if not _reduce_last(graph, mean, x) or not _private(graph, mean, "ReduceMean"):
        return None
    readers = graph.consumers(centred)
    if centred in graph.outputs or sorted(map(id, readers)) != sorted(map(id, (power, div))):
        return None
    return x, eps, [mean, sub, power, variance, add, sqrt]


def match_layernorm(graph: Graph) -> None:
    """LayerNorm written out (ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, then a Mul by gamma and
    an Add of beta on the last axis, as paddle2onnx and older torch exporters write it) becomes one
    LayerNormalization node over the last axis."""
    for div in [n for n in graph.nodes if n.op == "Div"]:
        found = _layernorm_at(graph, div)
        size = graph.shapes.get(div.outputs[0], (0,))[-1]
        if found is None or not size:
            continue
        x, eps, pattern = found
        out, params = div.outputs[0], [np.ones(size, np.float32), np.zeros(size, np.float32)]
        for index, op in enumerate(("Mul", "Add")):
            readers = graph.consumers(out)
            nxt = readers[0] if len(readers) == 1 and out not in graph.outputs else None
            vector = _last_axis_vector(graph, nxt, out, size) if nxt is not None and nxt.op == op else None
            if nxt is None or vector is None:
                break
            params[index] = vector
            pattern.append(nxt)
            out = nxt.outputs[0]
        names = [f"{div.label}::{key}" for key in ("gamma", "beta")]
        graph.constants.update(zip(names, params))
        attrs = {"axis": -1, "epsilon": eps}
        graph.nodes.insert(graph.nodes.index(div), Node("LayerNormalization", div.name, [x, *names], [out], attrs))
        for node in (*pattern, div):
            graph.nodes.remove(node)


def unflatten_softmax(graph: Graph) -> None:
    """``Reshape(Softmax(Flatten(x, axis=r-1)), shape(x))``, as onnx's version converter writes an opset < 13
    Softmax of a rank-``r`` tensor, is the Softmax of ``x`` over its last axis again."""
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        flatten, readers = graph.producer(softmax.inputs[0]), graph.consumers(softmax.outputs[0])
        if not _private(graph, flatten, "Flatten") or len(readers) != 1 or softmax.outputs[0] in graph.outputs:
            continue
        assert flatten is not None
        x, reshape = flatten.inputs[0], readers[0]
        shape = graph.shapes.get(x, ())
        if reshape.op != "Reshape" or int(flatten.attrs.get("axis", 1)) % max(len(shape), 1) != len(shape) - 1:
            continue
        if graph.shapes.get(reshape.outputs[0]) != shape or int(softmax.attrs.get("axis", -1)) not in (-1, 1):
            continue
        softmax.inputs, softmax.outputs, softmax.attrs = [x], [reshape.outputs[0]], {"axis": -1}
        graph.nodes.remove(flatten)
        graph.nodes.remove(reshape)


def import_graph(model: ModelProto, file: str, *, merge_steps: bool = True) -> Graph:
    """The IR of a read model, after every rewrite above; ``merge_steps=False`` (a quantized model's float twin)
    keeps a scalar Mul / Div after a MatMul of two activations and the steps of a written-out hard-swish,
    Erf-GELU or LayerNorm as nodes of their own: the model quantizes the tensors between them, and ONNX
    Runtime requantizes after each (and computes the float steps between one by one)."""
    graph = from_model(model, file)
    for rewrite in (
        conv_transpose_weights,
        slice_before_transpose,
        remove_passthroughs,
        *((match_layernorm,) if merge_steps else ()),
        unflatten_softmax,
        fold_bias_add,  # first too: a bias Add between a conv and its BatchNormalization (paddle2onnx's)
        fold_batchnorm,
        fold_channel_affine,
        fold_bias_add,
        *((fold_matmul_scale, match_written_activations) if merge_steps else ()),
        fuse_activations,
    ):
        rewrite(graph)
    return graph
