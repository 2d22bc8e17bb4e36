"""Blocking a GEMM against the SRAM buffers: tile sizes and loop order that minimize DRAM traffic.

A tile is ``Mt x Kt`` of X, ``Kt x Nt`` of W and ``Mt x Nt`` of partial sums. Each must fit in half of
its buffer (the other half is being filled for the next tile). K is the innermost loop, so partial
sums stay in the ofmap buffer until the reduction is complete and only final outputs leave the chip.
Two loop orders are considered: ``nmk`` (weight block reused across consecutive M tiles when K is not
split; weights that fit stay resident) and ``mnk`` (ifmap block reused across N tiles). Among the
candidate sizes the plan with the lowest estimated time ``max(compute, traffic / bandwidth)`` wins,
then the lower traffic, then fewer tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import ceil

from accelsim.lowering.gemm_view import GemmView
from accelsim.lowering.operand_format import OperandFormat


@dataclass(frozen=True)
class BufferHalves:
    """Usable bytes of one half of each double-buffered SRAM."""

    ifmap: int
    filter: int
    ofmap: int


@dataclass(frozen=True)
class TilePlan:
    mt: int
    kt: int
    nt: int
    order: str  # "nmk" or "mnk"
    dram_bytes: int
    compute_cycles: int
    tiles: int
    estimated_cycles: float


def tile_bounds(total: int, step: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + step, total)) for lo in range(0, total, step)]


def _sizes(total: int, step: int) -> list[tuple[int, int]]:
    """Distinct tile sizes along one dimension with their counts: full tiles and the remainder."""
    full, rest = divmod(total, step)
    return [(step, full)] * (full > 0) + [(rest, 1)] * (rest > 0)


def _halvings(total: int, align: int) -> list[int]:
    """``total`` and smaller sizes, halving, rounded up to ``align``, down to ``align``."""
    out, size = [total], total
    while size > align:
        size = max(align, ceil(size / 2 / align) * align)
        if size < out[-1]:
            out.append(size)
    return out


def weight_block_bytes(view: GemmView, fmt: OperandFormat, k: tuple[int, int], n: tuple[int, int], sram: bool) -> int:
    """Bytes of W block ``k x n`` plus the per-channel bias and scales that travel with it."""
    per = fmt.weights_sram if sram else fmt.weights_dram
    if view.b_is_activation:  # matmul: B is an activation, stored like the ifmap
        return (k[1] - k[0]) * (n[1] - n[0]) * (fmt.ifmap_sram if sram else fmt.ifmap_dram)
    channels = (n[1] - n[0]) * (fmt.bias_per_channel + fmt.weight_scales_per_channel)
    return view.weight_elements(k[0], k[1], n[0], n[1]) * per + channels


class _SpatialCache:
    """Per-GEMM memo of M-tile footprints: they depend on the M tiling only, not on Kt or Nt."""

    def __init__(self, view: GemmView) -> None:
        self.view = view
        self._sums: dict[int, int] = {}
        self._worst: dict[int, int] = {}

    def total(self, mt: int) -> int:
        """Sum over all M tiles of their spatial footprints."""
        if mt not in self._sums:
            self._sums[mt] = sum(self.view.spatial_footprint(lo, hi) for lo, hi in tile_bounds(self.view.m, mt))
        return self._sums[mt]

    def worst(self, mt: int) -> int:
        """Largest spatial footprint of any M tile."""
        if mt not in self._worst:
            self._worst[mt] = max(self.view.spatial_footprint(lo, hi) for lo, hi in tile_bounds(self.view.m, mt))
        return self._worst[mt]

    def max_mt(self, budget: int, cap: int, align: int) -> int:
        """Largest M tile (at most ``cap``) whose every footprint is within ``budget`` elements."""
        lo, hi = 0, min(self.view.m, cap)
        while lo < hi:  # footprints grow with mt
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.view.spatial_footprint(0, mid) <= budget else (lo, mid - 1)
        window = self.view.window
        if window is not None and window.out_w <= lo < self.view.m:
            lo -= lo % window.out_w  # whole output rows: no input row is fetched twice per tile
        elif lo >= align:
            lo -= lo % align
        while lo > 0 and self.worst(lo) > budget:  # a tile straddling two images needs more rows
            lo -= window.out_w if window is not None and lo > window.out_w else 1
        return lo


def plan_gemm(
    view: GemmView,
    fmt: OperandFormat,
    halves: BufferHalves,
    align: tuple[int, int, int],
    tile_cycles: Callable[[int, int, int], int],
    bytes_per_cycle: float,
) -> TilePlan:
    """Choose tile sizes and loop order for ``view``; ``align`` is the array's (M, K, N) granularity."""
    best = _search(view, fmt, halves, align, tile_cycles, bytes_per_cycle)
    if best is None:  # no array-aligned tile fits: try tiles that use part of the array
        best = _search(view, fmt, halves, (1, 1, 1), tile_cycles, bytes_per_cycle)
    if best is None:
        raise NoTileFits(view.layer, halves)
    return best


