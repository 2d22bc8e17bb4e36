"""A quantized ONNX model imported to a workload YAML (``accelsim import onnx MODEL_int8.onnx -o W.yaml``)
runs with the model's own quantization: every scheme's values (each layer's stored codes or floats) and
cycles equal the run of the ``.onnx`` itself, for QDQ, QOperator and dynamic models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx_models as om
import ort_reference as ref
import pytest
from onnxruntime.quantization import QuantType

from accelsim.cli import main
from accelsim.config.loader import load_hardware
from accelsim.config.sweep import load_sweep
from accelsim.errors import AccelsimError
from accelsim.model_file import ModelFile, import_to_files, load_model
from accelsim.onnx.quantized_workload import REQUANT_MODE
from accelsim.schemes import SchemeName
from accelsim.simulation import PreparedModel, RunOptions, SchemeRun, simulate

CASES = [
    ("residual_cnn", ref.Recipe("qdq", True)),
    ("residual_cnn", ref.Recipe("qoperator", False, QuantType.QUInt8)),
    ("pools", ref.Recipe("qdq", False, QuantType.QUInt8)),
    ("se_block", ref.Recipe("qoperator", True, QuantType.QInt8, QuantType.QInt8)),
    ("se_block", ref.Recipe("qdq", False, QuantType.QInt8, QuantType.QInt8)),  # float groups
    ("matmul_2d_bias", ref.Recipe("dynamic", True)),
    ("conv_groups_bn_relu", ref.Recipe("dynamic", False, QuantType.QUInt8)),
]


def _saved(name: str, recipe: ref.Recipe, folder: Path) -> Path:
    path = folder / f"{name}_{recipe.name}.onnx"
    onnx.save(ref.quantize(om.BUILDERS[name](), recipe), path)
    return path


def _runs(model: ModelFile) -> dict[str, SchemeRun]:
    """Every scheme on the model, as ``accelsim compare`` runs a quantized model (ORT's requant mode, the
    model's weight format, its codes and activation parameters)."""
    assert model.quantized is not None
    hw = load_hardware()
    hw = hw.model_copy(update={"requant": hw.requant.model_copy(update={"rounding": REQUANT_MODE})})
    options = RunOptions(weights=model.quantized.weights)
    prepared = PreparedModel(tensors=model.tensors(), qparams=model.qparams)
    return {s: simulate(model.workload, hw, s, options=options, prepared=prepared) for s in SchemeName}


@pytest.mark.parametrize("name, recipe", CASES, ids=lambda c: c if isinstance(c, str) else c.name)
def test_the_yaml_runs_the_models_bits_and_cycles(name: str, recipe: ref.Recipe, tmp_path: Path) -> None:
    path = _saved(name, recipe, tmp_path)
    workload, _ = import_to_files(path, tmp_path / "w.yaml", name=path.stem)
    assert workload.quantized is not None and workload.quantized.scheme == (
        "dynamic" if recipe.fmt == "dynamic" else "static"
    )
    direct, yaml = load_model(path), load_model(tmp_path / "w.yaml")
    assert yaml.quantized is not None and direct.quantized is not None
    assert yaml.quantized.weights == direct.quantized.weights
    assert yaml.workload.model_dump(mode="json") == workload.model_dump(mode="json")
    given = {k: v for k, v in direct.quantized.given.items() if k in yaml.quantized.given}
    assert given.keys() == yaml.quantized.given.keys() and given
    mine, theirs = _runs(yaml), _runs(direct)
    for scheme, run in theirs.items():
        other = mine[scheme]
        assert [r.total_cycles for r in other.rows] == [r.total_cycles for r in run.rows], scheme
        assert run.values is not None and other.values is not None
        for layer, lv in run.values.layers.items():
            np.testing.assert_array_equal(other.values.layers[layer].stored, lv.stored, err_msg=f"{scheme} {layer}")


def test_the_cli_writes_a_yaml_whose_run_equals_the_models(tmp_path: Path) -> None:
    """``accelsim import onnx`` then ``accelsim run`` of the YAML and of the model: the same rows (cycles,
    traffic, SQNR, saturations) in results.json under the model's scheme."""
    path = _saved("residual_cnn", ref.Recipe("qoperator", True), tmp_path)
    assert main(["import", "onnx", str(path), "-o", str(tmp_path / "w.yaml"), "--name", path.stem]) == 0
    text = (tmp_path / "w.yaml").read_text()
    assert "quantized: {scheme: static, weights: symmetric, requant: float_half_even}" in text
    for source, out in ((path, "direct"), (tmp_path / "w.yaml", "yaml")):
        assert main(["run", str(source), "--scheme", "static", "--out", str(tmp_path / out)]) == 0
    rows = [json.loads(next((tmp_path / out).rglob("results.json")).read_text())["rows"] for out in ("direct", "yaml")]
    assert rows[0] == rows[1]


def _spec(folder: Path, workloads: list[Path], extra: str = "") -> Path:
    spec = folder / "spec.yaml"
    entries = ", ".join(str(w) for w in workloads)
    spec.write_text(
        f"schema_version: 1\nbase: default\naxes: {{array.rows: [8, 16]{extra}}}\nworkloads: [{entries}]\n"
        "schemes: [static, dynamic, fp32]\ntiming_only: false\n"
    )
    return spec


def test_a_sweep_runs_a_quantized_workload_with_its_own_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quantized model's YAML in a sweep: each point runs the model's own weight codes, int32 biases and
    activation parameters under ORT's requant mode and the model's weight format, as ``accelsim run`` does
    (every point's total row equals that run's on the point's hardware), and the static model's points
    calibrate nothing (a dynamic model run under static has no parameters to give: calibrated, as in
    ``compare``); the spec (with the model's quantization) travels to worker processes by pickle."""
    import pickle

    from accelsim.sweep.points import expand
    from accelsim.sweep.worker import run_point
    from accelsim.values import runner

    paths = []
    for name, recipe in (("residual_cnn", ref.Recipe("qdq", True)), ("matmul_2d_bias", ref.Recipe("dynamic"))):
        path = _saved(name, recipe, tmp_path)
        paths.append(tmp_path / f"{name}.yaml")
        import_to_files(path, paths[-1], name=name)
    sweep = pickle.loads(pickle.dumps(load_sweep(_spec(tmp_path, paths))))
    assert set(sweep.quantized) == {"residual_cnn", "matmul_2d_bias"}
    calls: list[int] = []
    real = runner.calibrate
    monkeypatch.setattr(runner, "calibrate", lambda *a, **k: calls.append(1) or real(*a, **k))
    points = expand(sweep).points
    assert len(points) == 2 * 2 * 3
    for point in points:
        calls.clear()
        got = run_point(sweep, point)
        if point.workload == "residual_cnn":  # the static model's own parameters: nothing calibrated
            assert calls == [], point
        model = load_model(sweep.documents[point.workload][1])
        assert model.quantized is not None
        hw = model.quantized.runtime_hardware(load_hardware(overrides=[f"array.rows={point.overrides['array.rows']}"]))
        options = RunOptions(weights=model.quantized.weights, observer=None, weight_granularity=None)
        prepared = PreparedModel(tensors=model.tensors(), qparams=model.qparams)
        want = simulate(model.workload, hw, point.scheme, options=options, prepared=prepared).total
        for key in ("total_cycles", "dram_read_bytes", "sqnr_db", "max_abs_error", "requant_saturations"):
            assert got[key] == getattr(want, key) or (np.isnan(got[key]) and np.isnan(getattr(want, key))), key


def test_a_weights_axis_over_a_quantized_workload_is_refused(tmp_path: Path) -> None:
    """A quantized model's weight codes are its weight format: a ``weights`` axis over it is one line naming
    the workload entry."""
    path = _saved("matmul_2d_bias", ref.Recipe("dynamic"), tmp_path)
    import_to_files(path, tmp_path / "w.yaml")
    spec = _spec(tmp_path, [tmp_path / "w.yaml"], ", weights: [symmetric, asymmetric]")
    with pytest.raises(AccelsimError, match=r"spec\.yaml: workloads\[0\]: workload '.*' is a quantized model") as exc:
        load_sweep(spec)
    assert "\n" not in str(exc.value) and "weights axis" in str(exc.value)
