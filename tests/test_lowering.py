"""Lowering: GEMM views, tiles that fit their SRAM halves, MACs conserved, traffic-minimal orders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config import load_hardware, load_workload
from accelsim.config.scalesim_topology import import_topology
from accelsim.config.validation import validate
from accelsim.config.workload import GEMM_LAYERS, Workload
from accelsim.lowering.gemm_view import ConvWindow, GemmView, gemm_view, indices_read
from accelsim.lowering.operand_format import operand_format
from accelsim.lowering.program import LoweredLayer, Lowerer, Program, Unit, lower
from accelsim.lowering.tiling import SpatialFootprints, tile_bounds, weight_block_bytes
from accelsim.simulation import RunOptions, dram_of, simulate
from accelsim.timing.engine import Engine

HARDWARE = ["default", "edge-npu", "gemmini", "eyeriss", "tpu-v1"]


@pytest.mark.parametrize("hw_name", HARDWARE)
@pytest.mark.parametrize("scheme", ["static", "dynamic", "fp32"])
def test_tiles_fit_their_buffer_halves_and_conserve_macs(hw_name: str, scheme: str) -> None:
    hw = load_hardware(hw_name)
    for name in ("resnet18", "mobilenetv2", "bert_base_layer"):
        workload = load_workload(name)
        program = lower(workload, hw, scheme)
        lowerer = Lowerer(hw, scheme)
        fmt, halves = lowerer.fmt, lowerer.halves
        gemm_macs = 0
        for layer in program.layers:
            if layer.view is None:
                continue
            view, plan = layer.view, layer.plan
            gemm_macs += layer.macs
            for m0, m1 in tile_bounds(view.m, plan.mt):
                for k0, k1 in tile_bounds(view.k, plan.kt):
                    assert view.ifmap_footprint(m0, m1, k0, k1) * fmt.ifmap_sram <= halves.ifmap, layer.name
            for k in tile_bounds(view.k, plan.kt):
                for n in tile_bounds(view.n, plan.nt):
                    assert weight_block_bytes(view, fmt, k, n, sram=True) <= halves.filter, layer.name
            assert plan.mt * plan.nt * fmt.accumulator <= halves.ofmap, layer.name
            if scheme != "dynamic":  # (a dynamic input kept on chip after its range pass is read by no tile)
                moved = sum(
                    t.ifmap_bytes + t.weight_bytes + t.bias_bytes + t.weight_scale_bytes + t.ofmap_bytes
                    for t in layer.tiles
                )
                assert moved == plan.dram_bytes, layer.name  # the search priced the tiles it built
        assert gemm_macs == workload.macs, (name, hw_name)


def test_gemm_views_of_each_layer_type() -> None:
    """im2col for conv (batch in M, one GEMM per group), leading dims in M for linear, heads as count."""
    shapes = {s.layer.name: s for s in load_workload("bert_base_layer").shapes}
    q = gemm_view(shapes["attention.self.query"], batch=2)
    assert (q.count, q.m, q.k, q.n) == (1, 256, 768, 768)
    scores = gemm_view(shapes["attention.self.scores"], batch=2)
    assert (scores.count, scores.m, scores.k, scores.n, scores.b_is_activation) == (24, 128, 64, 128, True)
    context = gemm_view(shapes["attention.self.context"], batch=1)
    assert (context.count, context.m, context.k, context.n) == (12, 128, 128, 64)
    conv = {s.layer.name: s for s in load_workload("resnet18").shapes}["conv1"]
    v = gemm_view(conv, batch=1)
    assert (v.count, v.m, v.k, v.n) == (1, 112 * 112, 7 * 7 * 3, 64)


def test_conv_ifmap_footprint_is_the_input_rows_not_im2col() -> None:
    """3x3 stride-1 pad-1 conv on 8x8: output rows 0-1 read input rows 0-2 (row -1 is padding)."""
    from accelsim.config.validation import validate
    from accelsim.config.workload import Workload

    w = validate(
        Workload,
        {
            "schema_version": 1,
            "name": "t",
            "input_shape": [4, 8, 8],
            "layers": [{"name": "c", "type": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1}],
        },
    )
    view = gemm_view(w.shapes[0], batch=1)
    assert view.ifmap_footprint(0, 16, 0, 36) == 3 * 8 * 4  # 2 output rows -> 3 input rows x 8 cols x 4 ch
    assert view.ifmap_footprint(0, 64, 0, 36) == 8 * 8 * 4  # the whole image once, not 9x (im2col)
    assert view.ifmap_footprint(0, 64, 0, 18) == 8 * 8 * 2  # half of K = half of the channels
    assert view.ifmap_footprint(9, 11, 0, 9) == 3 * 4  # pixels 1,2 of row 1 -> rows 0-2, cols 0-3


def test_resident_weights_are_read_once() -> None:
    """When a layer's weights fit the filter buffer, no weight byte is read twice."""
    hw = load_hardware("tpu-v1")
    program = lower(load_workload("resnet50"), hw, "static")
    for layer in program.layers:
        if layer.view is None or layer.b_is_activation:
            continue
        stored = layer.view.count * layer.view.weight_elements(0, layer.view.k, 0, layer.view.n)
        if stored <= Lowerer(hw, "static").halves.filter:
            assert sum(t.weight_bytes for t in layer.tiles) == stored, layer.name