class NoTileFits(ValueError):
    """Even the smallest tile of a layer overflows a buffer half: the SRAM is too small for it."""

    def __init__(self, layer: str, halves: BufferHalves) -> None:
        super().__init__(
            f"layer {layer}: no tile fits the SRAM buffers (halves: ifmap {halves.ifmap} B, "
            f"filter {halves.filter} B, ofmap {halves.ofmap} B)"
        )
        self.layer = layer


def _search(
    view: GemmView,
    fmt: OperandFormat,
    halves: BufferHalves,
    align: tuple[int, int, int],
    tile_cycles: Callable[[int, int, int], int],
    bytes_per_cycle: float,
) -> TilePlan | None:
    m_align, k_align, n_align = align
    k_align = max(k_align, view.taps) if view.window is not None else k_align
    best: TilePlan | None = None
    spatial = _SpatialCache(view)
    for kt in _halvings(view.k, k_align):
        budget = halves.ifmap // (view.k_footprint(0, kt) * fmt.ifmap_sram)
        for nt in _halvings(view.n, n_align):
            if weight_block_bytes(view, fmt, (0, kt), (0, nt), sram=True) > halves.filter:
                continue
            mt = spatial.max_mt(budget, halves.ofmap // (nt * fmt.accumulator), m_align)
            if mt < 1:
                continue
            for order in ("nmk", "mnk"):
                plan = _evaluate(view, fmt, spatial, mt, kt, nt, order, tile_cycles, bytes_per_cycle)
                key = (plan.estimated_cycles, plan.dram_bytes, plan.tiles)
                if best is None or key < (best.estimated_cycles, best.dram_bytes, best.tiles):
                    best = plan
    return best


def _evaluate(
    view: GemmView,
    fmt: OperandFormat,
    spatial: _SpatialCache,
    mt: int,
    kt: int,
    nt: int,
    order: str,
    tile_cycles: Callable[[int, int, int], int],
    bytes_per_cycle: float,
) -> TilePlan:
    # closed forms over the distinct tile sizes: a search prices thousands of candidates
    nm, nk, nn = -(-view.m // mt), -(-view.k // kt), -(-view.n // nt)
    k_blocks = sum(view.k_footprint(0, size) * count for size, count in _sizes(view.k, kt))
    x_bytes = spatial.total(mt) * k_blocks * fmt.ifmap_dram
    w_bytes = weight_block_bytes(view, fmt, (0, view.k), (0, view.n), sram=False)  # the blocks partition W
    if order == "nmk":
        x_passes = 1 if nm == 1 and nk == 1 else nn
        w_passes = 1 if nk == 1 else nm
    else:
        x_passes = 1 if nk == 1 else nn
        w_passes = 1 if nn == 1 and nk == 1 else nm
    y_bytes = view.m * view.n * fmt.ofmap_dram
    dram = view.count * (x_bytes * x_passes + w_bytes * w_passes + y_bytes)
    compute = view.count * sum(
        tile_cycles(ms_, ks_, ns_) * a * b * c
        for ms_, a in _sizes(view.m, mt)
        for ks_, b in _sizes(view.k, kt)
        for ns_, c in _sizes(view.n, nt)
    )
    tiles = view.count * nm * nk * nn
    return TilePlan(mt, kt, nt, order, dram, compute, tiles, max(compute, dram / bytes_per_cycle))
