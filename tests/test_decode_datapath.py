"""Issue 18's timing of LLMs on real NPUs against closed forms: the weight path's dequantization unit
(``array.dequant_lanes``) that feeds weight-only codes to the array's float datapath, against the vector unit
dequantizing into SRAM; a prefill on a large array against MACs / (PEs x utilization). (A decode step against
its bytes / bandwidth: tests/test_llm_layers.py.)"""

from __future__ import annotations

from math import ceil

import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.hw import SystolicArray
from accelsim.lowering.program import Lowerer, lower, lowering_options
from accelsim.simulation import RunOptions, simulate

PHONE = "hwconfigs/phone-npu-lpddr5x.yaml"
#: one decode-step projection: a token through a 4096 x 4096 linear layer
PROJECTION = {
    "schema_version": 1,
    "name": "projection",
    "input_shape": [1, 4096],
    "layers": [{"name": "q_proj", "type": "linear", "out_features": 4096, "bias": False}],
}


@pytest.mark.parametrize("weights", ["symmetric", "int4_g128"])
def test_dequant_unit_feeds_the_array_codes(weights: str) -> None:
    """With the unit, the filter buffer holds the codes (1 or 1/2 byte per weight, not float32), the vector unit
    does no dequantization, and each tile takes the longer of its float GEMM on the array and its weights
    passing the unit; without it the vector unit dequantizes every weight into float32 SRAM."""
    workload = validate(Workload, PROJECTION, "w.yaml")
    options = lowering_options("onnx", weights)
    code_bytes = 1 if weights == "symmetric" else 0.5
    with_unit = load_hardware(PHONE)
    without = load_hardware(PHONE, ["array.dequant_lanes=0"])
    hw = with_unit.array
    array = SystolicArray(hw.rows, hw.cols, hw.dataflow, hw.model)
    (layer,) = lower(workload, with_unit, "woq", **options).workload_layers
    for tile in layer.tiles:
        k, n = layer.plan.kt, layer.plan.nt  # one block size divides 4096 evenly
        assert tile.pre_vector_cycles == 0
        gemm = ceil(array.tile_cycles(1, k, n) / hw.float_rate)
        assert tile.compute_cycles == max(gemm, ceil(k * n / hw.dequant_lanes))
        assert tile.sram_read_bytes_filter == k * n * code_bytes
    assert layer.work.vector_cycles < 4096 * 8  # the output's bias and store only
    assert (
        layer.sram_bytes["sram_write_bytes_filter"] - layer.work.dram_read_bytes["weight_scales"]
        == 4096 * 4096 * code_bytes
    )
    (old,) = lower(workload, without, "woq", **options).workload_layers
    vector = Lowerer(without, "woq").vector
    assert sum(t.pre_vector_cycles for t in old.tiles) >= vector.cycles(4096 * 4096) - vector.latency_cycles
    assert old.sram_bytes["sram_write_bytes_filter"] - old.work.dram_read_bytes["weight_scales"] == 4096 * 4096 * 4


def test_weight_only_decode_is_bound_by_the_hardware_not_the_vector_unit() -> None:
    """Llama-2-7B's decode step, weight-only int8 on the phone NPU: with the dequantization unit each layer is
    bound by the longer of its DRAM bytes / bandwidth and its float GEMMs on the array (fp16 at half the int8
    rate: each fold's weights load at 64 per cycle, below LPDDR5X's 68 bytes, so the projections are
    compute-bound and attention, reading a float32 KV cache, memory-bound); the step runs within 10% of the
    sum of those per-layer bounds (layers run one after another), and much faster than with the vector unit
    dequantizing every weight (64 lanes)."""
    from accelsim.config.loader import load_workload

    workload = load_workload("llama2_7b_decode", ["repeat=1"])
    timing = RunOptions(timing_only=True)
    run = simulate(workload, load_hardware(PHONE), "woq", options=timing)
    fast = run.total
    slow = simulate(workload, load_hardware(PHONE, ["array.dequant_lanes=0"]), "woq", options=timing).total
    bound = sum(max(row.roofline_cycles, (row.dram_read_bytes + row.dram_write_bytes) / 68.264) for row in run.rows)
    assert any(row.bound_by == "compute" for row in run.rows) and any(row.bound_by == "memory" for row in run.rows)
    assert bound <= fast.total_cycles < 1.10 * bound, fast.total_cycles / bound
    assert slow.total_cycles > 1.3 * fast.total_cycles
    assert fast.vector_busy_cycles < slow.vector_busy_cycles / 10


def test_prefill_on_a_large_array_approaches_its_macs_over_pes_and_utilization() -> None:
    """Llama-2-7B's prefill (1024 tokens) on the datacenter part (256 x 512 PEs): its projection and MLP GEMMs
    are compute-bound, and together run within 15% of MACs / (PEs x utilization), the utilization being each
    GEMM's closed form on the array (above 0.97: the shapes fill it); the rest of the block is vector work
    (softmax over 1024 x 1024 scores per head, norms, rotary), which the array does not hide."""
    from accelsim.config.loader import load_workload

    hw = load_hardware("hwconfigs/datacenter-hbm.yaml")
    run = simulate(load_workload("llama2_7b_prefill"), hw, "static", options=RunOptions(timing_only=True))
    a = hw.array
    array = SystolicArray(a.rows, a.cols, a.dataflow, a.model)
    simulated = closed_form = 0.0
    for layer, row in zip(run.program.layers, run.rows, strict=True):
        if layer.type == "linear" and layer.name != "lm_head":  # the head runs on the last token only
            view = layer.view
            assert view is not None
            gemm = array.gemm(m=view.m, k=view.k, n=view.n)
            assert gemm.utilization > 0.97 and row.bound_by == "compute"
            closed_form += view.count * view.m * view.k * view.n / (hw.pe_count * gemm.utilization)
            simulated += row.total_cycles
    assert closed_form <= simulated < 1.15 * closed_form, simulated / closed_form


@pytest.mark.parametrize("weights", ["symmetric", "int4_g32"])
def test_explain_says_where_the_weights_are_dequantized(weights: str, capsys: pytest.CaptureFixture[str]) -> None:
    from accelsim.cli import main

    base = ["explain", "mlp", "--layer", "fc1", "--scheme", "woq", "--weights", weights]
    assert main([*base, "--hw", "phone-npu-lpddr5x"]) == 0
    assert "by the array's dequantization unit (128 weights per cycle)" in capsys.readouterr().out
    assert main(base) == 0
    assert "by the vector unit on the way into SRAM" in capsys.readouterr().out