def test_depthwise_packs_groups_when_it_is_faster() -> None:
    """MobileNetV2's depthwise layers: packed block-diagonal GEMMs beat G one-column GEMMs on a 32x32 WS array
    (benchmarks/depthwise_mapping.py prints the comparison for every dataflow and size)."""
    hw = load_hardware(None)
    lowerer = Lowerer(hw, "static")
    for shapes in load_workload("mobilenetv2").shapes:
        if getattr(shapes.layer, "groups", 1) == 1:
            continue
        view = lowerer.choose_view(shapes, 1)
        plain = gemm_view(shapes, 1)
        assert view.packed > 1
        assert view.count * lowerer.tile_cycles(view.m, view.k, view.n) < plain.count * lowerer.tile_cycles(
            plain.m, plain.k, plain.n
        )
        assert view.useful_macs == plain.macs  # the zeros are not counted as work


def test_every_gemm_layer_lowers_to_array_tiles_under_int8() -> None:
    program = lower(load_workload("resnet18"), load_hardware(None), "static")
    names = {s.layer.name for s in load_workload("resnet18").shapes if isinstance(s.layer, GEMM_LAYERS)}
    for layer in program.layers:
        if layer.name in names:
            assert layer.tiles and all(t.unit is Unit.ARRAY for t in layer.tiles)


# -- issue 13 section 4: no needless remainder tile --------------------------------------------------


def _workload(layers: list[dict], input_shape: list[int], batch: int = 1) -> Workload:
    return validate(
        Workload, {"schema_version": 1, "name": "t", "batch": batch, "input_shape": input_shape, "layers": layers}
    )


def _only_gemm_layer(program: Program) -> LoweredLayer:
    (layer,) = [layer for layer in program.layers if layer.view is not None]
    return layer


@pytest.mark.parametrize("dataflow", ["os", "is"])
def test_a_gemm_whose_whole_m_fits_is_one_tile(dataflow: str, tmp_path: Path) -> None:
    """SCALE-Sim row ``g, 49, 64, 64`` (M=49, N=64, K=64) on the default 32x32 array: M is not a
    multiple of 32, but it all fits, so one tile, not 32 + 17 rows. Its cycles by hand (pipelined,
    docs/timing.md): 4 folds either way, os: rows M (2 folds) x cols N (2), fold interval max(K=64,
    R=32) = 64, fill R+C-2 = 62, stream 64, read-out 32: 3*64 + 62 + 64 + 32 = 350; is: rows K (2) x
    cols M (2), load 32 + 3*max(N=64, 32) + fill 31 + stream 64 + drain 31 = 350."""
    topology = tmp_path / "g.csv"
    topology.write_text("Layer, M, N, K,\ng, 49, 64, 64,\n")
    hw = load_hardware(None, [f"array.dataflow={dataflow}"])
    layer = _only_gemm_layer(lower(import_topology(topology), hw, "static"))
    assert len(layer.tiles) == 1
    assert layer.array_compute_cycles == 350
    assert layer.plan.mt == 49


