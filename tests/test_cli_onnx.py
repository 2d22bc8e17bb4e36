"""ONNX models on the command line: ``accelsim import onnx`` writes a workload and its weights that run to the
same bits and cycles as the model itself; every workload command takes an ``.onnx`` file with its own
weights; ``--input`` / ``--calibration`` give the run and calibration data for ONNX models and YAML
workloads alike, and the fp32 values on a user's input equal ONNX Runtime's."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.cli import main
from accelsim.config.loader import load_hardware
from accelsim.model_file import load_model
from accelsim.onnx import import_onnx
from accelsim.schemes import SCHEMES, SchemeName
from accelsim.simulation import PreparedModel, RunOptions, simulate
from accelsim.values.runner import run_values

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om

ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "workloads" / "residual_cnn.onnx"
#: float32 sums in another order than ONNX Runtime's: a few ulps on outputs of order 1
RTOL, ATOL = 1e-4, 1e-5


def test_shipped_model_is_the_test_builder() -> None:
    """workloads/residual_cnn.onnx is tests/onnx_models.residual_cnn() saved (regenerate it with onnx.save)."""
    assert onnx.load(MODEL) == om.residual_cnn().model


def _total(folder: Path) -> dict[str, str]:
    with open(next(folder.glob("*/*/results.csv")), newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["layer"] == "total")


def test_import_then_run_is_running_the_onnx(tmp_path: Path) -> None:
    """The YAML + .npz that `import onnx` writes and the .onnx itself: the same workload, weights, values
    (every layer's stored tensor, bit for bit) and cycles under every scheme."""
    assert main(["import", "onnx", str(MODEL), "-o", str(tmp_path / "cnn.yaml")]) == 0
    assert (tmp_path / "cnn.npz").is_file()
    direct, written = load_model(MODEL), load_model(tmp_path / "cnn.yaml")
    assert written.workload.weights_file == "cnn.npz"
    assert written.workload.model_dump(exclude={"weights_file"}) == direct.workload.model_dump(exclude={"weights_file"})
    hw = load_hardware()
    for scheme in SCHEMES:
        runs = [
            simulate(m.workload, hw, scheme, prepared=PreparedModel(tensors=m.tensors()), options=RunOptions())
            for m in (direct, written)
        ]
        assert runs[0].total.total_cycles == runs[1].total.total_cycles
        assert runs[0].values is not None and runs[1].values is not None
        for name, layer in runs[0].values.layers.items():
            np.testing.assert_array_equal(layer.stored, runs[1].values.layers[name].stored, err_msg=f"{scheme} {name}")
    for target, out in ((MODEL, "a"), (tmp_path / "cnn.yaml", "b")):
        assert main(["run", str(target), "--out", str(tmp_path / out)]) == 0
    assert _total(tmp_path / "a") == _total(tmp_path / "b")


def test_onnx_runs_with_its_weights_and_the_users_input(tmp_path: Path) -> None:
    """fp32 on the model's own weights and the --input batch (an .npy, or an .npz keyed by the graph input's
    name) equals ONNX Runtime's output on that batch; the seeded draw gives other values."""
    built = om.residual_cnn()
    np.save(tmp_path / "x.npy", built.inputs["x"])
    np.savez(tmp_path / "x.npz", x=built.inputs["x"])
    (expected,) = ort_reference.run(built.model, built.inputs)
    output_layer = import_onnx(MODEL).outputs[built.model.graph.output[0].name]
    model, hw = load_model(MODEL), load_hardware()
    outputs = []
    for data in ("x.npy", "x.npz", None):
        tensors = model.tensors(inputs=tmp_path / data if data else None)
        outputs.append(run_values(model.workload, hw, SchemeName.FP32, tensors=tensors).layers[output_layer].stored)
    np.testing.assert_allclose(outputs[0], expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.allclose(outputs[2], expected, rtol=0.1)


def test_input_and_calibration_drive_the_error_metrics(tmp_path: Path) -> None:
    """--input changes the static scheme's errors; --calibration (two batches here) changes the calibrated
    scales and so the errors again; the same files give the same numbers."""
    x = om.residual_cnn().inputs["x"]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", np.concatenate([4 * x, -4 * x]))
    runs = {
        "seeded": [],
        "input": ["--input", "x.npy"],
        "input-again": ["--input", "x.npy"],
        "calibrated": ["--input", "x.npy", "--calibration", "c.npy"],
    }
    sqnr = {}
    for label, extra in runs.items():
        argv = ["run", str(MODEL), "--scheme", "static", "--out", str(tmp_path / label)]
        assert main(argv + [str(tmp_path / a) if a.endswith(".npy") else a for a in extra]) == 0
        sqnr[label] = float(_total(tmp_path / label)["sqnr_db"])
    assert sqnr["input"] == sqnr["input-again"]
    assert len({sqnr["seeded"], sqnr["input"], sqnr["calibrated"]}) == 3, sqnr
    assert sqnr["calibrated"] < sqnr["input"]  # scales for 4x the range waste codes on this input


def test_yaml_workload_takes_the_users_data(tmp_path: Path) -> None:
    """A YAML workload (no weights file) with --input and --calibration: its seeded weights, the user's batches."""
    model = load_model("tiny_cnn")
    shape = (model.workload.batch, *model.workload.input_shape)
    x = np.random.default_rng(5).uniform(-1, 1, shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", np.concatenate([x, x, x]))
    tensors = model.tensors(inputs=tmp_path / "x.npy", calibration=tmp_path / "c.npy")
    assert tensors is not None
    np.testing.assert_array_equal(tensors.inputs["input"], x)
    assert tensors.calibration["input"].shape == (3 * shape[0], *shape[1:])
    seeded = load_model("tiny_cnn").workload
    from accelsim.values.tensors import materialize

    drawn = materialize(seeded)
    for name, params in drawn.params.items():
        np.testing.assert_array_equal(params.weight, tensors.params[name].weight)
    assert main(["explain", "tiny_cnn", "--layer", "conv1", "--input", str(tmp_path / "x.npy")]) == 0


def test_compare_on_a_model_built_in_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`accelsim compare model.onnx` on an fp32 model the tests build: every scheme, fp32 the exact reference."""
    path = tmp_path / "conv_groups_bn_relu.onnx"
    onnx.save(om.conv_groups_bn_relu().model, path)
    assert main(["compare", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "workload conv_groups_bn_relu" in out and "exact" in out
    assert all(f"\n{scheme}" in out for scheme in SCHEMES)


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "{model}"],
        ["show", "{model}"],
        ["lower", "{model}", "--tiles"],
        ["explain", "{model}", "--layer", "conv0", "--scheme", "dynamic"],
        ["golden", "{model}", "--layer", "conv0", "-o", "{tmp}/g.npz"],
        ["run", "{model}", "--set-workload", "batch=3", "--timing-only", "--out", "{tmp}/r"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_workload_command_takes_an_onnx_model(argv: list[str], tmp_path: Path) -> None:
    assert main([a.replace("{model}", str(MODEL)).replace("{tmp}", str(tmp_path)) for a in argv]) == 0


def test_import_fills_a_dynamic_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A symbolic batch dim: refused without --batch or --input-shape (naming the input), filled with either."""
    model = om.residual_cnn().model
    del model.graph.value_info[:]
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, tmp_path / "dyn.onnx")
    assert main(["import", "onnx", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "a.yaml")]) == 2
    assert "input 'x'" in capsys.readouterr().err and not (tmp_path / "a.yaml").exists()
    assert main(["import", "onnx", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "b.yaml"), "--batch", "4"]) == 0
    assert load_model(tmp_path / "b.yaml").workload.batch == 4
    argv = ["import", "onnx", str(tmp_path / "dyn.onnx"), "-o", str(tmp_path / "c.yaml"), "--name", "net"]
    assert main([*argv, "--input-shape", "x=3,3,16,16"]) == 0
    assert load_model(tmp_path / "c.yaml").workload.batch == 3
    assert load_model(tmp_path / "c.yaml").workload.name == "net"


def test_the_documented_worked_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/onnx.md's worked example as a user pastes it: export.py (torch export, ORT quantize_static), then
    each `accelsim` line of the bash block after it."""
    import re
    import shlex
    import subprocess

    section = (REPO / "docs" / "onnx.md").read_text().split("## The command line")[1].split("\n## ")[0]
    script, commands = re.findall(r"```python\n(.*?)```.*?```bash\n(.*?)```", section, re.DOTALL)[0]
    (tmp_path / "export.py").write_text(script)
    done = subprocess.run([sys.executable, "export.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert re.search(r"ONNX Runtime int8 vs fp32: SQNR \d+\.\d dB", done.stdout), done
    monkeypatch.chdir(tmp_path)
    lines = [shlex.split(part, comments=True) for line in commands.splitlines() for part in line.split("&&")]
    argvs = [argv[1:] for argv in lines if argv[:1] == ["accelsim"]]
    assert len(argvs) == 3
    for argv in argvs:
        assert main(argv) == 0, argv
    assert (tmp_path / "cnn.npz").is_file()
