"""int4 group-wise weight formats as a run's ``--weights`` (issue 18, Schemes): traffic by operand with packed
codes and per-group parameters, the W4A8 rescale on the requant unit's lanes, values through accelsim.quant.int4,
explain's dtypes, and the refusals (static scheme, conv layers, golden vectors)."""

from __future__ import annotations

import subprocess
import sys
from math import ceil

import numpy as np
import pytest

from accelsim.config import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.explain import explain
from accelsim.hw import LanePipeline
from accelsim.lowering.program import LoweredLayer, Lowerer, lower, lowering_options
from accelsim.lowering.tiling import tile_bounds
from accelsim.quant import int4
from accelsim.schemes import WEIGHT_FORMATS, get_scheme
from accelsim.simulation import RunOptions, simulate
from accelsim.values.runner import activate, run_values
from accelsim.values.tensors import materialize

K, N, BATCH = 1024, 96, 4


def _workload(k: int = K, n: int = N, batch: int = BATCH) -> Workload:
    layers = [
        {"name": "up", "type": "linear", "in_features": k, "out_features": n, "activation": "relu"},
        {"name": "down", "type": "linear", "in_features": n, "out_features": 40},
    ]
    return validate(Workload, {"schema_version": 1, "name": "t", "batch": batch, "input_shape": [k], "layers": layers})


def _layer(scheme: str, weights: str, hw_overrides: tuple[str, ...] = ()) -> LoweredLayer:
    program = lower(_workload(), load_hardware(None, hw_overrides), scheme, **lowering_options("onnx", weights))
    return next(layer for layer in program.layers if layer.name == "up")


def test_int4_formats_are_rows_of_the_table() -> None:
    groups = {f.name: (f.group, f.symmetric, f.dtype) for f in WEIGHT_FORMATS.values() if f.group}
    assert groups == {f"int4_g{g}{'_zp' * (not s)}": (g, s, "uint4") for g in int4.GROUP_SIZES for s in (True, False)}
    assert get_scheme("dynamic", "int4_g64").weights.granularity == "per_group"
    assert get_scheme("fp32", "int4_g64") == get_scheme("fp32")  # float weights stay float


