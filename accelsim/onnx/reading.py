"""Reading an ONNX file the user names into a checked, opset-converted, shape-inferred ``ModelProto``.

Every byte comes through :mod:`accelsim.file_checks` (a FIFO, a folder or a huge file is refused before
reading), the model is parsed from those bytes by the ``onnx`` package, external tensor data is read
through the same checks (only from beside the model: a location that leaves its folder is refused),
older opsets are brought up with ``onnx.version_converter`` and shapes come from
``onnx.shape_inference``. Each failure is one :class:`AccelsimError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # protobuf ships no stubs
from onnx import ModelProto, TensorProto, ValueInfoProto, external_data_helper, shape_inference, version_converter
from onnx.reference import ReferenceEvaluator

from accelsim import file_checks
from accelsim.errors import AccelsimError

#: protobuf cannot parse a message above 2 GiB; larger models keep their tensors as external data
MAX_MODEL_BYTES = 2**31 - 1
#: one external-data file (the weights of the largest models the workload ranges admit, 2^32 fp32 per layer)
MAX_EXTERNAL_BYTES = 2**36
#: the default-domain opsets the importer reads as they are; older models are converted up to MIN_OPSET
#: (the light models onnx ships are opset 9). 13 is the first with Softmax on one axis and Squeeze/Clip
#: parameters as inputs, the forms the mapping reads.
MIN_OPSET = 13
MAX_OPSET = onnx.defs.onnx_opset_version()
DEFAULT_DOMAINS = ("", "ai.onnx")


def _parse(raw: bytes, file: str) -> ModelProto:
    """The model in ``raw``, or the error saying why it is not one."""
    try:
        model = onnx.load_model_from_string(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:  # what protobuf raises on bytes that are no model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AccelsimError(
            f"not a readable ONNX model ({reason}); truncated or not an ONNX file",
            file=file,
            allowed="a ModelProto as torch.onnx.export or onnx.save write it",
        ) from None
    if not model.HasField("graph") or not model.graph.node or not model.opset_import:
        raise AccelsimError(
            "not an ONNX model: no graph nodes or no opset (truncated, or another protobuf)",
            file=file,
            allowed="a ModelProto as torch.onnx.export or onnx.save write it",
        )
    return model


def _external_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers and Constant-node tensors stored outside the model file."""
    attributes = (a for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.TENSOR)
    for tensor in (*model.graph.initializer, *(a.t for a in attributes)):
        if external_data_helper.uses_external_data(tensor):
            yield tensor


def _load_external_data(model: ModelProto, base: Path, file: str) -> None:
    """Read every external tensor's bytes through file_checks, from files beside the model only."""
    cache: dict[Path, bytes] = {}
    for tensor in _external_tensors(model):
        info = external_data_helper.ExternalDataInfo(tensor)
        location = Path(info.location)
        if location.is_absolute() or ".." in location.parts:
            raise AccelsimError(
                f"tensor {tensor.name!r}: external data location {info.location!r} leaves the model's folder",
                file=file,
                allowed="a file name relative to the model's folder",
            )
        path = base / location
        if path not in cache:
            try:
                cache[path] = file_checks.read_user_file(path, MAX_EXTERNAL_BYTES, expected="an external data file")
            except AccelsimError as exc:
                raise AccelsimError(
                    f"tensor {tensor.name!r}: external data {info.location!r}: {exc.message}", file=file
                ) from None
        data = cache[path]
        offset = info.offset or 0
        end = len(data) if info.length is None or info.length == 0 else offset + info.length
        if end > len(data):
            raise AccelsimError(
                f"tensor {tensor.name!r}: external data {info.location!r} has {len(data):,} bytes, "
                f"the model reads up to byte {end:,} (truncated?)",
                file=file,
            )
        tensor.raw_data = data[offset:end]
        tensor.data_location = TensorProto.DEFAULT
        del tensor.external_data[:]


