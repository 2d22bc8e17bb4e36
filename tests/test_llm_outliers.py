"""SmoothQuant (``--smoothquant ALPHA``) and the decoder block with activation outlier channels (issue 18): the
migration's formula and fp32 equivalence, which layers it touches, and the SQNR ordering docs/llm.md explains,
asserted on numbers computed here (benchmarks/llm_outlier_sqnr.py prints the same table)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli import main
from accelsim.config.loader import load_hardware, load_workload
from accelsim.config.workload import Workload
from accelsim.values.runner import channel_absmax, run_values
from accelsim.values.smoothquant import smooth, smoothing_factors, smoothing_groups
from accelsim.values.tensors import materialize

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from llm_outlier_sqnr import OUTPUT, sqnr_table

HW = load_hardware("default")
NORM_READERS = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}
OUTLIERS = [53, 71, 100, 182, 221, 224]


@pytest.fixture(scope="module")
def block():
    workload = load_workload("llama_outlier_block")
    return workload, materialize(workload)


def test_groups_are_the_norms_and_their_linears(block) -> None:
    """q/k/v share the first norm, gate/up the second; o_proj and down_proj read no norm and keep their weights."""
    workload, _ = block
    assert {g.norm: g.linears for g in smoothing_groups(workload)} == NORM_READERS


def test_a_norm_read_by_anything_else_is_left_alone() -> None:
    doc = {
        "schema_version": 1,
        "name": "n",
        "input_shape": [4, 16],
        "layers": [
            {"name": "norm", "type": "rmsnorm"},
            {"name": "fc", "type": "linear", "out_features": 16},
            {"name": "res", "type": "add", "inputs": ["fc", "norm"]},
        ],
    }
    assert smoothing_groups(Workload.model_validate(doc)) == []


def test_outlier_channels_are_the_documented_ones(block) -> None:
    workload, tensors = block
    act = channel_absmax(workload, tensors, _fp32_program(workload), {"input_layernorm"})["input_layernorm"]
    assert sorted(np.argsort(act)[-6:].tolist()) == OUTLIERS
    assert np.median(act[OUTLIERS]) > 20 * np.median(act)


def _fp32_program(workload: Workload):
    from accelsim.lowering.program import lower

    return lower(workload, HW, "fp32")


def test_smoothing_balances_activation_and_weight_ranges(block) -> None:
    """At alpha 0.5 each channel's activation range after smoothing equals its weight range (the definition:
    max|X_j / s_j| = max|W_j s_j|); the fp32 network computes the same function (float32 rounding only)."""
    workload, tensors = block
    smoothed = smooth(workload, HW, tensors, 0.5)
    program = _fp32_program(workload)
    act = channel_absmax(workload, smoothed, program, set(NORM_READERS))
    for norm, linears in NORM_READERS.items():
        w = np.max([np.abs(smoothed.params[name].weight).max(axis=0) for name in linears], axis=0)
        np.testing.assert_allclose(act[norm], w, rtol=1e-5)
    for name in ("self_attn.o_proj", "mlp.down_proj"):
        assert smoothed.params[name].weight is tensors.params[name].weight
    before = run_values(workload, HW, "fp32", tensors=tensors).output
    after = run_values(workload, HW, "fp32", tensors=smoothed).output
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


def test_smoothing_factors_formula() -> None:
    act = np.array([100.0, 1.0, 0.0], np.float32)
    w = [np.array([[0.5, 2.0, 1.0], [-0.25, 1.0, 0.0]], np.float32), np.array([[1.0, -4.0, 0.0]], np.float32)]
    for alpha in (0.0, 0.5, 0.8, 1.0):
        want = np.maximum(np.maximum(act, 1e-5) ** alpha / np.array([1.0, 4.0, 1.0]) ** (1 - alpha), 1e-5)
        np.testing.assert_allclose(smoothing_factors(act, w, alpha), want.astype(np.float32), rtol=1e-6)


@pytest.fixture(scope="module")
def table():
    return sqnr_table()


def test_sqnr_ordering(table) -> None:
    """Computed, not stored: per-tensor static int8 suffers from the outlier channels (far below weight-only
    int8 where the norms feed the projections and at the block output); per-token scales help; SmoothQuant
    recovers several dB for static and brings per-token W8A8 to weight-only int8's level; int4 weights suffer
    too (the outlier channels multiply their rounding)."""
    woq8, woq4 = table["woq int8 (per channel)"], table["woq int4, group 128"]
    dyn_tensor = table["dynamic per tensor (onnx, uint8)"]
    dyn_token = table["dynamic per token (pytorch_per_token)"]
    static, static_sq = table["static per tensor (minmax)"], table["static + SmoothQuant 0.5"]
    token_sq = table["dynamic per token + SmoothQuant 0.5"]
    for column in ("self_attn.q_proj", "mlp.gate_proj", OUTPUT):
        assert static[column] < woq8[column] - 10
        assert static[column] < dyn_tensor[column] < dyn_token[column]
        assert static_sq[column] > static[column] + 3
        assert token_sq[column] > dyn_token[column] + 3
        assert token_sq[column] > woq8[column] - 1
        assert woq4[column] < woq8[column] - 10


def test_compare_with_smoothquant_records_alpha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI: static and dynamic run on migrated weights (their SQNR rises), fp32 and woq do not."""
    out = tmp_path / "out"
    argv = ["compare", "llama_outlier_block", "--schemes", "fp32", "woq", "static", "--out", str(out)]
    assert main([*argv, "--smoothquant", "0.5"]) == 0
    folder = out / "llama_outlier_block" / "default-32x32"
    meta = json.loads((folder / "results.json").read_text())["meta"]
    assert meta["runs"]["static"]["smoothquant"] == 0.5 and meta["runs"]["woq"]["smoothquant"] is None
    capsys.readouterr()


def test_layernorm_scale_and_shift_are_divided() -> None:
    """A layernorm's gamma and beta both carry X / s; the network's fp32 output is unchanged and its quantized
    runs take the migrated weights."""
    doc = {
        "schema_version": 1,
        "name": "ln",
        "input_shape": [16, 32],
        "layers": [
            {"name": "norm", "type": "layernorm"},
            {"name": "a", "type": "linear", "out_features": 24},
            {"name": "b", "type": "linear", "inputs": ["norm"], "out_features": 8},
            {"name": "sum", "type": "concat", "inputs": ["a", "b"], "axis": -1},
        ],
    }
    workload = Workload.model_validate(doc)
    tensors = materialize(workload)
    smoothed = smooth(workload, HW, tensors, 0.8)
    s = tensors.params["norm"].weight / smoothed.params["norm"].weight
    np.testing.assert_allclose(tensors.params["norm"].bias / smoothed.params["norm"].bias, s, rtol=1e-5)
    np.testing.assert_allclose(smoothed.params["b"].weight, tensors.params["b"].weight * s, rtol=1e-6)
    before = run_values(workload, HW, "fp32", tensors=tensors).output
    np.testing.assert_allclose(run_values(workload, HW, "fp32", tensors=smoothed).output, before, rtol=1e-4, atol=1e-5)
