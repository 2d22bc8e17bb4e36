"""Sweep axes over the workload and the run (issue 18): ``workload.<field>``, ``weights``, a ``hardware`` axis of
whole configs, and workload entries with a ``set``; their points run what they say, and the report's per-token
section names the fastest scheme at each batch."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.sweep import load_sweep
from accelsim.report.sweep_report import sweep_document
from accelsim.report.sweep_tokens import ms_per_token, winners
from accelsim.sweep import expand
from accelsim.sweep.executors import LocalPool
from accelsim.sweep.runner import run_sweep
from accelsim.sweep.store import read_rows
from accelsim.sweep.worker import run_batch

#: a decode step of a reduced decoder block: 1 new token, the context a workload-level field
DECODE = """\
schema_version: 1
name: tiny_decode
input_shape: [1, 64]
context: 16
layers:
  - {name: norm, type: rmsnorm, eps: 1.0e-5}
  - {name: q, type: linear, out_features: 64, bias: false}
  - {name: k, type: linear, inputs: [norm], out_features: 32, bias: false}
  - {name: v, type: linear, inputs: [norm], out_features: 32, bias: false}
  - {name: q_rope, type: rotary, inputs: [q], heads: 4}
  - {name: k_rope, type: rotary, inputs: [k], heads: 2}
  - {name: k_cache, type: kv_cache, inputs: [k_rope], heads: 2}
  - {name: v_cache, type: kv_cache, inputs: [v], heads: 2}
  - {name: scores, type: matmul, inputs: [q_rope, k_cache], transpose_b: true, heads: 4, kv_heads: 2, alpha: 0.25}
  - {name: softmax, type: softmax}
  - {name: context, type: matmul, inputs: [softmax, v_cache], heads: 4, kv_heads: 2, merge_heads: true}
  - {name: o, type: linear, out_features: 64, bias: false}
"""


def _spec(tmp_path: Path, **fields: object) -> Path:
    (tmp_path / "tiny_decode.yaml").write_text(DECODE)
    doc = {
        "schema_version": 1,
        "axes": {
            "hardware": ["default", "phone-npu-lpddr5x"],
            "workload.batch": [1, 4],
            "workload.context": [16, 48],
            "workload.kv_cache_dtype": ["activation", "int8"],
            "weights": ["symmetric", "int4_g32"],
        },
        "workloads": ["tiny_decode.yaml"],
        "schemes": ["woq", "dynamic", "static"],
        "output": str(tmp_path / "out"),
        **fields,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(doc))
    return path


def test_points_cover_the_axes_and_leave_out_what_cannot_run(tmp_path: Path) -> None:
    """2 configs x 2 batches x 2 contexts x 2 KV dtypes x 2 weights x 3 schemes = 96 pairs; static cannot run int4
    group-wise weights (16 left out); ids are distinct and each point's workload has its axis values."""
    sweep = load_sweep(_spec(tmp_path))
    points, pruned, left_out = expand(sweep)
    assert (len(points), pruned, left_out) == (80, 0, 16)
    assert len({p.id for p in points}) == 80
    assert not any(p.scheme == "static" and p.overrides["weights"] == "int4_g32" for p in points)
    point = next(p for p in points if p.overrides["workload.context"] == 48 and p.overrides["workload.batch"] == 4)
    workload = sweep.workload(point.workload, point.overrides)
    layers = {layer.name: layer for layer in workload.layers}
    assert (workload.batch, layers["q_rope"].position, layers["v_cache"].context) == (4, 48, 48)
    assert sweep.hardware(point.overrides) == load_hardware(point.overrides["hardware"])


def test_fp32_runs_only_at_the_default_weights(tmp_path: Path) -> None:
    """fp32 keeps float weights: a weights axis does not multiply its points."""
    sweep = load_sweep(_spec(tmp_path, schemes=["fp32"]))
    points, _, left_out = expand(sweep)
    assert {p.overrides["weights"] for p in points} == {"symmetric"} and left_out == len(points)


