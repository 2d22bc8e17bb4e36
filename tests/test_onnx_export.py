"""``accelsim export onnx`` closes the loop with ONNX Runtime (issue 16, docs/onnx.md "Export").

- fp32: the exported graph, run by ORT, equals accelsim's fp32 values in every layer (rtol 1e-5);
- static: the QDQ export, fused by ORT at ``ORT_ENABLE_EXTENDED`` (QLinearConv, QGemm, QLinearAdd...), gives
  accelsim's static codes (requant mode ``float_half_even``) in every layer; power-of-two scales force exact
  ties and saturation, and the test fails if the requant mode is swapped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.cli import main
from accelsim.config.loader import load_hardware, load_workload
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import lower
from accelsim.onnx import import_onnx
from accelsim.onnx.export import codes_name, export, export_model
from accelsim.quant.qparams import QParams
from accelsim.values.runner import NetworkValues, run_values
from accelsim.values.tensors import WorkloadTensors, materialize

sys.path.insert(0, str(Path(__file__).parent))
from ort_reference import fused, node_outputs, session, unfused_qdq_groups

ROOT = Path(__file__).parents[1]
ORT_MODE = ["requant.rounding=float_half_even"]
#: shipped workloads whose static export ORT computes bit for bit
EXACT = ["tiny_cnn", "mlp", "resnet18", "bert_base_layer"]
#: the float ops ORT leaves between DequantizeLinear and QuantizeLinear (it has no QLinear form of them): they
#: run in float as the static run's vector unit does (dequantize, float op, quantize); all other groups fuse
UNFUSED = {"bert_base_layer": {"LayerNormalization"}}


def _static(name: str) -> tuple[NetworkValues, dict[str, np.ndarray]]:
    """A shipped workload's static run (float_half_even) and every tensor ORT computes from its export."""
    workload = load_workload(name)
    tensors = materialize(workload)
    exported = export(workload, load_hardware(None, ORT_MODE), "static", tensors)
    graph = fused(exported.model)
    assert {group.op_type for group in unfused_qdq_groups(graph)} == UNFUSED.get(name, set())
    values = run_values(workload, load_hardware(None, ORT_MODE), "static", tensors=tensors)
    return values, node_outputs(graph, tensors.inputs)