def test_a_conv_whose_whole_m_fits_reads_its_input_once() -> None:
    """3x3 conv, pad 1, 64 -> 64 channels on 7x7 (M = 49 output pixels) on a 32x32 OS array: one tile
    reads the 7x7x64 input once; two tiles of 32 and 17 pixels would read the rows they share twice."""
    w = _workload([{"name": "c", "type": "conv2d", "out_channels": 64, "kernel": 3, "padding": 1}], [64, 7, 7])
    layer = _only_gemm_layer(lower(w, load_hardware(None, ["array.dataflow=os"]), "static"))
    assert len(layer.tiles) == 1
    assert sum(t.ifmap_bytes for t in layer.tiles) == 64 * 7 * 7


def test_the_array_alignment_of_m_tiles_never_adds_a_tile() -> None:
    """M = 100 rows of a linear layer, array granularity 32: a budget of 97 rows trims to 96 (two tiles
    either way, only the last one partly fills a fold); a budget of 60 stays 60 (two tiles, where 32
    would make four); a budget covering M is the whole M."""
    footprints = SpatialFootprints(GemmView("fc", "linear", 1, 100, 8, 8, 6400))
    assert footprints.max_mt(97, 10**9, 32) == 96
    assert footprints.max_mt(60, 10**9, 32) == 60
    assert footprints.max_mt(100, 10**9, 32) == 100
    assert footprints.max_mt(500, 10**9, 32) == 100
    assert footprints.max_mt(20, 10**9, 32) == 20  # below the granularity: as many rows as fit


# -- issue 13 section 5: strided and dilated convs read only what windows touch ------------------------


def test_a_strided_1x1_conv_reads_every_other_row() -> None:
    """1x1 stride-2 conv from 55x55 to 28x28: output rows 0..27 read input rows 0, 2, ..., 54."""
    window = ConvWindow(55, 55, 28, 28, (1, 1), (2, 2), (0, 0), (1, 1))
    assert window.input_rows(0, 27) == 28
    assert window.input_cols(3, 5) == 3
    assert window.row_width == 28


def test_a_dilated_conv_reads_only_its_taps() -> None:
    """3x3 dilation 2, pad 2, stride 1 on 8x8: output row 0 reads rows -2, 0, 2 (-2 is padding): 2 rows;
    output rows 0..1 read -2, -1, 0, 1, 2, 3: 4 rows; all 8 output rows read all 8 input rows."""
    window = ConvWindow(8, 8, 8, 8, (3, 3), (1, 1), (2, 2), (2, 2))
    assert window.input_rows(0, 0) == 2
    assert window.input_rows(0, 1) == 4
    assert window.input_rows(0, 7) == 8
    assert window.input_cols(3, 3) == 3  # columns 1, 3, 5


@settings(max_examples=400, deadline=None)
@given(
    lo=st.integers(0, 12),
    span=st.integers(0, 12),
    stride=st.integers(1, 5),
    padding=st.integers(0, 4),
    dilation=st.integers(1, 4),
    kernel=st.integers(1, 7),
    extent=st.integers(1, 40),
)
def test_indices_read_counts_the_distinct_indices_windows_touch(
    lo: int, span: int, stride: int, padding: int, dilation: int, kernel: int, extent: int
) -> None:
    """Against the definition: the set of ``o*stride - padding + r*dilation`` inside the image."""
    hi = lo + span
    touched = {o * stride - padding + r * dilation for o in range(lo, hi + 1) for r in range(kernel)}
    assert indices_read(lo, hi, stride, padding, dilation, kernel, extent) == len(touched & set(range(extent)))


