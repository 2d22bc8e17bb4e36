"""The SimPy engine: plays a lowered program on DRAM, double-buffered SRAM and the compute units.

Processes (one event per DMA transfer or tile, never per cycle):

* the **loader** walks the tiles in order; for a tile that needs a new ifmap or weight block it
  waits for a free half of that buffer, then DMAs the block over a DRAM channel; dynamic
  quantization and weight-only dequantization run on the vector unit as the block arrives;
* the **sequencer** runs tiles in order on their unit (array or vector unit); a tile waits for its
  operands and, when it starts an output block, for a free ofmap half: those waits are the stalls,
  attributed to what was last to arrive;
* a **drain** per finished output block post-processes it on the requant unit (static) or the vector
  unit, DMAs it out and frees its ofmap half, overlapping the next tiles' compute.

A layer's activation loads wait until every earlier layer has stored its outputs (layers run one
after another, reading their inputs from DRAM); weights of the next layer prefetch earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from accelsim.hw import DramChannel
from accelsim.lowering.program import LoweredLayer, Program, Tile

STALL_CAUSES = ("ifmap", "weights", "ofmap_buffer", "vector_unit", "range_pass")


@dataclass
class LayerTiming:
    """What the engine measured for one layer (cycles are accelerator cycles)."""

    name: str
    compute_cycles: int = 0
    stall_cycles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STALL_CAUSES, 0))
    end_cycle: int = 0
    dram_read_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("weights", "weight_scales", "bias", "ifmap"), 0))
    dram_write_bytes: int = 0
    vector_cycles: int = 0
    requant_cycles: int = 0


@dataclass
class EngineRun:
    total_cycles: int
    layers: list[LayerTiming]
    events: int
    log: list[tuple[str, int, int, str]]  # (lane, start, end, layer) when logging is on


class _Memory:
    """DRAM channels as a SimPy resource; one transfer holds one channel for its duration."""

    def __init__(self, env: simpy.Environment, dram: DramChannel | None) -> None:
        self.env = env
        self.dram = dram
        self.channels = simpy.Resource(env, capacity=dram.channels if dram else 1)
        self._cycles: dict[int, int] = {}

    def cycles(self, n_bytes: int) -> int:
        """Cycles of one transfer, memoized: tiles repeat a few sizes and the exact rate is a Fraction."""
        if self.dram is None:
            return 0
        if n_bytes not in self._cycles:
            self._cycles[n_bytes] = self.dram.transfer_cycles(n_bytes)
        return self._cycles[n_bytes]

    def transfer(self, n_bytes: int):  # noqa: ANN201 - a SimPy process
        cycles = self.cycles(n_bytes)
        if cycles == 0:
            return
        with self.channels.request() as slot:
            yield slot
            yield self.env.timeout(cycles)


class Engine:
    """Simulates one program. ``dram=None`` is ideal memory: every transfer takes zero cycles."""

    def __init__(self, program: Program, dram: DramChannel | None, *, log: bool = False) -> None:
        self.program = program
        self.env = simpy.Environment()
        self.memory = _Memory(self.env, dram)
        self.array = simpy.Resource(self.env, 1)
        self.vector = simpy.Resource(self.env, 1)
        self.requant = simpy.Resource(self.env, 1)
        self.ifmap_halves = simpy.Container(self.env, 2, init=2)
        self.filter_halves = simpy.Container(self.env, 2, init=2)
        self.ofmap_halves = simpy.Container(self.env, 2, init=2)
        self.timings = [LayerTiming(layer.name) for layer in program.layers]
        self.layer_stored = [self.env.event() for _ in program.layers]
        self.logging = log
        self.log: list[tuple[str, int, int, str]] = []
        self.events = 0

    # -- helpers -------------------------------------------------------------------------------------
    def _mark(self, lane: str, start: float, layer: str) -> None:
        self.events += 1
        if self.logging and self.env.now > start:
            self.log.append((lane, int(start), int(self.env.now), layer))

    def _on(self, unit: simpy.Resource, cycles: int, lane: str, layer: str):  # noqa: ANN202
        """Hold ``unit`` for ``cycles``."""
        if cycles <= 0:
            return
        with unit.request() as slot:
            yield slot
            start = self.env.now
            yield self.env.timeout(cycles)
            self._mark(lane, start, layer)

    def _dma(self, n_bytes: int, lane: str, layer: str):  # noqa: ANN202
        start = self.env.now
        yield from self.memory.transfer(n_bytes)
        self._mark(lane, start, layer)

    # -- processes ----------------------------------------------------------------------------------
    def _loader(self, ready: list[list[simpy.Event]]):  # noqa: ANN202
        for li, layer in enumerate(self.program.layers):
            timing = self.timings[li]
            range_done: simpy.Event | None = None
            for ti, tile in enumerate(layer.tiles):
                if tile.new_ifmap:
                    yield self.ifmap_halves.get(1)
                if tile.new_weights:
                    yield self.filter_halves.get(1)
                self.env.process(self._load_tile(li, layer, tile, ready[li][ti], range_done))
                if tile.range_pass:
                    range_done = ready[li][ti]
                timing.dram_read_bytes["ifmap"] += tile.ifmap_bytes
                key = "ifmap" if layer.b_is_activation else "weights"
                timing.dram_read_bytes[key] += tile.weight_bytes
                timing.dram_read_bytes["bias"] += tile.bias_bytes
                timing.dram_read_bytes["weight_scales"] += tile.weight_scale_bytes

    def _load_tile(self, li: int, layer: LoweredLayer, tile: Tile, done: simpy.Event, range_done: simpy.Event | None):  # noqa: ANN202
        """DMA a tile's new blocks (activations only after earlier layers stored theirs), then pre-process."""
        arrivals: dict[str, float] = {}

        def fetch(kind: str, n_bytes: int, activation: bool):  # noqa: ANN202
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
        cause = max(arrivals, key=arrivals.get) if arrivals else "ifmap"
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

    def _drain(self, li: int, layer: LoweredLayer, tile: Tile):  # noqa: ANN202
        timing = self.timings[li]
        unit = self.requant if tile.post_unit == "requant" else self.vector
        yield from self._on(unit, tile.post_cycles, tile.post_unit, layer.name)
        if tile.post_unit == "requant":
            timing.requant_cycles += tile.post_cycles
        else:
            timing.vector_cycles += tile.post_cycles
        yield from self._dma(tile.ofmap_bytes, "dma_out", layer.name)
        timing.dram_write_bytes += tile.ofmap_bytes
        yield self.ofmap_halves.put(1)

    def _sequencer(self, ready: list[list[simpy.Event]]):  # noqa: ANN202
        env = self.env
        for li, layer in enumerate(self.program.layers):
            timing = self.timings[li]
            drains = []
            holding = {"ifmap": False, "weights": False, "ofmap": False}
            for ti, tile in enumerate(layer.tiles):
                wait_from = env.now
                if not ready[li][ti].triggered:
                    yield ready[li][ti]
                timing.stall_cycles[ready[li][ti].value] += int(env.now - wait_from)
                holding["ifmap"] |= tile.new_ifmap
                holding["weights"] |= tile.new_weights
                if not tile.range_pass and not holding["ofmap"]:
                    wait_from = env.now
                    yield self.ofmap_halves.get(1)
                    timing.stall_cycles["ofmap_buffer"] += int(env.now - wait_from)
                    holding["ofmap"] = True
                unit, lane = (self.array, "array") if tile.unit == "array" else (self.vector, "vector")
                wait_from = env.now
                with unit.request() as slot:
                    yield slot
                    timing.stall_cycles["vector_unit"] += int(env.now - wait_from)
                    start = env.now
                    yield env.timeout(tile.compute_cycles)
                    self._mark(lane, start, layer.name)
                timing.compute_cycles += tile.compute_cycles
                if tile.unit == "vector":
                    timing.vector_cycles += tile.compute_cycles
                nxt = layer.tiles[ti + 1] if ti + 1 < len(layer.tiles) else None
                # free the blocks the next tile does not reuse
                if holding["ifmap"] and (nxt is None or nxt.new_ifmap):
                    self.ifmap_halves.put(1)
                    holding["ifmap"] = False
                if holding["weights"] and (nxt is None or nxt.new_weights):
                    self.filter_halves.put(1)
                    holding["weights"] = False
                if tile.post_unit or tile.ofmap_bytes:
                    drains.append(env.process(self._drain(li, layer, tile)))
                    holding["ofmap"] = False
            if holding["ofmap"]:
                self.ofmap_halves.put(1)
            if drains:
                yield simpy.AllOf(env, drains)
            timing.end_cycle = int(env.now)
            self.layer_stored[li].succeed()

    def run(self) -> EngineRun:
        ready = [[self.env.event() for _ in layer.tiles] for layer in self.program.layers]
        self.env.process(self._loader(ready))
        done = self.env.process(self._sequencer(ready))
        self.env.run(until=done)
        return EngineRun(int(self.env.now), self.timings, self.events, self.log)