@pytest.mark.parametrize("name", [*EXACT, "mobilenetv2"])
def test_fp32_export_equals_accelsim(name: str) -> None:
    workload = load_workload(name)
    hw = load_hardware()
    tensors = materialize(workload)
    exported = export(workload, hw, "fp32", tensors)
    onnx.checker.check_model(exported.model, full_check=True)
    values = run_values(workload, hw, "fp32", tensors=tensors)
    (output,) = session(exported.model).run(None, tensors.inputs)
    np.testing.assert_allclose(output, values.output, rtol=1e-5, atol=1e-5 * np.abs(values.output).max())
    every = node_outputs(exported.model, tensors.inputs)
    for layer, lv in values.layers.items():
        ref = lv.output
        np.testing.assert_allclose(every[exported.tensors[layer]], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("name", EXACT)
def test_static_export_gives_accelsims_codes(name: str) -> None:
    """Every layer's codes, not only the output: one difference cannot hide behind a later layer."""
    values, ort = _static(name)
    for layer, lv in values.layers.items():
        assert lv.codes is not None
        np.testing.assert_array_equal(ort[codes_name(layer)], lv.codes, err_msg=f"{name}: layer {layer}")


def test_mobilenetv2_differs_only_from_a_residual_add_on() -> None:
    """Measured: ORT fuses all of MobileNetV2's export too, but its QLinearAdd (MLAS's float FMA form)
    rounds a few sums differently from the runner's add: every layer before the first add that differs is
    exact, and that add is off by one code at a few positions (docs/onnx.md)."""
    values, ort = _static("mobilenetv2")
    for layer, lv in values.layers.items():
        assert lv.codes is not None
        diff = np.abs(ort[codes_name(layer)].astype(np.int64) - lv.codes)
        if diff.any():
            assert lv.type == "add" and diff.max() == 1 and np.count_nonzero(diff) < diff.size // 1000, layer
            break
    else:
        pytest.fail("mobilenetv2's export is exact now: move it to EXACT and correct docs/onnx.md")


TIES = {
    "schema_version": 1,
    "name": "ties",
    "batch": 8,
    "input_shape": [16],
    "layers": [{"name": "fc", "type": "linear", "out_features": 8, "bias": False}],
}


def _tie_run(mode: str) -> tuple[Workload, WorkloadTensors, NetworkValues]:
    """A linear layer on power-of-two scales: input ``2**-2``, weights ``2**-5`` (per channel, max code 127),
    output ``2**-6`` with zero point 128: the multiplier is 0.5, so every odd accumulator is an exact half, and
    wide accumulators saturate at both ends."""
    workload = validate(Workload, TIES, "ties")
    rng = np.random.default_rng(0)
    codes = rng.integers(-3, 4, (8, 16))
    codes[:, 0] = 127  # every channel's largest magnitude is 127 codes: its scale is exactly 2**-5
    k = rng.integers(-3, 4, (8, 16))
    k[:, 0] = [0, 0, 0, 0, 0, 0, 3, -3]  # the last two samples saturate high and low, the others stay in range
    x = k.astype(np.float32) * np.float32(2**-2)
    tensors = materialize(workload, weights={"fc.weight": (codes * 2.0**-5).astype(np.float32)}, inputs={"input": x})
    qparams = {
        "input": QParams(np.float32([2**-2]), np.int32([128]), "uint8"),
        "fc": QParams(np.float32([2**-6]), np.int32([128]), "uint8"),
    }
    hw = load_hardware(None, [f"requant.rounding={mode}"])
    values = run_values(workload, hw, "static", tensors=tensors, qparams=qparams, keep_results=["fc"])
    return workload, tensors, values


def test_ties_and_saturation_follow_ort_rounding() -> None:
    workload, tensors, values = _tie_run("float_half_even")
    record = values.layers["fc"].results[0].tensors
    assert float(record["weight_q"].values.dtype.itemsize) == 1 and np.all(record["weight_q"].qparams.scale == 2**-5)
    acc = record["acc"].values
    ties = int((acc % 2 != 0).sum())
    program = lower(workload, load_hardware(None, ORT_MODE), "static")
    ort = node_outputs(fused(export_model(workload, program, tensors, values).model), tensors.inputs)[codes_name("fc")]
    codes = values.layers["fc"].codes
    assert codes is not None
    np.testing.assert_array_equal(ort, codes)
    assert ties > 20 and (codes == 0).any() and (codes == 255).any(), "the case must hold ties and saturate"
    _, _, swapped = _tie_run("tflite")  # half away from zero: the same ties round the other way half the time
    assert int((swapped.layers["fc"].stored != ort).sum()) > ties // 4


def test_imported_model_round_trips() -> None:
    """An ONNX model imported and exported again computes what the original computes in ORT."""
    model = ROOT / "workloads" / "residual_cnn.onnx"
    imported = import_onnx(model, batch=2)
    x = np.random.default_rng(1).standard_normal((2, *imported.workload.input_shape), dtype=np.float32)
    tensors = imported.tensors({"x": x})
    exported = export(imported.workload, load_hardware(), "fp32", tensors)
    (mine,) = session(exported.model).run(None, {"input": x})
    (theirs,) = session(onnx.load(model)).run(None, {"x": x})
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_cli_writes_the_static_model_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.onnx"
    assert main(["export", "onnx", "tiny_cnn", "-o", str(out), "--scheme", "static"]) == 0
    assert "static ONNX model of tiny_cnn" in capsys.readouterr().out
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Add"} <= ops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.onnx"]  # no temporary file left


def test_static_export_needs_ort_arithmetic() -> None:
    workload = load_workload("tiny_cnn")
    with pytest.raises(AccelsimError, match="requant mode tflite is not ONNX Runtime's"):
        export(workload, load_hardware(), "static")
    with pytest.raises(AccelsimError, match="no ONNX export"):
        export(workload, load_hardware(), "dynamic")