def default_opset(model: ModelProto) -> int:
    """The model's version of the default (``ai.onnx``) operator set."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return versions[0] if versions else 0


def _dropout_as_identity(model: ModelProto) -> None:
    """Dropout whose mask nobody reads is the identity at inference, at every opset: written as Identity
    first (the converter's opset-12 Dropout adapter writes a ratio of shape [1], which shape inference
    refuses once the ratio is a known constant, in converted models as in models converted before)."""
    read = {t for n in model.graph.node for t in n.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type == "Dropout" and node.domain in DEFAULT_DOMAINS and not any(o in read for o in node.output[1:]):
            node.op_type = "Identity"
            del node.input[1:], node.output[1:], node.attribute[:]


def _convert_opset(model: ModelProto, file: str) -> ModelProto:
    opset = default_opset(model)
    if MIN_OPSET <= opset <= MAX_OPSET:
        return model
    allowed = f"opsets {MIN_OPSET}..{MAX_OPSET}, or older ones onnx.version_converter brings to {MIN_OPSET}"
    if opset > MAX_OPSET:
        raise AccelsimError(f"opset {opset} is newer than the installed onnx knows", file=file, allowed=allowed)
    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except (version_converter.ConvertError, RuntimeError, ValueError) as exc:  # names the failing adapter
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise AccelsimError(
            f"opset {opset} cannot be converted to {MIN_OPSET}: {reason}", file=file, allowed=allowed
        ) from None


def graph_inputs(model: ModelProto) -> list[ValueInfoProto]:
    """The graph's real inputs: those without an initializer (IR < 4 lists the initializers as inputs too)."""
    initialized = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initialized]


def _dims(value: ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]


def _unknown_dims_symbolic(model: ModelProto) -> None:
    """A dim written as a non-positive ``dim_value`` (paddle2onnx writes ``-1`` for a dynamic batch) is
    symbolic: shape inference would otherwise hold the inferred size against ``-1`` and fail."""
    for value in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value <= 0:
                dim.dim_param = "?"


def _fix_input_shapes(model: ModelProto, batch: int | None, shapes: Mapping[str, Sequence[int]], file: str) -> None:
    """Give every graph input a static shape: ``shapes`` by name, ``batch`` for a symbolic first dim."""
    for value in graph_inputs(model):
        if value.name in shapes:
            wanted = list(shapes[value.name])
            dims = value.type.tensor_type.shape.dim
            if len(wanted) != len(dims):
                raise AccelsimError(
                    f"input {value.name!r} has {len(dims)} dims, the given shape {wanted} has {len(wanted)}",
                    file=file,
                )
            for dim, size in zip(dims, wanted):
                dim.dim_value = size
            continue
        dims = value.type.tensor_type.shape.dim
        shape = _dims(value)  # as written, for the message
        if batch is not None and dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
        unresolved = [i for i, d in enumerate(dims) if not d.HasField("dim_value") or d.dim_value <= 0]
        if unresolved or not value.type.tensor_type.HasField("shape"):
            example = [
                s if isinstance(s, int) and s > 0 else (batch or 1) if i == 0 else 1 for i, s in enumerate(shape)
            ]
            hint = "give a batch size" if unresolved == [0] else f"give the input's shape, e.g. {example}"
            raise AccelsimError(
                f"input {value.name!r} has the dynamic shape {shape}: {hint}",
                file=file,
                allowed="static dims (the batch option fills a symbolic first dim, input shapes set whole shapes)",
            )


def read_model(
    path: str | os.PathLike[str],
    *,
    batch: int | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModelProto:
    """The ONNX model at ``path``: read through file_checks, parsed, external data loaded, converted to a
    supported opset, every input made static (``batch`` fills a symbolic batch dim, ``input_shapes`` sets
    whole shapes by input name) and shapes inferred (strict: an inconsistent graph is an error)."""
    file = file_checks.check_name(path)
    raw = file_checks.read_user_file(file, MAX_MODEL_BYTES, expected="an ONNX model file")
    model = _parse(raw, file)
    _load_external_data(model, Path(file).parent, file)
    _dropout_as_identity(model)
    model = _convert_opset(model, file)
    _unknown_dims_symbolic(model)
    _fix_input_shapes(model, batch, input_shapes or {}, file)
    return infer_shapes(model, file)


def infer_shapes(model: ModelProto, file: str) -> ModelProto:
    """``model`` with every value's shape inferred (strict mode, with constant data propagation)."""
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except (shape_inference.InferenceError, RuntimeError, ValueError) as exc:  # names the node that failed
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AccelsimError(f"shape inference failed: {reason}", file=file) from None


def evaluator(node: onnx.NodeProto, opset: int) -> ReferenceEvaluator:
    """onnx's reference implementation of one node, to fold it on constant inputs."""
    return ReferenceEvaluator(node, opsets={"": opset})
