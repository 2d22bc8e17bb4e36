"""A quantized ONNX model as a workload to lower and time: its float twin imported like any fp32 model.

The timing needs the layers, their shapes and the scheme, not the codes: each quantized operator is
rewritten to the float operator it quantizes (QLinearConv -> Conv with the dequantized weight and bias,
QLinearMatMul -> MatMul, QGemm -> Gemm, QLinearAdd -> Add, QLinear*Pool -> the pool, QuantizeLinear /
DequantizeLinear on activations -> Identity, DynamicQuantizeLinear + MatMulInteger / ConvInteger + the
float rescale -> MatMul / Conv with the dequantized weight), and that float graph goes through
:func:`accelsim.onnx.import_onnx` (the same rewrites and layer mapping, so an op the workload layers cannot
express is refused the same way). The result names the accelsim scheme the model is (``static`` with ORT's
``float_half_even`` requant, ``dynamic`` with the ``onnx`` flavour) and its weight format; the bits come from
:func:`accelsim.onnx.quantized.run_quantized`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import GEMM_LAYERS
from accelsim.dynamic_flavours import FlavourName
from accelsim.errors import AccelsimError
from accelsim.lowering.program import CLAMP_ACTIVATIONS
from accelsim.onnx import OnnxImport, import_onnx
from accelsim.onnx.graph import FUSES_ACTIVATION
from accelsim.onnx.quantized import DYNAMIC_OPS, op_key, scheme_of
from accelsim.onnx.quantized_ops import OPS, qparams
from accelsim.quant import QParams, QuantizedWeight
from accelsim.requant_modes import RequantModeName
from accelsim.schemes import SchemeName, WeightFormatName
from accelsim.values.runner import PRE_ACTIVATION
from accelsim.values.tensors import LayerParams, WorkloadTensors

#: the requant mode and dynamic flavour that are ONNX Runtime's arithmetic
REQUANT_MODE = RequantModeName.FLOAT_HALF_EVEN
FLAVOUR = FlavourName.ONNX
#: quantized op -> (float op, its activation inputs' positions); weights and biases are handled per op
FLOAT_OF: dict[str, tuple[str, tuple[int, ...]]] = {
    "com.microsoft.QLinearAdd": ("Add", (0, 3)),
    "com.microsoft.QLinearMul": ("Mul", (0, 3)),
    "com.microsoft.QLinearGlobalAveragePool": ("GlobalAveragePool", (0,)),
    "com.microsoft.QLinearAveragePool": ("AveragePool", (0,)),
    "com.microsoft.QLinearSigmoid": ("Sigmoid", (0,)),
    "com.microsoft.QLinearSoftmax": ("Softmax", (0,)),
}
#: requantizing op -> the position of its output zero point (a Relu folded into the range shows there)
OUTPUT_ZERO_POINT = {"QLinearConv": 7, "QLinearMatMul": 7, "com.microsoft.QGemm": 8, "com.microsoft.QLinearAdd": 7}
#: quantized op -> the position of its output scale (the zero point follows)
OUTPUT_QPARAMS = {
    "QuantizeLinear": 1,
    "QLinearConv": 6,
    "QLinearMatMul": 6,
    "com.microsoft.QGemm": 7,
    "com.microsoft.QLinearAdd": 6,
    "com.microsoft.QLinearMul": 6,
    "com.microsoft.QLinearGlobalAveragePool": 3,
    "com.microsoft.QLinearAveragePool": 3,
    "com.microsoft.QLinearSigmoid": 3,
    "com.microsoft.QLinearSoftmax": 3,
    "com.microsoft.QLinearConcat": 0,
}
#: weight op -> the position of its int32 bias
BIAS_AT = {"QLinearConv": 8, "com.microsoft.QGemm": 6}
#: attributes of the contrib ops the float op does not have
CONTRIB_ONLY = frozenset({"channels_last", "opset"})
#: default-domain ops that move codes exactly (ORT runs them on the codes; between DequantizeLinear and
#: QuantizeLinear of one set of parameters they give the same codes)
CODE_MOVES = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "MaxPool"})


@dataclass(frozen=True)
class QuantizedImport:
    """A quantized model's workload (its float twin's layers and dequantized weights), the scheme it is and
    the weight format of its codes (``symmetric``, ``asymmetric`` uint8, ``asymmetric_int8``)."""

    imported: OnnxImport
    scheme: SchemeName
    weights: str
    #: layer -> its weight codes with their parameters and its int32 bias, as the model gives them
    given: dict[str, tuple[QuantizedWeight, np.ndarray | None]] = field(default_factory=dict)
    #: layer or workload source -> the parameters of its codes (static models); ``<layer>:pre_activation``
    #: the codes a GEMM layer requantizes to before an activation the vector unit applies (a QLinearConv's
    #: output before ORT's QLinearSigmoid)
    qparams: dict[str, QParams] = field(default_factory=dict)
    #: layers ORT computes in float32 between DequantizeLinear and QuantizeLinear (unfused QDQ groups, float
    #: ops the quantizer left, such as Sub, Div and ResNet's Sum), and a dynamic model's float ops (the
    #: MatMuls of two activations quantize_dynamic leaves float): every run computes them in float32 too
    float_layers: frozenset[str] = frozenset()

    def static_tensors(self, feeds: Mapping[str, np.ndarray]) -> WorkloadTensors:
        """The tensors of a values run on ``feeds`` with the model's own weight codes and int32 biases."""
        return self.given_tensors(self.imported.tensors(feeds))

    def given_tensors(self, tensors: WorkloadTensors) -> WorkloadTensors:
        """``tensors`` with every weight layer's parameters the model's own codes (:class:`GivenWeights`)."""
        params = {
            name: GivenWeights(p.weight, p.bias, given=self.given[name][0], int_bias=self.given[name][1])
            if name in self.given
            else p
            for name, p in tensors.params.items()
        }
        return WorkloadTensors(params, tensors.inputs, tensors.calibration, self.float_layers)

    @property
    def variant(self) -> str:
        """The requant mode (static) or dynamic flavour that reproduces ORT."""
        return REQUANT_MODE if self.scheme == SchemeName.STATIC else FLAVOUR

    @staticmethod
    def runtime_hardware(hw: HardwareConfig) -> HardwareConfig:
        """``hw`` requantizing as the model's runtime does (ORT's ``float_half_even``), whatever ``hw`` says:
        the model's parameters were chosen for that arithmetic."""
        return hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": REQUANT_MODE})})