def test_a_strided_conv_footprint_spanning_output_rows_is_the_used_columns() -> None:
    """1x1 stride 2 on 8x8x4 -> 4x4: the whole image's footprint is 4x4 pixels x 4 channels, not 7x8."""
    w = _workload([{"name": "c", "type": "conv2d", "out_channels": 2, "kernel": 1, "stride": 2}], [4, 8, 8])
    view = gemm_view(w.shapes[0], batch=1)
    assert view.ifmap_footprint(0, 16, 0, 4) == 4 * 4 * 4
    assert view.ifmap_footprint(4, 12, 0, 4) == 2 * 4 * 4  # output rows 1-2 -> input rows 2 and 4


def test_resnet18_downsample_layers_read_only_the_pixels_they_use() -> None:
    """The 1x1 stride-2 shortcut convs read C x Ho x Wo int8 bytes: 64x28x28, 128x14x14, 256x7x7 (they
    read 186,304 / 93,184 / 46,592 when every input row was fetched)."""
    run = simulate(load_workload("resnet18"), load_hardware(None), "static", options=RunOptions(timing_only=True))
    reads = {r.layer: r.dram_read_bytes_ifmap for r in run.rows}
    assert reads["layer2.0.downsample.0"] == 64 * 28 * 28 == 50_176
    assert reads["layer3.0.downsample.0"] == 128 * 14 * 14 == 25_088
    assert reads["layer4.0.downsample.0"] == 256 * 7 * 7 == 12_544


# -- issue 13 section 6: per-channel parameters once per N block; no bias when there is none ---------

