"""Quantized ONNX models on the command line: ``accelsim run|compare|explain|golden MODEL_int8.onnx`` run the
model with its own weight codes, int32 biases and activation parameters (ORT's requant mode and vector
kernels), and the codes they write equal ONNX Runtime's on the user's ``--input``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.cli import main
from accelsim.model_file import load_model
from accelsim.onnx.quantized import load_quantized, run_quantized

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om
import ort_reference as ref

RECIPES = [ref.Recipe("qdq", True), ref.Recipe("qoperator"), ref.Recipe("dynamic", True)]


def _save(recipe: ref.Recipe, folder: Path) -> tuple[Path, Path]:
    """The residual CNN quantized by ORT with ``recipe`` and its input, saved in ``folder``."""
    built = om.BUILDERS["residual_cnn"]()
    path = folder / "cnn_int8.onnx"
    onnx.save(ref.quantize(built, recipe), path)
    np.save(folder / "x.npy", built.inputs["x"])
    return path, folder / "x.npy"


@pytest.fixture(params=RECIPES, ids=lambda r: r.fmt)
def model(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, ref.Recipe]:
    return (*_save(request.param, tmp_path), request.param)


def test_compare_runs_every_scheme_on_the_models_parameters(model, tmp_path: Path, capsys) -> None:
    path, x, recipe = model
    assert main(["compare", str(path), "--input", str(x), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "cnn_int8" / "default-32x32" / "results.csv") as f:
        totals = {r["scheme"]: r for r in csv.DictReader(f) if r["layer"] == "total"}
    assert set(totals) == {"fp32", "woq", "dynamic", "static"}
    assert float(totals["static"]["sqnr_db"]) > 30  # the model's own parameters, not random weights
    loaded = load_model(path)
    assert loaded.quantized is not None and loaded.quantized.scheme == (
        "dynamic" if recipe.fmt == "dynamic" else "static"
    )


@pytest.mark.parametrize("recipe", RECIPES[:2], ids=lambda r: r.fmt)
def test_golden_codes_equal_ort(recipe: ref.Recipe, tmp_path: Path) -> None:
    """The golden vectors of the first conv of a static model hold the model's weight codes and ORT's output
    codes (a dynamic layer's float outputs: tests/test_onnx_quantized_values.py)."""
    path, x = _save(recipe, tmp_path)
    graph = load_quantized(path)
    conv = next(n for n in graph.graph.node if n.op_type == "QLinearConv")
    out = tmp_path / "g.npz"
    argv = ["golden", str(path), "--layer", conv.name, "--scheme", "static", "--input", str(x), "-o", str(out)]
    assert main(argv) == 0
    golden = np.load(out)
    want = run_quantized(graph, {"x": np.load(x)}).tensors[conv.output[0]]
    np.testing.assert_array_equal(golden["output_q"].reshape(want.shape), want)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    np.testing.assert_array_equal(golden["weight_q"], weights[conv.input[3]])


def test_run_and_explain(model, tmp_path: Path, capsys) -> None:
    path, x, recipe = model
    scheme = "dynamic" if recipe.fmt == "dynamic" else "static"
    assert main(["run", str(path), "--scheme", scheme, "--input", str(x), "--out", str(tmp_path / "out")]) == 0
    layer = load_model(path).workload.layers[0].name
    assert main(["explain", str(path), "--layer", layer, "--scheme", scheme, "--input", str(x)]) == 0
    assert "float_half_even" in capsys.readouterr().out or scheme == "dynamic"


def test_int8_activation_float_groups_on_the_command_line(tmp_path: Path, capsys) -> None:
    """QDQ with int8 activations: ORT leaves some convs and the residual add as DequantizeLinear -> float op ->
    QuantizeLinear, and so does the static run; the float twin restores the Relu the quantizer folded into
    those outputs' ranges (static was 4.7 dB against a twin without it), and explain names the float group."""
    path, x = tmp_path / "cnn_int8.onnx", tmp_path / "x.npy"
    built = om.BUILDERS["residual_cnn"]()
    onnx.save(ref.quantize(built, ref.Recipe("qdq", activation_type=ref.QuantType.QInt8)), path)
    np.save(x, built.inputs["x"])
    assert main(["compare", str(path), "--input", str(x), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "cnn_int8" / "default-32x32" / "results.csv") as f:
        totals = {r["scheme"]: r for r in csv.DictReader(f) if r["layer"] == "total"}
    assert float(totals["static"]["sqnr_db"]) > 30
    loaded = load_model(path)
    assert loaded.quantized is not None
    floats = sorted(loaded.quantized.float_layers)
    assert floats and not set(floats) - set(loaded.quantized.qparams)
    capsys.readouterr()
    assert main(["explain", str(path), "--layer", floats[0], "--scheme", "static", "--input", str(x)]) == 0
    assert "in float32 between DequantizeLinear and QuantizeLinear" in capsys.readouterr().out