@dataclass(frozen=True)
class GivenWeights(LayerParams):
    """A layer's weight as a quantized model gives it: its codes and parameters stand for every weight
    format a run asks for (nothing is quantized again); a static layer adds the model's int32 bias
    (``int_bias``), the float schemes its float value ``bias``."""

    given: QuantizedWeight | None = None
    int_bias: np.ndarray | None = None

    def static_bias(self) -> np.ndarray | None:
        return self.bias if self.int_bias is None else self.int_bias

    def quantized_weight(
        self, kind: str, granularity: str = "per_channel", weights: str = WeightFormatName.SYMMETRIC
    ) -> QuantizedWeight:
        assert self.given is not None  # built with the model's codes
        return self.given

    def constant_codes(self) -> QuantizedWeight | None:
        return self.given


class _Rewrite:
    """The float twin of a quantized graph, node by node."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.new_consts: dict[str, np.ndarray] = {}
        self.weight_codes: list[tuple[np.ndarray, np.ndarray]] = []  # (codes, zero point) of every weight
        #: node name -> its weight codes and parameters and int32 bias, as the array takes them
        self.given: dict[str, tuple[QuantizedWeight, np.ndarray | None]] = {}
        #: tensor -> the parameters of its codes: a quantized op's output, and the float tensor a
        #: QuantizeLinear quantizes (a graph input, a float op's output)
        self.tensor_qparams: dict[str, QParams] = {}
        #: the float compute nodes of a static graph (ORT's unfused groups, ops left float)
        self.float_nodes: set[str] = set()
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = f"{base}::float"
        self.new_consts[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    def dequantized(
        self, node: onnx.NodeProto, codes: str, scale: str, zero: str, axis: int, *, weight: bool = True
    ) -> str:
        """A constant operand's float values (``(q - z) * s``, per channel along ``axis``), or the activation;
        ``weight``: the codes are a layer's weight (they decide the weight format), not a vector op's
        constant operand."""
        q = self.const(codes)
        if q is None:
            return codes
        s = np.asarray(self.const(scale), np.float32)
        z = self.const(zero) if zero else None
        zp = np.zeros_like(s, dtype=np.int64) if z is None else np.asarray(z, np.int64)
        shape = [1] * q.ndim
        if s.size > 1:
            shape[axis] = s.size
        if weight:
            self.weight_codes.append((q, zp))
        value = (q.astype(np.int64) - zp.reshape(shape)) * s.reshape(shape)
        return self.add_const(codes, value)

    def _give_constant(self, node: onnx.NodeProto, positions: tuple[int, ...]) -> None:
        """Keep the codes and parameters of a binary vector op's constant operand (QLinearMul / QLinearAdd by a
        quantized constant: attention's scale, GELU's 1 and 0.5), which ORT's kernel reads as codes."""
        for i in positions:
            codes = self.const(node.input[i])
            if codes is not None:
                zero = self.const(self._arg(node, i + 2))
                qp = qparams(self.const(node.input[i + 1]), zero, codes.dtype)
                self.given[node.name or node.output[0]] = (QuantizedWeight(codes, qp), None)

    def emit(self, node: onnx.NodeProto, op: str, inputs: Iterable[str], drop: frozenset[str] = CONTRIB_ONLY) -> None:
        """``op`` in the node's place; a Relu after it when the node's output zero point is the lowest code
        (the quantizer folded a Relu into the output range: the requant clamp is the activation)."""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in drop}
        out = node.output[0]
        zero = self._output_zero_point(node)
        relu = zero is not None and zero.size == 1 and int(zero.reshape(())) == np.iinfo(zero.dtype).min
        target = f"{out}::pre_relu" if relu else out
        self.nodes.append(helper.make_node(op, list(inputs), [target], name=node.name, **attrs))
        if relu:
            self.nodes.append(helper.make_node("Relu", [f"{out}::pre_relu"], [out], name=f"{node.name}::relu"))

    def _output_zero_point(self, node: onnx.NodeProto) -> np.ndarray | None:
        """The output zero point of a requantizing op (None for the others)."""
        index = OUTPUT_ZERO_POINT.get(op_key(node))
        return None if index is None else self.const(self._arg(node, index))

    def _folds_relu(self, quantize: onnx.NodeProto) -> bool:
        """A QuantizeLinear of a float op's output whose zero point is the lowest code: the quantizer folded
        a Relu after the float op into the range (ORT's unfused int8 groups), which the float twin restores."""
        producer = self.producer.get(quantize.input[0])
        if producer is None or producer.op_type not in FUSES_ACTIVATION or not _is_float_op(producer):
            return False  # (after a pool or a sigmoid the range's clamp is no relu the layer could fuse)
        zero = self.const(self._arg(quantize, 2))
        return zero is not None and zero.size == 1 and int(zero.reshape(())) == np.iinfo(zero.dtype).min

    def identity(self, node: onnx.NodeProto, tensor: str) -> None:
        self.nodes.append(helper.make_node("Identity", [tensor], [node.output[0]], name=node.name))

    def _arg(self, node: onnx.NodeProto, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""

    def _bias(self, node: onnx.NodeProto, index: int, scale: np.ndarray) -> list[str]:
        bias = self.const(self._arg(node, index))
        return [] if bias is None else [self.add_const(node.input[index], bias.astype(np.float64) * scale)]

    def _weight_scale(self, integer: onnx.NodeProto) -> np.ndarray:
        """The weight scale of a dynamic MatMulInteger / ConvInteger: the constant the rescale multiplies by
        (Cast -> Mul by a product of the run-time input scale and a constant), 1 if none is found."""
        for cast in self.consumers.get(integer.output[0], []):
            for mul in self.consumers.get(cast.output[0], []):
                seen = [t for t in mul.input if t != cast.output[0]]
                while seen:
                    t = seen.pop()
                    if self.const(t) is not None:
                        return np.asarray(self.const(t), np.float32).reshape(-1)
                    producer = self.producer.get(t)
                    if producer is not None and producer.op_type in ("Mul", "Reshape"):
                        seen.extend(producer.input)
        return np.ones(1, np.float32)

    def _give(
        self, node: onnx.NodeProto, at: int, *, transpose: bool, scale: np.ndarray | None = None, zero: str = ""
    ) -> None:
        """Keep the node's constant weight codes ``[out, ...]`` with their parameters (per channel along axis
        0; ``scale`` / ``zero`` where they are not the inputs after the codes) and its int32 bias, for a
        values run on the given codes."""
        codes = self.const(node.input[at])
        if codes is None or codes.ndim != (4 if op_key(node) in ("QLinearConv", "ConvInteger") else 2):
            return  # a product of two activations, or a batched constant: no layer weight
        codes = np.ascontiguousarray(codes.T if transpose else codes)
        bias_at = BIAS_AT.get(op_key(node))
        bias = None if bias_at is None else self.const(self._arg(node, bias_at))
        s = self.const(node.input[at + 1]) if scale is None else scale
        z = self.const(self._arg(node, at + 2)) if scale is None else self.const(zero)
        self.given[node.name or node.output[0]] = (
            QuantizedWeight(codes, qparams(s, z, codes.dtype, 0)),
            None if bias is None else np.asarray(bias, np.int32).reshape(-1),
        )

    def node(self, node: onnx.NodeProto, runtime_scales: set[str]) -> None:
        key = op_key(node)
        out_at = OUTPUT_QPARAMS.get(key)
        if out_at is not None and len(node.input) > out_at + 1 and self.const(node.input[out_at]) is not None:
            zero = self.const(node.input[out_at + 1])
            dtype = np.dtype(np.uint8) if zero is None else zero.dtype
            qp = qparams(self.const(node.input[out_at]), zero, dtype)
            self.tensor_qparams[node.output[0]] = qp
            if key == "QuantizeLinear":
                self.tensor_qparams[node.input[0]] = qp
        arg = self._arg
        if key == "QuantizeLinear" and self._folds_relu(node):
            self.nodes.append(helper.make_node("Relu", [node.input[0]], [node.output[0]], name=f"{node.name}::relu"))
        elif key in ("QuantizeLinear", "DequantizeLinear") and self.const(node.input[0]) is None:
            self.identity(node, node.input[0])
        elif key == "DequantizeLinear":
            axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 1)
            self.identity(node, self.dequantized(node, node.input[0], node.input[1], arg(node, 2), axis))
        elif key == "QLinearConv":
            self._give(node, 3, transpose=False)
            w = self.dequantized(node, node.input[3], node.input[4], node.input[5], 0)
            scale = float(np.asarray(self.const(node.input[1])).reshape(())) * np.asarray(self.const(node.input[4]))
            self.emit(node, "Conv", [node.input[0], w, *self._bias(node, 8, scale.reshape(-1))])
        elif key == "QLinearMatMul":
            self._give(node, 3, transpose=True)
            b = self.dequantized(node, node.input[3], node.input[4], node.input[5], 1)
            self.emit(node, "MatMul", [node.input[0], b])
        elif key == "com.microsoft.QGemm":
            trans_b = next((int(a.i) for a in node.attribute if a.name == "transB"), 0)
            self._give(node, 3, transpose=not trans_b)
            b = self.dequantized(node, node.input[3], node.input[4], node.input[5], 0 if trans_b else 1)
            scale = np.float32(np.asarray(self.const(node.input[1])).reshape(())) * np.asarray(
                self.const(node.input[4])
            )
            self.emit(node, "Gemm", [node.input[0], b, *self._bias(node, 6, scale.reshape(-1))])
        elif key == "com.microsoft.QLinearConcat":
            self.emit(node, "Concat", node.input[2::3])
        elif key in FLOAT_OF:
            op, positions = FLOAT_OF[key]
            self._give_constant(node, positions)
            inputs = [
                self.dequantized(node, node.input[i], node.input[i + 1], arg(node, i + 2), 1, weight=False)
                for i in positions
            ]
            self.emit(node, op, inputs)
        elif key == "DynamicQuantizeLinear":
            self.identity(node, node.input[0])
            runtime_scales.update(node.output[1:])
        elif key in ("MatMulInteger", "ConvInteger"):
            source = self.producer.get(node.input[0])
            x = source.input[0] if source is not None and source.op_type == "DynamicQuantizeLinear" else node.input[0]
            codes = self.const(node.input[1])
            if codes is None:
                raise AccelsimError(f"node {node.name!r} ({key}): the weight is computed at run time")
            axis = 1 if key == "MatMulInteger" else 0
            zero = np.asarray(self.const(arg(node, 3)) if arg(node, 3) else np.zeros(1), np.int64).reshape(-1)
            scale = self._weight_scale(node)
            self._give(node, 1, transpose=key == "MatMulInteger", scale=scale, zero=arg(node, 3))
            shape = [1] * codes.ndim
            shape[axis] = -1
            self.weight_codes.append((codes, zero))
            value = (codes.astype(np.int64) - zero.reshape(shape)) * scale.reshape(shape)
            self.emit(node, "MatMul" if key == "MatMulInteger" else "Conv", [x, self.add_const(node.input[1], value)])
        elif (
            key == "Cast"
            and self.producer.get(node.input[0]) is not None
            and self.producer[node.input[0]].op_type in ("MatMulInteger", "ConvInteger")
        ):
            self.identity(node, node.input[0])
        elif key == "Mul" and any(i in runtime_scales for i in node.input):
            others = [i for i in node.input if i not in runtime_scales]
            if len(others) == 1 and self.const(others[0]) is None:
                self.identity(node, others[0])  # the rescale: the float twin's product is already real
            else:
                runtime_scales.update(node.output)  # the scale product itself
        elif key == "Reshape" and node.input[0] in runtime_scales:
            runtime_scales.update(node.output)
        else:
            if _is_float_op(node):
                self.float_nodes.add(node.name)
            self.nodes.append(node)


