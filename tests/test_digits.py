"""Accuracy on real data (issue 17): the digits split, the shipped trained workloads, per-scheme top-1 through
the bit-exact kernels, and ``--data`` on the command line.

Nothing is trained here: the tests load the shipped weights (workloads/digits-*.npz, written by
tools/train_digits.py) and hold accelsim's fp32 top-1 to the number that script printed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli import GRANULARITY_NAMES, OBSERVER_NAMES, main
from accelsim.config import Workload, load_hardware, load_workload
from accelsim.lowering.program import Program
from accelsim.quant import DYNAMIC_FLAVOURS, OBSERVERS
from accelsim.quant.options import WEIGHT_GRANULARITIES
from accelsim.values.accuracy import Variant, calibrate_on, evaluate, sweep_variants, variant
from accelsim.values.labelled_data import digits_split, load_labelled, workload_classes
from accelsim.values.runner import Calibration, run_values
from accelsim.values.tensors import materialize

#: ``python tools/train_digits.py`` printed these fp32 test top-1 (correct of 537), PyTorch and accelsim alike
TRAINED_TOP1 = {"digits-mlp": ("0.959032", 515), "digits-cnn": ("0.968343", 520)}


def _data(workload_name: str, calibration_size: int | None = None):  # type: ignore[no-untyped-def]
    wl = load_workload(workload_name)
    classes = workload_classes(wl.shapes[-1].output_shape, wl.name)
    return wl, load_labelled("digits", tuple(wl.input_shape), classes, calibration_size=calibration_size)


def test_digits_split_is_fixed_and_disjoint() -> None:
    parts = digits_split()
    assert {k: len(y) for k, (_, y) in parts.items()} == {"train": 1080, "calibration": 180, "test": 537}
    x = np.concatenate([parts[k][0] for k in parts])
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    from sklearn.datasets import load_digits

    digits = load_digits()
    test_x, test_y = parts["test"]
    index = np.flatnonzero(np.arange(1797) % 10 >= 7)  # the documented rule: index mod 10 in 7..9
    np.testing.assert_array_equal(test_y, digits.target[index])
    np.testing.assert_array_equal(test_x, (digits.data[index] / 16).astype(np.float32))
    assert set(np.unique(test_y)) == set(range(10))


def test_cli_choices_are_the_tables() -> None:
    assert OBSERVER_NAMES == tuple(OBSERVERS) and GRANULARITY_NAMES == WEIGHT_GRANULARITIES


@pytest.mark.parametrize("name", sorted(TRAINED_TOP1))
def test_shipped_weights_give_the_trained_fp32_accuracy(name: str) -> None:
    wl, data = _data(name)
    (row,) = evaluate(wl, load_hardware(None), materialize(wl).params, data, [Variant("fp32")])
    printed, correct = TRAINED_TOP1[name]
    assert (f"{row.top1:.6f}", row.correct, row.images, row.agree) == (printed, correct, 537, 537)


def test_per_scheme_accuracy_is_reproducible_bit_for_bit() -> None:
    """Two evaluations of every scheme (a flavour, an observer and a granularity each) give the same
    predictions and so the same records; the quantized schemes stay close to fp32 on this model."""
    wl, data = _data("digits-cnn")
    hw = load_hardware(None)
    variants = [
        variant("fp32"),
        variant("woq", granularity="per_tensor"),
        variant("dynamic", flavour="tflite"),
        variant("static", observer="percentile"),
    ]
    first = [r.record() for r in evaluate(wl, hw, materialize(wl).params, data, variants)]
    second = [r.record() for r in evaluate(wl, hw, materialize(wl).params, data, variants)]
    assert first == second
    assert [r["scheme"] for r in first] == ["fp32", "woq", "dynamic", "static"]
    assert all(r["images"] == 537 and r["agreement"] > 0.98 for r in first)


def test_sweep_variants_cover_every_choice() -> None:
    labels = [v.label for v in sweep_variants(["fp32", "woq", "dynamic", "static"])]
    assert len(labels) == len(set(labels)) == 1 + 2 + 2 * len(DYNAMIC_FLAVOURS) + 2 * 3
    assert "static moving_average_minmax per_tensor" in labels and "dynamic pytorch_qnnpack per_channel" in labels


def test_calibration_streams_a_smaller_last_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """150 calibration images at batch 100 run as 100 + 50, the second through a workload and program of
    batch 50: every image is fed once, in order."""
    wl, data = _data("digits-cnn", calibration_size=150)
    fed: list[tuple[int, int, int]] = []
    feed = Calibration.feed

    def recording(self: Calibration, w: Workload, p: Program, sources: dict[str, np.ndarray]) -> None:
        first = p.workload_layers[0].view
        fed.append((w.batch, first.m if first else 0, sources["input"].shape[0]))
        np.testing.assert_array_equal(sources["input"], data.calibration_x[100 * (len(fed) - 1) :][: w.batch])
        feed(self, w, p, sources)

    monkeypatch.setattr(Calibration, "feed", recording)
    qparams = calibrate_on(wl, load_hardware(None), materialize(wl).params, data.calibration_x, "minmax")
    assert fed == [(100, 100 * 64, 100), (50, 50 * 64, 50)]
    assert "conv1" in qparams and "fc" in qparams


@pytest.mark.parametrize("name", sorted(TRAINED_TOP1))
def test_static_per_tensor_weights_fused_requant_equals_the_accumulators(name: str) -> None:
    """Per-tensor weight scales on the fused array -> requant path (no int32 tensor kept) give the codes of
    the path that keeps the accumulators: the fused epilogue reads one multiplier per output channel, so a
    per-tensor plan must not reach it (it read past the one multiplier before: top-1 fell to ~8%)."""
    wl = load_workload(name)
    hw = load_hardware(None)
    tensors = materialize(wl)
    gemms = [s.layer.name for s in wl.shapes if s.layer.type in ("conv2d", "linear")]
    fused = run_values(wl, hw, "static", tensors=tensors, weight_granularity="per_tensor")
    kept = run_values(wl, hw, "static", tensors=tensors, weight_granularity="per_tensor", keep_results=gemms)
    for layer in fused.layers:
        np.testing.assert_array_equal(fused.layers[layer].stored, kept.layers[layer].stored, err_msg=layer)
    assert kept.layers[gemms[0]].results[0].settings["weight_granularity"] == "per_tensor"


def test_user_npz_gives_the_digits_numbers(tmp_path: Path) -> None:
    """The same images as an ``.npz`` (x, y, x_calibration) measure what ``--data digits`` does."""
    parts = digits_split()
    buffer = io.BytesIO()
    np.savez(buffer, x=parts["test"][0], y=parts["test"][1], x_calibration=parts["calibration"][0])
    (tmp_path / "d.npz").write_bytes(buffer.getvalue())
    outs = []
    for data in ("digits", str(tmp_path / "d.npz")):
        out = tmp_path / data.replace("/", "_")
        assert main(["compare", "digits-mlp", "--schemes", "fp32", "static", "--data", data, "--out", str(out)]) == 0
        meta = json.loads((out / "digits-mlp" / "default-32x32" / "results.json").read_text())["meta"]
        outs.append(meta["accuracy"]["rows"])
    assert outs[0] == outs[1]


def test_compare_with_data_writes_accuracy_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["compare", "digits-mlp", "--data", "digits", "--accuracy-sweep", "--out", str(out), "--report"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "top-1 on digits: 537 test images, static calibrated on 180" in printed
    folder = out / "digits-mlp" / "default-32x32"
    meta = json.loads((folder / "results.json").read_text())["meta"]
    accuracy = meta["accuracy"]
    # fp32; woq and static (3 observers) at two weight granularities; dynamic: every flavour at two
    assert accuracy["data"]["name"] == "digits" and len(accuracy["rows"]) == 1 + 2 + 6 + 2 * len(DYNAMIC_FLAVOURS)
    fp32 = accuracy["rows"][0]
    assert (fp32["scheme"], fp32["correct"], fp32["agree"]) == ("fp32", TRAINED_TOP1["digits-mlp"][1], 537)
    assert meta["runs"]["static"]["observer"] == "minmax"
    assert meta["runs"]["woq"]["weight_granularity"] == "per_channel"
    report = (folder / "report.md").read_text()
    assert "## Accuracy on labelled data" in report and "figures/accuracy.svg" in report
    assert (folder / "figures" / "accuracy.svg").read_bytes().startswith(b"<?xml")
    conclusions = report.split("## Conclusions")[1].split("##")[0]
    assert conclusions.strip().startswith("- Pick **") and "against fp32's 95.90%" in conclusions
    # a later run without --data keeps the table; a report of the folder still shows it
    assert main(["run", "digits-mlp", "--scheme", "static", "--out", str(out)]) == 0
    assert json.loads((folder / "results.json").read_text())["meta"]["accuracy"] == accuracy


def test_calibration_size_takes_the_first_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "digits-cnn", "--data", "digits", "--calibration-size", "50", "--out", str(tmp_path)]
    argv += ["--observer", "percentile", "--granularity", "per_tensor", "--report"]
    assert main(argv) == 0
    assert "static calibrated on 50" in capsys.readouterr().out
    folder = tmp_path / "digits-cnn" / "default-32x32"
    meta = json.loads((folder / "results.json").read_text())["meta"]
    assert meta["accuracy"]["data"]["calibration_images"] == 50
    (row,) = meta["accuracy"]["rows"]
    assert (row["scheme"], row["observer"], row["granularity"]) == ("static", "percentile", "per_tensor")
    assert meta["runs"]["static"]["observer"] == "percentile"
    report = (folder / "report.md").read_text()
    assert "static (requant rounding tflite, observer percentile, per-tensor weight scales)" in report
    assert "No pick: the accuracy table lacks fp32" in report  # one scheme: nothing to weigh it against


def test_progress_is_told_every_batch_of_every_variant() -> None:
    """The progress bar's total: fp32 (always run first) and each other variant, 6 batches each (5 x 100 + 37)."""
    wl, data = _data("digits-mlp")
    calls: list[None] = []
    variants = [variant("fp32"), variant("woq"), variant("static", observer="moving_average_minmax")]
    rows = evaluate(wl, load_hardware(None), materialize(wl).params, data, variants, done=lambda: calls.append(None))
    assert len(calls) == 3 * 6 and [r.images for r in rows] == [537] * 3
