"""The engine against the plain SimPy formulation of the same model, on fuzzed Tile programs.

``accelsim.timing.engine`` runs only the timed steps (unit and DMA holds) as SimPy events and settles what
follows within a cycle in its own queue, in the order SimPy would (docs/engine.md). ``Reference`` below
is the model written the obvious way: a ``simpy.Resource`` per unit and for the DRAM channels, a
``simpy.Container`` per double buffer, a process per tile's loads, per fetch and per drain. Where two
things happen in one cycle, SimPy's own order decides (which request gets a unit, what a stall is
blamed on, the log's order), so the two agree only if the engine keeps that order: every result,
event count and log entry must be identical.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.config import load_hardware, load_workload
from accelsim.hw import DramChannel
from accelsim.lowering.program import LoweredLayer, Program, Tile, Unit, lower
from accelsim.simulation import dram_of
from accelsim.timing.engine import Engine, EngineRun, LayerTiming

Proc = Generator[simpy.Event, Any, None]


class Reference:
    """The engine's model as SimPy processes, resources and containers (slow, obviously SimPy's order)."""

    def __init__(self, program: Program, dram: DramChannel | None) -> None:
        self.program, self.dram = program, dram
        self.env = env = simpy.Environment()
        self.channels = simpy.Resource(env, dram.channels if dram else 1)
        self.array, self.vector, self.requant = (simpy.Resource(env, 1) for _ in range(3))
        self.ifmap_halves, self.filter_halves, self.ofmap_halves = (simpy.Container(env, 2, init=2) for _ in range(3))
        self.timings = [LayerTiming(layer.name) for layer in program.layers]
        self.layer_stored = [env.event() for _ in program.layers]
        self.ready = [[env.event() for _ in layer.tiles] for layer in program.layers]
        self.log: list[tuple[str, int, int, str]] = []
        self.events = 0

    def _mark(self, lane: str, start: int, layer: str) -> None:
        self.events += 1
        if self.env.now > start:
            self.log.append((lane, start, int(self.env.now), layer))

    def _on(self, unit: simpy.Resource, cycles: int, lane: str, layer: str) -> Proc:
        if cycles <= 0:
            return
        with unit.request() as slot:
            yield slot
            start = self.env.now
            yield self.env.timeout(cycles)
            self._mark(lane, start, layer)

    def _dma(self, n_bytes: int, lane: str, layer: str) -> Proc:
        start = self.env.now
        cycles = self.dram.transfer_cycles(n_bytes) if self.dram else 0
        if cycles:
            with self.channels.request() as slot:
                yield slot
                yield self.env.timeout(cycles)
        self._mark(lane, start, layer)

    def _loader(self) -> Proc:
        for li, layer in enumerate(self.program.layers):
            timing = self.timings[li]
            range_done: simpy.Event | None = None
            for ti, tile in enumerate(layer.tiles):
                if tile.new_ifmap:
                    yield self.ifmap_halves.get(1)
                if tile.new_weights:
                    yield self.filter_halves.get(1)
                self.env.process(self._load_tile(li, layer, tile, self.ready[li][ti], range_done))
                if tile.range_pass:
                    range_done = self.ready[li][ti]
                timing.dram_read_bytes["ifmap"] += tile.ifmap_bytes
                timing.dram_read_bytes["ifmap" if layer.b_is_activation else "weights"] += tile.weight_bytes
                timing.dram_read_bytes["bias"] += tile.bias_bytes
                timing.dram_read_bytes["weight_scales"] += tile.weight_scale_bytes

    def _load_tile(
        self, li: int, layer: LoweredLayer, tile: Tile, done: simpy.Event, range_done: simpy.Event | None
    ) -> Proc:
        arrivals: dict[str, int] = {}

        def fetch(kind: str, n_bytes: int, activation: bool) -> Proc:
            if activation and li > 0:
                yield self.layer_stored[li - 1]
            yield from self._dma(n_bytes, "dma_in", layer.name)
            arrivals[kind] = self.env.now

        parts = []
        if tile.ifmap_bytes:
            parts.append(self.env.process(fetch("ifmap", tile.ifmap_bytes, True)))
        elif li > 0 and not self.layer_stored[li - 1].triggered:
            parts.append(self.env.process(fetch("ifmap", 0, True)))
        weight_bytes = tile.weight_bytes + tile.bias_bytes + tile.weight_scale_bytes
        if weight_bytes:
            parts.append(self.env.process(fetch("weights", weight_bytes, layer.b_is_activation)))
        if parts:
            yield simpy.AllOf(self.env, parts)
        cause = max(arrivals, key=arrivals.__getitem__) if arrivals else "ifmap"
        if tile.pre_vector_cycles:
            if range_done is not None and not range_done.triggered:
                yield range_done
                cause = "range_pass"
            start = self.env.now
            yield from self._on(self.vector, tile.pre_vector_cycles, "vector", layer.name)
            self.timings[li].vector_cycles += tile.pre_vector_cycles
            if self.env.now - start > tile.pre_vector_cycles:
                cause = "vector_unit"
        done.succeed(cause)

    def _drain(self, li: int, layer: LoweredLayer, tile: Tile) -> Proc:
        timing = self.timings[li]
        post_unit = tile.post_unit or Unit.VECTOR  # no post-processing: zero cycles, no unit held
        yield from self._on(
            self.requant if post_unit is Unit.REQUANT else self.vector, tile.post_cycles, post_unit, layer.name
        )
        if tile.post_unit is Unit.REQUANT:
            timing.requant_cycles += tile.post_cycles
        else:
            timing.vector_cycles += tile.post_cycles
        yield from self._dma(tile.ofmap_bytes, "dma_out", layer.name)
        timing.dram_write_bytes += tile.ofmap_bytes
        yield self.ofmap_halves.put(1)

    def _sequencer(self) -> Proc:
        env = self.env
        for li, layer in enumerate(self.program.layers):
            timing, stalls = self.timings[li], self.timings[li].stall_cycles
            drains = []
            hold_ifmap = hold_weights = hold_ofmap = False
            for ti, tile in enumerate(layer.tiles):
                ready = self.ready[li][ti]
                wait_from = env.now
                if not ready.triggered:
                    yield ready
                stalls[ready.value] += env.now - wait_from
                hold_ifmap |= tile.new_ifmap
                hold_weights |= tile.new_weights
                if not tile.range_pass and not hold_ofmap:
                    wait_from = env.now
                    yield self.ofmap_halves.get(1)
                    stalls["ofmap_buffer"] += env.now - wait_from
                    hold_ofmap = True
                array = tile.unit is Unit.ARRAY
                wait_from = env.now
                with (self.array if array else self.vector).request() as slot:
                    yield slot
                    stalls["vector_unit"] += env.now - wait_from
                    start = env.now
                    yield env.timeout(tile.compute_cycles)
                    self._mark("array" if array else "vector", start, layer.name)
                timing.compute_cycles += tile.compute_cycles
                if not array:
                    timing.vector_cycles += tile.compute_cycles
                nxt = layer.tiles[ti + 1] if ti + 1 < len(layer.tiles) else None
                if hold_ifmap and (nxt is None or nxt.new_ifmap):
                    self.ifmap_halves.put(1)
                    hold_ifmap = False
                if hold_weights and (nxt is None or nxt.new_weights):
                    self.filter_halves.put(1)
                    hold_weights = False
                if tile.post_unit is not None or tile.ofmap_bytes:
                    drains.append(env.process(self._drain(li, layer, tile)))
                    hold_ofmap = False
            if hold_ofmap:
                self.ofmap_halves.put(1)
            if drains:
                yield simpy.AllOf(env, drains)
            timing.end_cycle = int(env.now)
            self.layer_stored[li].succeed()

    def run(self) -> EngineRun:
        self.env.process(self._loader())
        self.env.run(until=self.env.process(self._sequencer()))
        return EngineRun(int(self.env.now), self.timings, self.events, self.log)


def _sliced(program: Program, dram: DramChannel | None, events: int, slices: int) -> EngineRun:
    """The engine played ``events`` SimPy events at a time for up to ``slices`` slices (as ``simulate``
    plays it beside the GEMMs), then the rest at once."""
    engine = Engine(program, dram, log=True)
    engine.start()
    for _ in range(slices):
        if not engine.advance(events):
            assert not engine.advance(events)  # over, and stays over
            break
    return engine.finish()


def _same(program: Program, dram: DramChannel | None, slicing: tuple[int, int] | None = None) -> None:
    """The engine (whole, or ``slicing`` = (events, slices) for :func:`_sliced`) against the reference."""
    engine = Engine(program, dram, log=True).run() if slicing is None else _sliced(program, dram, *slicing)
    reference = Reference(program, dram).run()
    assert engine.log == reference.log
    assert engine.layers == reference.layers
    assert (engine.total_cycles, engine.events) == (reference.total_cycles, reference.events)


# small sizes and cycle counts from few values, so that holds end in the same cycle and requests meet
_cycles = st.sampled_from([0, 1, 2, 5, 10])


@st.composite
def tiles(draw: st.DrawFn, first: bool) -> Tile:
    new_ifmap, new_weights = first or draw(st.booleans()), first or draw(st.booleans())
    post_unit = draw(st.sampled_from([None, Unit.REQUANT, Unit.VECTOR]))
    return Tile(
        ifmap_bytes=draw(st.sampled_from([0, 4, 8, 40])) if new_ifmap else 0,
        weight_bytes=draw(st.sampled_from([0, 4, 40])) if new_weights else 0,
        bias_bytes=draw(st.sampled_from([0, 4])),
        weight_scale_bytes=draw(st.sampled_from([0, 4])),
        new_ifmap=new_ifmap,
        new_weights=new_weights,
        pre_vector_cycles=draw(_cycles),
        unit=draw(st.sampled_from([Unit.ARRAY, Unit.ARRAY, Unit.VECTOR])),
        compute_cycles=draw(_cycles.filter(bool)),
        post_unit=post_unit,
        post_cycles=draw(_cycles) if post_unit else 0,
        ofmap_bytes=draw(st.sampled_from([0, 4, 40])),
        macs=0,
        sram_read_bytes_ifmap=0,
        sram_write_bytes_ifmap=0,
    )


@st.composite
def range_passes(draw: st.DrawFn) -> Tile:
    """A dynamic range pass, as lowering puts it first in a layer: the whole input read on the vector
    unit, no output block (it holds no ofmap half)."""
    input_bytes = draw(st.sampled_from([4, 40, 80]))
    return Tile(
        ifmap_bytes=input_bytes,
        weight_bytes=0,
        new_ifmap=True,
        new_weights=False,
        unit=Unit.VECTOR,
        compute_cycles=draw(_cycles.filter(bool)),
        sram_read_bytes_ifmap=input_bytes,
        sram_write_bytes_ifmap=0,
        range_pass=True,
    )


@st.composite
def programs(draw: st.DrawFn) -> Program:
    layers = []
    for li in range(draw(st.integers(1, 4))):
        head = [draw(range_passes())] if draw(st.booleans()) else []
        body = [draw(tiles(ti == 0)) for ti in range(draw(st.integers(1, 6)))]
        layers.append(LoweredLayer(name=f"l{li}", type="linear", tiles=tuple(head + body)))
    return Program("fuzz", "fuzz", "static", tuple(layers))


_drams = st.one_of(
    st.none(), st.builds(DramChannel, st.sampled_from([1, 2, 4, 8]), st.sampled_from([0, 3, 10]), st.integers(1, 3))
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), _drams)
def test_fuzzed_programs_play_as_plain_simpy(program: Program, dram: DramChannel | None) -> None:
    """Several layers of tiles with DRAM latency and contention, double-buffered operands, range passes
    and vector-unit work, on ideal or real memory: the same cycles, stalls, traffic, events and log."""
    _same(program, dram)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), _drams, st.integers(1, 5), st.integers(0, 60))
def test_fuzzed_programs_played_in_slices_play_as_plain_simpy(
    program: Program, dram: DramChannel | None, slice_events: int, slices: int
) -> None:
    """The engine played a few events at a time (``Engine.advance``), to its end or then finished at
    once, ends where ``run`` does, with the same cycles, stalls, traffic, events and log."""
    _same(program, dram, (slice_events, slices))


@pytest.mark.parametrize("slicing", [None, (1, 10**6), (8, 100)])
def test_resnet18_plays_as_plain_simpy(slicing: tuple[int, int] | None) -> None:
    """A shipped workload's real program (dynamic: range passes and vector-unit work; two channels),
    played whole, in slices of one event to its end, and 100 slices of 8 then the rest at once."""
    hw = load_hardware(None, ["dram.channels=2", "dram.outstanding_transfers=1"])  # the reference's channels
    _same(lower(load_workload("resnet18"), hw, "dynamic"), dram_of(hw), slicing)
