"""ONNX Runtime as the reference for ONNX import (issue 16): quantize, fuse, and dump every tensor.

The bits an integer accelerator must reproduce are those of the graph ORT actually runs: QOperator and
dynamic models as written; QDQ models after ORT's fusions (at ``ORT_ENABLE_EXTENDED`` QuantizeLinear /
DequantizeLinear groups become QLinearConv, QLinearMatMul, QGemm, QLinearAdd, ...; with optimizations off
ORT runs them as float fake-quantization, which differs by a code at a few positions). So the harness:

- :func:`quantize` an fp32 :class:`~onnx_models.Built` with ``onnxruntime.quantization`` (a :class:`Recipe`:
  static QDQ or QOperator, per tensor or per channel, weight and activation types; or dynamic);
- :func:`fused` writes the graph ORT runs at a level (``optimized_model_filepath``) and returns it;
- :func:`node_outputs` runs a model as it is (optimizations off) with every node output exposed;
- :func:`unfused_qdq_groups` lists the float ops ORT left between DequantizeLinear and QuantizeLinear.

Sessions use one thread and the CPU provider, so results repeat.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx_models import Built, Feeds
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

Level = Literal["disabled", "basic", "extended", "all"]
LEVELS: dict[Level, ort.GraphOptimizationLevel] = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
Q_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Recipe:
    """One way of quantizing with ``onnxruntime.quantization``.

    ``activation_type`` defaults to QUInt8, the classic recipe; ``quantize_static``'s own default in ORT 1.32
    is QInt8 activations, so a test wanting those says so. Dynamic quantization has uint8 activations by
    construction (DynamicQuantizeLinear) and ignores ``activation_type``.
    """

    fmt: Literal["qdq", "qoperator", "dynamic"]
    per_channel: bool = False
    weight_type: QuantType = QuantType.QInt8
    activation_type: QuantType = QuantType.QUInt8

    @property
    def name(self) -> str:
        channel = "per_channel" if self.per_channel else "per_tensor"
        w = "w" + self.weight_type.name.removeprefix("Q").lower()
        if self.fmt == "dynamic":
            return f"dynamic-{channel}-{w}"
        return f"{self.fmt}-{channel}-{w}-a{self.activation_type.name.removeprefix('Q').lower()}"


def recipes(fmt: Literal["qdq", "qoperator", "dynamic"]) -> list[Recipe]:
    """Every recipe ORT's quantizer accepts for ``fmt``: per tensor / per channel times the weight and
    activation types, except int8 activations with uint8 weights (``quantize_static`` raises ValueError
    "doesn't support data format"); dynamic quantization has no activation type to choose."""
    types = (QuantType.QUInt8, QuantType.QInt8)
    if fmt == "dynamic":
        return [Recipe(fmt, pc, w) for pc in (False, True) for w in types]
    return [
        Recipe(fmt, pc, w, a)
        for pc in (False, True)
        for w in types
        for a in types
        if not (a == QuantType.QInt8 and w == QuantType.QUInt8)
    ]


class _Batches(CalibrationDataReader):
    """Feeds the quantizer's calibrator one batch at a time."""

    def __init__(self, batches: list[Feeds]):
        self._it: Iterator[Feeds] = iter(batches)

    def get_next(self) -> Feeds | None:
        return next(self._it, None)


def session_options(level: Level, threads: int = 1) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: ORT warns about unused initializers in the light models
    return so


def session(model: onnx.ModelProto, level: Level = "extended", threads: int = 1) -> ort.InferenceSession:
    return ort.InferenceSession(
        model.SerializeToString(), session_options(level, threads), providers=["CPUExecutionProvider"]
    )


def run(model: onnx.ModelProto, inputs: Feeds, level: Level = "extended") -> list[np.ndarray]:
    """The model's outputs as a normal session computes them at ``level``."""
    return session(model, level).run(None, inputs)


def preprocess(model: onnx.ModelProto) -> onnx.ModelProto:
    """ORT's recommended step before quantizing (``quant_pre_process``): shape inference and ORT's basic
    optimizations, which fold BatchNormalization into the preceding conv and drop Identity nodes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pre.onnx"
        quant_pre_process(model, str(out))
        return onnx.load(out)


def quantize(built: Built, recipe: Recipe, *, pre: bool = True) -> onnx.ModelProto:
    """``built.model`` quantized by ORT's quantizer as ``recipe`` says, calibrated (static) with MinMax on
    ``built.calibration``; preprocessed first unless ``pre`` is False."""
    model = preprocess(built.model) if pre else built.model
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        if recipe.fmt == "dynamic":
            quantize_dynamic(model, out, per_channel=recipe.per_channel, weight_type=recipe.weight_type)
        else:
            quantize_static(
                model,
                out,
                _Batches(built.calibration),
                quant_format=QuantFormat.QDQ if recipe.fmt == "qdq" else QuantFormat.QOperator,
                per_channel=recipe.per_channel,
                weight_type=recipe.weight_type,
                activation_type=recipe.activation_type,
            )
        return onnx.load(out)


def fused(model: onnx.ModelProto, level: Level = "extended") -> onnx.ModelProto:
    """The graph ORT runs at ``level``, as written by ``SessionOptions.optimized_model_filepath``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fused.onnx"
        so = session_options(level)
        so.optimized_model_filepath = str(out)
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return onnx.load(out)


def node_outputs(model: onnx.ModelProto, inputs: Feeds) -> dict[str, np.ndarray]:
    """Every node output of ``model`` (graph outputs included) by tensor name, with ORT's optimizations off
    so the graph runs exactly as given (pass a :func:`fused` model to dump what ORT computes)."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for node in exposed.graph.node:
        exposed.graph.output.extend(
            helper.make_empty_tensor_value_info(name) for name in node.output if name and name not in present
        )
        present.update(node.output)
    sess = session(exposed, "disabled")
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


@dataclass(frozen=True)
class UnfusedGroup:
    """A float op ORT runs between DequantizeLinear inputs and a QuantizeLinear output (fake quantization)."""

    node: str
    op_type: str


def unfused_qdq_groups(model: onnx.ModelProto) -> list[UnfusedGroup]:
    """The DQ -> float op -> Q groups left in ``model`` (pass a :func:`fused` model): ops that are not
    QuantizeLinear / DequantizeLinear, read at least one DequantizeLinear output and feed a QuantizeLinear."""
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    groups = []
    for n in model.graph.node:
        if n.op_type in Q_OPS:
            continue
        reads_dq = any(i in producer and producer[i].op_type == "DequantizeLinear" for i in n.input)
        feeds_q = any(c.op_type == "QuantizeLinear" for o in n.output for c in consumers.get(o, []))
        if reads_dq and feeds_q:
            groups.append(UnfusedGroup(n.name, n.op_type))
    return groups
