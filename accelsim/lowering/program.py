"""The lowered program: every layer of a workload as a sequence of tiles for the engine to play.

A tile is plain data: the DRAM bytes it loads per operand class (0 when its block is already
resident), the unit that computes it and for how many cycles, the post-processing (requant unit or
vector unit) when it completes an output block, and the bytes it writes back. GEMM layers lower to
array tiles (``tiling.plan_gemm``); pooling, adds, softmax and layer norm lower to vector-unit chunks
sized to half the ifmap buffer. Values are computed from the same layers and GEMM views, so timing
and values describe the same program.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property, partial
from math import ceil, prod
from typing import TYPE_CHECKING, TypedDict, Unpack

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import (
    GEMM_LAYERS,
    ActivationLayer,
    Add,
    AvgPool,
    Concat,
    Elementwise,
    Flatten,
    KvCache,
    LayerNorm,
    LayerShapes,
    Lrn,
    MaxPool,
    ReduceMean,
    Reshape,
    Resize,
    RmsNorm,
    Rotary,
    ScaleShift,
    Slice,
    Softmax,
    Transpose,
    Workload,
    kv_int8_bytes,
    pair,
)
from accelsim.dynamic_flavours import get_flavour
from accelsim.errors import AccelsimError
from accelsim.hw import LanePipeline, SystolicArray
from accelsim.lowering.gemm_view import ConvWindow, GemmView, gemm_view
from accelsim.lowering.operand_format import OperandFormat, dequant_unit, operand_format
from accelsim.lowering.tiling import (
    BufferHalves,
    NoTileFits,
    SpatialFootprints,
    TilePlan,
    channel_parameters,
    plan_gemm,
    smallest_halves,
    stored_weight_bytes,
    tile_bounds,
)
from accelsim.schemes import WeightFormatName, get_scheme, get_weight_format

if TYPE_CHECKING:
    from accelsim.lowering.kv_read import KvRead

#: vector-unit operations per element for work outside the array (fp32 lanes)
ACTIVATION_OPS = {
    "none": 0,
    "relu": 1,  # max
    "relu6": 1,  # clamp
    "clip": 1,
    "leaky_relu": 2,  # multiply, select
    "sigmoid": 4,  # negate, exp, add, divide
    "tanh": 5,  # double, exp, subtract, add, divide
    "hard_sigmoid": 3,  # multiply, add, clamp
    "hard_swish": 4,  # hard_sigmoid, multiply
    "gelu": 8,
    "erf": 7,  # polynomial, exp
    "silu": 5,  # sigmoid, multiply by x
    "square": 1,  # multiply
    "sqrt": 1,  # square root, a divide-class op
}
#: activations the requant unit applies as its output clamp under static int8; the others run on the vector unit
CLAMP_ACTIVATIONS = ("none", "relu", "relu6")
ELEMENTWISE_OPS = 1  # add, subtract, multiply or divide
SCALE_SHIFT_OPS = 2  # multiply, add
SOFTMAX_OPS = 5  # max, subtract, exp, sum, divide
#: a causal softmax selects -inf for the scores past each query's position (a compare of the key index against
#: the query's, then the select: one lane op with the index compare fused); the array still computes every score
CAUSAL_MASK_OPS = 1
LAYERNORM_OPS = 5  # mean, variance, normalize, scale, shift
#: reduce_mean: one add per input element, one divide per output (static: each input dequantized and each
#: output quantized)
REDUCE_OPS = 1
RMSNORM_OPS = 3  # square-and-sum, normalize, scale (the reciprocal square root is once per row)
#: rotary embedding per element: times cos, its partner times sin, add (cos and sin come from a table)
ROTARY_OPS = 3
#: an int8 KV cache: writing a new row takes its absmax per head and divides (2 ops per element); reading
#: multiplies each code by its head's and token's scale (1)
KV_QUANTIZE_OPS = 2
KV_DEQUANTIZE_OPS = 1
STATIC_REQUANT_OPS = 2  # dequantize in, quantize out around a float op on int8 data
DYNAMIC_QUANTIZE_OPS = 1
RANGE_OPS = 1  # min/max reduction
FLOAT_OUTPUT_OPS = 2  # acc * (s_x * s_w) + bias
#: per-row (per-token) dynamic activations: the combined scale s_x[row] * s_w[c] is a product per output, not
#: one per channel
ROW_RESCALE_OPS = 1
#: a per-row dynamic input's parameters beside its codes in the ifmap buffer: a float32 scale and an int32 zero
#: point per row (the output rescale reads them back)
ROW_PARAMETER_BYTES = 8
MOVE_OPS = 1  # concat / transpose: each element passes a lane once on its way to its new address
#: conv_transpose2d's col2im: each GEMM column value is added into the output it lands on (or dropped,
#: when the padding crops it)
COL2IM_OPS = 1
#: linear resize per output element: four taps weighted and summed (4 multiplies, 3 adds)
RESIZE_LINEAR_OPS = 7
#: LRN per element, plus one add per channel in the window: square, scale and bias (2), power (log,
#: multiply, exp: 3), divide
LRN_OPS = 7


#: the on-chip buffers, each with its own energy per byte (config.hardware.BufferEnergy)
SRAM_BUFFERS = ("ifmap", "filter", "ofmap")
#: the record fields of on-chip traffic per direction and buffer, in LoweredLayer.sram_bytes's order
SRAM_FIELDS = tuple(f"sram_{way}_bytes_{buffer}" for way in ("read", "write") for buffer in SRAM_BUFFERS)

#: array layers int4 group-wise weights apply to (a matmul's second operand is an activation: it keeps int8)
INT4_LAYERS = ("linear", "matmul")


class Unit(StrEnum):
    """A unit of the accelerator that runs a tile's compute or finishes its output block; the value is
    its lane in the engine's log."""

    ARRAY = "array"
    VECTOR = "vector"
    REQUANT = "requant"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tile:
    """One step of the program: load operands, (pre-process), compute, (post-process), store."""

    ifmap_bytes: int
    weight_bytes: int  # for matmul: the second activation operand
    bias_bytes: int = 0
    weight_scale_bytes: int = 0
    new_ifmap: bool  # occupies a fresh ifmap half (else reuses the resident block)
    new_weights: bool
    pre_vector_cycles: int = 0  # on-the-fly quantize (dynamic) or weight dequantize (woq)
    unit: Unit  # ARRAY or VECTOR
    compute_cycles: int
    #: W4A8: the requant unit's lanes rescaling each group's int32 partial sums as the array emits them
    #: (inline: ``compute_cycles`` is the longer of the two)
    rescale_cycles: int = 0
    post_unit: Unit | None = None  # REQUANT or VECTOR when the tile completes an output block
    post_cycles: int = 0
    ofmap_bytes: int = 0
    macs: int = 0  # useful MACs done by this tile (zeros of packed depthwise excluded)
    # on-chip buffer traffic per buffer (docs/energy.md defines each): the ifmap buffer holds input
    # activations, the filter buffer weights and per-channel parameters, the ofmap buffer partial sums and outputs
    sram_read_bytes_ifmap: int
    sram_read_bytes_filter: int = 0
    sram_read_bytes_ofmap: int = 0
    sram_write_bytes_ifmap: int
    sram_write_bytes_filter: int = 0
    sram_write_bytes_ofmap: int = 0
    range_pass: bool = False  # a dynamic-range reduction every later tile of the layer waits for