DECODE = [{"name": "fc", "type": "linear", "out_features": 4096, "bias": False}]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    ("scheme", "weights", "scale_bytes", "bias_bytes"),
    [
        ("static", "symmetric", 8, 4),  # int32 M0 + int32 shift; int32 bias
        ("static", "asymmetric", 9, 4),  # + one zero-point byte per channel
        ("dynamic", "symmetric", 4, 4),  # fp32 scale; fp32 bias
        ("dynamic", "asymmetric", 5, 4),
        ("woq", "symmetric", 4, 4),
        ("fp32", "asymmetric", 0, 4),  # float weights have no zero points
    ],
)
def test_decode_layer_reads_its_per_channel_parameters_once(
    bias: bool, scheme: str, weights: str, scale_bytes: int, bias_bytes: int
) -> None:
    """A decode-style linear layer, 4096 -> 4096 at batch 1, on the default hardware: its weights do not
    fit the 128 KiB filter half, so K is split into many blocks; the bias and scales of each output
    channel are still read once (4096 channels x their bytes), and a layer without a bias reads none.
    Through the engine, so the reported fields are checked, not only the tiles."""
    layers = [{**DECODE[0], "bias": bias}]
    w, hw = _workload(layers, [4096]), load_hardware(None)
    program = lower(w, hw, scheme, weights=weights)
    layer = _only_gemm_layer(program)
    assert -(-4096 // layer.plan.kt) >= 8  # the premise: K split into many blocks
    reads = Engine(program, dram_of(hw)).run().layers[program.layers.index(layer)].dram_read_bytes
    assert reads["bias"] == (4096 * bias_bytes if bias else 0)
    assert reads["weight_scales"] == 4096 * scale_bytes
    assert reads["weights"] == 4096 * 4096 * (4 if scheme == "fp32" else 1)


@pytest.mark.parametrize(
    ("rounding", "scale_bytes"),
    [
        ("tflite", 8),
        ("tflite_single", 8),  # int32 M0 + int32 shift per channel
        ("tflite_float64", 8),  # one float64 scale (TF's float-scale FULLY_CONNECTED)
        ("float_half_even", 4),
        ("fbgemm", 4),  # one float32 scale
    ],
)
def test_requant_parameters_per_channel_follow_the_rounding_mode(rounding: str, scale_bytes: int) -> None:
    """The requant unit's per-channel parameters, by mode, on the decode layer (read once per channel)."""
    w, hw = _workload(DECODE, [4096]), load_hardware(None, [f"requant.rounding={rounding}"])
    program = lower(w, hw, "static")
    layer = _only_gemm_layer(program)
    reads = Engine(program, dram_of(hw)).run().layers[program.layers.index(layer)].dram_read_bytes
    assert reads["weight_scales"] == 4096 * scale_bytes


def test_per_channel_parameters_with_m_and_k_split_follow_the_loop_order() -> None:
    """Batch of 96 rows, 2048 -> 512, static, a 16 KiB filter buffer (8 KiB halves): K and N are split.
    The parameters of an N block are read when it starts: once per layer in ``nmk`` order (each N block
    starts once), once per M block in ``mnk`` order when there are several N blocks."""
    w = _workload([{"name": "fc", "type": "linear", "out_features": 512}], [96, 2048])
    for filter_kib in (16, 64):
        hw = load_hardware(None, [f"sram.filter_kib={filter_kib}"])
        layer = _only_gemm_layer(lower(w, hw, "static"))
        plan = layer.plan
        assert plan.kt < 2048
        n_blocks, m_blocks = -(-512 // plan.nt), -(-96 // plan.mt)
        starts = 1 if plan.order == "nmk" or n_blocks == 1 else m_blocks
        assert sum(t.bias_bytes for t in layer.tiles) == starts * 512 * 4
        assert sum(t.weight_scale_bytes for t in layer.tiles) == starts * 512 * 8


def test_a_matmul_of_two_activations_reads_no_per_channel_parameters() -> None:
    layer = next(
        layer
        for layer in lower(load_workload("bert_base_layer"), load_hardware(None), "static").layers
        if layer.b_is_activation
    )
    assert sum(t.bias_bytes + t.weight_scale_bytes for t in layer.tiles) == 0


@pytest.mark.parametrize("groups", [1, 16])
def test_a_conv_without_bias_reads_none(groups: int) -> None:
    """A 3x3 conv (and a depthwise one, packed block-diagonally) with ``bias: false`` reads no bias and
    its 16 channels' requant parameters once: 16 x 8 bytes; with a bias, 16 x 4 bias bytes too."""
    for bias, bias_bytes in ((False, 0), (True, 16 * 4)):
        w = _workload(
            [
                {
                    "name": "c",
                    "type": "conv2d",
                    "out_channels": 16,
                    "kernel": 3,
                    "padding": 1,
                    "groups": groups,
                    "bias": bias,
                }
            ],
            [16, 12, 12],
        )
        layer = _only_gemm_layer(lower(w, load_hardware(None), "static"))
        assert sum(t.bias_bytes for t in layer.tiles) == bias_bytes
        assert sum(t.weight_scale_bytes for t in layer.tiles) == 16 * 8


@pytest.mark.parametrize("scheme", ["static", "woq", "dynamic"])
def test_per_tensor_weights_read_one_scale_per_block(scheme: str) -> None:
    """Per-tensor weights (``--granularity per_tensor``) have one scale / requant multiplier for the whole
    tensor: each weight block reads one set instead of one per output channel; nothing else changes."""
    workload = load_workload("resnet18")
    hw = load_hardware("default")
    channel = simulate(workload, hw, scheme, options=RunOptions(timing_only=True))
    tensor = simulate(workload, hw, scheme, options=RunOptions(timing_only=True, weight_granularity="per_tensor"))
    for a, b in zip(channel.rows, tensor.rows, strict=True):
        assert (a.layer, a.macs, a.dram_read_bytes_weights, a.dram_read_bytes_bias) == (
            b.layer,
            b.macs,
            b.dram_read_bytes_weights,
            b.dram_read_bytes_bias,
        )
        assert b.dram_read_bytes_weight_scales <= a.dram_read_bytes_weight_scales
    assert tensor.total.dram_read_bytes_weight_scales < channel.total.dram_read_bytes_weight_scales / 8
    per_tensor = operand_format(scheme, hw, per_tensor_weights=True).channel_parameters(32)
    per_channel = operand_format(scheme, hw).channel_parameters(32)
    assert per_tensor.bias == per_channel.bias and per_channel.weight_scales == 32 * per_tensor.weight_scales > 0