def _is_float_op(node: onnx.NodeProto) -> bool:
    """A node of a static graph that computes in float32 (not a quantized op, not one that moves codes)."""
    return op_key(node) not in OPS and node.op_type not in DYNAMIC_OPS and node.op_type not in CODE_MOVES


def weight_format(codes: list[tuple[np.ndarray, np.ndarray]]) -> WeightFormatName:
    """The accelsim weight format of the model's weight codes (the first weight's dtype decides)."""
    if not codes:
        return WeightFormatName.SYMMETRIC
    if any(q.dtype == np.uint8 for q, _ in codes):
        return WeightFormatName.ASYMMETRIC
    nonzero = any(np.any(z != 0) for _, z in codes)
    return WeightFormatName.ASYMMETRIC_INT8 if nonzero else WeightFormatName.SYMMETRIC


def _named(node: onnx.NodeProto) -> onnx.NodeProto:
    """An unnamed node named after its first output, so that its layer can be traced back to it."""
    named = onnx.NodeProto()
    named.CopyFrom(node)
    named.name = node.output[0]
    return named


def _layer_qparams(imported: OnnxImport, rewrite: _Rewrite) -> dict[str, QParams]:
    """The model's parameters by workload name: each layer's (and source's) are those of the last tensor it
    holds that has any (a layer with a fused activation holds the activation's output); a GEMM layer whose
    activation runs on the vector unit also gets its own node's output as ``<layer>:pre_activation``."""
    by_name: dict[str, QParams] = {}
    for tensor, holder in imported.holders.items():
        if tensor in rewrite.tensor_qparams:
            by_name[holder] = rewrite.tensor_qparams[tensor]
    own_output = {n.name: n.output[0] for n in rewrite.nodes}
    for layer in imported.workload.layers:
        if not isinstance(layer, GEMM_LAYERS) or getattr(layer, "activation", "none") in CLAMP_ACTIVATIONS:
            continue
        pre = own_output.get(imported.origins.get(layer.name, ""))
        if pre in rewrite.tensor_qparams:
            by_name[layer.name + PRE_ACTIVATION] = rewrite.tensor_qparams[pre]
    return by_name


