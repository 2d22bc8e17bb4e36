"""The SimPy engine's timing and traffic against closed forms."""

from __future__ import annotations

from math import ceil

import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.hw import DramChannel
from accelsim.lowering.program import LoweredLayer, Program, Tile, Unit, lower
from accelsim.simulation import PreparedModel, RunOptions, dram_of, simulate
from accelsim.timing.engine import Engine, EngineRun

FAST_REQUANT = ["requant.lanes=4096", "requant.latency_cycles=0", "vector.lanes=4096", "vector.latency_cycles=0"]


def workload(layers: list[dict], input_shape: list[int], batch: int = 1) -> Workload:
    return validate(
        Workload, {"schema_version": 1, "name": "t", "batch": batch, "input_shape": input_shape, "layers": layers}
    )


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
    run = simulate(w, hw, "static", options=RunOptions(timing_only=True))
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
        row = next(r for r in simulate(w, hw, scheme, options=RunOptions(timing_only=True)).rows if r.layer == "conv")
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
    read = lambda hw: (
        next(
            r for r in simulate(w, hw, "dynamic", options=RunOptions(timing_only=True)).rows if r.layer == "fc"
        ).dram_read_bytes_ifmap
    )
    assert read(big) == x_bytes
    assert read(small) == 2 * x_bytes
    per_row = next(
        r
        for r in simulate(w, small, "dynamic", options=RunOptions(flavour="tflite", timing_only=True)).rows
        if r.layer == "fc"
    )
    assert per_row.dram_read_bytes_ifmap == x_bytes  # per-row ranges need no separate pass


def test_totals_respect_roofline_and_are_deterministic() -> None:
    w, hw = load_workload("resnet18"), load_hardware("gemmini")
    first = simulate(w, hw, "static", options=RunOptions(timing_only=True))
    again = simulate(w, hw, "static", options=RunOptions(timing_only=True))
    assert [r.total_cycles for r in first.rows] == [r.total_cycles for r in again.rows]
    t = first.total
    assert t.total_cycles >= t.compute_cycles
    assert t.total_cycles >= ceil((t.dram_read_bytes + t.dram_write_bytes) / dram_of(hw).peak_bandwidth_bytes_per_cycle)
    assert t.total_cycles == sum(r.total_cycles for r in first.rows)
    assert 0 < t.utilization <= 1


def test_more_bandwidth_never_slows_down() -> None:
    w = load_workload("mobilenetv2")
    cycles = [
        simulate(
            w,
            load_hardware(None, [f"dram.bandwidth_bytes_per_cycle={bw}"]),
            "static",
            options=RunOptions(timing_only=True),
        ).total.total_cycles
        for bw in (2, 8, 32, 128)
    ]
    assert cycles == sorted(cycles, reverse=True)


def test_a_program_lowered_once_runs_like_a_fresh_lowering() -> None:
    """A prepared (lowered once) program gives the same records as lowering anew; one lowered for
    another workload, hardware or scheme is refused."""
    workload, hw = load_workload("tiny_cnn"), load_hardware(None)
    program = lower(workload, hw, "static")
    fresh = simulate(workload, hw, "static", options=RunOptions(timing_only=True))
    again = simulate(
        workload, hw, "static", options=RunOptions(timing_only=True), prepared=PreparedModel(program=program)
    )
    assert again.rows == fresh.rows and again.engine.total_cycles == fresh.engine.total_cycles
    with pytest.raises(ValueError, match="lowered for tiny_cnn"):
        simulate(workload, hw, "dynamic", options=RunOptions(timing_only=True), prepared=PreparedModel(program=program))


# -- hand-derived schedules: Tile records built here, expected cycles worked out by hand ----------------
# DRAM in these: 4 B/cycle, 10 cycles latency, so a transfer of b bytes holds a channel 10 + b/4 cycles
# (40 B: 20, 80 B: 30). The expectations follow docs/engine.md's rules, not the engine's code.


def _tile(
    *,
    ifmap: int = 0,
    weights: int = 0,
    new_ifmap: bool = False,
    new_weights: bool = False,
    compute: int,
    requant: int = 0,
    ofmap: int = 0,
) -> Tile:
    return Tile(
        ifmap_bytes=ifmap,
        weight_bytes=weights,
        bias_bytes=0,
        weight_scale_bytes=0,
        new_ifmap=new_ifmap,
        new_weights=new_weights,
        pre_vector_cycles=0,
        unit=Unit.ARRAY,
        compute_cycles=compute,
        post_unit=Unit.REQUANT if requant else None,
        post_cycles=requant,
        ofmap_bytes=ofmap,
        macs=0,
        sram_read_bytes_ifmap=0,
        sram_write_bytes_ifmap=0,
    )


