"""The trained digits models against ONNX Runtime's quantizer (issue 17): the same model, quantized by
``onnxruntime.quantization.quantize_static`` on the same calibration images, run by ORT and by accelsim
(through the ONNX import, with the model's own scales, zero points, weight codes and int32 biases).

accelsim's predictions equal ORT's on every test image and its output codes equal ORT's bit for bit. How
accelsim's own calibration compares with ORT's is measured too: the same rule (min-max, uint8, range
widened to include 0) gives the same zero points; the scales of the tensors after the first three layers
differ in the last bit, because ORT's fp32 convolutions sum in another order than accelsim's fp32 run, so
the calibrated ranges differ by an ulp; the rule applied to the ranges ORT itself saw gives ORT's scales
exactly.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

import ort_reference as ref  # after the importorskip: needs onnxruntime
from onnx_models import Built

from accelsim.config import HardwareConfig, Workload, load_hardware, load_workload
from accelsim.model_file import load_model
from accelsim.onnx.export import export
from accelsim.onnx.quantized_workload import REQUANT_MODE
from accelsim.quant.qparams import affine_qparams
from accelsim.values.accuracy import Variant, calibrate_on, evaluate
from accelsim.values.labelled_data import LabelledData, load_labelled
from accelsim.values.runner import run_values
from accelsim.values.tensors import WorkloadTensors, materialize

pytestmark = pytest.mark.slow
#: the suffix the quantized import gives a layer's output tensor (the float value of its codes)
REAL = ".real"


def _hw(rounding: str = REQUANT_MODE) -> HardwareConfig:
    return load_hardware(None, [f"requant.rounding={rounding}"])


def _data(workload: Workload) -> LabelledData:
    return load_labelled("digits", tuple(workload.input_shape), 10)


@cache
def _fp32_onnx(name: str) -> onnx.ModelProto:
    """The trained model exported by accelsim as an fp32 ONNX model of batch 1 (ORT calibrates image by image)."""
    workload = load_workload(name)
    return export(workload.model_copy(update={"batch": 1}), _hw(), "fp32", materialize(workload)).model


def _feeds(workload: Workload, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [{"input": image.reshape(1, *workload.input_shape)} for image in x]


@cache
def _quantized(name: str, per_channel: bool, folder: Path) -> Path:
    """ORT's QDQ model (uint8 activations, int8 weights, MinMax) calibrated on the calibration images."""
    workload = load_workload(name)
    data = _data(workload)
    built = Built(name, _fp32_onnx(name), _feeds(workload, data.test_x[:1])[0], _feeds(workload, data.calibration_x))
    path = folder / f"{name}-{'pc' if per_channel else 'pt'}-int8.onnx"
    onnx.save(ref.quantize(built, ref.Recipe("qdq", per_channel=per_channel)), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("digits-ort")


@pytest.mark.parametrize(("name", "per_channel"), [("digits-cnn", False), ("digits-cnn", True), ("digits-mlp", False)])
def test_predictions_equal_ort_on_every_test_image(name: str, per_channel: bool, folder: Path) -> None:
    path = _quantized(name, per_channel, folder)
    workload = load_workload(name)
    data = _data(workload)
    session = ref.session(onnx.load(path))
    ort_out = np.concatenate([session.run(None, feed)[0] for feed in _feeds(workload, data.test_x)])
    model = load_model(path, [f"batch={workload.batch}"])
    assert model.quantized is not None and model.workload.batch == workload.batch
    params = model.with_data(None, None).params
    (row,) = evaluate(
        model.workload, _hw(), params, data, [Variant("static")], weights=model.quantized.weights, qparams=model.qparams
    )
    np.testing.assert_array_equal(row.predicted, ort_out.argmax(axis=1))
    assert row.images == 537 and row.correct == int(np.sum(ort_out.argmax(axis=1) == data.test_y))
    # the output codes too, every image in one batch: ORT's output is the last layer's codes dequantized
    whole = model.workload.model_copy(update={"batch": len(data.test_y)})
    tensors = WorkloadTensors(params, {"input": data.test_x}, {})
    # the tensors a QDQ model leaves in float (flatten's view) are calibrated as evaluate does; ORT's win
    qparams = calibrate_on(model.workload, _hw(), params, data.calibration_x, "minmax") | model.qparams
    values = run_values(whole, _hw(), "static", tensors=tensors, qparams=qparams, weights=model.quantized.weights)
    np.testing.assert_array_equal(values.output, ort_out)
    # the requant rounding matters: TFLite's (ties away from zero, fixed point) is not ORT's
    swapped = run_values(
        whole, _hw("tflite"), "static", tensors=tensors, qparams=qparams, weights=model.quantized.weights
    )
    assert not np.array_equal(swapped.output, ort_out)


def test_own_calibration_against_ort(folder: Path) -> None:
    """accelsim's min-max calibration of the fp32 workload on the same images against the scales and zero
    points ORT's quantizer wrote, and the reason for the difference."""
    name = "digits-cnn"
    workload = load_workload(name)
    data = _data(workload)
    model = load_model(_quantized(name, False, folder))
    assert model.qparams is not None
    theirs = {k.removesuffix(REAL): v for k, v in model.qparams.items()}
    own = calibrate_on(workload, _hw(), materialize(workload).params, data.calibration_x, "minmax")
    same, one_ulp = [], []
    for tensor, qp in theirs.items():
        mine = own[tensor]
        assert (mine.dtype, int(mine.zero_point[0])) == (qp.dtype, int(qp.zero_point[0])), tensor
        if mine.scale[0] == qp.scale[0]:
            same.append(tensor)
        else:
            assert abs(int(mine.scale.view(np.int32)[0]) - int(qp.scale.view(np.int32)[0])) == 1, tensor
            one_ulp.append(tensor)
    # fc's range is ORT's since the global pool sums in MLAS's order (runner.global_mean); conv2's float conv
    # does not, and the pool after it inherits that
    assert same == ["input", "conv1", "dw", "pw", "add", "fc"] and one_ulp == ["conv2", "avgpool"]
    # the reason: ORT's fp32 run of the same images (the preprocessed model it calibrated) sees ranges that
    # differ in the last bit; accelsim's rule on ORT's own ranges gives ORT's scales exactly
    exported = export(workload.model_copy(update={"batch": 1}), _hw(), "fp32", materialize(workload))
    graph = ref.preprocess(exported.model)
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for feed in _feeds(workload, data.calibration_x):
        for onnx_name, value in ref.node_outputs(graph, feed).items():
            low[onnx_name] = min(low.get(onnx_name, np.inf), float(value.min()))
            high[onnx_name] = max(high.get(onnx_name, -np.inf), float(value.max()))
    for tensor in one_ulp:
        onnx_name = exported.tensors[tensor]
        rebuilt = affine_qparams(low[onnx_name], high[onnx_name], dtype="uint8")
        assert (rebuilt.scale[0], rebuilt.zero_point[0]) == (theirs[tensor].scale[0], theirs[tensor].zero_point[0])


def test_cli_accuracy_of_the_ort_model(folder: Path, tmp_path: Path) -> None:
    """``compare MODEL_int8.onnx --data FILE.npz``: the static row is ORT's accuracy, run with the model's own
    parameters and codes (no observer or weight granularity: the rows and the run settings say none)."""
    from accelsim.cli import main

    workload = load_workload("digits-cnn")
    data = _data(workload)
    path = _quantized("digits-cnn", False, folder)
    session = ref.session(onnx.load(path))
    ort_correct = sum(
        int(session.run(None, f)[0].argmax() == y) for f, y in zip(_feeds(workload, data.test_x), data.test_y)
    )
    np.savez(tmp_path / "d.npz", x=data.test_x, y=data.test_y, x_calibration=data.calibration_x)
    argv = ["compare", str(path), "--data", str(tmp_path / "d.npz"), "--set-workload", "batch=100"]
    assert main([*argv, "--schemes", "fp32", "static", "--accuracy-sweep", "--out", str(tmp_path / "out")]) == 0
    (results,) = (tmp_path / "out").glob("*/*/results.json")
    meta = json.loads(results.read_text())["meta"]
    fp32, static = meta["accuracy"]["rows"]
    assert (static["scheme"], static["observer"], static["granularity"]) == ("static", None, None)
    assert static["correct"] == ort_correct and fp32["images"] == 537
    assert meta["runs"]["static"]["observer"] is None and meta["runs"]["static"]["weight_granularity"] is None
