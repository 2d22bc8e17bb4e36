"""The simulation commands end to end: run, compare, lower, explain, golden."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from numerics_refs import tfl_multiply_by_quantized_multiplier, tfl_srdhm

from accelsim.cli import main
from accelsim.explain import fixed_point_steps


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_results_and_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "tiny_cnn", "--scheme", "static", "--timing-only", "--out", str(tmp_path))
    assert code == 0 and "total:" in out
    folder = tmp_path / "tiny_cnn" / "default-32x32"
    rows = list(csv.DictReader((folder / "results.csv").open()))
    names = [r["layer"] for r in rows]
    assert names[0] == "input.quantize" and names[-2:] == ["output.dequantize", "total"]
    assert sum(int(r["total_cycles"]) for r in rows[:-1]) == int(rows[-1]["total_cycles"])
    assert json.loads((folder / "timeline.json").read_text())["static"]


def test_runs_of_other_schemes_accumulate_and_overrides_get_their_own_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for scheme in ("static", "fp32"):
        assert run_cli(capsys, "run", "mlp", "--scheme", scheme, "--timing-only", "--out", str(tmp_path))[0] == 0
    rows = list(csv.DictReader((tmp_path / "mlp" / "default-32x32" / "results.csv").open()))
    assert {r["scheme"] for r in rows} == {"static", "fp32"}
    assert run_cli(capsys, "run", "mlp", "--set", "array.rows=8", "--timing-only", "--out", str(tmp_path))[0] == 0
    assert len(list((tmp_path / "mlp").iterdir())) == 2


def test_compare_marks_fastest_and_leanest_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "compare", "tiny_cnn", "--out", str(tmp_path))
    assert code == 0
    lines = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("fp32", "woq", "dynamic", "static")
    }
    assert set(lines) == {"fp32", "woq", "dynamic", "static"}
    assert "*" in lines["static"] and "exact" in lines["fp32"]
    rows = list(csv.DictReader((tmp_path / "tiny_cnn" / "default-32x32" / "results.csv").open()))
    totals = {r["scheme"]: r for r in rows if r["layer"] == "total"}
    assert 20 < float(totals["static"]["sqnr_db"]) < 80


def test_lower_prints_tiles(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "lower", "tiny_cnn", "--hw", "edge-npu", "--tiles")
    assert code == 0 and "packed" in out and "compute cycles" in out and "weight scale bytes" in out


def test_explain_answers_the_dynamic_question(capsys: pytest.CaptureFixture[str]) -> None:
    """Under dynamic range quantization, are activations stored in float, and is the conv output before
    ReLU float? The simulator answers with its own numbers."""
    code, out, _ = run_cli(capsys, "explain", "tiny_cnn", "--layer", "conv1", "--scheme", "dynamic")
    assert code == 0
    assert "input activations are stored as float32" in out
    assert "quantize float32 -> uint8" in out
    assert "Answer: yes, activations are stored in float32" in out and "output before relu is float32" in out


def test_explain_static_shows_the_requant_registers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "explain", "tiny_cnn", "--layer", "conv2", "--scheme", "static")
    assert code == 0
    for fragment in ("M0 = ", "int64 product acc * M0 = ", "RoundingDivideByPOT", "int32 accumulator", "of 32 bits"):
        assert fragment in out


def test_explain_register_steps_equal_tflite() -> None:
    """The register-by-register example explain prints (the kernels' gemmlowp steps) equals TFLite's
    SaturatingRoundingDoublingHighMul and MultiplyByQuantizedMultiplier, transcribed in the tests."""
    rng = np.random.default_rng(0)
    acc = [*rng.integers(-(2**31), 2**31, 300).tolist(), -(2**31), 2**31 - 1, 0, -1]
    for m0, shift in ((1 << 30, -3), (1518500250, -9), (2**31 - 1, 1), (1176055960, -7), (-(2**31), 0), (1 << 30, 4)):
        for a in acc:
            wrapped = (a * (1 << max(shift, 0)) + 2**31) % 2**32 - 2**31
            assert fixed_point_steps(a, m0, shift) == (
                tfl_srdhm(wrapped, m0),
                tfl_multiply_by_quantized_multiplier(a, m0, shift),
            )


def test_golden_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conv.npz"
    code, _, _ = run_cli(capsys, "golden", "tiny_cnn", "--layer", "conv2", "-o", str(out))
    assert code == 0
    data = np.load(out)
    assert data["input_q"].dtype == np.int8 and data["weight_q"].dtype == np.int8 and data["acc"].dtype == np.int32
    assert data["output_q"].shape == (2, 32, 8, 8)
    assert json.loads(str(data["meta_json"]))["scheme"] == "static"
    assert run_cli(capsys, "golden", "tiny_cnn", "--layer", "add", "-o", str(out))[0] == 2


@pytest.mark.parametrize("scheme", ["fp32", "woq", "dynamic", "static"])
def test_explain_every_kind_of_layer(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Attention matmuls (two activations, heads, alpha), a GELU linear and a vector-unit add, every scheme."""
    for layer in ("attention.self.scores", "attention.self.context", "intermediate.dense", "attention.output.add"):
        code, out, err = run_cli(
            capsys,
            "explain",
            "bert_base_layer",
            "--set-workload",
            "input_shape=[16, 768]",
            "--layer",
            layer,
            "--scheme",
            scheme,
        )
        assert code == 0 and err == "" and out.startswith(f"layer {layer}"), (layer, err)
    if scheme == "static":
        assert (
            "alpha 0.125 is folded into the requant multiplier"
            in run_cli(
                capsys,
                "explain",
                "bert_base_layer",
                "--set-workload",
                "input_shape=[16, 768]",
                "--layer",
                "attention.self.scores",
                "--scheme",
                "static",
            )[1]
        )
