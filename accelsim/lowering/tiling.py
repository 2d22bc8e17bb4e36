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

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil

from accelsim.config.workload import kv_int8_bytes
from accelsim.lowering.gemm_view import ConvWindow, GemmView
from accelsim.lowering.operand_format import ChannelParameters, OperandFormat


@dataclass(frozen=True)
class BufferHalves:
    """Usable bytes of one half of each double-buffered SRAM."""

    ifmap: int
    filter: int
    ofmap: int


@dataclass(frozen=True, kw_only=True)
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


def stored_weight_bytes(view: GemmView, fmt: OperandFormat, k: tuple[int, int], n: tuple[int, int], sram: bool) -> int:
    """Bytes of the stored elements of W block ``k x n`` (for a matmul, of its second activation)."""
    if view.b_is_activation:  # matmul: B is an activation, stored like the ifmap
        elements = (k[1] - k[0]) * (n[1] - n[0])
        kv = view.kv_read
        if kv is not None and kv.dtype == "int8" and not sram:  # codes, and a float32 scale per head per token
            return kv_int8_bytes(elements, kv.head_dim)
        return elements * (fmt.ifmap_sram if sram else fmt.ifmap_dram)
    return ceil(view.weight_elements(k[0], k[1], n[0], n[1]) * (fmt.weights_sram if sram else fmt.weights_dram))