@pytest.mark.parametrize("scheme", ["woq", "dynamic"])
@pytest.mark.parametrize("weights", [f.name for f in WEIGHT_FORMATS.values() if f.group])
def test_traffic_is_packed_codes_plus_group_parameters(scheme: str, weights: str) -> None:
    """Closed form: K x N / 2 bytes of codes; per output channel K / g float32 scales and, with zero points,
    K / g nibbles (two per byte); int8 reads K x N bytes and 4 (+1) bytes per channel."""
    fmt = WEIGHT_FORMATS[weights]
    assert fmt.group is not None
    layer = _layer(scheme, weights)
    groups = K // fmt.group
    assert sum(t.weight_bytes for t in layer.tiles) == K * N // 2
    assert sum(t.weight_scale_bytes for t in layer.tiles) == N * (4 * groups + (not fmt.symmetric) * groups // 2)
    int8 = _layer(scheme, "symmetric")
    assert sum(t.weight_bytes for t in int8.tiles) == K * N
    assert sum(t.weight_scale_bytes for t in int8.tiles) == N * 4


def test_w4a8_rescale_runs_on_the_requant_lanes() -> None:
    """One lane operation per group partial sum and output, on the requant unit (idle under dynamic int8);
    the tile's compute is the longer of the array's and the rescale's."""
    hw = load_hardware(None)
    layer = _layer("dynamic", "int4_g32")
    lanes = LanePipeline(hw.requant.lanes, hw.requant.latency_cycles)
    gemm = [t for t in layer.tiles if not t.range_pass]
    plan, view = layer.plan, layer.view
    assert plan is not None and view is not None and plan.kt % 32 == 0  # K tiles hold whole groups
    blocks = [tile_bounds(view.m, plan.mt), tile_bounds(view.k, plan.kt), tile_bounds(view.n, plan.nt)]
    expected = sum(
        lanes.cycles((m1 - m0) * (n1 - n0) * ceil((k1 - k0) / 32))
        for m0, m1 in blocks[0]
        for k0, k1 in blocks[1]
        for n0, n1 in blocks[2]
    )
    total = sum(t.rescale_cycles for t in gemm)
    assert total == expected >= BATCH * N * (K // 32) / hw.requant.lanes
    assert layer.work.requant_cycles == total
    assert all(t.compute_cycles >= t.rescale_cycles for t in gemm)
    assert sum(t.rescale_cycles for t in _layer("dynamic", "symmetric").tiles) == 0
    assert sum(t.rescale_cycles for t in _layer("woq", "int4_g32").tiles) == 0  # float GEMM: no partial sums


def test_group_passes_cost_array_cycles_only_where_sums_stay_in_the_array() -> None:
    """WS with groups spanning whole row folds: the array runs as under int8. OS keeps sums in the PEs: each
    group is its own pass, so a smaller group costs more."""
    lowerer = Lowerer(load_hardware(None), "dynamic", weights="int4_g32")
    assert lowerer.tile_cycles(4, 256, 32, grouped=True) == lowerer.tile_cycles(4, 256, 32)
    os_hw = ("array.dataflow=os",)
    cycles = {
        g: Lowerer(load_hardware(None, os_hw), "dynamic", weights=w) for g, w in ((32, "int4_g32"), (128, "int4_g128"))
    }
    int8 = Lowerer(load_hardware(None, os_hw), "dynamic").tile_cycles(32, 256, 32)
    g32, g128 = (cycles[g].tile_cycles(32, 256, 32, grouped=True) for g in (32, 128))
    assert g32 > g128 > int8
    assert g32 == 8 * cycles[32].array.tile_cycles(32, 32, 32)


def test_decode_reads_fewer_weight_bytes_under_int4() -> None:
    """Batch 1: the whole run's weight traffic halves (plus the group parameters)."""
    hw = load_hardware(None)
    w = _workload(batch=1)
    rows = {
        weights: simulate(w, hw, "dynamic", options=RunOptions(weights=weights, timing_only=True)).total
        for weights in ("symmetric", "int4_g128")
    }
    params = K * N + N * 40
    assert rows["symmetric"].dram_read_bytes_weights == params
    assert rows["int4_g128"].dram_read_bytes_weights == params // 2
    assert rows["int4_g128"].dram_read_bytes_weight_scales == 4 * (N * K // 128 + 40 * 1)


@pytest.mark.parametrize(
    ("scheme", "weights"), [("woq", "int4_g64_zp"), ("dynamic", "int4_g32"), ("dynamic", "int4_g128_zp")]
)
def test_values_are_the_int4_arithmetic_layer_by_layer(scheme: str, weights: str) -> None:
    w = _workload()
    tensors = materialize(w)
    fmt = WEIGHT_FORMATS[weights]
    assert fmt.group is not None
    values = run_values(w, load_hardware(None), scheme, weights=weights, tensors=tensors)
    x = tensors.inputs["input"]
    for name, activation in (("up", "relu"), ("down", "none")):
        p = tensors.params[name]
        gw = int4.quantize_groups(p.weight.T, fmt.group, symmetric=fmt.symmetric)
        y = int4.matmul_weight_only(x, gw) if scheme == "woq" else int4.matmul_w4a8(x, gw).output
        x = activate(y + p.bias, activation)
        assert np.array_equal(values.layers[name].output, x)


def test_w4a8_error_is_int4s_not_int8s() -> None:
    """int4 weights dominate the error: W4A8 and weight-only int4 are within 1 dB of each other and well
    below int8 weights (about 6 dB per bit)."""
    w = _workload()
    hw = load_hardware(None)
    tensors = materialize(w)
    ref = run_values(w, hw, "fp32", tensors=tensors)
    sqnr = {
        (s, f): run_values(w, hw, s, weights=f, tensors=tensors).compare_to(ref)["down"].sqnr_db
        for s, f in (("woq", "int4_g32"), ("dynamic", "int4_g32"), ("dynamic", "symmetric"))
    }
    assert abs(sqnr["woq", "int4_g32"] - sqnr["dynamic", "int4_g32"]) < 1
    assert sqnr["dynamic", "symmetric"] > sqnr["dynamic", "int4_g32"] + 12


def test_explain_shows_each_paths_dtypes() -> None:
    hw = load_hardware(None)
    w4a8 = explain(_workload(), hw, "up", "dynamic", weights="int4_g64_zp")
    assert "weights uint4 codes, two per byte (49,152 bytes)" in w4a8
    assert "int8 x uint4 (unpacked to 8 bits) -> int32, one partial sum per group" in w4a8
    assert "requant unit (32 lanes) as the rescale stage: int32 -> float32" in w4a8
    woq = explain(_workload(), hw, "up", "woq", weights="int4_g32")
    assert "(code - zero point) * scale -> float32 weights" in woq and "zero point 8 (not stored)" in woq


def test_refusals() -> None:
    hw = load_hardware(None)
    with pytest.raises(AccelsimError, match="do not run under the static scheme"):
        lower(_workload(), hw, "static", **lowering_options("onnx", "int4_g32"))
    conv = validate(
        Workload,
        {
            "schema_version": 1,
            "name": "c",
            "batch": 1,
            "input_shape": [3, 8, 8],
            "layers": [{"name": "conv", "type": "conv2d", "out_channels": 4, "kernel": 3}],
        },
    )
    with pytest.raises(AccelsimError, match="layer 'conv' is conv2d"):
        lower(conv, hw, "dynamic", **lowering_options("onnx", "int4_g32"))


def test_cli_run(tmp_path) -> None:
    """A timing-only W4A8 run from the command line (the refusals are hostile cases: tests/hostile/int4_cases.py)."""
    run = [sys.executable, "-m", "accelsim", "run", "mlp", "--scheme", "dynamic", "--weights", "int4_g32"]
    done = subprocess.run([*run, "--timing-only", "--out", str(tmp_path)], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "int4_g32" in (next(tmp_path.glob("*/*/results.json"))).read_text()