def test_each_axis_changes_what_it_names(tmp_path: Path) -> None:
    """KV traffic is batch x (context + 1) rows of the cache, int8 with its scales a quarter of fp32's and
    more; int4 weights read fewer weight bytes than int8; tokens per step is the batch."""
    sweep = load_sweep(_spec(tmp_path))
    points = expand(sweep).points
    results = {
        (
            p.overrides["hardware"],
            p.scheme,
            p.overrides["weights"],
            p.overrides["workload.batch"],
            p.overrides["workload.context"],
            p.overrides["workload.kv_cache_dtype"],
        ): r.values
        for p, r in zip(points, run_batch(sweep, points), strict=True)
        if r.error is None or pytest.fail(r.error)
    }
    row = results[("default", "woq", "symmetric", 4, 48, "activation")]
    rows_read = 4 * (48 + 1) * 32  # batch x (context + 1) x kv_heads*d, of the keys and of the values
    assert row["dram_read_bytes_kv_cache"] == 2 * rows_read * 4  # scores read the keys, context the values: fp32
    assert (
        results[("default", "woq", "symmetric", 1, 48, "activation")]["dram_read_bytes_kv_cache"] * 4
        == row["dram_read_bytes_kv_cache"]
    )
    int8 = results[("default", "woq", "symmetric", 4, 48, "int8")]["dram_read_bytes_kv_cache"]
    assert row["dram_read_bytes_kv_cache"] / 4 < int8 < row["dram_read_bytes_kv_cache"] / 2
    int4 = results[("default", "dynamic", "int4_g32", 4, 48, "activation")]
    int8_weights = results[("default", "dynamic", "symmetric", 4, 48, "activation")]["dram_read_bytes_weights"]
    linear = 64 * 64 * 2 + 64 * 32 * 2  # q, o and k, v: int8 one byte each, int4 half of that
    assert int8_weights - int4["dram_read_bytes_weights"] == linear // 2
    assert row["tokens_per_step"] == 4
    phone = load_hardware("phone-npu-lpddr5x")
    assert results[("phone-npu-lpddr5x", "woq", "symmetric", 4, 48, "int8")]["peak_macs_per_cycle"] == (
        phone.pe_count * phone.array.float_rate
    )
    assert results[("phone-npu-lpddr5x", "static", "symmetric", 4, 48, "int8")]["peak_macs_per_cycle"] == phone.pe_count


def test_report_names_the_fastest_at_each_batch(tmp_path: Path) -> None:
    """The per-token section's winners are the least time per token in the stored rows, and each change of
    winner is a sentence with both schemes' roofline position."""
    spec = _spec(
        tmp_path,
        axes={"hardware": ["phone-npu-lpddr5x"], "workload.batch": [1, 8, 64], "weights": ["symmetric", "int4_g32"]},
        workloads=[{"workload": "tiny_decode.yaml", "set": {"context": 200}}],
    )
    sweep = load_sweep(spec)
    run_sweep(sweep, LocalPool(1), progress=False)
    columns, data = read_rows(sweep.output)
    rows = [dict(zip(columns, values, strict=True)) for values in data]
    series: dict[str, dict[int, dict]] = {}
    for r in rows:
        label = f"{r['scheme']} {'int8' if r['weights'] == 'symmetric' else r['weights']}"
        series.setdefault(label, {})[r["workload.batch"]] = r
    best = winners(series, [1, 8, 64])
    for batch, label in best:
        assert ms_per_token(series[label][batch]) == min(ms_per_token(s[batch]) for s in series.values())
    document = sweep_document(sweep.output)
    section = next(s for s in document.sections if s.title == "Time per token against batch")
    text = " ".join(getattr(b, "text", "") for b in section.blocks)
    assert f"At batch 1 the fastest is **{best[0][1]}**" in text
    for (_, old), (batch, new) in itertools.pairwise(best):
        if old != new:
            assert f"From batch {batch} **{new}** is fastest" in text
    assert "MACs per DRAM byte against a balance of" in text


def test_report_says_when_the_kv_cache_dominates(tmp_path: Path) -> None:
    """Against context, each series gets the KV cache's share of its DRAM bytes at the largest context and the
    first context where it is more than half, from the stored rows."""
    spec = _spec(
        tmp_path,
        axes={
            "hardware": ["default"],
            "workload.context": [16, 256, 4096],
            "workload.kv_cache_dtype": ["activation", "int8"],
        },
        schemes=["dynamic"],
    )
    sweep = load_sweep(spec)
    run_sweep(sweep, LocalPool(1), progress=False)
    columns, data = read_rows(sweep.output)
    rows = [dict(zip(columns, values, strict=True)) for values in data]
    section = next(
        s for s in sweep_document(sweep.output).sections if s.title.startswith("Time per token against context")
    )
    text = " ".join(getattr(b, "text", "") for b in section.blocks)
    for dtype in ("activation", "int8"):
        share = {
            r["workload.context"]: r["dram_read_bytes_kv_cache"] / (r["dram_read_bytes"] + r["dram_write_bytes"])
            for r in rows
            if r["workload.kv_cache_dtype"] == dtype
        }
        first = next((c for c, s in share.items() if s > 0.5), None)
        sentence = f"dynamic KV {dtype}: the KV cache is {share[4096]:.0%} of the DRAM bytes at the largest context"
        assert sentence in text
        assert (f"more than half from context {first}." if first else "never more than half.") in text
    assert share[4096] > share[16]