@dataclass(frozen=True)
class LayerWork:
    """What a layer's tiles add up to whatever their schedule: busy cycles per unit and DRAM traffic."""

    compute_cycles: int  # array and vector tiles
    vector_cycles: int  # vector tiles, pre-processing (quantize, dequantize) and post-processing
    requant_cycles: int
    dram_read_bytes: dict[str, int]  # per operand class: ifmap, weights, bias, weight_scales, kv_cache
    dram_write_bytes: int


@dataclass(frozen=True, kw_only=True)
class LoweredLayer:
    name: str
    type: str
    tiles: tuple[Tile, ...]
    view: GemmView | None = None
    plan: TilePlan | None = None

    # sums over the tiles, computed once per lowered program (a prepared program is played many times)
    @cached_property
    def macs(self) -> int:
        return sum(t.macs for t in self.tiles)

    @cached_property
    def array_compute_cycles(self) -> int:
        return sum(t.compute_cycles for t in self.tiles if t.unit is Unit.ARRAY)

    @cached_property
    def sram_bytes(self) -> dict[str, int]:
        """SRAM traffic per direction and buffer, by record field: ``sram_read_bytes_ifmap`` ...
        ``sram_write_bytes_ofmap`` (docs/energy.md)."""
        # one pass with plain attribute reads: a sweep point sums every tile of ResNet-50 here
        ri = rf = ro = wi = wf = wo = 0
        for t in self.tiles:
            ri += t.sram_read_bytes_ifmap
            rf += t.sram_read_bytes_filter
            ro += t.sram_read_bytes_ofmap
            wi += t.sram_write_bytes_ifmap
            wf += t.sram_write_bytes_filter
            wo += t.sram_write_bytes_ofmap
        return dict(zip(SRAM_FIELDS, (ri, rf, ro, wi, wf, wo)))

    @property
    def sram_read_bytes(self) -> int:
        return sum(self.sram_bytes[f"sram_read_bytes_{b}"] for b in SRAM_BUFFERS)

    @property
    def sram_write_bytes(self) -> int:
        return sum(self.sram_bytes[f"sram_write_bytes_{b}"] for b in SRAM_BUFFERS)

    @cached_property
    def work(self) -> LayerWork:
        """The engine's per-layer sums, computed once per lowered program rather than per tile played."""
        tiles = self.tiles
        vector_compute = sum(t.compute_cycles for t in tiles if t.unit is Unit.VECTOR)
        post = {unit: sum(t.post_cycles for t in tiles if t.post_unit is unit) for unit in (Unit.VECTOR, Unit.REQUANT)}
        weights = sum(t.weight_bytes for t in tiles)
        ifmap = sum(t.ifmap_bytes for t in tiles)
        return LayerWork(
            compute_cycles=sum(t.compute_cycles for t in tiles),
            vector_cycles=vector_compute + sum(t.pre_vector_cycles for t in tiles) + post[Unit.VECTOR],
            requant_cycles=post[Unit.REQUANT] + sum(t.rescale_cycles for t in tiles),
            dram_read_bytes={
                "weights": 0 if self.b_is_activation else weights,
                "weight_scales": sum(t.weight_scale_bytes for t in tiles),
                "bias": sum(t.bias_bytes for t in tiles),
                "ifmap": ifmap + weights if self.b_is_activation and not self.reads_kv_cache else ifmap,
                "kv_cache": weights if self.reads_kv_cache else 0,
            },
            dram_write_bytes=sum(t.ofmap_bytes for t in tiles),
        )

    @cached_property
    def unit(self) -> str:
        """Where the layer's main work runs: ``array``, ``vector``, or ``none`` (a view); a dynamic range
        pass ahead of an array layer's tiles does not count."""
        return next((t.unit.value for t in self.tiles if not t.range_pass), "none")

    @property
    def reads_kv_cache(self) -> bool:
        """A matmul whose operand b is a KV cache: that traffic is the ``kv_cache`` class."""
        return self.view is not None and self.view.kv_read is not None

    @property
    def b_is_activation(self) -> bool:
        """A matmul of two activations: its second operand is traffic of the ifmap class."""
        return self.view is not None and self.view.b_is_activation


