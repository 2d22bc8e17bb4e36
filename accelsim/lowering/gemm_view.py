"""A layer as the MAC array sees it: ``count`` independent GEMMs ``Y[M,N] = X[M,K] W[K,N]``.

Convolutions lower by im2col (``M = batch*Ho*Wo``, ``K = kh*kw*C/groups``, ``N = out/groups``, once per
group); transposed convolutions run one GEMM per group on the input pixels (``M = batch*H*W``,
``K = C/groups``, ``N = out/groups*kh*kw``) whose columns are scatter-added into the outputs (col2im);
linear layers fold every leading dimension and the batch into M; matmuls run one GEMM per
batch item and head. The im2col matrix is never fetched as such: the ifmap buffer holds the input rows
a tile's outputs need and the address generator forms the windows, so DRAM and SRAM hold the
*footprint* of a tile (``ifmap_footprint``), not ``Mt*Kt`` elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, NamedTuple

from accelsim.config.workload import Conv2d, ConvTranspose2d, LayerShapes, Linear, Matmul, pair, sides

if TYPE_CHECKING:
    from accelsim.lowering.kv_read import KvRead


@dataclass(frozen=True)
class ConvWindow:
    """The sliding-window geometry a conv GEMM's ifmap footprint depends on."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]

    def input_rows(self, oh_lo: int, oh_hi: int) -> int:
        """Input rows (inside the image, padding excluded) that output rows ``oh_lo..oh_hi`` read."""
        return indices_read(oh_lo, oh_hi, self.stride[0], self.padding[0], self.dilation[0], self.kernel[0], self.in_h)

    def input_cols(self, ow_lo: int, ow_hi: int) -> int:
        """Input columns (padding excluded) that output columns ``ow_lo..ow_hi`` read."""
        return indices_read(ow_lo, ow_hi, self.stride[1], self.padding[1], self.dilation[1], self.kernel[1], self.in_w)

    @property
    def row_width(self) -> int:
        """Input columns a whole output row reads: the width of a footprint spanning output rows."""
        return self.input_cols(0, self.out_w - 1)


