"""Every scheme end to end: error against fp32 within the documented bounds, attention, determinism.

Bounds: docs/values.md "Measured error" (at the shipped seeds) with about 10 dB of margin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.workload import Workload
from accelsim.lowering.gemm_view import gemm_view
from accelsim.quant import DYNAMIC_FLAVOURS, dynamic_quantize
from accelsim.values.runner import OUTPUT, error_metrics, run_values
from accelsim.values.tensors import materialize

FLOAT_BOUND_DB = 25.0  # woq and every dynamic flavour
STATIC_BOUND_DB = 18.0
RUNS = [("woq", "onnx")] + [("dynamic", f) for f in DYNAMIC_FLAVOURS] + [("static", "onnx")]


@pytest.mark.parametrize("name", ["tiny_cnn", "mlp"])
def test_error_against_fp32_within_bounds(name: str) -> None:
    wl, hw = load_workload(name), load_hardware(None)
    tensors = materialize(wl)
    reference = run_values(wl, hw, "fp32", tensors=tensors)
    assert all(m.sqnr_db == math.inf for m in reference.compare_to(reference).values())
    for scheme, flavour in RUNS:
        values = run_values(wl, hw, scheme, flavour=flavour, tensors=tensors)
        metrics = values.compare_to(reference)
        out = metrics[OUTPUT]
        bound = STATIC_BOUND_DB if scheme == "static" else FLOAT_BOUND_DB
        assert out.sqnr_db > bound, (scheme, flavour, out)
        assert out.top1_agreement is not None and out.top1_agreement >= 0.9, (scheme, flavour, out)
        assert all(m.sqnr_db > bound - 5 for m in metrics.values()), (scheme, flavour, metrics)
        assert 0 < out.max_abs_error < np.abs(reference.output).max()


def test_error_metrics_formulas() -> None:
    ref = np.array([3.0, -4.0], np.float32)
    m = error_metrics(ref, np.array([3.0, -3.0], np.float32))
    assert m.sqnr_db == pytest.approx(10 * math.log10(25.0 / 1.0)) and m.max_abs_error == 1.0
    assert error_metrics(ref, ref).sqnr_db == math.inf
    assert error_metrics(np.zeros(2), np.ones(2)).sqnr_db == -math.inf


def test_bert_attention_runs_under_every_scheme() -> None:
    wl, hw = load_workload("bert_base_layer", ["input_shape=[16, 768]"]), load_hardware(None)
    tensors = materialize(wl)
    reference = run_values(wl, hw, "fp32", tensors=tensors)
    scores = "attention.self.scores"
    # attention probabilities are a distribution per query row
    probs = reference.layers["attention.self.softmax"].output
    assert probs.shape == (1, 12, 16, 16) and np.allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    assert reference.layers["attention.self.context"].output.shape == (1, 16, 768)
    q = reference.layers["attention.self.query"].output.reshape(16, 12, 64).transpose(1, 0, 2)
    k = reference.layers["attention.self.key"].output.reshape(16, 12, 64).transpose(1, 0, 2)
    assert np.allclose(reference.layers[scores].output[0], 0.125 * q @ k.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)
    view = gemm_view(next(s for s in wl.shapes if s.layer.name == scores), wl.batch)
    for scheme, flavour in RUNS:
        values = run_values(wl, hw, scheme, flavour=flavour, tensors=tensors, keep_results=[scores])
        out = values.compare_to(reference)[OUTPUT]
        assert out.sqnr_db > (STATIC_BOUND_DB if scheme == "static" else FLOAT_BOUND_DB), (scheme, flavour, out)
        assert out.top1_agreement is None  # [tokens, hidden] is not a classifier output
        assert len(values.layers[scores].results) == view.count  # one GEMM per head, as lowered
        if flavour in ("onnx", "pytorch") and scheme == "dynamic":  # per tensor: one range over all heads
            whole = dynamic_quantize(values.layers["attention.self.query"].output.reshape(-1, 768), flavour)[1]
            for r in values.layers[scores].results:
                used = r.tensors["input_q"].qparams
                assert used.axis is None and used.scale == whole.scale and used.zero_point == whole.zero_point
    first = values.layers[scores].results[0]  # the static run (last)
    assert first.tensors["input_q"].dtype == first.tensors["weight_q"].dtype == "int8"
    assert first.settings["alpha"] == 0.125


def _with_extra_layer(wl: Workload) -> Workload:
    """The workload with a side branch inserted after conv1 (conv2 still reads conv1)."""
    doc = wl.model_dump(exclude_unset=True)
    doc["layers"].insert(1, {"name": "extra", "type": "conv2d", "inputs": ["input"], "out_channels": 4, "kernel": 1})
    doc["layers"][2]["inputs"] = ["conv1"]
    return Workload.model_validate(doc)


def test_determinism() -> None:
    wl, hw = load_workload("tiny_cnn"), load_hardware(None)
    first = run_values(wl, hw, "static")
    again = run_values(wl, hw, "static")
    other = run_values(wl, hw, "static", seed=1)
    for name, lv in first.layers.items():
        assert np.array_equal(lv.codes, again.layers[name].codes) and lv.codes.dtype == again.layers[name].codes.dtype
        assert np.array_equal(lv.output, again.layers[name].output)
    assert not np.array_equal(first.output, other.output)
    # per-layer streams: a new layer leaves every other tensor's bits alone
    base, extended = materialize(wl), materialize(_with_extra_layer(wl))
    assert np.array_equal(base.inputs["input"], extended.inputs["input"])
    assert np.array_equal(base.calibration["input"], extended.calibration["input"])
    assert not np.array_equal(base.inputs["input"], base.calibration["input"])
    for name, p in base.params.items():
        assert np.array_equal(p.weight, extended.params[name].weight) and np.array_equal(
            p.bias, extended.params[name].bias
        )


def test_tensor_distributions() -> None:
    wl = load_workload("bert_base_layer", ["input_shape=[16, 768]"])
    t = materialize(wl, calibration_batches=3)
    w = t.params["intermediate.dense"].weight  # GELU follows: gain 2
    assert w.shape == (3072, 768) and w.dtype == np.float32
    assert w.std() == pytest.approx(math.sqrt(2 / 768), rel=0.02)
    assert t.params["output.dense"].weight.std() == pytest.approx(math.sqrt(1 / 3072), rel=0.02)
    gamma = t.params["output.LayerNorm"]
    assert abs(gamma.weight.mean() - 1) < 0.01 and abs(gamma.bias.mean()) < 0.01
    assert t.calibration["input"].shape == (3, 16, 768) and t.inputs["input"].shape == (1, 16, 768)
    values = run_values(wl, load_hardware(None), "static", tensors=t)  # calibrated on three batches
    assert values.scheme == "static" and values.variant == "tflite"
