"""DRAM channels with several transfers in flight (``dram.outstanding_transfers`` > 1, issue 18): each transfer
pays its latency while others stream, and the transfers streaming share the bandwidth.

The engine keeps this processor-sharing queue in integer virtual time and schedules only completions; here it
is checked against the same model stepped cycle by cycle with exact fractions, on hand-worked transfers and
on random ones, and through the engine on programs."""

from __future__ import annotations

from fractions import Fraction

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config import load_hardware, load_workload
from accelsim.hw import DramChannel
from accelsim.lowering.program import lower
from accelsim.timing.engine import Engine, _SharedDram, _Steps


def engine_completions(dram: DramChannel, requests: list[tuple[int, int]]) -> list[int]:
    """When each transfer ``(request cycle, bytes)`` ends on the engine's shared channels."""
    env = simpy.Environment()
    steps = _Steps(env)
    shared = _SharedDram(steps, dram)
    ends = [-1] * len(requests)

    def done(i: int) -> None:
        ends[i] = steps.now

    for i, (cycle, n_bytes) in enumerate(requests):
        simpy.Timeout(env, cycle, (cycle, shared.request, (n_bytes, done, i))).callbacks.append(steps.timed)
    env.run()
    return ends


def stepped_completions(dram: DramChannel, requests: list[tuple[int, int]]) -> list[int]:
    """The same model the obvious way: every cycle, complete what is carried, hand freed slots to the queue in
    order, admit this cycle's requests, start streaming what has waited out its latency, then give each
    streaming transfer its share of the bandwidth for the cycle."""
    rate, slots = Fraction(str(dram.bandwidth_bytes_per_cycle)), dram.channels * dram.outstanding
    left = [Fraction(n) for _, n in requests]
    ends = [-1] * len(requests)
    queue: list[int] = []
    waiting: dict[int, int] = {}  # transfer -> the cycle it starts streaming
    streaming: list[int] = []
    cycle = 0
    while -1 in ends:
        for i in [i for i in streaming if left[i] <= 0]:
            streaming.remove(i)
            ends[i] = cycle
            slots += 1
        queue += [i for i, (at, _) in enumerate(requests) if at == cycle]
        while slots and queue:
            slots -= 1
            waiting[queue.pop(0)] = cycle + dram.latency_cycles
        for i in [i for i, at in waiting.items() if at == cycle]:
            del waiting[i]
            streaming.append(i)
        if streaming:
            share = rate * min(1, Fraction(dram.channels, len(streaming)))
            for i in streaming:
                left[i] -= share
        cycle += 1
    return ends


def test_a_short_transfer_streams_beside_a_long_one() -> None:
    """400 and 40 bytes asked for in cycle 0 on one 4 B/cycle channel with a 10-cycle latency. One at a time,
    the short one waits for the whole long one: 110 and 130. Two in flight, both wait out their latency
    together and share the channel: the short one has its 40 bytes at 2 B/cycle by cycle 30, the long one
    its 400 by 30 + (400 - 40) / 4 = 120."""
    requests = [(0, 400), (0, 40)]
    alone = DramChannel(4, 10)
    assert [alone.transfer_cycles(400), alone.transfer_cycles(400) + alone.transfer_cycles(40)] == [110, 130]
    assert engine_completions(DramChannel(4, 10, outstanding=2), requests) == [120, 30]
    # a third request while both slots are taken waits for the short one's slot (30), streams from 40 at 2 B/cycle
    # beside the long one (done at 44), which has 88 bytes by then and streams the other 312 alone: 122
    assert engine_completions(DramChannel(4, 10, outstanding=2), [*requests, (5, 8)]) == [122, 30, 44]


@settings(max_examples=300, deadline=None)
@given(
    bandwidth=st.sampled_from([1, 3, 4, 12.8, 68.264]),
    latency=st.integers(0, 12),
    channels=st.integers(1, 3),
    outstanding=st.integers(2, 4),
    requests=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 300)), min_size=1, max_size=10),
)
def test_engine_channels_equal_the_cycle_by_cycle_model(
    bandwidth: float, latency: int, channels: int, outstanding: int, requests: list[tuple[int, int]]
) -> None:
    dram = DramChannel(bandwidth, latency, channels, outstanding)
    assert engine_completions(dram, requests) == stepped_completions(dram, requests)


def test_streaming_decode_runs_at_the_bandwidth() -> None:
    """A program's run with transfers in flight: the same traffic as one at a time, never below the bytes /
    bandwidth bound, the same cycles run again, and Llama-2-7B's decode block on the phone NPU closer to that
    bound than one transfer at a time (where each layer's input waits behind the next weight block)."""
    workload = load_workload("llama2_7b_decode", ["repeat=1"])
    hw = load_hardware("hwconfigs/phone-npu-lpddr5x.yaml")
    program = lower(workload, hw, "static")
    runs = {o: Engine(program, DramChannel(68.264, 150, 1, o)).run() for o in (1, 8)}
    assert Engine(program, DramChannel(68.264, 150, 1, 8)).run().total_cycles == runs[8].total_cycles
    moved = {
        o: sum(sum(t.dram_read_bytes.values()) + t.dram_write_bytes for t in run.layers) for o, run in runs.items()
    }
    assert moved[1] == moved[8]
    bound = moved[8] / 68.264
    assert bound <= runs[8].total_cycles < runs[1].total_cycles
    assert runs[8].total_cycles < 1.04 * bound < runs[1].total_cycles


def test_sliced_play_equals_a_whole_run() -> None:
    """The engine played one SimPy event at a time (as beside the values' GEMMs) ends where a whole run does,
    with the same cycles, stalls, traffic, events and log, with transfers in flight (ResNet-18, dynamic: range
    passes, vector work, two channels of eight transfers)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_engine_reference import _sliced

    hw = load_hardware(None, ["dram.channels=2", "dram.outstanding_transfers=8"])
    program = lower(load_workload("resnet18"), hw, "dynamic")
    dram = DramChannel(32, 100, 2, 8)
    whole, sliced = Engine(program, dram, log=True).run(), _sliced(program, dram, 1, 10**6)
    assert (whole.total_cycles, whole.events, whole.log) == (sliced.total_cycles, sliced.events, sliced.log)
    assert [vars(t) for t in whole.layers] == [vars(t) for t in sliced.layers]
