"""The sweep report: best points, Pareto fronts, heatmap, failed points; identical bytes when rewritten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from accelsim.cli import main
from accelsim.report.sweep_plots import pareto_front


def test_pareto_front_keeps_points_nothing_beats() -> None:
    xs = [1.0, 2.0, 2.0, 3.0, 4.0, 0.5]
    ys = [5.0, 3.0, 4.0, 3.0, 1.0, 9.0]
    assert pareto_front(xs, ys) == [5, 0, 1, 4]


def test_sweep_report_sections_and_determinism(tmp_path: Path, sweep_spec: Callable[..., Path], capsys) -> None:
    spec = sweep_spec("out", schemes=("static", "fp32"), axes={"sram.filter_kib": [0.01, 64]})
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--workers", "2", "--report"]) == 0
    assert f"report: {out / 'report.md'}, {out / 'report.html'}" in capsys.readouterr().out
    markdown = (out / "report.md").read_text()
    for heading in (
        "## Setup",
        "## Best point per workload and scheme",
        "## Pareto fronts",
        "## Latency over array.rows and array.dataflow",
        "## Failed points",
    ):
        assert heading in markdown, heading
    assert "| tiny_cnn | static | array.rows=" in markdown
    assert "no tile fits the SRAM buffers" in markdown  # the filter_kib=0.01 points failed, and say why
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == [  # the default hardware has energy and area tables: their fronts too (issue 19)
        "heatmap_latency.svg",
        *(f"pareto_{front}_{w}.svg" for front in ("area", "energy", "pes", "traffic") for w in ("mlp", "tiny_cnn")),
    ]
    html = (out / "report.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == 9 and 'src="figures/' not in html
    before = {p.name: p.read_bytes() for p in [out / "report.md", out / "report.html", *(out / "figures").iterdir()]}
    assert main(["sweep", str(spec), "--report"]) == 0  # nothing left to run; the report is rewritten
    after = {p.name: p.read_bytes() for p in [out / "report.md", out / "report.html", *(out / "figures").iterdir()]}
    assert before == after


def test_energy_fronts_leave_out_points_without_a_table() -> None:
    """A point whose hardware has no energy or area table (NULL in the store) is on no energy or area front;
    with none priced, those fronts are not drawn at all."""
    from accelsim.report.sweep_report import _paretos

    def row(energy: float | None, area: float | None, latency: float) -> dict:
        base = {"workload": "w", "scheme": "static", "status": "ok", "pe_count": 64, "latency_s": latency}
        return {**base, "dram_read_bytes": 10, "dram_write_bytes": 5, "energy_pj": energy, "area_mm2": area}

    unpriced = _paretos([row(None, None, 1.0), row(None, None, 2.0)], ["w"], ["static"])
    assert [b.name for b in unpriced.blocks] == ["pareto_traffic_w", "pareto_pes_w"]
    mixed = _paretos([row(None, None, 1.0), row(2e9, 4.0, 2.0)], ["w"], ["static"])
    assert [b.name for b in mixed.blocks] == ["pareto_traffic_w", "pareto_pes_w", "pareto_energy_w", "pareto_area_w"]
    assert "1 of 1" in mixed.blocks[2].svg.decode()  # the front's legend counts only the priced point
