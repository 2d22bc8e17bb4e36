"""The SimPy engine's timing and traffic against closed forms."""

from __future__ import annotations

from math import ceil

import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.lowering.program import lower
from accelsim.sim.engine import Engine
from accelsim.sim.simulation import dram_of, simulate

FAST_REQUANT = ["requant.lanes=4096", "requant.latency_cycles=0", "vector.lanes=4096", "vector.latency_cycles=0"]


def workload(layers: list[dict], input_shape: list[int], batch: int = 1) -> Workload:
    return validate(Workload, {"schema_version": 1, "name": "t", "batch": batch, "input_shape": input_shape, "layers": layers})


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18", "bert_base_layer"])
@pytest.mark.parametrize("model", ["pipelined", "scalesim"])
def test_ideal_memory_has_no_stalls_and_adds_up(name: str, model: str) -> None:
    """With zero-time DRAM and a requant unit faster than the array, every cycle is compute: per layer,
    the tiles run back to back and only the last output block's requant is exposed (the next layer
    reads what this one stored)."""
    hw = load_hardware(None, [*FAST_REQUANT, f"array.model={model}"])
    program = lower(load_workload(name), hw, "static")
    run = Engine(program, None).run()
    assert all(sum(t.stall_cycles.values()) == 0 for t in run.layers)
    expected = 0
    for layer in program.layers:
        completing = [t for t in layer.tiles if t.post_unit]
        expected += sum(t.compute_cycles for t in layer.tiles) + (completing[-1].post_cycles if completing else 0)
    assert run.total_cycles == expected


def test_bandwidth_bound_layer_runs_at_bandwidth() -> None:
    """A batch-1 linear layer with 16 MiB of int8 weights: DRAM-bound, so cycles ~ bytes / bandwidth."""
    w = workload([{"name": "fc", "type": "linear", "out_features": 4096}], [4096])
    hw = load_hardware(None, ["dram.bandwidth_bytes_per_cycle=16", "dram.latency_cycles=4"])
    run = simulate(w, hw, "static", timing_only=True)
    fc = next(r for r in run.rows if r.layer == "fc")
    moved = fc.dram_read_bytes + fc.dram_write_bytes
    assert fc.dram_read_bytes_weights == 4096 * 4096
    assert abs(fc.total_cycles - moved / 16) / (moved / 16) < 0.01
    assert fc.bound_by == "memory" and fc.stall_cycles_weights > 0


def test_traffic_matches_closed_form_when_everything_fits() -> None:
    """3x3 conv, 16 -> 32 channels on 20x20, padding 1: all operands fit, so each is moved exactly once."""
    c, o, h = 16, 32, 20
    w = workload([{"name": "conv", "type": "conv2d", "out_channels": o, "kernel": 3, "padding": 1}], [c, h, h], batch=2)
    hw = load_hardware(None)
    expected = {  # scheme: (ifmap bytes/elem, weight bytes/elem, scale bytes/channel, output bytes/elem)
        "static": (1, 1, 8, 1),
        "dynamic": (4, 1, 4, 4),
        "woq": (4, 1, 4, 4),
        "fp32": (4, 4, 0, 4),
    }
    for scheme, (xb, wb, sb, yb) in expected.items():
        row = next(r for r in simulate(w, hw, scheme, timing_only=True).rows if r.layer == "conv")
        assert row.dram_read_bytes_ifmap == 2 * c * h * h * xb, scheme
        assert row.dram_read_bytes_weights == o * c * 9 * wb, scheme
        assert row.dram_read_bytes_bias == 4 * o, scheme
        assert row.dram_read_bytes_weight_scales == sb * o, scheme
        assert row.dram_write_bytes_ofmap == 2 * o * h * h * yb, scheme


def test_dynamic_range_pass_reads_the_input_twice_when_it_does_not_fit() -> None:
    """Per-tensor dynamic range needs the whole input first; a 1 MiB fp32 input does not fit a 64 KiB
    ifmap buffer, so the tiles read it again after the range pass."""
    w = workload([{"name": "fc", "type": "linear", "out_features": 64}], [1024, 256])
    small = load_hardware(None, ["sram.ifmap_kib=64"])
    big = load_hardware(None, ["sram.ifmap_kib=4096"])
    x_bytes = 1024 * 256 * 4
    read = lambda hw: next(r for r in simulate(w, hw, "dynamic", timing_only=True).rows if r.layer == "fc").dram_read_bytes_ifmap  # noqa: E731
    assert read(big) == x_bytes
    assert read(small) == 2 * x_bytes
    per_row = next(r for r in simulate(w, small, "dynamic", flavour="tflite", timing_only=True).rows if r.layer == "fc")
    assert per_row.dram_read_bytes_ifmap == x_bytes  # per-row ranges need no separate pass


def test_totals_respect_roofline_and_are_deterministic() -> None:
    w, hw = load_workload("resnet18"), load_hardware("gemmini")
    first = simulate(w, hw, "static", timing_only=True)
    again = simulate(w, hw, "static", timing_only=True)
    assert [r.total_cycles for r in first.rows] == [r.total_cycles for r in again.rows]
    t = first.total
    assert t.total_cycles >= t.compute_cycles
    assert t.total_cycles >= ceil((t.dram_read_bytes + t.dram_write_bytes) / dram_of(hw).peak_bandwidth_bytes_per_cycle)
    assert t.total_cycles == sum(r.total_cycles for r in first.rows)
    assert 0 < t.utilization <= 1


def test_more_bandwidth_never_slows_down() -> None:
    w = load_workload("mobilenetv2")
    cycles = [
        simulate(w, load_hardware(None, [f"dram.bandwidth_bytes_per_cycle={bw}"]), "static", timing_only=True).total.total_cycles
        for bw in (2, 8, 32, 128)
    ]
    assert cycles == sorted(cycles, reverse=True)


def test_a_program_lowered_once_runs_like_a_fresh_lowering() -> None:
    """A prepared (lowered once) program gives the same records as lowering anew; one lowered for
    another workload, hardware or scheme is refused."""
    workload, hw = load_workload("tiny_cnn"), load_hardware(None)
    program = lower(workload, hw, "static")
    fresh = simulate(workload, hw, "static", timing_only=True)
    again = simulate(workload, hw, "static", timing_only=True, program=program)
    assert again.rows == fresh.rows and again.engine.total_cycles == fresh.engine.total_cycles
    with pytest.raises(ValueError, match="lowered for tiny_cnn"):
        simulate(workload, hw, "dynamic", timing_only=True, program=program)