def _play(layers: dict[str, list[Tile]], channels: int = 1) -> EngineRun:
    program = Program(
        "hand",
        "hand",
        "static",
        tuple(LoweredLayer(name=name, type="linear", tiles=tuple(tiles)) for name, tiles in layers.items()),
    )
    return Engine(program, DramChannel(4, 10, channels)).run()


def test_two_tiles_sharing_weights_by_hand() -> None:
    """Tile A loads a 40 B ifmap block and 80 B of weights; tile B a new 40 B ifmap block and reuses
    A's weights. Each computes 50 cycles and finishes an output block: requant 5, store 20 B.

    One channel, first come first served: A's ifmap 0-20, A's weights 20-50, B's ifmap 50-70 (the
    loader issues B's load at once: a second ifmap half is free). A waits for its weights until 50
    (a 50-cycle weights stall), computes 50-100; B arrived at 70, computes 100-150 with no stall.
    A's drain: requant 100-105, store 105-120; B's: requant 150-155, store 155-170. Total 170."""
    run = _play(
        {
            "fc": [
                _tile(ifmap=40, weights=80, new_ifmap=True, new_weights=True, compute=50, requant=5, ofmap=20),
                _tile(ifmap=40, new_ifmap=True, compute=50, requant=5, ofmap=20),
            ]
        }
    )
    (fc,) = run.layers
    assert run.total_cycles == fc.end_cycle == 170
    assert fc.stall_cycles == {"ifmap": 0, "weights": 50, "ofmap_buffer": 0, "vector_unit": 0, "range_pass": 0}
    assert fc.compute_cycles == 100 and fc.requant_cycles == 10
    assert fc.dram_read_bytes["ifmap"] == 80 and fc.dram_read_bytes["weights"] == 80 and fc.dram_write_bytes == 40


def test_three_tiles_wait_for_a_free_ifmap_half_by_hand() -> None:
    """Three K blocks of one output block, each a new 40 B ifmap block (20 cycles) and 10 cycles of
    compute; two DRAM channels, so the double buffer, not the channel, limits the prefetch.

    T1 and T2 load at once, 0-20 on the two channels; T3 finds both ifmap halves taken. T1 waits
    until 20 (stall 20), computes 20-30 and returns its half at 30: T3 loads 30-50. T2 computes 30-40;
    T3 waits 40-50 (stall 10), computes 50-60; the block's requant 60-70 and 40 B store 70-90.
    Total 90 (with a third buffer half T3 would have arrived at 20 and the total would be 80)."""
    k_block = {"ifmap": 40, "new_ifmap": True, "compute": 10}
    run = _play({"fc": [_tile(**k_block), _tile(**k_block), _tile(**k_block, requant=10, ofmap=40)]}, channels=2)
    (fc,) = run.layers
    assert run.total_cycles == 90
    assert fc.stall_cycles["ifmap"] == 30 and sum(fc.stall_cycles.values()) == 30
    assert fc.compute_cycles == 30


def test_next_layer_prefetches_weights_but_waits_for_its_input_by_hand() -> None:
    """Layer 1: one tile, 40 B ifmap and 40 B weights, compute 100, requant 10, store 40 B. Layer 2:
    one tile, 40 B ifmap and 80 B weights, compute 50, requant 10, store 40 B. One channel.

    L1's ifmap 0-20 and weights 20-40; L2's weights do not wait for L1 and follow at 40-70. L1
    stalls 40 (weights), computes 40-140, requant 140-150, store 150-170: layer 1 ends at 170. L2's
    input is L1's output, so its ifmap load starts at 170 and arrives at 190: a 20-cycle ifmap stall,
    compute 190-240, requant 240-250, store 250-270. Layer 2's share is 270 - 170 = 100."""
    run = _play(
        {
            "l1": [_tile(ifmap=40, weights=40, new_ifmap=True, new_weights=True, compute=100, requant=10, ofmap=40)],
            "l2": [_tile(ifmap=40, weights=80, new_ifmap=True, new_weights=True, compute=50, requant=10, ofmap=40)],
        }
    )
    l1, l2 = run.layers
    assert (l1.end_cycle, l2.end_cycle, run.total_cycles) == (170, 270, 270)
    assert l1.stall_cycles["weights"] == 40 and sum(l1.stall_cycles.values()) == 40
    assert l2.stall_cycles["ifmap"] == 20 and sum(l2.stall_cycles.values()) == 20
