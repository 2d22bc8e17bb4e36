"""DRAM channels with several transfers in flight (``dram.outstanding_transfers`` > 1, issue 18): each transfer
pays its latency while others stream, and the transfers streaming share the bandwidth.

The engine keeps this processor-sharing queue in integer virtual time; here it is checked against the same model
stepped cycle by cycle with exact fractions, on hand-worked transfers and on random ones, and against the model
written plainly (:class:`PlainDram`: a SimPy event per latency and per completion, fractions) where transfers and
other timed steps meet in one cycle, through the engine on programs and alone: the same ends in the same order,
down to the log. That order is what a faster formulation (fewer SimPy events) must keep."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Any

import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config import load_hardware, load_workload
from accelsim.hw import DramChannel
from accelsim.lowering.program import Program, lower
from accelsim.timing.engine import Engine, EngineRun, _SharedDram, _Steps

sys.path.insert(0, str(Path(__file__).parent))
from test_engine_reference import _sliced, programs


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
    hw = load_hardware(None, ["dram.channels=2", "dram.outstanding_transfers=8"])
    program = lower(load_workload("resnet18"), hw, "dynamic")
    dram = DramChannel(32, 100, 2, 8)
    whole, sliced = Engine(program, dram, log=True).run(), _sliced(program, dram, 1, 10**6)
    assert (whole.total_cycles, whole.events, whole.log) == (sliced.total_cycles, sliced.events, sliced.log)
    assert [vars(t) for t in whole.layers] == [vars(t) for t in sliced.layers]


class PlainDram:
    """The shared channels written plainly: a SimPy timeout per latency (the transfer starts streaming), and at
    every start of streaming or completion a timeout at the next completion (none if a transfer starts streaming
    first or in that cycle: that start schedules anew), stale once anything changes again; exact fractions.
    Where events meet in one cycle, SimPy's order (the order they were scheduled in) decides, which the engine's
    ``_SharedDram`` must keep."""

    def __init__(self, steps: _Steps, dram: DramChannel) -> None:
        self.steps, self.dram = steps, dram
        self.free = dram.channels * dram.outstanding
        self.queue: deque[tuple[int, Callable[..., None], tuple[Any, ...]]] = deque()
        self.streaming: list[tuple[Fraction, Callable[..., None], tuple[Any, ...]]] = []  # (done at, then, args)
        self.entering: deque[int] = deque()  # the cycles the transfers in their latency start streaming in
        self.served, self.since, self.epoch = Fraction(0), 0, 0

    def request(self, n_bytes: int, then: Callable[..., None], *args: Any) -> None:
        self.queue.append((n_bytes, then, args))
        self._admit()

    def _admit(self) -> None:
        while self.free and self.queue:
            self.free -= 1
            if self.dram.latency_cycles:
                self.entering.append(self.steps.now + self.dram.latency_cycles)
            self._at(self.dram.latency_cycles, self._stream, self.queue.popleft())

    def _at(self, cycles: int, fn: Callable[..., None], *args: Any) -> None:
        if cycles:
            due = self.steps.now + cycles
            simpy.Timeout(self.steps.env, cycles, (due, fn, args)).callbacks.append(self.steps.timed)
        else:
            fn(*args)

    def _share(self) -> Fraction:
        n = len(self.streaming)
        return self.dram.rate * min(n, self.dram.channels) / n if n else Fraction(0)

    def _catch_up(self) -> None:
        self.served += (self.steps.now - self.since) * self._share()
        self.since = self.steps.now

    def _stream(self, transfer: tuple[int, Callable[..., None], tuple[Any, ...]]) -> None:
        if self.dram.latency_cycles:
            self.entering.popleft()
        self._catch_up()
        n_bytes, then, args = transfer
        self.streaming.append((self.served + n_bytes, then, args))
        self._next()

    def _next(self) -> None:
        self.epoch += 1
        if self.streaming:
            done_at = min(done for done, _, _ in self.streaming)
            cycles = ceil((done_at - self.served) / self._share())
            if not self.entering or self.steps.now + cycles < self.entering[0]:
                self._at(max(0, cycles), self._complete, self.epoch)

    def _complete(self, epoch: int) -> None:
        if epoch != self.epoch:
            return
        self._catch_up()
        done = [t for t in self.streaming if t[0] <= self.served]
        self.streaming = [t for t in self.streaming if t[0] > self.served]
        self._next()
        for _, then, args in done:
            self.free += 1
            self._admit()
            then(*args)


def plain_run(program: Program, dram: DramChannel) -> EngineRun:
    engine = Engine(program, dram, log=True)
    engine.shared = PlainDram(engine.steps, dram)  # type: ignore[assignment]  # the same interface
    return engine.run()


def same_as_plain(program: Program, dram: DramChannel) -> None:
    engine, plain = Engine(program, dram, log=True).run(), plain_run(program, dram)
    assert engine.log == plain.log
    assert engine.layers == plain.layers
    assert (engine.total_cycles, engine.events) == (plain.total_cycles, plain.events)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    programs(),
    st.builds(
        DramChannel,
        st.sampled_from([1, 2, 3.5, 4, 8]),
        st.sampled_from([0, 1, 3, 10]),
        st.integers(1, 3),
        st.integers(2, 4),
    ),
)
def test_fuzzed_programs_play_as_the_plain_model(program: Program, dram: DramChannel) -> None:
    """Programs where transfers, their latencies and unit holds meet in one cycle (few small sizes and cycle
    counts): the same cycles, stalls, traffic, events and log, in order, as the model with an event per
    latency and per completion."""
    same_as_plain(program, dram)


def test_resnet18_plays_as_the_plain_model() -> None:
    hw = load_hardware(None, ["dram.channels=2", "dram.outstanding_transfers=8"])
    same_as_plain(lower(load_workload("resnet18"), hw, "dynamic"), DramChannel(32, 100, 2, 8))


def played(kind: type[_SharedDram | PlainDram], dram: DramChannel, script: list[list[tuple[int, int]]]) -> list:
    """What ends when, in order: cycle c of ``script`` runs its actions in order, each a transfer of so many bytes
    (``(0, n_bytes)``) or another timed step so many cycles later (``(1, cycles)``), as the engine's units make."""
    env = simpy.Environment()
    steps = _Steps(env)
    shared = kind(steps, dram)
    order: list[tuple[str, int]] = []

    def end(tag: str, *_: Any) -> None:
        order.append((tag, steps.now))

    def act(cycle: int) -> None:
        for i, (what, value) in enumerate(script[cycle]):
            if what == 0:
                shared.request(value, end, f"dma {cycle}.{i}")
            else:
                due = steps.now + value
                simpy.Timeout(env, value, (due, end, (f"step {cycle}.{i}",))).callbacks.append(steps.timed)

    for cycle in range(len(script)):
        simpy.Timeout(env, cycle, (cycle, act, (cycle,))).callbacks.append(steps.timed)
    env.run()
    return order