def float_twin(model: onnx.ModelProto) -> tuple[onnx.ModelProto, _Rewrite]:
    """The fp32 graph a quantized ``model`` quantizes (dequantized weights), and the rewrite that made it
    (the given weights and output parameters by node)."""
    rewrite = _Rewrite(model)
    runtime: set[str] = set()
    for node in model.graph.node:
        rewrite.node(node if node.name else _named(node), runtime)
    used = {i for n in rewrite.nodes for i in n.input}
    initializers = [
        numpy_helper.from_array(v, k) for k, v in {**rewrite.consts, **rewrite.new_consts}.items() if k in used
    ]
    inputs = [i for i in model.graph.input if i.name not in rewrite.consts]
    outputs = [helper.make_tensor_value_info(o.name, onnx.TensorProto.FLOAT, None) for o in model.graph.output]
    graph = helper.make_graph(rewrite.nodes, model.graph.name or "quantized", inputs, outputs, initializers)
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    twin = helper.make_model(graph, opset_imports=opsets, ir_version=model.ir_version)
    return twin, rewrite


def import_quantized(
    model: onnx.ModelProto, *, name: str = "quantized", batch: int | None = None, file: str | None = None
) -> QuantizedImport:
    """``model`` (QOperator, dynamic, or a QDQ model as ORT fuses it) as a workload and the accelsim scheme
    that reproduces it; errors name ``file`` (else the model's name)."""
    scheme = scheme_of(model)
    twin, rewrite = float_twin(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        onnx.save(twin, path)
        try:
            imported = import_onnx(path, name=name, batch=batch, merge_steps=False)
        except AccelsimError as exc:
            exc.file = file or f"{name} (quantized model)"
            raise
    floats = frozenset(layer for layer, node in imported.origins.items() if node in rewrite.float_nodes)
    return QuantizedImport(
        imported,
        scheme,
        weight_format(rewrite.weight_codes),
        rewrite.given,
        _layer_qparams(imported, rewrite),
        floats,
    )
