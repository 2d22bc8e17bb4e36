"""Quantized ONNX models (QOperator, QDQ after ORT's fusions, dynamic) run with their own scales and zero points.

A quantized model carries its parameters: every QuantizeLinear / QLinear* node names its scales and zero
points, every weight is int8/uint8 codes with a zero point, every bias int32. Nothing is recalibrated:
:func:`run_quantized` walks the graph ORT runs and computes every tensor with accelsim's arithmetic
(:mod:`accelsim.onnx.quantized_ops`: the array with the ``float_half_even`` requant unit for QLinearConv /
QLinearMatMul / QGemm, int32 for MatMulInteger / ConvInteger, and ORT's vector-unit formulas for the rest),
so a test compares every tensor with ORT's node by node.

**QDQ models** are what ORT executes after its fusions: at ``ORT_ENABLE_EXTENDED`` QuantizeLinear /
DequantizeLinear groups become QLinearConv, QLinearMatMul, QGemm, QLinearAdd...; unfused groups (on x86
some int8-activation convs and adds, Sub / Div, ops the quantizer left float such as ResNet's ``Sum``) stay
DequantizeLinear -> float op -> QuantizeLinear, fake quantization. The bits an integer accelerator must
reproduce are those of that fused graph, and which groups ORT fuses depends on its version and CPU, so
:func:`ort_fused` asks the installed ORT for it (``SessionOptions.optimized_model_filepath``) rather than
re-implementing its fusion rules; without onnxruntime a QDQ model is imported as written (its float groups
then run as fake quantization, as ORT with optimizations off does). Float ops between quantized ones (the
dynamic rescale's Cast / Mul / Add, unfused groups) run as float32 through onnx's reference implementation.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from accelsim import file_checks
from accelsim.errors import AccelsimError
from accelsim.kernels.pool import max_pool2d
from accelsim.onnx.quantized_ops import OPS, conv_geometry
from accelsim.onnx.reading import MAX_MODEL_BYTES, default_opset, read_model
from accelsim.onnx.reading import _parse as parse_model
from accelsim.quant import ort_vector
from accelsim.schemes import SchemeName
from accelsim.values.tensors import LayerParams

#: ops that make a model dynamic-quantized (run-time input ranges)
DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"})
#: ORT's contrib domain, as the fused graph names it
MS = "com.microsoft"


def op_key(node: onnx.NodeProto) -> str:
    """The op type, qualified by its domain outside the default one (``com.microsoft.QGemm``)."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def scheme_of(model: onnx.ModelProto) -> SchemeName:
    """``dynamic`` when the model quantizes inputs at run time, ``static`` when it holds quantized tensors
    with given parameters; an fp32 model is refused here (it imports through :func:`accelsim.onnx.import_onnx`)."""
    ops = {n.op_type for n in model.graph.node}
    if ops & DYNAMIC_OPS:
        return SchemeName.DYNAMIC
    if any(op_key(n) in OPS for n in model.graph.node):
        return SchemeName.STATIC
    raise AccelsimError(
        "not a quantized model (no QuantizeLinear, QLinear* or integer op)", allowed="an fp32 model goes to import_onnx"
    )


#: quantized op -> the positions of its (scale, zero point) input pairs; QLinearConcat's follow its inputs
QPARAM_INPUTS: dict[str, tuple[tuple[int, int], ...]] = {
    "QuantizeLinear": ((1, 2),),
    "DequantizeLinear": ((1, 2),),
    "QLinearConv": ((1, 2), (4, 5), (6, 7)),
    "QLinearMatMul": ((1, 2), (4, 5), (6, 7)),
    f"{MS}.QGemm": ((1, 2), (4, 5), (7, 8)),
    f"{MS}.QLinearAdd": ((1, 2), (4, 5), (6, 7)),
    f"{MS}.QLinearMul": ((1, 2), (4, 5), (6, 7)),
    f"{MS}.QLinearGlobalAveragePool": ((1, 2), (3, 4)),
    f"{MS}.QLinearAveragePool": ((1, 2), (3, 4)),
    f"{MS}.QLinearSigmoid": ((1, 2), (3, 4)),
    f"{MS}.QLinearSoftmax": ((1, 2), (3, 4)),
}
#: the dtypes of the codes a zero point may describe
CODE_DTYPES = frozenset({"int8", "uint8"})
#: the vector-unit ops: ORT's kernels read one scale and zero point per tensor
PER_TENSOR_OPS = frozenset(
    f"{MS}.{op}"
    for op in (
        "QLinearAdd",
        "QLinearMul",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearSigmoid",
        "QLinearSoftmax",
        "QLinearConcat",
    )
)
#: binary vector ops -> the positions of operands that may be constant codes (attention's scale, GELU's 0.5)
CODE_OPERANDS = {f"{MS}.QLinearAdd": (0, 3), f"{MS}.QLinearMul": (0, 3)}


