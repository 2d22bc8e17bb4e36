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

How it runs: SimPy's clock holds the timed steps, one SimPy event per unit or DMA hold, scheduled
when the unit is granted (its length is known then). What happens in reaction within one cycle (a
unit handed on, a buffer half returned, a block arriving, a process starting or ending) runs as
zero-delay steps of ``_Steps``, in exactly the order SimPy runs such events (first in, first out per
cycle, a newly started process first) but without a SimPy event each. That order settles ties: which
of two requests in the same cycle gets a unit first, what a stall is attributed to, the log's order.
So the results are those of the plain SimPy formulation (a Resource per unit, a Container per buffer,
a process per tile, fetch and drain) at about a sixth of its SimPy events; tests/test_engine_reference.py
holds that formulation and compares the two on fuzzed programs. Only SimPy's public API is used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import simpy
from simpy import Timeout

from accelsim.hw import DramChannel
from accelsim.lowering.program import LoweredLayer, Program, Tile, Unit

STALL_CAUSES = ("ifmap", "weights", "ofmap_buffer", "vector_unit", "range_pass")

Step = tuple[Callable[..., None], tuple[Any, ...]]
#: a cycle no run reaches; an int, not ``math.inf``: SimPy's heap then compares ints with ints (3% of
#: the engine's time on ResNet-50)
NEVER = 1 << 62


@dataclass
class LayerTiming:
    """What the engine measured for one layer (cycles are accelerator cycles). The busy cycles and the
    traffic are the layer's tiles' sums (``LoweredLayer.work``); the stalls and the end come from the run."""

    name: str
    compute_cycles: int = 0
    stall_cycles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STALL_CAUSES, 0))
    end_cycle: int = 0
    dram_read_bytes: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("weights", "weight_scales", "bias", "ifmap", "kv_cache"), 0)
    )
    dram_write_bytes: int = 0
    vector_cycles: int = 0
    requant_cycles: int = 0


@dataclass
class EngineRun:
    total_cycles: int
    layers: list[LayerTiming]
    events: int
    log: list[tuple[str, int, int, str]]  # (lane, start, end, layer) when logging is on


def _layer_timing(layer: LoweredLayer) -> LayerTiming:
    """A layer's timing before its run: the sums its tiles add up to in any schedule."""
    work = layer.work
    return LayerTiming(
        layer.name,
        compute_cycles=work.compute_cycles,
        dram_read_bytes=dict(work.dram_read_bytes),
        dram_write_bytes=work.dram_write_bytes,
        vector_cycles=work.vector_cycles,
        requant_cycles=work.requant_cycles,
    )


