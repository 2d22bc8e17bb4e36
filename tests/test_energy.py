"""Energy and area (issue 19): every energy field is the hand-computed product of a count and the table,
the totals add up, and a hardware without a table reports energy as absent, not 0.

The layer is docs/energy.md's worked example: ``fc``, a 16 -> 8 linear layer (batch 1) on an 8x8
weight-stationary array, under the static scheme; the table's numbers are chosen so every product is exact.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.results.energy import COMPONENTS
from accelsim.simulation import RunOptions, compare_schemes, run_meta, simulate

HW = """\
schema_version: 1
name: tiny-energy
clock_mhz: 1000
array: {rows: 8, cols: 8, dataflow: ws}
sram: {ifmap_kib: 4, filter_kib: 4, ofmap_kib: 4}
dram: {bandwidth_bytes_per_cycle: 16, latency_cycles: 10}
requant: {lanes: 8, latency_cycles: 3}
vector: {lanes: 4, latency_cycles: 2}
"""
ENERGY = """\
energy:
  int8_mac_pj: 0.25
  accumulate_pj: 0.125
  float_mac_pj: 4.5
  vector_op_pj: 4
  requant_op_pj: 2
  sram_read_pj_per_byte: {ifmap: 1, filter: 2, ofmap: 3}
  sram_write_pj_per_byte: {ifmap: 5, filter: 6, ofmap: 7}
  dram_read_pj_per_byte: 100
  dram_write_pj_per_byte: 200
  static_mw: 1000
area: {pe_um2: 700, sram_um2_per_kib: 4000, requant_lane_um2: 4000, vector_lane_um2: 12000}
"""
WL = """\
schema_version: 1
name: one-linear
input_shape: [16]
layers:
  - {name: fc, type: linear, out_features: 8}
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "hw.yaml").write_text(HW + ENERGY)
    (tmp_path / "plain.yaml").write_text(HW)
    (tmp_path / "wl.yaml").write_text(WL)
    return tmp_path


def _run(files, scheme: str, hw: str = "hw.yaml", overrides: tuple[str, ...] = ()):
    hardware = load_hardware(files / hw, overrides)
    return simulate(load_workload(files / "wl.yaml"), hardware, scheme, options=RunOptions(timing_only=True))


def test_every_energy_field_is_counts_times_table(files):
    run = _run(files, "static")
    fc = next(r for r in run.rows if r.layer == "fc")
    # the counts, by hand (docs/energy.md): M=1, K=16, N=8 is one tile; int8 operands, int32 partial sums
    counts = {
        "macs": 16 * 8,
        "sram_read_bytes_ifmap": 16,  # x (1 x 16) streamed once: one fold of N (8 columns)
        "sram_read_bytes_filter": 16 * 8,  # the stationary weights, once
        "sram_read_bytes_ofmap": 8 * 4,  # the 8 int32 accumulators read by the requant unit
        "sram_write_bytes_ifmap": 16,  # the DMA fill of x
        "sram_write_bytes_filter": 16 * 8 + 8 * 4 + 8 * (4 + 4),  # weights, int32 bias, M0 and shift per channel
        "sram_write_bytes_ofmap": 8 * 4,  # the accumulators
        "dram_read_bytes_ifmap": 16,
        "dram_read_bytes_weights": 128,
        "dram_read_bytes_weight_scales": 64,
        "dram_read_bytes_bias": 32,
        "dram_write_bytes_ofmap": 8,
        "requant_busy_cycles": 3 + 8 // 8,  # latency + 8 outputs on 8 lanes
        "vector_busy_cycles": 0,
    }
    assert {k: getattr(fc, k) for k in counts} == counts
    expected = {
        "energy_pj_array": 128 * (0.25 + 0.125),  # 48
        "energy_pj_vector": 0.0,
        "energy_pj_requant": 4 * 8 * 2,  # lane-cycles x pJ: 64
        "energy_pj_sram_ifmap": 16 * 1 + 16 * 5,  # 96
        "energy_pj_sram_filter": 128 * 2 + 224 * 6,  # 1,600
        "energy_pj_sram_ofmap": 32 * 3 + 32 * 7,  # 320
        "energy_pj_dram_ifmap": 16 * 100,
        "energy_pj_dram_weights": 128 * 100,
        "energy_pj_dram_weight_scales": 64 * 100,
        "energy_pj_dram_bias": 32 * 100,
        "energy_pj_dram_ofmap": 8 * 200,
        "energy_pj_dram_kv_cache": 0.0,  # no KV cache in this layer (docs/llm.md's decode steps read one)
        "energy_pj_static": 1000 * fc.total_cycles,  # 1,000 mW x 1 ns per cycle = 1,000 pJ per cycle
    }
    assert {k: getattr(fc, k) for k in expected} == pytest.approx(expected, rel=1e-12)
    dynamic = 48 + 64 + 96 + 1600 + 320 + 1600 + 12800 + 6400 + 3200 + 1600
    assert fc.energy_pj == pytest.approx(dynamic + 1000 * fc.total_cycles, rel=1e-12)
    assert fc.energy_delay_pj_s == pytest.approx(fc.energy_pj * fc.total_cycles * 1e-9, rel=1e-12)
    assert fc.pj_per_mac == pytest.approx(fc.energy_pj / 128, rel=1e-12)
    assert fc.tops_per_w == pytest.approx(2 * 128 / fc.energy_pj, rel=1e-12)