def _qparam_pairs(node: onnx.NodeProto) -> list[tuple[int, int]]:
    key = op_key(node)
    if key == f"{MS}.QLinearConcat":
        return [(0, 1)] + [(i + 1, i + 2) for i in range(2, len(node.input), 3)]
    return list(QPARAM_INPUTS.get(key, ()))


def check_parameters(model: onnx.ModelProto) -> None:
    """Refuse a quantized node whose scale is missing, not finite or not positive, or whose zero point is no
    int8 / uint8 tensor or does not match its scale's size: ORT would refuse it or compute nonsense, and the
    arithmetic here divides by the scales."""
    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        for s_at, z_at in _qparam_pairs(node):
            where = f"node {node.name!r} ({op_key(node)})"
            scale_name = node.input[s_at] if len(node.input) > s_at else ""
            if not scale_name:
                raise AccelsimError(f"{where}: input {s_at} (a scale) is missing", allowed="a positive float scale")
            if scale_name not in consts:
                continue  # computed at run time (dynamic quantization)
            scale = numpy_helper.to_array(consts[scale_name])
            if scale.dtype.kind != "f" or scale.size == 0 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise AccelsimError(
                    f"{where}: scale {scale_name!r} is {scale.reshape(-1)[:4].tolist()} ({scale.dtype})",
                    allowed="finite float scales > 0",
                )
            zero_name = node.input[z_at] if len(node.input) > z_at else ""
            if zero_name in consts:
                zero = numpy_helper.to_array(consts[zero_name])
                dtypes = CODE_DTYPES | ({"int32"} if node.op_type == "DequantizeLinear" else set())  # int32 bias
                if zero.dtype.name not in dtypes or zero.size != scale.size:
                    raise AccelsimError(
                        f"{where}: zero point {zero_name!r} is {zero.dtype} of {zero.size} value(s) for "
                        f"{scale.size} scale(s)",
                        allowed="int8 or uint8 (int32 for a bias), one per scale",
                    )
            if op_key(node) in PER_TENSOR_OPS and scale.size != 1:
                raise AccelsimError(
                    f"{where}: scale {scale_name!r} has {scale.size} values", allowed="one scale per tensor"
                )
        _check_code_operands(node, consts)


def _check_code_operands(node: onnx.NodeProto, consts: Mapping[str, onnx.TensorProto]) -> None:
    """A binary vector op's constant operand is codes of its zero point's dtype (ORT refuses other models; the
    values run reads those codes)."""
    for at in CODE_OPERANDS.get(op_key(node), ()):
        if node.input[at] not in consts:
            continue
        codes = numpy_helper.to_array(consts[node.input[at]])
        zero_name = node.input[at + 2] if len(node.input) > at + 2 else ""
        zero = numpy_helper.to_array(consts[zero_name]) if zero_name in consts else None
        if codes.dtype.name not in CODE_DTYPES or (zero is not None and zero.dtype != codes.dtype):
            raise AccelsimError(
                f"node {node.name!r} ({op_key(node)}): constant operand {node.input[at]!r} is {codes.dtype} codes "
                f"with a {'no' if zero is None else zero.dtype} zero point",
                allowed="int8 or uint8 codes with a zero point of the same dtype",
            )