class _Steps:
    """Zero-delay steps in SimPy's order on SimPy's clock, through SimPy's public API.

    SimPy runs the events due in one cycle first in, first out, except that a process started by a
    step runs right after that step (its Initialize event is URGENT). A step queued here runs in this
    cycle's deque while SimPy has nothing else due now (``env.peek()``); otherwise it rides in one
    carrier event queued behind SimPy's due events, as its own event would have. Timed steps are
    ``Timeout`` events carrying the step and its cycle (built by :meth:`_Unit._hold`, run by
    :meth:`_run_timed`). ``now`` is the cycle of the step running, the due cycle of the timeout that
    started it, kept here because the engine reads it a few times a step (``env.now`` is a property).
    """

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.now = 0
        self.timed = self._run_timed  # the timeouts' callback, bound once
        self.peek = env.peek
        self.fifo: deque[Step] = deque()
        self.urgent: deque[Step] = deque()
        self.carrier: list[Step] | None = None
        # whether SimPy has other events due this cycle; steps only add later events (or the carrier),
        # so it holds from the start of the SimPy event being processed to its end
        self.others_due = False

    def soon(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` later in this cycle, where SimPy would process an event triggered now."""
        if self.carrier is not None:
            self.carrier.append((fn, args))
        elif self.others_due:
            self.carrier = [(fn, args)]
            event = self.env.event()
            event.callbacks.append(self._run_carrier)
            event.succeed(self.carrier)
        else:
            self.fifo.append((fn, args))

    def start(self, fn: Callable[..., None], *args: Any) -> None:
        """Start a process whose first step is ``fn(*args)``: it runs right after the current step."""
        self.urgent.append((fn, args))

    def kick_off(self, deadlocked: Callable[[], None]) -> None:
        """Run the started processes at cycle 0, inside SimPy's loop.

        A timeout at ``NEVER`` keeps SimPy's queue from running empty, so ``env.peek()`` in
        :meth:`_run_timed` is a lookup (on an empty queue, a third of the time on ResNet-50, it raises
        and catches an IndexError); if it is ever processed, nothing else is left: ``deadlocked()``."""
        Timeout(self.env, NEVER).callbacks.append(lambda _: deadlocked())
        self.env.event().succeed().callbacks.append(lambda _: self._run())

    def _run_timed(self, timeout: Timeout) -> None:
        """The timeout's callback: run the timed step it carries, then what that queued for this cycle."""
        now, fn, args = timeout.value  # type: ignore[misc]  # SimPy types every value Optional; a timed step's is set
        self.now = now
        self.others_due = self.peek() == now
        fn(*args)
        if self.urgent or self.fifo:
            self._run()
        else:
            self.others_due = False

    def _run_carrier(self, event: simpy.Event) -> None:
        self.carrier = None
        self.fifo.extend(event.value or ())
        self._run()

    def _run(self) -> None:
        urgent, fifo = self.urgent, self.fifo
        while True:
            while urgent:  # a started process runs first
                fn, args = urgent.popleft()
                fn(*args)
            if not fifo:
                break
            fn, args = fifo.popleft()
            fn(*args)
        self.others_due = False


class _Process:
    """A generator driven by ``_Steps``: before each ``yield`` it arranges for ``wake`` to be called."""

    def __init__(
        self, body: Callable[[Callable[..., None]], Generator[None, Any, None]], on_exit: Callable[[], None] | None
    ) -> None:
        self.send = body(self.wake).send  # the generator's send, bound once: wake runs per step
        self.on_exit = on_exit

    def wake(self, value: Any = None) -> None:
        try:
            self.send(value)
        except StopIteration:
            if self.on_exit is not None:
                self.on_exit()


class _Unit:
    """``capacity`` servers handed out first come, first served, each held for a length known at the
    request: a ``simpy.Resource`` with one event per hold instead of three (grant, end, release).

    As in SimPy, a request or a processed release hands a free server to the head of the queue only.
    The hold's end is scheduled when the server is granted rather than a step later, which keeps the
    order of holds ending in the same cycle: grants are processed in the order they are made.
    """

    def __init__(self, steps: _Steps, capacity: int) -> None:
        self.steps = steps
        self.capacity = capacity
        self.free = capacity
        self.queue: deque[tuple[int, Callable[..., None], tuple[Any, ...]]] = deque()

    def request(self, cycles: int, fn: Callable[..., None], *args: Any) -> None:
        """Hold a server for ``cycles``; ``fn(grant_cycle, *args)`` runs when the hold ends."""
        if self.free and not self.queue:  # what _grant does with a queue of one, without the queue
            if cycles > 0:  # _hold's timed step, written out: most holds start here
                self.free -= 1
                steps = self.steps
                now = steps.now
                Timeout(steps.env, cycles, (now + cycles, fn, (now, *args))).callbacks.append(steps.timed)
            else:
                self._hold(cycles, fn, args)
            return
        self.queue.append((cycles, fn, args))
        if self.free:
            self._grant()

    def release(self) -> None:
        self.free += 1
        # SimPy's release event hands the server on when processed; with one server and nobody queued
        # it cannot: a request made meanwhile took the server itself and holds it past that step
        if self.queue or self.capacity > 1:
            self.steps.soon(self._grant)

    def _grant(self) -> None:
        if self.queue and self.free:
            self._hold(*self.queue.popleft())

    def _hold(self, cycles: int, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.free -= 1
        steps = self.steps
        now = steps.now
        if cycles > 0:  # a timed step: see _Steps
            Timeout(steps.env, cycles, (now + cycles, fn, (now, *args))).callbacks.append(steps.timed)
        else:  # SimPy's Timeout(0) is a step of its own, after the grant's
            steps.soon(steps.soon, fn, now, *args)


class _Halves:
    """The two halves of a double buffer, taken by one process: a ``simpy.Container`` of capacity 2.

    Every put returns a half taken before, so a put never has to wait for room.
    """

    def __init__(self, steps: _Steps) -> None:
        self.steps = steps
        self.level = 2
        self.taker: Step | None = None

    def get(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` runs once a half is taken: a step later, or a step after the put that frees one."""
        if self.level:
            self.level -= 1
            self.steps.soon(fn, *args)
        else:
            self.taker = (fn, args)

    def put(self, then: Callable[[], None] | None = None) -> None:
        """Return a half; ``then()`` runs when SimPy would process the put (the putter waiting on it)."""
        self.level += 1
        if then is not None or self.taker is not None:  # else processing the put would find nobody to serve
            self.steps.soon(self._processed, then)

    def _processed(self, then: Callable[[], None] | None) -> None:
        if self.taker is not None and self.level:
            (fn, args), self.taker = self.taker, None
            self.level -= 1
            self.steps.soon(fn, *args)
        if then is not None:
            then()


class _Signal:
    """A one-shot ``simpy.Event``: triggered when it succeeds, its callbacks run a step later in order.

    Without ``late`` nobody waits once it has triggered (waiters check ``triggered`` first), so a signal
    nobody waits for yet needs no processing step; with it, waiting is possible until and after that step.
    """

    __slots__ = ("callbacks", "late", "steps", "triggered", "value")

    def __init__(self, steps: _Steps, *, late: bool = False) -> None:
        self.steps = steps
        self.late = late
        self.triggered = False
        self.value: Any = None
        self.callbacks: list[Step] | None = []

    def succeed(self, value: Any = None) -> None:
        self.triggered, self.value = True, value
        if self.callbacks or self.late:
            self.steps.soon(self._process)

    def wait(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` once processed; at once if it already was (a process yielding it continues)."""
        if self.callbacks is None:
            fn(*args)
        else:
            self.callbacks.append((fn, args))

    def _process(self) -> None:
        callbacks, self.callbacks = self.callbacks or [], None
        for fn, args in callbacks:
            fn(*args)


class _Memory(dict[int, int]):
    """Cycles of one transfer of so many bytes on a DRAM channel (``dram=None``: ideal memory, every
    transfer takes zero cycles), memoized as a dict lookup: tiles repeat a few sizes, and the exact
    rate is a Fraction."""

    def __init__(self, dram: DramChannel | None) -> None:
        super().__init__()
        self.dram = dram

    def __missing__(self, n_bytes: int) -> int:
        cycles = self[n_bytes] = 0 if self.dram is None else self.dram.transfer_cycles(n_bytes)
        return cycles


@dataclass(eq=False, slots=True)
class _Transfer:
    """One DMA transfer streaming on a :class:`_SharedDram`: its bytes (in the channel's units) and the service
    mark by which it is done, and what to call then."""

    units: int
    then: Callable[..., None]
    args: tuple[Any, ...]
    done_at: int = 0


class _SharedDram:
    """DRAM channels that keep ``outstanding`` transfers each in flight (``dram.outstanding_transfers`` > 1), as
    DMA engines with several requests outstanding do: a transfer takes a slot (``channels * outstanding`` of
    them, first come, first served), waits out its latency while the others stream, then streams its bytes;
    the transfers streaming share the channels' bandwidth equally, each at most one channel's. A transfer ends
    in the first whole cycle by which its share has carried its bytes.

    Equal shares make it a processor-sharing queue, kept in virtual time: ``served`` is what each streaming
    transfer has received so far, so a transfer that starts streaming is done when ``served`` reaches its
    start plus its bytes, and an event updates one counter, not every transfer. Counts are exact integers:
    bytes in units of ``1 / (q * scale)`` for a bandwidth ``p / q`` bytes per cycle, with ``scale`` a multiple
    of every number of streaming transfers seen, so each share is a whole number of units per cycle."""

    def __init__(self, steps: _Steps, dram: DramChannel) -> None:
        self.steps = steps
        self.latency = dram.latency_cycles
        self.p, self.q = dram.rate.numerator, dram.rate.denominator
        self.channels = dram.channels
        self.free = dram.channels * dram.outstanding
        self.queue: deque[_Transfer] = deque()
        self.streaming: list[_Transfer] = []
        self.entering: deque[int] = deque()  # the cycles the transfers in their latency start streaming, in order
        self.scale = 1
        self.served = 0
        self.share = 0  # units per cycle each streaming transfer receives (0 while none streams)
        self.since = 0  # the cycle ``served`` was brought up to
        self.epoch = 0  # the schedule's version: a completion step scheduled before the last change is stale

    def request(self, n_bytes: int, then: Callable[..., None], *args: Any) -> None:
        """Move ``n_bytes`` (> 0), then ``then(*args)``."""
        transfer = _Transfer(n_bytes, then, args)
        if self.free:
            self._start(transfer)
        else:
            self.queue.append(transfer)

    def _start(self, transfer: _Transfer) -> None:
        self.free -= 1
        if self.latency:
            steps = self.steps
            due = steps.now + self.latency
            self.entering.append(due)
            Timeout(steps.env, self.latency, (due, self._enter, (transfer,))).callbacks.append(steps.timed)
        else:
            self._stream(transfer)

    def _enter(self, transfer: _Transfer) -> None:
        self.entering.popleft()  # latencies are equal: transfers start streaming in the order they started
        self._stream(transfer)

    def _catch_up(self) -> None:
        now = self.steps.now
        if now > self.since:
            self.served += (now - self.since) * self.share
            self.since = now

    def _stream(self, transfer: _Transfer) -> None:
        self._catch_up()
        n = len(self.streaming) + 1
        if self.scale % n:  # rescale so that n shares stay whole units
            factor = n // gcd(self.scale, n)
            self.scale *= factor
            self.served *= factor
            for other in self.streaming:
                other.done_at *= factor
        transfer.done_at = self.served + transfer.units * self.q * self.scale
        self.streaming.append(transfer)
        self._schedule()

    def _schedule(self) -> None:
        """Each streaming transfer's share, and a step at the first whole cycle by which the transfer nearest its
        end is done."""
        self.epoch += 1
        n = len(self.streaming)
        self.share = self.p * self.scale * min(n, self.channels) // n if n else 0
        if n:
            cycles = -((self.served - min(t.done_at for t in self.streaming)) // self.share)
            if self.entering and self.steps.now + cycles >= self.entering[0]:
                return  # a transfer starts streaming first, and schedules anew: no step to go stale
            if cycles > 0:
                steps = self.steps
                step = (steps.now + cycles, self._complete, (self.epoch,))
                Timeout(steps.env, cycles, step).callbacks.append(steps.timed)
            else:  # a transfer's bytes were carried by this very cycle (its own step is due now but stale)
                self._complete(self.epoch)

    def _complete(self, epoch: int) -> None:
        if epoch != self.epoch:
            return
        self._catch_up()
        served = self.served
        done: list[_Transfer] = []
        streaming: list[_Transfer] = []
        for transfer in self.streaming:
            (done if transfer.done_at <= served else streaming).append(transfer)
        self.streaming = streaming
        self._schedule()
        for transfer in done:
            self.free += 1
            if self.queue:
                self._start(self.queue.popleft())
            transfer.then(*transfer.args)


@dataclass(eq=False, slots=True)
class _Load:
    """One tile's loads in flight: its fetches still to arrive and when each kind did."""

    li: int
    layer: LoweredLayer
    tile: Tile
    done: _Signal
    range_done: _Signal | None
    left: int = 0
    arrivals: dict[str, int] = field(default_factory=dict)


class Engine:
    """Simulates one program. ``dram=None`` is ideal memory: every transfer takes zero cycles."""

    def __init__(self, program: Program, dram: DramChannel | None, *, log: bool = False) -> None:
        self.program = program
        self.env = simpy.Environment()
        self.steps = _Steps(self.env)
        self.memory = _Memory(dram)
        self.channels = _Unit(self.steps, dram.channels if dram else 1)
        #: channels with several transfers in flight; None: each transfer holds a channel alone (``channels``)
        self.shared = _SharedDram(self.steps, dram) if dram is not None and dram.outstanding > 1 else None
        self.array = _Unit(self.steps, 1)
        self.vector = _Unit(self.steps, 1)
        self.requant = _Unit(self.steps, 1)
        self.ifmap_halves = _Halves(self.steps)
        self.filter_halves = _Halves(self.steps)
        self.ofmap_halves = _Halves(self.steps)
        self.timings = [_layer_timing(layer) for layer in program.layers]
        self.layer_stored = [_Signal(self.steps, late=True) for _ in program.layers]
        self.ready = [[_Signal(self.steps) for _ in layer.tiles] for layer in program.layers]
        self.logging = log
        self.log: list[tuple[str, int, int, str]] = []
        self.events = 0
        self._drains_open = 0  # drains of the current layer whose end SimPy has not processed yet
        self._drains_waiter: Callable[[], None] | None = None
        self._end: int | None = None  # the cycle the last layer was stored in
        self._done = self.env.event()  # succeeds then: the run stops

    # -- helpers -------------------------------------------------------------------------------------
    def _mark(self, lane: str, start: float, layer: str) -> None:
        self.events += 1
        if self.logging and self.steps.now > start:
            self.log.append((lane, int(start), int(self.steps.now), layer))

    def _on(self, unit: _Unit, cycles: int, lane: str, layer: str, then: Callable[..., None], *args: Any) -> None:
        """Hold ``unit`` for ``cycles``, then ``then(*args)``."""
        if cycles <= 0:
            then(*args)
        else:
            unit.request(cycles, self._off, unit, lane, layer, then, args)

    def _off(
        self, start: int, unit: _Unit, lane: str, layer: str, then: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        self._mark(lane, start, layer)
        unit.release()
        then(*args)

    def _dma(self, n_bytes: int, then: Callable[..., None], *args: Any) -> None:
        """Move ``n_bytes`` over a DRAM channel, then ``then(start, *args)`` (start: when it was asked for)."""
        start = self.steps.now
        cycles = self.memory[n_bytes]
        if cycles == 0:
            then(start, *args)
        elif self.shared is not None:
            self.shared.request(n_bytes, then, start, *args)
        else:
            self.channels.request(cycles, self._dma_done, then, start, args)

    def _dma_done(self, _grant: int, then: Callable[..., None], start: int, args: tuple[Any, ...]) -> None:
        self.channels.release()
        then(start, *args)

    # -- processes ----------------------------------------------------------------------------------
    def _loader(self, wake: Callable[..., None]) -> Generator[None, Any, None]:
        for li, layer in enumerate(self.program.layers):
            range_done: _Signal | None = None
            for ti, tile in enumerate(layer.tiles):
                if tile.new_ifmap:
                    self.ifmap_halves.get(wake)
                    yield
                if tile.new_weights:
                    self.filter_halves.get(wake)
                    yield
                self.steps.start(self._load_tile, _Load(li, layer, tile, self.ready[li][ti], range_done))
                if tile.range_pass:
                    range_done = self.ready[li][ti]

    def _load_tile(self, load: _Load) -> None:
        """DMA a tile's new blocks (activations only after earlier layers stored theirs), then pre-process."""
        tile, li = load.tile, load.li
        parts = []
        if tile.ifmap_bytes:
            parts.append(("ifmap", tile.ifmap_bytes, True))
        elif li > 0 and not self.layer_stored[li - 1].triggered:
            parts.append(("ifmap", 0, True))
        weight_bytes = tile.weight_bytes + tile.bias_bytes + tile.weight_scale_bytes
        if weight_bytes:
            parts.append(("weights", weight_bytes, load.layer.b_is_activation))
        load.left = len(parts)
        for kind, n_bytes, activation in parts:
            self.steps.start(self._fetch, load, kind, n_bytes, activation)
        if not parts:
            self._pre_process(load)

    def _fetch(self, load: _Load, kind: str, n_bytes: int, activation: bool) -> None:
        """One block's DMA, started as its own process (after the tile's first step, before its vector work)."""
        if activation and load.li > 0:
            self.layer_stored[load.li - 1].wait(self._dma, n_bytes, self._arrived, load, kind)
        else:
            self._dma(n_bytes, self._arrived, load, kind)

    def _arrived(self, start: int, load: _Load, kind: str) -> None:
        self._mark("dma_in", start, load.layer.name)
        load.arrivals[kind] = self.steps.now
        load.left -= 1
        if load.left == 0:  # the last fetch ends, then SimPy processes the AllOf of the fetches
            self.steps.soon(self.steps.soon, self._pre_process, load)

    def _pre_process(self, load: _Load) -> None:
        arrivals = load.arrivals
        cause = max(arrivals, key=arrivals.__getitem__) if arrivals else "ifmap"
        if not load.tile.pre_vector_cycles:
            load.done.succeed(cause)
        elif load.range_done is not None and not load.range_done.triggered:
            load.range_done.wait(self._pre_vector, load, "range_pass")
        else:
            self._pre_vector(load, cause)

    def _pre_vector(self, load: _Load, cause: str) -> None:
        self._on(
            self.vector,
            load.tile.pre_vector_cycles,
            "vector",
            load.layer.name,
            self._pre_done,
            load,
            cause,
            self.steps.now,
        )

    def _pre_done(self, load: _Load, cause: str, start: int) -> None:
        if self.steps.now - start > load.tile.pre_vector_cycles:
            cause = "vector_unit"
        load.done.succeed(cause)

    def _drain(self, layer: LoweredLayer, tile: Tile) -> None:
        post_unit = tile.post_unit or Unit.VECTOR  # a drain without post-processing holds no unit (0 cycles)
        unit = self.requant if post_unit is Unit.REQUANT else self.vector
        self._on(unit, tile.post_cycles, post_unit, layer.name, self._dma, tile.ofmap_bytes, self._stored, layer)

    def _stored(self, start: int, layer: LoweredLayer) -> None:
        self._mark("dma_out", start, layer.name)
        self.ofmap_halves.put(self._drain_ends)

    def _drain_ends(self) -> None:
        """The drain continues once its put is processed and ends: SimPy processes the end a step later."""
        self.steps.soon(self._drain_ended)

    def _drain_ended(self) -> None:
        self._drains_open -= 1
        if self._drains_open == 0 and self._drains_waiter is not None:
            self.steps.soon(self._drains_waiter)
            self._drains_waiter = None

    def _sequencer(self, wake: Callable[..., None]) -> Generator[None, Any, None]:
        steps = self.steps
        for li, layer in enumerate(self.program.layers):
            timing = self.timings[li]
            stalls = timing.stall_cycles
            drained = False
            hold_ifmap = hold_weights = hold_ofmap = False  # blocks this layer's tiles hold a buffer half for
            tiles = layer.tiles
            for ti, tile in enumerate(tiles):
                ready = self.ready[li][ti]
                wait_from = steps.now
                if not ready.triggered:
                    ready.wait(wake)
                    yield
                stalls[ready.value] += steps.now - wait_from
                hold_ifmap |= tile.new_ifmap
                hold_weights |= tile.new_weights
                if not tile.range_pass and not hold_ofmap:
                    wait_from = steps.now
                    self.ofmap_halves.get(wake)
                    yield
                    stalls["ofmap_buffer"] += steps.now - wait_from
                    hold_ofmap = True
                array = tile.unit is Unit.ARRAY
                unit = self.array if array else self.vector
                wait_from = steps.now
                unit.request(tile.compute_cycles, wake)
                start = yield
                stalls["vector_unit"] += start - wait_from
                self._mark("array" if array else "vector", start, layer.name)
                unit.release()
                nxt = tiles[ti + 1] if ti + 1 < len(tiles) else None
                # free the blocks the next tile does not reuse
                if hold_ifmap and (nxt is None or nxt.new_ifmap):
                    self.ifmap_halves.put()
                    hold_ifmap = False
                if hold_weights and (nxt is None or nxt.new_weights):
                    self.filter_halves.put()
                    hold_weights = False
                if tile.post_unit is not None or tile.ofmap_bytes:
                    self._drains_open += 1
                    self.steps.start(self._drain, layer, tile)
                    drained = True
                    hold_ofmap = False
            if hold_ofmap:
                self.ofmap_halves.put()
            if drained:  # wait for every drain's end, as an AllOf of the drain processes
                if self._drains_open == 0:
                    self.steps.soon(wake)
                else:
                    self._drains_waiter = wake
                yield
            timing.end_cycle = int(steps.now)
            self.layer_stored[li].succeed()

    def _finish(self) -> None:
        self._end = self.steps.now
        self._done.succeed()

    @staticmethod
    def _deadlocked() -> None:
        raise RuntimeError("the program deadlocked: no events left before the last layer was stored")

    def run(self) -> EngineRun:
        """Play the whole program."""
        self.start()
        return self.finish()

    def start(self) -> None:
        """Set the processes going, for :meth:`advance` to play them a slice at a time."""
        self.steps.start(_Process(self._loader, None).wake)
        self.steps.start(_Process(self._sequencer, self._finish).wake)
        self.steps.kick_off(self._deadlocked)

    def advance(self, events: int) -> bool:
        """Process up to ``events`` more SimPy events, never past the run's end; False once it is over.
        Slices leave the order of events alone: the same cycles, counts and log as :meth:`run`."""
        done, step = self._done, self.env.step
        for _ in range(events):
            if done.processed:
                return False
            step()
        return not done.processed

    def finish(self) -> EngineRun:
        """Play what is left of the run (after :meth:`start`, and any slices) and return it."""
        self.env.run(until=self._done)
        assert self._end is not None
        return EngineRun(self._end, self.timings, self.events, self.log)