def indices_read(lo: int, hi: int, stride: int, padding: int, dilation: int, kernel: int, extent: int) -> int:
    """Distinct input indices in ``[0, extent)`` that outputs ``lo..hi`` read along one axis.

    Output ``o`` reads ``o*stride - padding + r*dilation`` for taps ``r < kernel``. When consecutive
    windows touch or overlap (``dilation == 1`` and ``kernel >= stride``, most convs) that is one
    contiguous run; otherwise (a stride-2 1x1 conv, a dilated conv) the run has holes that no window
    reads, and the DMA skips them (docs/lowering.md). Taps whose offsets ``r*dilation`` are congruent
    modulo the stride read the same lattice of input indices, shifted by whole strides: per residue,
    the union of the taps' shifted output ranges, clipped to the image."""
    if dilation == 1 and kernel >= stride:
        first, last = lo * stride - padding, hi * stride - padding + kernel - 1
        return max(0, min(last, extent - 1) - max(first, 0) + 1)
    shifts: dict[int, list[int]] = {}  # residue -> the taps' shifts in strides, ascending with the tap
    for tap in range(kernel):
        shift, residue = divmod(tap * dilation, stride)
        shifts.setdefault(residue, []).append(shift)
    total = 0
    for residue, residue_shifts in shifts.items():
        # lattice index j reads input j*stride + residue - padding: inside the image for j in [j_min, j_max]
        j_min, j_max = -((residue - padding) // stride), (extent - 1 + padding - residue) // stride
        covered = j_min - 1
        for shift in residue_shifts:  # ranges [lo+shift, hi+shift], ascending: merge as they come
            start, end = max(lo + shift, covered + 1), min(hi + shift, j_max)
            if end >= start:
                total += end - start + 1
                covered = end
    return total


class Col2im(NamedTuple):
    """A conv_transpose2d GEMM's columns ``(c_out, ky, kx)`` of each input pixel, which the vector unit adds
    into the outputs they land on (or drops, where the padding crops them) as they drain."""

    outputs: int  # output elements of one GEMM (one group)
    columns: int  # its M x N column values
    taps: int  # columns per output channel: kh x kw
    #: output elements per output channel that the pixels before an M-block boundary and those after it both
    #: add into (their patches overlap where the kernel spans more than the stride): the block's partial sums
    #: of them wait on chip for the next block (:func:`col2im_halo`)
    halo: int = 0


def col2im_halo(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], out_w: int) -> int:
    """Output elements per channel that an M block ending anywhere in an image shares with the pixels after
    it, at most: the patches of two input rows overlap in ``span_h - sh`` output rows of the whole width, and
    within a row two pixels' patches in ``span_w - sw`` columns of ``span_h`` rows (``span = d (k - 1) + 1``;
    what the padding crops is not subtracted). 0 when no kernel dimension spans more than its stride."""
    span_h, span_w = (d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    rows, cols = max(0, span_h - stride[0]), max(0, span_w - stride[1])
    return rows * out_w + (span_h * cols if cols else 0)


@dataclass(frozen=True)
class GemmView:
    """One GEMM-lowered layer. ``packed`` > 1: depthwise groups packed block-diagonally per GEMM.

    Views compare by their GEMM, not by the layer's name: layers of the same shape (ResNet's repeated
    blocks) share one tiling and one set of tiles."""

    layer: str = field(compare=False)
    kind: str  # "conv2d" | "conv_transpose2d" | "linear" | "matmul"
    count: int
    m: int
    k: int
    n: int
    useful_macs: int
    window: ConvWindow | None = None
    packed: int = 1
    b_is_activation: bool = False  # matmul: both operands are activations, no weights
    bias: bool = True  # the layer adds a bias (``bias: false`` layers read none)
    col2im: Col2im | None = None  # conv_transpose2d: the GEMM's columns scatter-added into the outputs
    kv_read: KvRead | None = None  # matmul: operand b is read from a KV cache in DRAM

    @property
    def macs(self) -> int:
        """MACs the array performs, the zeros of block-diagonal packing included."""
        return self.count * self.m * self.k * self.n

    @property
    def gemms(self) -> int:
        """The layer's independent GEMMs before packing (conv groups, matmul samples x heads): the
        kernels compute each on its own; packing is the array's mapping of the same GEMMs."""
        return self.count * self.packed

    @property
    def gemm_shape(self) -> tuple[int, int, int]:
        """``(M, K, N)`` of each of the :attr:`gemms` independent GEMMs."""
        return self.m, self.k // self.packed, self.n // self.packed

    @property
    def taps(self) -> int:
        """Filter taps per input channel (K = taps * channels)."""
        return self.window.kernel[0] * self.window.kernel[1] if self.window else 1

    def weight_elements(self, k0: int, k1: int, n0: int, n1: int) -> int:
        """Stored weights of a block: the diagonal blocks only when groups are packed."""
        if self.b_is_activation:
            return 0
        if self.packed == 1:
            return (k1 - k0) * (n1 - n0)
        k_per, n_per = self.k // self.packed, self.n // self.packed  # one group's block
        first, last = max(k0 // k_per, n0 // n_per), min(-(-k1 // k_per), -(-n1 // n_per)) - 1
        if first > last:
            return 0

        def stored(g: int) -> int:
            rows = min(k1, (g + 1) * k_per) - max(k0, g * k_per)
            cols = min(n1, (g + 1) * n_per) - max(n0, g * n_per)
            return max(rows, 0) * max(cols, 0)

        # the groups strictly between the first and the last lie inside both ranges: whole blocks (a
        # tiling search asks for blocks of many groups)
        inner = max(last - first - 1, 0)
        return sum(stored(g) for g in {first, last}) + inner * k_per * n_per

    def ifmap_footprint(self, m0: int, m1: int, k0: int, k1: int) -> int:
        """Input elements the rows ``m0:m1`` and reduction slice ``k0:k1`` of X touch."""
        return self.spatial_footprint(m0, m1) * self.k_footprint(k0, k1)

    def k_footprint(self, k0: int, k1: int) -> int:
        """Input channels (conv) or columns of X a reduction slice reads."""
        return -(-(k1 - k0) // self.taps)

    def spatial_footprint(self, m0: int, m1: int) -> int:
        """Input pixels (conv) or rows of X that output rows ``m0:m1`` read."""
        if self.window is None:
            return m1 - m0
        w = self.window
        pixels = w.out_h * w.out_w
        total = 0
        m = m0
        while m < m1:  # one image at a time: a tile may straddle two images of the batch
            image_end = min(m1, (m // pixels + 1) * pixels)
            lo, hi = m % pixels, (image_end - 1) % pixels
            oh_lo, oh_hi = lo // w.out_w, hi // w.out_w
            cols = w.input_cols(lo % w.out_w, hi % w.out_w) if oh_lo == oh_hi else w.row_width
            total += w.input_rows(oh_lo, oh_hi) * cols
            m = image_end
        return total


def gemm_view(shapes: LayerShapes, batch: int, packed: int = 1) -> GemmView:
    """Lower one array layer; ``packed`` groups per GEMM for depthwise convolutions."""
    layer = shapes.layer
    if isinstance(layer, Conv2d):
        c, h, w = shapes.input_shapes[0]
        out, oh, ow = shapes.output_shape
        kh, kw = pair(layer.kernel)
        groups = layer.groups
        window = ConvWindow(h, w, oh, ow, (kh, kw), pair(layer.stride), sides(layer.padding), pair(layer.dilation))
        k, n = kh * kw * (c // groups), out // groups
        if packed > 1:
            if groups % packed:
                raise ValueError(f"{packed} does not divide {groups} groups")
            return GemmView(
                layer.name,
                "conv2d",
                groups // packed,
                batch * oh * ow,
                k * packed,
                n * packed,
                batch * shapes.macs,
                window,
                packed,
                bias=layer.bias,
            )
        return GemmView(
            layer.name, "conv2d", groups, batch * oh * ow, k, n, batch * shapes.macs, window, bias=layer.bias
        )
    if isinstance(layer, ConvTranspose2d):
        c, h, w = shapes.input_shapes[0]
        out, oh, ow = shapes.output_shape
        kh, kw = pair(layer.kernel)
        groups, m = layer.groups, batch * h * w
        k, n = c // groups, out // groups * kh * kw
        if groups % packed:
            raise ValueError(f"{packed} does not divide {groups} groups")
        return GemmView(
            layer.name,
            "conv_transpose2d",
            groups // packed,
            m,
            k * packed,
            n * packed,
            batch * shapes.macs,
            packed=packed,
            bias=layer.bias,
            col2im=Col2im(
                batch * out // groups * oh * ow,
                m * n,
                kh * kw,
                min(oh * ow, col2im_halo((kh, kw), pair(layer.stride), pair(layer.dilation), ow)),
            ),
        )
    if isinstance(layer, Linear):
        leading = prod(shapes.input_shapes[0][:-1])
        return GemmView(
            layer.name,
            "linear",
            1,
            batch * leading,
            shapes.input_shapes[0][-1],
            layer.out_features,
            batch * shapes.macs,
            bias=layer.bias,
        )
    if isinstance(layer, Matmul):
        a, b = layer.operands(list(shapes.input_shapes))
        # grouped-query attention: the heads sharing a kv head are stacked into one GEMM's rows, so each kv
        # head's keys / values are one GEMM's operand b (what GQA kernels do), not one per query head
        group = layer.heads // (layer.kv_heads or layer.heads)
        return GemmView(
            layer.name,
            "matmul",
            batch * prod(layer.batch_dims(list(shapes.input_shapes))) // group,
            a[-2] * group,
            a[-1],
            b[-1],
            batch * shapes.macs,
            b_is_activation=True,
            bias=False,
        )
    raise TypeError(f"{layer.type} does not run on the array")