def is_quantized_file(path: str | os.PathLike[str]) -> bool:
    """Whether the ONNX file at ``path`` is a quantized model (QuantizeLinear, QLinear* or integer ops), so a
    command runs it with its own parameters. Read through the same checks as every model file; a file that
    is no model raises the error :func:`~accelsim.onnx.reading.read_model` gives."""
    file = file_checks.check_name(path)
    model = parse_model(file_checks.read_user_file(file, MAX_MODEL_BYTES, expected="an ONNX model file"), file)
    return any(op_key(n) in OPS or n.op_type in DYNAMIC_OPS for n in model.graph.node)


def ort_fused(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph ONNX Runtime runs at ``ORT_ENABLE_EXTENDED`` (its QDQ fusions applied), one thread, CPU."""
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]  # ORT ships no stubs
    except ImportError as exc:  # pragma: no cover - onnxruntime is in the test extra
        raise AccelsimError("fusing a QDQ model needs onnxruntime (pip install onnxruntime)") from exc
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fused.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.intra_op_num_threads = 1
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(out)


def is_qdq(model: onnx.ModelProto) -> bool:
    """QDQ format: weights stored as DequantizeLinear of an initializer (QOperator ops read their codes
    directly)."""
    constants = {t.name for t in model.graph.initializer}
    return any(n.op_type == "DequantizeLinear" and n.input[0] in constants for n in model.graph.node)


def load_quantized(
    path: str | os.PathLike[str], *, batch: int | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> onnx.ModelProto:
    """The graph ORT runs for the quantized model at ``path``: read and checked as every ONNX file is
    (:func:`~accelsim.onnx.reading.read_model`), a QDQ model fused by the installed ORT (:func:`ort_fused`)."""
    file = os.fspath(path)
    model = read_model(file, batch=batch, input_shapes=input_shapes)
    try:
        scheme_of(model)
        check_parameters(model)
    except AccelsimError as exc:
        exc.file = file
        raise
    return ort_fused(model) if is_qdq(model) else model


@dataclass(frozen=True)
class QuantizedRun:
    """Every tensor of one run by name (codes, int32 accumulators of the dynamic ops, float tensors) and
    the scheme the model is."""

    scheme: SchemeName
    tensors: dict[str, np.ndarray]
    outputs: list[str]


def _maxpool(node: onnx.NodeProto, x: np.ndarray) -> np.ndarray:
    """MaxPool on codes or floats (max is monotonic in the codes), padding never the maximum."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    kh, kw = (int(v) for v in attrs["kernel_shape"])
    geometry = conv_geometry({**attrs, "dilations": [1, 1]}, x.shape[2:], (kh, kw))
    pt, pl, pb, pr = geometry.padding
    low = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf
    if (pt, pl) != (pb, pr) or int(attrs.get("ceil_mode", 0)):
        return _reference(node, [x])[0]
    return max_pool2d(x, (kh, kw), geometry.stride, (pt, pl), low)


def _reference(node: onnx.NodeProto, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """A float or layout op, through onnx's reference implementation."""
    feeds = {name: value for name, value in zip(node.input, args) if name and value is not None}
    opsets = {"": 21} if node.domain in ("", "ai.onnx") else {"": 21, node.domain: 1}
    return [np.asarray(v) for v in ReferenceEvaluator(node, opsets=opsets).run(None, feeds)]


def _last_axis_kept(node: onnx.NodeProto, args: list[np.ndarray | None]) -> bool:
    """A reduction over the last axis only, its dims kept (the one ORT's ReduceMean sums in Eigen's order
    :func:`accelsim.values.runner.reduce_mean` reproduces)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axes = args[1] if len(args) > 1 and args[1] is not None else attrs.get("axes")
    rank = np.asarray(args[0]).ndim
    return (
        axes is not None
        and int(attrs.get("keepdims", 1)) == 1
        and [int(a) % rank for a in np.ravel(axes)] == [rank - 1]
    )


def _last_axis_norm(node: onnx.NodeProto, args: list[np.ndarray | None]) -> bool:
    """A LayerNormalization over the last axis whose only output is Y (the one runner.layernorm computes)."""
    axis = next((int(a.i) for a in node.attribute if a.name == "axis"), -1)
    rank = np.asarray(args[0]).ndim
    return len([o for o in node.output if o]) == 1 and rank > 0 and axis % rank == rank - 1


def _softmax_axis(node: onnx.NodeProto, x: np.ndarray | None, opset: int) -> int | None:
    """The one axis a Softmax normalizes, or None where opsets < 13 (softmax of the flattened trailing dims)
    could mean another reading: the last axis always agrees (an axis attribute naming it, or a 2-D input, whose
    opset < 13 default of 1 is the last axis too); from opset 13 any axis attribute (default -1)."""
    axis = next((int(a.i) for a in node.attribute if a.name == "axis"), None)
    if x is None or x.ndim == 0:
        return None
    if opset >= 13:
        return (-1 if axis is None else axis) % x.ndim
    last = axis % x.ndim == x.ndim - 1 if axis is not None else x.ndim == 2
    return x.ndim - 1 if last else None


def _epsilon(node: onnx.NodeProto) -> float:
    return next((float(a.f) for a in node.attribute if a.name == "epsilon"), 1e-5)


def run_node(node: onnx.NodeProto, args: list[np.ndarray | None], opset: int = 0) -> list[np.ndarray]:
    """One node's outputs from its input values: the quantized ops with ORT's arithmetic, MaxPool on codes,
    Erf as ORT's float32 kernel, ReduceMean, LayerNormalization and Softmax over the last axis in ORT's order,
    other default-domain ops as float32 (onnx's reference implementation). ``opset``: the model's default-domain
    opset (from 13 on a Softmax's axis is one axis, whatever the rank; 0: unknown, the last axis only)."""
    key = op_key(node)  # a default-domain op's bare type
    op = OPS.get(key)
    if op is not None:
        return op({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}, args)
    if key == "MaxPool" and len(node.output) == 1:
        return [_maxpool(node, np.asarray(args[0]))]
    from accelsim.values.runner import global_mean, layernorm, reduce_mean  # the float kernels, when a run needs them

    x = np.asarray(args[0]) if args else None
    if key == "GlobalAveragePool" and x is not None and x.ndim == 4:
        return [global_mean(x)]  # MLAS's summation order, not numpy's
    if key == "ReduceMean" and x is not None and _last_axis_kept(node, args):
        return [reduce_mean(x)]  # Eigen's summation order (ORT's ReduceMean), not numpy's
    if key == "LayerNormalization" and _last_axis_norm(node, args):
        bias = None if len(args) < 3 or args[2] is None else np.asarray(args[2])
        return [layernorm(np.asarray(x), LayerParams(np.asarray(args[1]), bias), _epsilon(node))]  # ORT's order
    axis = _softmax_axis(node, x, opset) if key == "Softmax" else None
    if axis is not None and x is not None:
        return [ort_vector.float_softmax(x, axis)]  # MLAS's exp and summation order
    if key == "Sigmoid" and x is not None:
        return [ort_vector.logistic(x)]  # MLAS's rational approximation, not the correctly rounded logistic
    if key == "Erf":
        return [ort_vector.erf(np.asarray(args[0]))]  # ORT's float32 Erf (MLAS), not the exactly rounded one
    if key == node.op_type:  # the default domain
        return _reference(node, args)
    raise AccelsimError(f"node {node.name!r} ({key}): not an op the quantized import runs")


def run_quantized(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> QuantizedRun:
    """Every tensor ``model`` computes on ``feeds``, node by node, with the model's own parameters.

    ``model`` is the graph to execute: a QOperator or dynamic model as written, a QDQ model as
    :func:`ort_fused` returns it."""
    scheme, opset = scheme_of(model), default_opset(model)
    values: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values.update({k: np.asarray(v) for k, v in feeds.items()})
    for node in model.graph.node:
        args = [values.get(i) if i else None for i in node.input]
        missing = [i for i, a in zip(node.input, args) if i and a is None]
        if missing:
            raise AccelsimError(f"node {node.name!r} ({node.op_type}): no value for {missing}")
        values.update(zip(node.output, run_node(node, args, opset)))
    return QuantizedRun(scheme, values, [o.name for o in model.graph.output])
