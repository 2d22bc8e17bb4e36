"""ONNX import: a model file becomes a validated :class:`~accelsim.config.Workload` and its weights.

The steps (docs/onnx.md): :mod:`accelsim.onnx.reading` reads and checks the file, converts older opsets
and infers shapes; :mod:`accelsim.onnx.graph` builds a small IR and folds constants, pass-throughs,
BatchNormalization, bias adds and activations as deployment tools do; :mod:`accelsim.onnx.mapping`
turns each remaining node into workload layers, refusing what today's layer types cannot express.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.config.ranges import plain_name
from accelsim.config.validation import validate
from accelsim.config.workload import INPUT, Workload
from accelsim.errors import AccelsimError
from accelsim.onnx.graph import Graph, Node, import_graph
from accelsim.onnx.mapping import Builder, check_batch, check_dims, map_node
from accelsim.onnx.reading import default_opset, read_model
from accelsim.values.tensors import LayerParams, WorkloadTensors

__all__ = ["OnnxImport", "import_onnx"]


@dataclass(frozen=True)
class OnnxImport:
    """An imported model: the workload, its weights (``<layer>.weight`` / ``<layer>.bias``, in the layouts
    ``values.tensors`` reads), and which layer holds each graph output and input."""

    workload: Workload
    weights: dict[str, np.ndarray]
    outputs: dict[str, str]  # graph output tensor -> workload layer
    inputs: dict[str, str]  # graph input tensor -> workload source (``input`` or an extra input)
    #: the first dim is no batch (some node moves it): the workload is one sample of the whole shapes
    one_sample: bool = False
    #: every tensor the layers hold -> its workload name, in graph order (a fused activation's output is its
    #: layer's; tensors folded away or fused into a layer before its activation are absent)
    holders: dict[str, str] = field(default_factory=dict)
    #: layer -> the name of the ONNX node it came from (as the graph after the import's rewrites names it)
    origins: dict[str, str] = field(default_factory=dict)

    def tensors(self, feeds: Mapping[str, np.ndarray]) -> WorkloadTensors:
        """The tensors of a values run on ``feeds`` (graph input name -> batch-first array); they are the
        calibration batch too."""
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise AccelsimError(f"no data for graph input(s) {sorted(missing)}", allowed=sorted(self.inputs))
        params = {
            s.layer.name: LayerParams(self.weights[f"{s.layer.name}.weight"], self.weights.get(f"{s.layer.name}.bias"))
            for s in self.workload.shapes
            if f"{s.layer.name}.weight" in self.weights
        }
        sources = {
            self.inputs[k]: np.ascontiguousarray(v, dtype=np.float32)[None] if self.one_sample else v
            for k, v in feeds.items()
            if k in self.inputs
        }
        sources = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sources.items()}
        return WorkloadTensors(params, sources, sources)


def _moves_batch(graph: Graph) -> Node | None:
    """Some node mixes the first dim with the others (a Gemm with transA, a Transpose of axis 0, a Flatten
    at another axis than 1, a Reshape of the first dim): then the first dim is no batch of independent
    samples, and the model imports as one sample of its whole shape. The first such node, or None."""
    for node in graph.nodes:
        moves = (
            node.op == "Gemm"
            and node.attrs.get("transA", 0)
            or node.op == "Transpose"
            and list(node.attrs.get("perm", [1]))[:1] != [0]
            or node.op == "Flatten"
            and int(node.attrs.get("axis", 1)) != 1
            or node.op in ("Reshape", "Squeeze", "Unsqueeze")
            and graph.shapes.get(node.inputs[0], ())[:1] != graph.shapes.get(node.outputs[0], ())[:1]
        )
        if moves:
            return node
    return None


def _sources(graph: Graph, b: Builder, file: str) -> tuple[list[int], dict[str, list[int]]]:
    """The workload's input shape and extra inputs: the graph inputs some node reads, in order."""
    read = {t for n in graph.nodes for t in n.inputs}
    used = [name for name in graph.inputs if name in read]
    if not used:
        raise AccelsimError("no node reads a graph input (nothing to run)", file=file)
    first = graph.shapes[used[0]]
    b.mover = _moves_batch(graph)
    b.lead = 0 if b.mover else 1
    b.batch = check_batch(first[0], file, f"input {used[0]!r}") if b.lead else 1
    shapes: dict[str, list[int]] = {}
    for name in used:
        full = graph.shapes[name]
        if b.lead and full[0] != b.batch:
            raise AccelsimError(
                f"input {name!r} has shape {list(full)}, its first dim is not the batch {b.batch}", file=file
            )
        source = INPUT if name == used[0] else name
        if source != INPUT and (not name.isprintable() or len(name) > 100 or name == INPUT):
            raise AccelsimError(f"input name {name!r} cannot name a workload input", file=file)
        shapes[source] = check_dims(full[b.lead :], file, f"input {name!r}")
        b.holder[name] = source
        b.names.add(source)
    input_shape = shapes.pop(INPUT)
    return input_shape, shapes


def import_onnx(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    batch: int | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    merge_steps: bool = True,
) -> OnnxImport:
    """Import the ONNX model at ``path`` as a workload named ``name`` (default: the file's stem).

    ``batch`` fills a symbolic batch dim of the inputs; ``input_shapes`` fixes whole input shapes by
    name; ``merge_steps`` folds attention's scalar scale into the matmul's ``alpha`` and a written-out
    activation into one (a quantized model's twin keeps each step a layer: :func:`accelsim.onnx.graph.import_graph`).
    Raises :class:`AccelsimError` (one line, naming the file and the node) for anything that does
    not import."""
    file = os.fspath(path)
    model = read_model(file, batch=batch, input_shapes=input_shapes)
    graph = import_graph(model, file, merge_steps=merge_steps)
    b = Builder(graph, 1)
    input_shape, extra = _sources(graph, b, file)
    for node in graph.nodes:
        map_node(b, node)
    outputs = {}
    for tensor in graph.outputs:
        holder = b.holder.get(tensor)
        if holder is None or holder == INPUT or holder in extra:
            raise AccelsimError(f"graph output {tensor!r} is not computed by any imported layer", file=file)
        outputs[tensor] = holder
    producer = model.producer_name or "an unknown producer"
    doc = {
        "schema_version": 1,
        "name": name or plain_name(Path(file).stem, "model"),
        "description": f"Imported from ONNX model {Path(file).name} (opset {default_opset(model)}, {producer})",
        "source": Path(file).name,
        "batch": b.batch,
        "input_shape": input_shape,
        "extra_inputs": extra,
        "layers": b.layers,
    }
    held = list(dict.fromkeys(outputs.values()))  # two graph outputs may be one layer's (a no-op reshape)
    if held != [b.layers[-1]["name"]]:  # the default (the last layer) is left out, as a YAML file would
        doc["outputs"] = held
    try:
        workload = validate(Workload, doc, file)
    except AccelsimError as exc:
        index = re.match(r"layers\[(\d+)\]", exc.path)
        if index:  # name the ONNX node the layer came from
            node = b.origin[int(index.group(1))]
            exc.message = f"node {node.label!r} ({node.op}): {exc.path}: {exc.message}"
            exc.path = ""
        raise
    sources = {tensor: holder for tensor, holder in b.holder.items() if tensor in graph.inputs}
    origins = {layer["name"]: node.name for layer, node in zip(b.layers, b.origin)}
    return OnnxImport(workload, b.weights, outputs, sources, not b.lead, dict(b.holder), origins)
