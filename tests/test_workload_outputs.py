"""A workload's ``outputs``: the layers whose values leave the accelerator. The default (the last layer) lowers
and times exactly as before; each listed output is dequantized and written back under static; the ONNX
importer sets it from the graph outputs; unknown or repeated names are field errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import OUTPUT_CONVERSION, lower
from accelsim.model_file import import_to_files
from accelsim.onnx import import_onnx
from accelsim.schemes import SchemeName
from accelsim.simulation import RunOptions, simulate
from accelsim.values.runner import run_values

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om

ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime


def _with_outputs(workload: Workload, outputs: list[str]) -> Workload:
    return validate(Workload, {**workload.model_dump(mode="json"), "outputs": outputs}, "test")


@pytest.mark.parametrize("scheme", [SchemeName.FP32, SchemeName.STATIC, SchemeName.DYNAMIC])
def test_the_last_layer_named_is_the_default_tile_for_tile(scheme: SchemeName) -> None:
    """``outputs: [<last layer>]`` lowers to the same program and the same cycles as no ``outputs``."""
    hw, default = load_hardware(), load_workload("tiny_cnn")
    named = _with_outputs(default, [default.layers[-1].name])
    assert default.output_layers == named.output_layers == ["fc"]
    assert lower(default, hw, scheme).layers == lower(named, hw, scheme).layers
    timing = RunOptions(timing_only=True)
    a, b = simulate(default, hw, scheme, options=timing), simulate(named, hw, scheme, options=timing)
    assert [r.total_cycles for r in a.rows] == [r.total_cycles for r in b.rows]


def test_a_workload_without_outputs_dumps_as_before() -> None:
    """No ``outputs`` key in the dump of a workload that leaves it out: the results folders, sweep point ids
    and config digests stored before the field existed still match (a given list is kept)."""
    default = load_workload("tiny_cnn")
    assert "outputs" not in default.model_dump(mode="json") and "outputs" not in default.model_dump()
    assert _with_outputs(default, ["add"]).model_dump(mode="json")["outputs"] == ["add"]


def test_each_output_is_dequantized_and_written_back_under_static() -> None:
    """Two outputs: one conversion each, over that layer's elements (int8 in, float32 out), after the
    layers; the total costs more than the default's. Schemes with float activations add nothing."""
    hw, default = load_hardware(), load_workload("tiny_cnn")
    two = _with_outputs(default, ["add", "fc"])
    program = lower(two, hw, SchemeName.STATIC)
    names = [layer.name for layer in program.layers]
    assert names[-2:] == [f"{OUTPUT_CONVERSION}:add", f"{OUTPUT_CONVERSION}:fc"]
    elements = {s.layer.name: two.batch * int(np.prod(s.output_shape)) for s in two.shapes}
    for layer in program.layers[-2:]:
        name = layer.name.split(":")[1]
        assert sum(t.ofmap_bytes for t in layer.tiles) == 4 * elements[name]
        assert sum(t.ifmap_bytes for t in layer.tiles) == elements[name]
    timing = RunOptions(timing_only=True)
    assert simulate(two, hw, "static", options=timing).total.total_cycles > (
        simulate(default, hw, "static", options=timing).total.total_cycles
    )
    assert lower(two, hw, SchemeName.FP32).layers == lower(default, hw, SchemeName.FP32).layers


@pytest.mark.parametrize(
    "outputs, message",
    [
        (["nope"], r"outputs\[0\]: 'nope' is not a layer of this workload \(allowed: conv1, conv2, dw,"),
        (["input"], r"outputs\[0\]: 'input' is not a layer"),
        (["fc", "add", "fc"], r"outputs\[2\]: 'fc' is listed twice"),
    ],
)
def test_outputs_that_name_no_layer_once_are_refused(outputs: list[str], message: str) -> None:
    with pytest.raises(AccelsimError, match=message) as exc:
        _with_outputs(load_workload("tiny_cnn"), outputs)
    assert "\n" not in str(exc.value)