#: the types of the static scheme's boundary layers (network input quantized, output dequantized)
CONVERSIONS = ("quantize", "dequantize")
#: the static scheme's output conversion; ``output.dequantize:<layer>`` for each of several ``outputs``
OUTPUT_CONVERSION = "output.dequantize"


@dataclass(frozen=True)
class Program:
    """What the accelerator executes for one workload on one hardware config under one scheme: the
    engine plays its tiles and the values (``accelsim.values.runner``) compute its layers through their
    GEMM views, so neither can run a layer the other does not know."""

    workload: str
    hardware: str
    scheme: str
    layers: tuple[LoweredLayer, ...]
    operand_format: OperandFormat | None = None  # the operands' bytes per element (None: a hand-built program)

    @property
    def workload_layers(self) -> tuple[LoweredLayer, ...]:
        """The workload's own layers in order, without the static scheme's boundary conversions."""
        return tuple(layer for layer in self.layers if layer.type not in CONVERSIONS)


class Lowerer:
    """Prices tiles on one hardware config under one scheme. ``dynamic_per_tensor``: the dynamic scheme's
    activations take a per-tensor range pass; ``weights``: the weight format (``accelsim.schemes.WEIGHT_FORMATS``):
    asymmetric weights carry a zero point per output channel (per group for int4), read with the weight scales,
    and int4 weights come in groups of K elements (linear layers only); ``per_tensor_weights``: one weight scale
    per tensor, read once per block instead of one per channel."""

    def __init__(
        self,
        hw: HardwareConfig,
        scheme: str,
        dynamic_per_tensor: bool = True,
        *,
        weights: str = WeightFormatName.SYMMETRIC,
        per_tensor_weights: bool = False,
    ) -> None:
        self.hw = hw
        self.plan = get_scheme(scheme)
        self.fmt: OperandFormat = operand_format(scheme, hw, weights=weights, per_tensor_weights=per_tensor_weights)
        #: W4A8 (int4 group-wise weights on the integer array): one int32 partial sum per group leaves the array
        self.w4a8_group = self.fmt.weight_group if not self.plan.float_gemm else None
        # weights stored quantized for a float GEMM: a dequantization unit converts them between the filter buffer
        # and the array, inline with the GEMM, or else the vector unit each new weight block as it arrives
        self.dequant_unit = dequant_unit(scheme, hw)
        self.dequantizes_weights = self.plan.float_gemm and self.plan.weights.quantized and not self.dequant_unit
        self.array = SystolicArray(hw.array.rows, hw.array.cols, hw.array.dataflow, hw.array.model)
        self.requant = LanePipeline(hw.requant.lanes, hw.requant.latency_cycles)
        self.vector = LanePipeline(hw.vector.lanes, hw.vector.latency_cycles)
        kib = 1024
        self.halves = BufferHalves(
            int(hw.sram.ifmap_kib * kib) // 2, int(hw.sram.filter_kib * kib) // 2, int(hw.sram.ofmap_kib * kib) // 2
        )
        self.dynamic_per_tensor = dynamic_per_tensor
        self._cycle_cache: dict[tuple[int, int, int, bool], int] = {}
        self._plans: dict[GemmView, TilePlan] = {}
        self._footprints: dict[tuple[ConvWindow | None, int], SpatialFootprints] = {}
        self._gemm_tiles: dict[tuple[GemmView, str, int], tuple[Tile, ...]] = {}
        self._vector_jobs: dict[tuple[int, int, int, int], tuple[Tile, ...]] = {}
        #: matmul layer -> the KV cache its operand b reads (set by :meth:`read_kv_caches`)
        self.kv_reads: dict[str, KvRead] = {}

    def read_kv_caches(self, workload: Workload) -> None:
        """Note each matmul whose operand b is a kv_cache layer's output: it reads the cache from DRAM."""
        caches = {s.layer.name: s for s in workload.shapes if isinstance(s.layer, KvCache)}
        if not caches:
            return
        from accelsim.lowering.kv_read import KvRead  # decoders only: see its module

        for shapes in workload.shapes:
            if len(shapes.input_names) == 2 and (cache := caches.get(shapes.input_names[1])) is not None:
                assert isinstance(cache.layer, KvCache)  # the caches dict holds kv_cache layers only
                self.kv_reads[shapes.layer.name] = KvRead(cache.layer.dtype, cache.output_shape[1] // cache.layer.heads)

    def check_buffers(self, workload: Workload) -> None:
        """Refuse SRAM buffers too small for some layer's smallest tile before planning any layer, naming
        the buffer and the smallest size that runs the whole workload (a vector job streams through
        the ifmap and ofmap halves and needs one byte of each)."""
        need = {"ifmap": (1, "a vector layer"), "filter": (0, ""), "ofmap": (1, "a vector layer")}
        for shapes in workload.shapes:
            if isinstance(shapes.layer, GEMM_LAYERS):
                smallest = smallest_halves(self.choose_view(shapes, workload.batch), self.fmt)
                for buffer, (bytes_, _) in need.items():
                    if getattr(smallest, buffer) > bytes_:
                        need[buffer] = (getattr(smallest, buffer), f"layer {shapes.layer.name!r}")
        for buffer, (bytes_, by) in need.items():
            if getattr(self.halves, buffer) < bytes_:
                raise AccelsimError(
                    f"no tile fits the SRAM buffers: {by} needs {bytes_:,} byte{'s' * (bytes_ > 1)} in each half of the "
                    f"double-buffered {buffer} buffer for its smallest tile under the {self.fmt.scheme} scheme; "
                    f"{getattr(self.hw.sram, buffer + '_kib')} KiB gives {getattr(self.halves, buffer):,}",
                    path=f"sram.{buffer}_kib",
                    allowed=f"at least {2 * bytes_ / 1024!r} KiB ({2 * bytes_:,} bytes) for this workload",
                )

    # -- array work ------------------------------------------------------------------------------
    @property
    def gemm_unit(self) -> Unit:
        """The array, or the vector unit for a float GEMM on an array without a float datapath."""
        return Unit.VECTOR if self.fmt.float_gemm and self.hw.array.float_rate == 0 else Unit.ARRAY

    def grouped(self, view: GemmView) -> bool:
        """Does ``view`` run W4A8 (int4 group-wise weights on the integer array)? A matmul's second operand
        is an activation, quantized as under int8 weights."""
        return self.w4a8_group is not None and not view.b_is_activation

    def tile_cycles(self, m: int, k: int, n: int, grouped: bool = False) -> int:
        """Compute cycles of one ``m x k x n`` tile on the unit this scheme's GEMMs use (``grouped``: W4A8)."""
        key = (m, k, n, grouped)
        if key not in self._cycle_cache:
            if self.gemm_unit is Unit.VECTOR:
                cycles = self.vector.cycles(m * k * n)
            elif grouped:
                cycles = max(self._group_pass_cycles(m, k, n), self.rescale_cycles(m, k, n))
            else:
                cycles = self.array.tile_cycles(m, k, n)
                if self.fmt.float_gemm:
                    cycles = ceil(cycles / self.hw.array.float_rate)
                if self.dequant_unit:  # the tile's weights pass it once on their way into the PEs, inline
                    cycles = max(cycles, ceil(k * n / self.hw.array.dequant_lanes))
            self._cycle_cache[key] = cycles
        return self._cycle_cache[key]

    def _group_pass_cycles(self, m: int, k: int, n: int) -> int:
        """W4A8 array cycles. Weight- and input-stationary arrays reduce K down their rows and emit a partial
        sum per fold of ``rows`` K elements anyway: when a group spans whole folds, the rescale takes those
        sums and the array runs as under int8. Otherwise (output stationary, whose sums stay in the PEs, or
        a group shorter than the rows) each group is its own pass, leaving PEs idle."""
        g = self.w4a8_group
        assert g is not None
        if self.hw.array.dataflow != "os" and g % self.hw.array.rows == 0:
            return self.array.tile_cycles(m, k, n)
        full, rest = divmod(k, g)
        return full * self.array.tile_cycles(m, g, n) + (self.array.tile_cycles(m, rest, n) if rest else 0)

    def rescale_cycles(self, m: int, k: int, n: int) -> int:
        """W4A8: the requant unit's lanes multiply each group's partial sum by ``a_scale * w_scale`` and add it
        (and the zero-point term) into the float32 accumulator: one lane operation per group and output."""
        g = self.w4a8_group
        assert g is not None
        return self.requant.cycles(m * n * ceil(k / g))

    def _array_reads(self, m: int, k: int, n: int) -> tuple[int, int]:
        """Operand bytes the array reads from the ifmap and the filter buffer for one tile: the streamed
        operand is read once per fold of the other spatial dimension, the stationary one once."""
        r, c = self.hw.array.rows, self.hw.array.cols
        x, w = m * k * self.fmt.ifmap_sram, ceil(k * n * self.fmt.weights_sram)  # int4 codes: half a byte
        folds = {"os": (ceil(n / c), ceil(m / r)), "ws": (ceil(n / c), 1), "is": (1, ceil(m / c))}
        x_times, w_times = folds[self.hw.array.dataflow]
        return x * x_times, w * w_times

    def _align(self) -> tuple[int, int, int]:
        r, c = self.hw.array.rows, self.hw.array.cols
        m, k, n = {"os": (r, 1, c), "ws": (1, r, c), "is": (c, r, 1)}[self.hw.array.dataflow]
        return m, self.w4a8_group or k, n  # W4A8: K tiles hold whole groups (a matmul's too: harmless)

    def choose_view(self, shapes: LayerShapes, batch: int) -> GemmView:
        """The GEMM mapping with the fewest compute cycles; depthwise may pack groups block-diagonally."""
        plain = gemm_view(shapes, batch)
        if shapes.layer.name in self.kv_reads:
            plain = replace(plain, kv_read=self.kv_reads[shapes.layer.name])
        groups = getattr(shapes.layer, "groups", 1)
        if groups == 1:
            return plain
        best, best_cycles = plain, plain.count * self.tile_cycles(plain.m, plain.k, plain.n)
        packed = 2
        while packed <= groups:
            if groups % packed == 0:
                view = gemm_view(shapes, batch, packed)
                cycles = view.count * self.tile_cycles(view.m, view.k, view.n)
                if cycles < best_cycles:
                    best, best_cycles = view, cycles
            packed *= 2
        return best

    def _plan(self, view: GemmView) -> TilePlan:
        """Tiling of ``view``; layers of the same shape (views compare by their GEMM) share one search."""
        if view not in self._plans:
            geometry = (view.window, view.m)  # layers of different channels share M-tile footprints
            if geometry not in self._footprints:
                self._footprints[geometry] = SpatialFootprints(view)
            try:
                self._plans[view] = plan_gemm(
                    view,
                    self.fmt,
                    self.halves,
                    self._align(),
                    partial(self.tile_cycles, grouped=self.grouped(view)),
                    self.hw.dram_bytes_per_cycle,
                    self._footprints[geometry],
                )
            except NoTileFits as exc:
                raise AccelsimError(
                    f"{exc} under the {self.fmt.scheme} scheme; enlarge the buffers", path="sram"
                ) from None
        return self._plans[view]

    def post(self, outputs: int, activation: str, grouped: bool = False, per_row: bool = False) -> tuple[Unit, int]:
        """Which unit finishes an output block and how long it takes (``grouped``: W4A8, whose rescale already
        scaled the sums; ``per_row``: dynamic activations with a scale per row, one more product per output)."""
        if self.plan.requant_unit:
            extra = (
                self.vector.cycles(outputs * (ACTIVATION_OPS[activation] + STATIC_REQUANT_OPS))
                if activation not in CLAMP_ACTIVATIONS
                else 0
            )
            return Unit.REQUANT, self.requant.cycles(outputs) + extra
        scaled = self.plan.runtime_activations and not grouped
        ops = FLOAT_OUTPUT_OPS * scaled + ROW_RESCALE_OPS * per_row + ACTIVATION_OPS[activation] + 1
        return Unit.VECTOR, self.vector.cycles(outputs * ops)

    def gemm_layer(self, shapes: LayerShapes, batch: int) -> LoweredLayer:
        if self.fmt.weight_group is not None and shapes.layer.type not in INT4_LAYERS:
            raise AccelsimError(
                f"int4 group-wise weights apply to linear layers (and matmuls of two activations, which have no "
                f"weights); layer {shapes.layer.name!r} is {shapes.layer.type}",
                path="weights",
                allowed="an int8 weight format (symmetric, asymmetric, asymmetric_int8) for this workload",
            )
        view = self.choose_view(shapes, batch)
        plan = self._plan(view)
        activation = getattr(shapes.layer, "activation", "none")
        input_elems = batch * prod(shapes.input_shapes[0])
        key = (view, activation, input_elems)
        if key not in self._gemm_tiles:  # layers alike share their tiles: a Tile is immutable
            self._gemm_tiles[key] = self._array_tiles(view, plan, activation, input_elems)
        return LoweredLayer(
            name=shapes.layer.name, type=shapes.layer.type, tiles=self._gemm_tiles[key], view=view, plan=plan
        )

    def _array_tiles(self, view: GemmView, plan: TilePlan, activation: str, input_elems: int) -> tuple[Tile, ...]:
        """The tiles of one array layer in loop order, after the dynamic range pass if it has one."""
        fmt = self.fmt
        tiles: list[Tile] = []
        resident_input = False
        grouped = self.grouped(view)
        # per-row (per-token) dynamic activations: each row's range is reduced on the fly as its block arrives,
        # unless K is cut into blocks: a row's scale must then be known before its first K block is quantized
        per_row = self.plan.runtime_activations and not self.dynamic_per_tensor and not grouped
        row_pass = per_row and plan.kt < view.k
        if self.plan.runtime_activations and self.dynamic_per_tensor or row_pass:
            # The range must see the whole input (each whole row) before the first tile is quantized. If the
            # fp32 input fits in the ifmap buffer it stays there; otherwise tiles read it a second time.
            resident_input = input_elems * fmt.ifmap_dram <= 2 * self.halves.ifmap
            input_bytes = input_elems * fmt.ifmap_dram
            tiles.append(
                Tile(
                    ifmap_bytes=input_bytes,
                    weight_bytes=0,
                    new_ifmap=True,
                    new_weights=False,
                    unit=Unit.VECTOR,
                    compute_cycles=self.vector.cycles(input_elems * RANGE_OPS),
                    sram_read_bytes_ifmap=input_bytes,
                    sram_write_bytes_ifmap=input_bytes,
                    range_pass=True,
                )
            )
        ms, ks, ns = tile_bounds(view.m, plan.mt), tile_bounds(view.k, plan.kt), tile_bounds(view.n, plan.nt)
        loops = (
            [(m, n, k) for n in ns for m in ms for k in ks]
            if plan.order == "nmk"
            else [(m, n, k) for m in ms for n in ns for k in ks]
        )
        useful_fraction = view.useful_macs / view.macs
        unit = self.gemm_unit

        def tile(
            mt: int, k: tuple[int, int], n: tuple[int, int], new_x: bool, new_w: bool, new_n: bool, footprint: int
        ) -> Tile:
            kt, nt = k[1] - k[0], n[1] - n[0]
            # the per-channel parameters arrive with the first weight block of an N block and stay beside
            # the array until its last K block is requantized: once per N block, not per K block
            params = channel_parameters(view, fmt, nt * new_n)
            pre = 0
            if self.plan.runtime_activations and new_x:
                on_the_fly_range = not self.dynamic_per_tensor and not row_pass
                pre += self.vector.cycles(footprint * (DYNAMIC_QUANTIZE_OPS + RANGE_OPS * on_the_fly_range))
            # per-row parameters: written beside the codes as an M block's first K block is quantized, read by
            # the output rescale with its last K block
            row_params = ROW_PARAMETER_BYTES * mt * per_row
            if self.plan.runtime_activations and new_w and view.b_is_activation:
                pre += self.vector.cycles(kt * nt * DYNAMIC_QUANTIZE_OPS)
            if view.kv_read is not None and view.kv_read.dtype == "int8" and new_w:  # per-head, per-token scales
                pre += self.vector.cycles(kt * nt * KV_DEQUANTIZE_OPS)
            if self.dequantizes_weights and new_w and not view.b_is_activation:
                pre += self.vector.cycles(view.weight_elements(k[0], k[1], n[0], n[1]))
            last = k[1] == view.k
            outputs = mt * nt if last else 0
            scatter = 0  # conv_transpose2d: the block's columns are added into its share of the outputs
            if view.col2im is not None:
                outputs, scatter = round(outputs * view.col2im.outputs / view.col2im.columns), outputs * COL2IM_OPS
            post_unit, post_cycles = self.post(outputs, activation, grouped, per_row) if last else (None, 0)
            post_cycles += self.vector.cycles(scatter) if last else 0
            x_reads, w_reads = self._array_reads(mt, kt, nt)
            return Tile(
                ifmap_bytes=0 if resident_input else footprint * fmt.ifmap_dram,
                weight_bytes=stored_weight_bytes(view, fmt, k, n, sram=False) if new_w else 0,
                bias_bytes=params.bias,
                weight_scale_bytes=params.weight_scales,
                new_ifmap=new_x and not resident_input,
                new_weights=new_w,
                pre_vector_cycles=pre,
                unit=unit,
                compute_cycles=self.tile_cycles(mt, kt, nt, grouped),
                rescale_cycles=self.rescale_cycles(mt, kt, nt) if grouped else 0,
                post_unit=post_unit,
                post_cycles=post_cycles,
                ofmap_bytes=outputs * fmt.ofmap_dram,
                macs=round(mt * kt * nt * useful_fraction),
                sram_read_bytes_ifmap=x_reads + row_params * last,
                sram_read_bytes_filter=w_reads,
                # partial sums read back to accumulate onto, and by the requant/vector unit after the last K block
                sram_read_bytes_ofmap=((k[0] > 0) + last) * mt * nt * fmt.accumulator,
                sram_write_bytes_ifmap=footprint * fmt.ifmap_sram * (not resident_input)
                + row_params * (new_x and k[0] == 0),
                sram_write_bytes_filter=(stored_weight_bytes(view, fmt, k, n, sram=True) if new_w else 0)
                + params.total,
                sram_write_bytes_ofmap=mt * nt * fmt.accumulator,
            )

        # A tile depends on its blocks only through their sizes, the ifmap footprint and where the K block
        # sits (first, last); packed groups store weights on the diagonal only, so there the blocks
        # themselves. Equal tiles are priced once: most of a layer's tiles repeat a few.
        spatial = {m: view.spatial_footprint(*m) for m in ms}
        k_footprint = {k: view.k_footprint(*k) for k in ks}
        made: dict[tuple, Tile] = {}
        gemm: list[Tile] = []  # one GEMM's tiles; the layer's `count` GEMMs (groups, heads) repeat them
        x_block = w_block = n_block = None
        for m, n, k in loops:
            new_x, new_w, new_n = (m, k) != x_block, (k, n) != w_block, n != n_block
            x_block, w_block, n_block = (m, k), (k, n), n
            mt = m[1] - m[0]
            footprint = spatial[m] * k_footprint[k] if new_x else 0
            where = (k, n) if view.packed > 1 else (k[0] > 0, k[1] == view.k)
            key = (mt, k[1] - k[0], n[1] - n[0], new_x, new_w, new_n, footprint, where)
            if key not in made:
                made[key] = tile(mt, k, n, new_x, new_w, new_n, footprint)
            gemm.append(made[key])
        tiles.extend(gemm * view.count)
        return tuple(tiles)

    # -- vector work -------------------------------------------------------------------------------
    def vector_layer(self, shapes: LayerShapes, batch: int) -> LoweredLayer:
        layer = shapes.layer
        out_elems = batch * prod(shapes.output_shape)
        in_elems = batch * sum(prod(s) for s in shapes.input_shapes)
        static = self.plan.calibrated  # int8 activations: a float op dequantizes and quantizes around it
        act = getattr(layer, "activation", "none")
        if isinstance(layer, (Flatten, Reshape)):  # row-major per sample: the same bytes under another shape
            return LoweredLayer(name=layer.name, type=layer.type, tiles=())
        if isinstance(layer, (MaxPool, AvgPool)):
            if layer.global_pool:
                window = prod(shapes.input_shapes[0][1:])
            else:
                assert layer.kernel is not None  # the model requires a kernel unless the pool is global
                kernel_h, kernel_w = pair(layer.kernel)
                window = kernel_h * kernel_w
            ops = out_elems * (window + (isinstance(layer, AvgPool) and static) * STATIC_REQUANT_OPS)
        elif isinstance(layer, Add):
            ops = out_elems * (1 + ACTIVATION_OPS[act] + static * (STATIC_REQUANT_OPS + 1))
        elif isinstance(layer, Transpose):  # codes move exactly, whatever the scheme
            ops = out_elems * MOVE_OPS
        elif isinstance(layer, Slice):  # a strided DMA fetches the kept elements only; codes move exactly
            in_elems, ops = out_elems, out_elems * MOVE_OPS
        elif isinstance(layer, Resize):  # nearest gathers codes exactly; linear dequantizes under static
            linear = layer.mode == "linear"
            ops = out_elems * (RESIZE_LINEAR_OPS + static * STATIC_REQUANT_OPS if linear else MOVE_OPS)
        elif isinstance(layer, Concat):  # static: each input requantized to the output's parameters
            ops = out_elems * (MOVE_OPS + static * STATIC_REQUANT_OPS)
        elif isinstance(layer, Lrn):
            ops = out_elems * (LRN_OPS + layer.size + static * STATIC_REQUANT_OPS)
        elif isinstance(layer, Softmax):
            ops = out_elems * (SOFTMAX_OPS + CAUSAL_MASK_OPS * layer.causal + static * STATIC_REQUANT_OPS)
        elif isinstance(layer, LayerNorm):
            ops = out_elems * (LAYERNORM_OPS + static * STATIC_REQUANT_OPS)
        elif isinstance(layer, ReduceMean):
            ops = (in_elems + out_elems) * (REDUCE_OPS + static)
        elif isinstance(layer, (RmsNorm, Rotary)):
            ops = out_elems * (
                (RMSNORM_OPS if isinstance(layer, RmsNorm) else ROTARY_OPS) + static * STATIC_REQUANT_OPS
            )
        elif isinstance(layer, KvCache):  # appends the new rows; the attention matmul reads the whole cache
            return LoweredLayer(name=layer.name, type=layer.type, tiles=self._kv_append(shapes, batch))
        elif isinstance(layer, ActivationLayer):
            ops = out_elems * (ACTIVATION_OPS[layer.function] + static * STATIC_REQUANT_OPS)
        elif isinstance(layer, (Elementwise, ScaleShift)):  # static: each activation input dequantized
            base = SCALE_SHIFT_OPS if isinstance(layer, ScaleShift) else ELEMENTWISE_OPS
            dequantized = len(shapes.input_shapes)
            ops = out_elems * (base + ACTIVATION_OPS[act] + static * (STATIC_REQUANT_OPS - 1 + dequantized))
        else:
            raise TypeError(f"{layer.type} is not a vector layer")
        width = self.fmt.ofmap_dram  # activations between layers are stored as the scheme's outputs
        extra = 4 * shapes.params  # float32 parameters: layernorm's and scale_shift's, elementwise constants
        if isinstance(layer, Rotary):  # its float32 cos and sin table, [tokens, head size] each
            extra = 2 * 4 * shapes.output_shape[0] * (shapes.output_shape[1] // layer.heads)
        return LoweredLayer(
            name=layer.name, type=layer.type, tiles=self._chunks(in_elems * width, out_elems * width, ops, extra)
        )

    def _kv_append(self, shapes: LayerShapes, batch: int) -> tuple[Tile, ...]:
        """A kv_cache layer's work: this step's rows read and stored into the cache in its dtype (an int8 cache
        quantizes them per head and token and stores their scales); the earlier rows stay in DRAM for the
        matmul that reads the cache."""
        layer = shapes.layer
        assert isinstance(layer, KvCache)
        new = batch * prod(shapes.input_shapes[0])
        int8 = layer.dtype == "int8"
        stored = kv_int8_bytes(new, shapes.output_shape[1] // layer.heads) if int8 else new * self.fmt.ofmap_dram
        ops = new * (MOVE_OPS + int8 * KV_QUANTIZE_OPS)
        return self._chunks(new * self.fmt.ofmap_dram, stored, ops)

    def _chunks(self, in_bytes: int, out_bytes: int, ops: int, weight_bytes: int = 0) -> tuple[Tile, ...]:
        """Stream a vector job through half-buffers: load, compute, store, double-buffered. Jobs alike
        (ResNet's residual adds) share their chunks and chunks alike one Tile: a Tile is immutable."""
        key = (in_bytes, out_bytes, ops, weight_bytes)
        if key not in self._vector_jobs:
            chunks = max(1, ceil(in_bytes / self.halves.ifmap), ceil(out_bytes / self.halves.ofmap))
            made: dict[tuple[int, int, int, bool], Tile] = {}
            tiles = []
            for i in range(chunks):
                load, store, work = (
                    total * (i + 1) // chunks - total * i // chunks for total in (in_bytes, out_bytes, ops)
                )
                chunk = (load, store, work, i == 0)
                if chunk not in made:
                    made[chunk] = Tile(
                        ifmap_bytes=load,
                        weight_bytes=weight_bytes if i == 0 else 0,
                        new_ifmap=True,
                        new_weights=i == 0,
                        unit=Unit.VECTOR,
                        compute_cycles=self.vector.cycles(work),
                        ofmap_bytes=store,
                        # the input passes through the ifmap buffer, the result through the ofmap buffer
                        sram_read_bytes_ifmap=load,
                        sram_read_bytes_ofmap=store,
                        sram_write_bytes_ifmap=load,
                        sram_write_bytes_ofmap=store,
                    )
                tiles.append(made[chunk])
            self._vector_jobs[key] = tuple(tiles)
        return self._vector_jobs[key]

    def conversion(self, name: str, elements: int, in_width: int, out_width: int) -> LoweredLayer:
        """Quantize the network input / dequantize its output at the static scheme's boundary."""
        return LoweredLayer(
            name=name,
            type=CONVERSIONS[0] if out_width < in_width else CONVERSIONS[1],
            tiles=self._chunks(elements * in_width, elements * out_width, elements),
        )


class LoweringOptions(TypedDict, total=False):
    """:func:`lower`'s keyword options (the :class:`Lowerer`'s) that a run's flavour, weight format and
    weight granularity fix; any left out takes the Lowerer's default."""

    dynamic_per_tensor: bool
    weights: str
    per_tensor_weights: bool


def lowering_options(flavour: str, weights: str, weight_granularity: str = "per_channel") -> LoweringOptions:
    """:func:`lower`'s options for a run's dynamic flavour (a per-tensor range pass or per-row ranges),
    weight format (passed on whole: its table says zero points or not, int4 groups) and weight granularity
    (one scale per tensor or per channel). W4A8 quantizes activations per row and group (ORT's
    accuracy_level 4), so it has no per-tensor range pass whatever the flavour."""
    fmt = get_weight_format(weights)
    return LoweringOptions(
        dynamic_per_tensor=get_flavour(flavour).granularity == "per_tensor" and fmt.group is None,
        weights=weights,
        per_tensor_weights=weight_granularity == "per_tensor",
    )


def lower(workload: Workload, hw: HardwareConfig, scheme: str, **options: Unpack[LoweringOptions]) -> Program:
    """Lower every layer of ``workload`` for ``hw`` under ``scheme``, with the :class:`Lowerer`'s options
    (:func:`lowering_options` derives them from a run's settings)."""
    lowerer = Lowerer(hw, scheme, **options)
    lowerer.read_kv_caches(workload)
    lowerer.check_buffers(workload)
    layers: list[LoweredLayer] = []
    batch = workload.batch
    if lowerer.plan.calibrated:  # int8 between layers: the float network input is quantized once
        layers.append(lowerer.conversion("input.quantize", batch * prod(workload.input_shape), 4, 1))
    for shapes in workload.shapes:
        if isinstance(shapes.layer, GEMM_LAYERS):
            layers.append(lowerer.gemm_layer(shapes, batch))
        else:
            layers.append(lowerer.vector_layer(shapes, batch))
    if lowerer.plan.calibrated:  # every output leaves as float: dequantized and written back
        shape_of = {s.layer.name: s.output_shape for s in workload.shapes}
        outputs = workload.output_layers
        for name in outputs:
            label = OUTPUT_CONVERSION if len(outputs) == 1 else f"{OUTPUT_CONVERSION}:{name}"
            layers.append(lowerer.conversion(label, batch * prod(shape_of[name]), 1, 4))
    return Program(workload.name, hw.name, scheme, tuple(layers), lowerer.fmt)
