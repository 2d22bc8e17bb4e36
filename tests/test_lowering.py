"""Lowering: GEMM views, tiles that fit their SRAM halves, MACs conserved, traffic-minimal orders."""

from __future__ import annotations

import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.workload import GEMM_LAYERS
from accelsim.lowering.gemm_view import gemm_view
from accelsim.lowering.program import Lowerer, lower
from accelsim.lowering.tiling import tile_bounds, weight_block_bytes

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

    w = validate(Workload, {"schema_version": 1, "name": "t", "input_shape": [4, 8, 8],
                            "layers": [{"name": "c", "type": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1}]})
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
        assert view.count * lowerer.tile_cycles(view.m, view.k, view.n) < plain.count * lowerer.tile_cycles(plain.m, plain.k, plain.n)
        assert view.useful_macs == plain.macs  # the zeros are not counted as work


def test_every_gemm_layer_lowers_to_array_tiles_under_int8() -> None:
    program = lower(load_workload("resnet18"), load_hardware(None), "static")
    names = {s.layer.name for s in load_workload("resnet18").shapes if isinstance(s.layer, GEMM_LAYERS)}
    for layer in program.layers:
        if layer.name in names:
            assert layer.tiles and all(t.unit == "array" for t in layer.tiles)