def _two_outputs(tmp_path: Path) -> tuple[Path, om.Built, str]:
    """residual_cnn with its stem's Relu as a second graph output (after the logits)."""
    built = om.residual_cnn()
    model = onnx.ModelProto()
    model.CopyFrom(built.model)
    stem = next(n for n in model.graph.node if n.op_type == "Relu").output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(stem, onnx.TensorProto.FLOAT, None))
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    return path, built, stem


def test_onnx_graph_outputs_become_the_workload_outputs(tmp_path: Path) -> None:
    """The importer lists the graph outputs' layers in the graph's order (a single output that is the last
    layer is the default and left out); each output layer's values equal ONNX Runtime's output; the YAML
    ``accelsim import onnx`` writes keeps them, and runs with the same cycles as the model."""
    path, built, stem = _two_outputs(tmp_path)
    imported = import_onnx(path)
    workload = imported.workload
    logits = imported.outputs[built.model.graph.output[0].name]
    assert workload.outputs == [logits, imported.outputs[stem]] and logits == workload.layers[-1].name
    hw = load_hardware()
    values = run_values(workload, hw, "fp32", tensors=imported.tensors(built.inputs))
    want = ort_reference.run(onnx.load(path), built.inputs)
    for tensor, expected in zip([o.name for o in onnx.load(path).graph.output], want):
        got = values.layers[imported.outputs[tensor]].output
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-3, atol=1e-5)
    written, _ = import_to_files(path, tmp_path / "two.yaml")
    assert "outputs:" in (tmp_path / "two.yaml").read_text()
    reloaded = load_workload(tmp_path / "two.yaml")
    assert reloaded.outputs == workload.outputs == written.outputs
    timing = RunOptions(timing_only=True)
    direct = simulate(workload, hw, "static", options=timing).total
    assert simulate(reloaded, hw, "static", options=timing).total.total_cycles == direct.total_cycles
    single = import_onnx(_saved(built.model, tmp_path / "one.onnx"))
    assert single.workload.outputs == [] and "outputs" not in single.workload.model_dump(exclude_defaults=True)


def _saved(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def test_total_error_is_over_every_output_together() -> None:
    """With several outputs the total row's SQNR is that of all outputs as one signal (their signal energies
    summed over their noise energies summed), not the last output's: computed here from the two layers'
    values independently; the max abs error is the larger of the two; a single output is unchanged."""
    hw, default = load_hardware(), load_workload("tiny_cnn")
    two = _with_outputs(default, ["add", "fc"])
    run = simulate(two, hw, SchemeName.STATIC)
    reference = run_values(two, hw, SchemeName.FP32)
    assert run.values is not None
    signal = noise = 0.0
    largest = 0.0
    for name in ("add", "fc"):
        ref = reference.layers[name].output.astype(np.float64)
        err = ref - run.values.layers[name].output.astype(np.float64)
        signal, noise = signal + float(np.sum(ref * ref)), noise + float(np.sum(err * err))
        largest = max(largest, float(np.abs(err).max()))
    want = 10 * np.log10(signal / noise)
    rows = {r.layer: r for r in run.rows}
    assert run.total.sqnr_db == pytest.approx(want, abs=1e-9)
    assert run.total.max_abs_error == pytest.approx(largest)
    assert abs(run.total.sqnr_db - rows["fc"].sqnr_db) > 0.5  # not the last output's
    assert (
        min(rows["add"].sqnr_db, rows["fc"].sqnr_db) < run.total.sqnr_db < max(rows["add"].sqnr_db, rows["fc"].sqnr_db)
    )
    one = simulate(default, hw, SchemeName.STATIC)
    assert one.total.sqnr_db == {r.layer: r for r in one.rows}["fc"].sqnr_db
    assert run.total.top1_agreement == one.total.top1_agreement  # fc is the only [batch, classes] output
