"""The model a command names: a workload YAML (with the weights file it names) or an ONNX model, and the
user's data for it.

Every command that takes a workload takes an ONNX file too (``accelsim run model.onnx``): it is imported
(:func:`accelsim.onnx.import_onnx`) and runs with the model's own weights, as the YAML and ``.npz`` that
``accelsim import onnx`` writes do, so both paths give the same bits and cycles. ``--input`` and
``--calibration`` replace the seeded random run and calibration batches for either kind of file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from accelsim.config.workload import Workload
    from accelsim.onnx.quantized_workload import QuantizedImport
    from accelsim.quant import QParams
    from accelsim.values.tensors import WorkloadTensors

#: a symbolic batch dim of an ONNX model run directly is filled with this (``--set-workload batch=N`` changes it)
DIRECT_BATCH = 1


def is_onnx(path: str | os.PathLike[str]) -> bool:
    """Whether a command's model argument names an ONNX file (by its extension, as exporters write it)."""
    return PurePath(path).suffix.lower() == ".onnx"


@dataclass(frozen=True)
class ModelFile:
    """A loaded workload, its weights (the arrays of an imported ONNX model; None: the workload's own
    ``weights_file``, else seeded random ones) and the names an ``.npz`` of inputs may use (ONNX graph input -> workload source)."""

    workload: Workload
    weights: Mapping[str, np.ndarray] | None = None
    input_names: Mapping[str, str] = field(default_factory=dict)
    #: a quantized ONNX model: its own weight codes, int32 biases and activation parameters
    quantized: QuantizedImport | None = None

    @property
    def qparams(self) -> dict[str, QParams] | None:
        """A quantized model's activation parameters (the static run uses them instead of calibrating)."""
        return self.quantized.qparams or None if self.quantized is not None else None

    def tensors(
        self, inputs: str | os.PathLike[str] | None = None, calibration: str | os.PathLike[str] | None = None
    ) -> WorkloadTensors | None:
        """The run's tensors: the model's weights, the ``inputs`` file's batch (``--input``) and the
        ``calibration`` file's batches (``--calibration``; the ``--input`` batch when only that is given).
        None when all of them would be the workload's seeded draw (the simulation draws them itself)."""
        if self.weights is None and self.quantized is None and inputs is None and calibration is None:
            return None
        from accelsim.config.workload import INPUT
        from accelsim.values.user_data import load_batch

        w = self.workload
        sources = {INPUT: tuple(w.input_shape)} | {k: tuple(v) for k, v in w.extra_inputs.items()}
        aliases = dict(self.input_names)
        run = None if inputs is None else load_batch(inputs, sources, w.batch, field="--input", aliases=aliases)
        calibrating = (
            run
            if calibration is None
            else load_batch(calibration, sources, w.batch, field="--calibration", aliases=aliases, whole_batches=True)
        )
        return self.with_data(run, calibrating)

    def with_data(
        self, inputs: Mapping[str, np.ndarray] | None, calibration: Mapping[str, np.ndarray] | None
    ) -> WorkloadTensors:
        """The model's weights (its own codes when quantized) with these run and calibration batches (source
        name -> batch-first array; None: the seeded draw)."""
        from accelsim.values.tensors import materialize

        tensors = materialize(self.workload, weights=self.weights, inputs=inputs, calibration=calibration)
        return tensors if self.quantized is None else self.quantized.given_tensors(tensors)


def load_model(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> ModelFile:
    """The workload ``path`` names (a YAML file, a shipped name or an ``.onnx`` model), ``overrides`` applied."""
    if is_onnx(path):
        return _load_onnx(path, overrides)
    from accelsim.config.loader import load_workload

    # weights_file resolved (Workload.weights_path) and read once with the workload (config.loader.read_weights)
    workload = load_workload(Path(path), overrides)
    if workload.quantized is None:
        return ModelFile(workload)
    from accelsim.onnx.quantized_file import read_quantized

    return ModelFile(workload, quantized=read_quantized(workload))


def _load_onnx(path: str | os.PathLike[str], overrides: Sequence[str]) -> ModelFile:
    from accelsim.onnx import import_onnx
    from accelsim.onnx.quantized import is_quantized_file, load_quantized
    from accelsim.onnx.quantized_workload import import_quantized

    quantized = None
    if is_quantized_file(path):
        name = PurePath(path).stem
        quantized = import_quantized(load_quantized(path, batch=DIRECT_BATCH), name=name, file=os.fspath(path))
        imported = quantized.imported
    else:
        imported = import_onnx(path, batch=DIRECT_BATCH)
    workload = imported.workload
    if overrides:
        from accelsim.config.loader import validate_doc
        from accelsim.config.workload import Workload

        workload = validate_doc(Workload, workload.model_dump(mode="json"), overrides, os.fspath(path))
    return ModelFile(workload, imported.weights, imported.inputs, quantized)


def import_to_files(
    model: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    name: str | None = None,
    batch: int | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> tuple[Workload, Path]:
    """Import ONNX ``model`` and write it as the workload YAML ``output`` plus its weights ``.npz`` beside it
    (same name, ``.npz``; the YAML's ``weights_file`` names it), each atomically, the weights first so a
    YAML never names a missing file. A quantized model's YAML has a ``quantized`` section and its ``.npz``
    the model's codes and parameters too (accelsim.onnx.quantized_file), so runs of the YAML give the bits
    and cycles of the model's. Returns the workload as written and the weights file."""
    import io

    import numpy as np

    from accelsim.atomic_file import write_atomic
    from accelsim.config.ranges import plain_name
    from accelsim.config.scalesim_topology import workload_yaml
    from accelsim.config.workload import Quantized
    from accelsim.onnx import import_onnx
    from accelsim.onnx.quantized import is_quantized_file, load_quantized
    from accelsim.onnx.quantized_file import quantized_arrays
    from accelsim.onnx.quantized_workload import REQUANT_MODE, import_quantized

    weights_path = Path(output).with_suffix(".npz")
    update: dict[str, object] = {"weights_file": weights_path.name}
    if is_quantized_file(model):
        graph = load_quantized(model, batch=batch, input_shapes=input_shapes)
        name = name or plain_name(PurePath(model).stem, "model")
        quantized = import_quantized(graph, name=name, batch=batch, file=os.fspath(model))
        imported = quantized.imported
        arrays = {**imported.weights, **quantized_arrays(quantized)}
        spec = {
            "scheme": str(quantized.scheme),
            "weights": str(quantized.weights),
            "requant": str(REQUANT_MODE),
            "float_layers": sorted(quantized.float_layers),
        }
        update["quantized"] = Quantized.model_validate(spec)
    else:
        imported = import_onnx(model, name=name, batch=batch, input_shapes=input_shapes)
        arrays = imported.weights
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    write_atomic(weights_path, buffer.getvalue())
    workload = imported.workload.model_copy(update=update)
    write_atomic(Path(output), workload_yaml(workload))
    return workload, weights_path