def test_a_completion_as_two_transfers_start_streaming() -> None:
    """4 B/cycle, latency 10: a transfer asked for in cycle 0 is done in cycle 20, as two asked for in cycle 10
    start streaming; another step due in cycle 20 was scheduled between those two. The model finishes the first
    inside the second start (after the step) when it is done by less than the new share (2 B/cycle: 40 bytes,
    done exactly), inside the first start (before the step) otherwise (38 bytes, 2 over)."""
    dram = DramChannel(4, 10, 1, 3)
    script = [[(0, 40)], *[[]] * 9, [(0, 8), (1, 10), (0, 8)]]
    expected = [("step 10.1", 20), ("dma 0.0", 20), ("dma 10.0", 24), ("dma 10.2", 24)]
    assert played(PlainDram, dram, script) == played(_SharedDram, dram, script) == expected
    script[0] = [(0, 38)]
    expected[:2] = [("dma 0.0", 20), ("step 10.1", 20)]
    assert played(PlainDram, dram, script) == played(_SharedDram, dram, script) == expected


@settings(max_examples=1500, deadline=None)
@given(
    bandwidth=st.sampled_from([1, 2, 4, 3.5]),
    latency=st.sampled_from([0, 1, 3, 10]),
    channels=st.integers(1, 2),
    outstanding=st.integers(2, 4),
    script=st.lists(
        st.lists(st.tuples(st.integers(0, 1), st.sampled_from([1, 2, 4, 8, 10, 11, 40])), max_size=4), max_size=24
    ),
)
def test_steps_meeting_transfers_play_as_the_plain_model(
    bandwidth: float, latency: int, channels: int, outstanding: int, script: list[list[tuple[int, int]]]
) -> None:
    """Transfers and other timed steps scheduled in between, in few sizes and cycle counts so that completions,
    starts of streaming and steps meet in one cycle: the same ends in the same order as the plain model."""
    dram = DramChannel(bandwidth, latency, channels, outstanding)
    assert played(_SharedDram, dram, script) == played(PlainDram, dram, script)