def test_total_sums_the_layers_and_conversions(files):
    run = _run(files, "static")
    assert [r.layer for r in run.rows] == ["input.quantize", "fc", "output.dequantize"]
    quantize = run.rows[0]  # 16 fp32 in, 16 int8 out, on 4 vector lanes
    assert quantize.energy_pj_vector == quantize.vector_busy_cycles * 4 * 4 == (2 + 4) * 16
    assert quantize.energy_pj_dram_ifmap == 64 * 100 and quantize.energy_pj_dram_ofmap == 16 * 200
    for component in COMPONENTS:
        name = f"energy_pj_{component}"
        assert getattr(run.total, name) == pytest.approx(sum(getattr(r, name) for r in run.rows), rel=1e-12)
    assert run.total.energy_pj == pytest.approx(sum(r.energy_pj for r in run.rows), rel=1e-12)
    assert run.total.energy_pj_static == pytest.approx(1000 * run.total.total_cycles, rel=1e-12)
    assert run.total.tops_per_w == pytest.approx(2 * 128 / run.total.energy_pj, rel=1e-12)


def test_float_macs_on_the_vector_unit_and_on_a_float_array(files):
    on_vector = next(r for r in _run(files, "fp32").rows if r.layer == "fc")
    assert on_vector.unit == "vector" and on_vector.energy_pj_array == 0
    assert on_vector.energy_pj_vector == on_vector.vector_busy_cycles * 4 * 4
    on_array = next(r for r in _run(files, "fp32", overrides=("array.float_rate=0.5",)).rows if r.layer == "fc")
    assert on_array.unit == "array" and on_array.energy_pj_array == 128 * 4.5


def test_hardware_without_a_table_reports_energy_absent(files, tmp_path):
    run = _run(files, "static", hw="plain.yaml")
    energy = [f for f in vars(run.total) if f.startswith("energy") or f in ("pj_per_mac", "tops_per_w")]
    assert len(energy) == len(COMPONENTS) + 4
    for row in [*run.rows, run.total]:
        assert all(math.isnan(getattr(row, f)) for f in energy), row.layer
    hw = load_hardware(files / "plain.yaml")
    assert "energy" not in hw.model_dump() and "area" not in hw.model_dump() and math.isnan(hw.area_mm2)
    assert load_hardware(files / "hw.yaml").area_mm2 == pytest.approx(
        (64 * 700 + 12 * 4000 + 8 * 4000 + 4 * 12000) / 1e6
    )
    from accelsim.results.records import write_results

    csv_file, json_file = write_results(
        tmp_path / "out", run.rows, run_meta(load_workload(files / "wl.yaml"), hw, [run])
    )
    rows = list(csv.DictReader(csv_file.open()))
    assert rows[-1]["energy_pj"] == "" and rows[-1]["tops_per_w"] == ""
    assert json.loads(json_file.read_text())["rows"][-1]["energy_pj"] is None


def test_quantization_schemes_in_joules(files):
    """Static int8 moves a quarter of fp32's bytes and does int8 MACs: it must cost less than fp32."""
    runs = {
        r.scheme: r
        for r in compare_schemes(
            load_workload(files / "wl.yaml"), load_hardware(files / "hw.yaml"), options=RunOptions(timing_only=True)
        )
    }
    assert runs["static"].total.energy_pj < runs["fp32"].total.energy_pj
    assert runs["static"].total.energy_pj_dram_weights * 4 == runs["fp32"].total.energy_pj_dram_weights


def test_float_scheme_on_an_array_without_a_float_datapath(files):
    """No float_mac_pj is needed (or allowed to matter) when the array has no float datapath: fp32 GEMMs run
    on the vector unit, so the array's energy is 0 and every other component is priced as usual."""
    (files / "no_float.yaml").write_text(HW + ENERGY.replace("  float_mac_pj: 4.5\n", ""))
    run = _run(files, "fp32", hw="no_float.yaml")
    fc = next(r for r in run.rows if r.layer == "fc")
    assert fc.unit == "vector" and fc.energy_pj_array == 0
    assert fc.energy_pj_vector == fc.vector_busy_cycles * 4 * 4
    assert math.isfinite(run.total.energy_pj) and run.total.energy_pj > 0