def channel_parameters(view: GemmView, fmt: OperandFormat, channels: int) -> ChannelParameters:
    """Per-channel parameters (bias, scales, zero points) of ``channels`` of ``view``'s output channels (a
    conv_transpose2d's ``channels`` GEMM columns hold a channel per ``kh x kw`` taps)."""
    if view.col2im is not None:
        channels = -(-channels // view.col2im.taps)
    return fmt.channel_parameters(0 if view.b_is_activation else channels, view.bias, view.k)


def halo_bytes(view: GemmView, fmt: OperandFormat, nt: int) -> int:
    """Ofmap-buffer bytes a conv_transpose2d's N block of ``nt`` columns keeps across M blocks: the partial
    sums of its output channels' halo (``Col2im.halo``; a block of columns ``(c_out, ky, kx)`` that is no
    whole number of channels may touch one more), as accumulators. 0 for other layers and kernels within the stride."""
    if view.col2im is None or not view.col2im.halo:
        return 0
    taps = view.col2im.taps
    spanned = nt // taps if nt % taps == 0 else -(-(nt - 1) // taps) + 1  # blocks start at multiples of nt
    channels = min(view.n // taps, spanned)
    return channels * view.col2im.halo * fmt.accumulator


def weight_block_bytes(view: GemmView, fmt: OperandFormat, k: tuple[int, int], n: tuple[int, int], sram: bool) -> int:
    """Filter-buffer bytes of W block ``k x n``: its elements and the per-channel parameters of its
    output channels, which sit beside it while its N block runs."""
    return stored_weight_bytes(view, fmt, k, n, sram) + channel_parameters(view, fmt, n[1] - n[0]).total


class SpatialFootprints:
    """Memo of M-tile footprints: they depend on the M tiling only, not on Kt or Nt, and on the view's
    M and sliding window only, so layers of the same geometry can share one."""

    def __init__(self, view: GemmView) -> None:
        self.view = view
        self._stats: dict[int, tuple[int, int]] = {}
        self._prefixes: dict[int, int] = {}

    def _tile_stats(self, mt: int) -> tuple[int, int]:
        """Sum and maximum of the M tiles' spatial footprints: one pass over the tiles serves both."""
        if mt not in self._stats:
            footprints = [self.view.spatial_footprint(lo, hi) for lo, hi in tile_bounds(self.view.m, mt)]
            self._stats[mt] = (sum(footprints), max(footprints))
        return self._stats[mt]

    def total(self, mt: int) -> int:
        """Sum over all M tiles of their spatial footprints."""
        return self._tile_stats(mt)[0]

    def worst(self, mt: int) -> int:
        """Largest spatial footprint of any M tile."""
        return self._tile_stats(mt)[1]

    def _longest_prefix(self, budget: int) -> int:
        """Largest ``mt`` whose first tile is within ``budget`` elements.

        The first tile's footprint grows with ``mt`` in steps (whole images of the batch, then whole
        input rows, then the columns of the first output row): finding the step in closed form is much
        cheaper than bisecting over every ``mt`` with the footprint function, and a search prices many
        budgets."""
        view, window = self.view, self.view.window
        if window is None:
            return min(budget, view.m)
        if budget not in self._prefixes:
            pixels = window.out_h * window.out_w
            image = view.spatial_footprint(0, pixels)
            images = view.m // pixels
            whole = min(budget // image, images) if image else images
            partial = _image_prefix(window, budget - whole * image) if whole < images else 0
            self._prefixes[budget] = whole * pixels + partial
        return self._prefixes[budget]

    def max_mt(self, budget: int, cap: int, align: int) -> int:
        """Largest M tile (at most ``cap``) whose every footprint is within ``budget`` elements.

        A tile shorter than M is trimmed to whole output rows (conv: no input row is fetched twice per
        tile), or else to a multiple of ``align``, the array's M granularity, so that only the last tile
        has a partly used fold. That trim only pays when it adds no tile: a tile that covers all of M
        is the only tile, and a trim that adds one moves the partial fold into a tile of its own, paying
        its fill, drain and halo once more for nothing."""
        m = self.view.m
        lo = min(self._longest_prefix(budget), cap)  # footprints grow with mt: capping commutes with the search
        window = self.view.window
        if lo < m:
            if window is not None and window.out_w <= lo:
                lo -= lo % window.out_w
            elif lo >= align and -(-m // (lo - lo % align)) == -(-m // lo):
                lo -= lo % align
        while lo > 0 and self.worst(lo) > budget:  # a tile straddling two images needs more rows
            lo -= window.out_w if window is not None and lo > window.out_w else 1
        return lo


def _image_prefix(window: ConvWindow, budget: int) -> int:
    """Most leading output pixels of one image whose input footprint is within ``budget`` (which is
    less than the whole image's footprint)."""
    # output rows 0..j with j >= 1: the input rows they read, at the width a whole output row reads
    rows = bisect_right(range(1, window.out_h), budget, key=lambda j: window.input_rows(0, j) * window.row_width)
    if rows:
        return (rows + 1) * window.out_w
    # within output row 0: its input rows x the input columns read so far
    first = window.input_rows(0, 0)
    return bisect_right(range(1, window.out_w + 1), budget, key=lambda c: first * window.input_cols(0, c - 1))


def plan_gemm(
    view: GemmView,
    fmt: OperandFormat,
    halves: BufferHalves,
    align: tuple[int, int, int],
    tile_cycles: Callable[[int, int, int], int],
    bytes_per_cycle: float,
    spatial: SpatialFootprints | None = None,
) -> TilePlan:
    """Choose tile sizes and loop order for ``view``; ``align`` is the array's (M, K, N) granularity;
    ``spatial`` the footprints of ``view``'s M tiles, if other searches already priced some."""
    spatial = SpatialFootprints(view) if spatial is None else spatial
    best = _search(view, fmt, halves, align, spatial, tile_cycles, bytes_per_cycle)
    if best is None:  # no array-aligned tile fits: try tiles that use part of the array
        best = _search(view, fmt, halves, (1, 1, 1), spatial, tile_cycles, bytes_per_cycle)
    if best is None:
        raise NoTileFits(view.layer, halves)
    return best


def smallest_halves(view: GemmView, fmt: OperandFormat) -> BufferHalves:
    """Bytes each buffer half needs for ``view``'s smallest tile: one output row (pixel) of M, one output
    channel of N, and the fewest reduction elements a tile takes (one input channel's taps for a conv); a
    conv_transpose2d's ofmap half also its one channel's halo.
    Every buffer's need grows with each tile dimension, so the layer fits iff each half holds this much."""
    kt = min(view.k, view.taps) if view.window is not None else 1
    if view.window is None:
        pixel = 1
    else:  # a window clipped least by the image edges reads the most: the centre pixel's
        centre = (view.window.out_h // 2) * view.window.out_w + view.window.out_w // 2
        pixel = max(view.spatial_footprint(0, 1), view.spatial_footprint(centre, centre + 1))
    return BufferHalves(
        ifmap=pixel * view.k_footprint(0, kt) * fmt.ifmap_sram,
        filter=weight_block_bytes(view, fmt, (0, kt), (0, 1), sram=True),
        ofmap=fmt.accumulator + halo_bytes(view, fmt, 1),
    )


class NoTileFits(ValueError):
    """Even the smallest tile of a layer overflows a buffer half: the SRAM is too small for it.
    (``Lowerer.check_buffers`` refuses such buffers first, with the size that works.)"""

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
    spatial: SpatialFootprints,
    tile_cycles: Callable[[int, int, int], int],
    bytes_per_cycle: float,
) -> TilePlan | None:
    m_align, k_align, n_align = align
    k_align = max(k_align, view.taps) if view.window is not None else k_align
    w_bytes = stored_weight_bytes(view, fmt, (0, view.k), (0, view.n), sram=False)  # the blocks partition W
    p_bytes = channel_parameters(view, fmt, view.n).total  # read when an N block starts (docs/lowering.md)
    # what the blocks store: their outputs (a conv_transpose2d's columns land on fewer outputs: col2im)
    y_bytes = view.m * view.n * fmt.ofmap_dram
    if view.col2im is not None:
        y_bytes = view.col2im.outputs * fmt.ofmap_dram
    # an M block shorter than M leaves its halo's partial sums beside the next block's accumulators
    n_tilings = [
        (
            nt,
            -(-view.n // nt),
            _sizes(view.n, nt),
            halves.ofmap // (nt * fmt.accumulator),
            (halves.ofmap - halo_bytes(view, fmt, nt)) // (nt * fmt.accumulator),
        )
        for nt in _halvings(view.n, n_align)
    ]
    # candidates are compared as plain tuples; only the winner becomes a TilePlan
    best_key: tuple[float, int, int] | None = None
    best: tuple[int, int, int, str, int, int, int] | None = None
    m, count = view.m, view.count
    for kt in _halvings(view.k, k_align):
        budget = halves.ifmap // (view.k_footprint(0, kt) * fmt.ifmap_sram)
        nk, k_sizes = -(-view.k // kt), _sizes(view.k, kt)
        x_block_bytes = sum(view.k_footprint(0, size) * times for size, times in k_sizes) * fmt.ifmap_dram
        fits = False  # the N tilings come largest first and a W block's bytes grow with its width
        for nt, nn, n_sizes, cap, halo_cap in n_tilings:
            if not fits:
                if weight_block_bytes(view, fmt, (0, kt), (0, nt), sram=True) > halves.filter:
                    continue
                fits = True
            mt = spatial.max_mt(budget, cap, m_align)
            if mt < m and halo_cap < cap:
                mt = spatial.max_mt(budget, halo_cap, m_align)
            if mt < 1:
                continue
            # closed forms over the distinct tile sizes: a search prices thousands of candidates
            nm = -(-m // mt)
            x_bytes = spatial.total(mt) * x_block_bytes
            # DRAM bytes of each loop order: how often it loads each X block and each W block
            nmk = count * (
                x_bytes * (1 if nm == 1 and nk == 1 else nn) + w_bytes * (1 if nk == 1 else nm) + p_bytes + y_bytes
            )
            mnk = count * (
                x_bytes * (1 if nk == 1 else nn)
                + w_bytes * (1 if nn == 1 and nk == 1 else nm)
                + p_bytes * (1 if nn == 1 else nm)
                + y_bytes
            )
            if best_key is not None and min(nmk, mnk) / bytes_per_cycle > best_key[0]:
                continue  # its traffic alone takes longer than the best plan: no need to price its compute
            compute = 0
            for ms_, a in _sizes(m, mt):
                for ks_, b in k_sizes:
                    for ns_, c in n_sizes:
                        compute += tile_cycles(ms_, ks_, ns_) * a * b * c
            compute *= count
            tiles = count * nm * nk * nn
            for order, dram in (("nmk", nmk), ("mnk", mnk)):
                key = (max(compute, dram / bytes_per_cycle), dram, tiles)
                if best_key is None or key < best_key:
                    best_key, best = key, (mt, kt, nt, order, dram, compute, tiles)
    if best is None or best_key is None:
        return None
    mt, kt, nt, order, dram, compute, tiles = best
    return TilePlan(
        mt=mt,
        kt=kt,
        nt=nt,
        order=order,
        dram_bytes=dram,
        compute_cycles=compute,
        tiles=tiles,
        estimated_cycles=best_key[0],
    )
