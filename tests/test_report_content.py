"""Reports: the numbers in report.md are the results CSV's, every plot exists, output is deterministic,
SQNR NaN/inf render as ``-``/``exact``, and a bad folder is a one-line error with exit 2."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from accelsim.cli import main
from accelsim.report.writer import write_report
from accelsim.results.records import read_results, write_results

ROOT = Path(__file__).resolve().parents[1]

MB = 1e6


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", "tiny_cnn", "--timing-only", "--out", str(out), "--report"]) == 0
    (folder,) = out.glob("tiny_cnn/*")
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "tiny_cnn", "--scheme", "static", "--timing-only", "--out", str(out), "--report"]) == 0
    (folder,) = out.glob("tiny_cnn/*")
    return folder


def csv_rows(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(folder / "results.csv", newline="") as handle:
        return {(r["scheme"], r["layer"]): r for r in csv.DictReader(handle)}


def md_table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after ``## heading``, as dicts by header."""
    section = markdown.split(f"## {heading}\n", 1)[1].lstrip("\n")
    lines = section.split("\n\n", 1)[0].splitlines()
    split = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return [dict(zip(split[0], row)) for row in split[2:]]


def close(cell: str, value: float, decimals: int) -> bool:
    """``cell`` is ``value`` as printed with ``decimals`` decimals (ignoring ``,`` and a ``x`` suffix)."""
    return abs(float(cell.replace(",", "").rstrip("x")) - value) <= 0.5 * 10**-decimals + 1e-9


def sqnr_cell(raw: str) -> str:
    if raw == "":
        return "-"
    value = float(raw)
    return "exact" if math.isinf(value) else f"{value:.1f}"


def test_summary_table_equals_csv(compare_dir: Path) -> None:
    rows = csv_rows(compare_dir)
    table = md_table((compare_dir / "report.md").read_text(), "Summary")
    assert [r["scheme"].split()[0] for r in table] == ["fp32", "woq", "dynamic", "static"]
    base = rows[("fp32", "total")]
    for cells in table:
        t = rows[(cells["scheme"].split()[0], "total")]
        traffic = int(t["dram_read_bytes"]) + int(t["dram_write_bytes"])
        assert close(cells["latency ms"], float(t["latency_s"]) * 1e3, 3)
        assert cells["cycles"] == f"{int(t['total_cycles']):,}"
        assert cells["stalls"] == f"{int(t['stall_cycles']):,}"
        assert close(cells["speedup"], int(base["total_cycles"]) / int(t["total_cycles"]), 2)
        assert close(cells["weights MB"], int(t["dram_read_bytes_weights"]) / MB, 2)
        assert close(cells["ifmap MB"], int(t["dram_read_bytes_ifmap"]) / MB, 2)
        assert close(cells["ofmap MB"], int(t["dram_write_bytes_ofmap"]) / MB, 2)
        assert close(
            cells["bias+scales MB"], (int(t["dram_read_bytes_bias"]) + int(t["dram_read_bytes_weight_scales"])) / MB, 2
        )
        assert close(cells["DRAM MB"], traffic / MB, 2)
        assert close(cells["traffic cut"], (int(base["dram_read_bytes"]) + int(base["dram_write_bytes"])) / traffic, 2)
        assert close(cells["util %"], 100 * float(t["utilization"]), 1)
        assert cells["SQNR dB"] == sqnr_cell(t["sqnr_db"])


def test_per_layer_tables_equal_csv(compare_dir: Path) -> None:
    rows = csv_rows(compare_dir)
    markdown = (compare_dir / "report.md").read_text()
    for scheme in ("fp32", "woq", "dynamic", "static"):
        table = md_table(markdown, f"Per-layer numbers: {scheme}")
        assert [c["layer"] for c in table] == [layer for s, layer in rows if s == scheme]
        for cells in table:
            r = rows[(scheme, cells["layer"])]
            assert (cells["type"], cells["unit"]) == (r["type"], r["unit"])
            assert cells["cycles"] == f"{int(r['total_cycles']):,}"
            assert cells["compute"] == f"{int(r['compute_cycles']):,}"
            assert cells["stalls"] == f"{int(r['stall_cycles']):,}"
            assert close(cells["read MB"], int(r["dram_read_bytes"]) / MB, 2)
            assert close(cells["write MB"], int(r["dram_write_bytes"]) / MB, 2)
            assert close(cells["util %"], 100 * float(r["utilization"]), 1)
            assert cells["bound"] == (r["bound_by"] or "-")
            assert cells["SQNR dB"] == sqnr_cell(r["sqnr_db"])


def test_conclusion_names_the_fastest_scheme_with_its_csv_cycles(compare_dir: Path) -> None:
    totals = {s: int(r["total_cycles"]) for (s, layer), r in csv_rows(compare_dir).items() if layer == "total"}
    fastest = min(totals, key=totals.__getitem__)
    conclusions = (compare_dir / "report.md").read_text().split("## Conclusions\n", 1)[1].split("\n## ", 1)[0]
    assert f"Fastest: **{fastest}** takes" in conclusions
    assert f"({totals[fastest]:,} cycles)" in conclusions
    assert f"{totals['fp32'] / totals[fastest]:.2f}x faster than fp32" in conclusions


def test_layers_the_conclusion_calls_memory_bound_are_memory_bound_in_the_csv(compare_dir: Path) -> None:
    rows = csv_rows(compare_dir)
    sentence = next(
        line for line in (compare_dir / "report.md").read_text().splitlines() if "memory-bound under" in line
    )
    scheme = re.search(r"memory-bound under (\w+)", sentence)[1]
    array = [r for (s, _), r in rows.items() if s == scheme and r["unit"] == "array" and int(r["macs"]) > 0]
    bound = [r["layer"] for r in array if r["bound_by"] == "memory"]
    if bound:
        assert sentence.startswith(f"- {len(bound)} of {len(array)} array layer")
        named = re.findall(r"`([^`]+)` \(\d", sentence.split("The longest:")[1].split(" left of the ridge")[0])
        assert named and set(named) <= set(bound)
    else:
        assert "No array layer is memory-bound" in sentence


def svg_ok(data: bytes) -> None:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 20  # drawn, not an empty canvas


def test_markdown_links_existing_svg_files(compare_dir: Path) -> None:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (compare_dir / "report.md").read_text())
    assert {Path(link).stem for link in links} == {
        "cycles",
        "traffic",
        "energy",
        "layer_latency",
        "roofline",
        "timeline",
    }
    for link in links:
        assert not Path(link).is_absolute()
        svg_ok((compare_dir / link).read_bytes())


def test_energy_conclusion_is_the_csv_energy(compare_dir: Path) -> None:
    """The default hardware prices energy: the conclusion names the scheme with the least total energy_pj
    of the CSV, its pJ/MAC and the ratio to fp32 (issue 19)."""
    from accelsim.report.table import joules

    totals = {s: r for (s, layer), r in csv_rows(compare_dir).items() if layer == "total"}
    least = min(totals, key=lambda s: float(totals[s]["energy_pj"]))
    energy = float(totals[least]["energy_pj"])
    conclusions = (compare_dir / "report.md").read_text().split("## Conclusions\n", 1)[1].split("\n## ", 1)[0]
    assert (
        f"Least energy: **{least}** uses {joules(energy)} ({float(totals[least]['pj_per_mac']):.3g} pJ/MAC"
        in conclusions
    )
    assert f"{float(totals['fp32']['energy_pj']) / energy:.2f}x less than fp32" in conclusions
    assert "## Energy by component" in (compare_dir / "report.md").read_text()


def test_hardware_without_energy_says_so(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "hwconfigs" / "gemmini.yaml").read_text())
    del config["energy"], config["area"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(config))
    run = ["run", "tiny_cnn", "--hw", str(tmp_path / "plain.yaml"), "--timing-only", "--out", str(tmp_path), "--report"]
    assert main(run) == 0
    (folder,) = tmp_path.glob("tiny_cnn/*")
    markdown = (folder / "report.md").read_text()
    assert "No energy: hardware gemmini-16x16 has no `energy` table" in markdown
    assert "energy" not in markdown.split("## Conclusions\n", 1)[1].split("\n## ", 1)[0].lower()
    assert not (folder / "figures" / "energy.svg").exists()


def test_html_is_self_contained_with_every_plot_inline(compare_dir: Path) -> None:
    html = (compare_dir / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 6
    for src in sources:
        prefix, data = src.split(",", 1)
        assert prefix == "data:image/svg+xml;base64"
        svg_ok(base64.b64decode(data))
    outside_images = re.sub(r'src="data:[^"]*"', "", html)
    assert not re.search(r"(src|href)=|<link|@import|url\(", outside_images)


def test_same_results_give_identical_files(compare_dir: Path) -> None:
    paths = [compare_dir / "report.md", compare_dir / "report.html", *sorted((compare_dir / "figures").glob("*"))]
    before = [p.read_bytes() for p in paths]
    write_report(compare_dir)
    assert [p.read_bytes() for p in paths] == before


def test_single_scheme_report_drops_cross_scheme_parts(run_dir: Path) -> None:
    markdown = (run_dir / "report.md").read_text()
    assert markdown.startswith("# tiny_cnn on default-32x32: static run\n")
    assert "## Totals" in markdown and "## Summary" not in markdown
    assert "runner-up" not in markdown and "Fastest:" not in markdown and "faster than" not in markdown
    (cells,) = md_table(markdown, "Totals")
    total = csv_rows(run_dir)[("static", "total")]
    assert cells["cycles"] == f"{int(total['total_cycles']):,}"
    assert len(list((run_dir / "figures").glob("*.svg"))) == 6  # with energy: the default hardware has a table


def test_sqnr_nan_inf_and_values(tmp_path: Path, compare_dir: Path) -> None:
    """Once values exist: per-layer SQNR plot appears, inf prints as ``exact``, NaN as ``-``; when they
    are gone again, the stale SQNR figure goes too."""
    for name in ("results.json", "timeline.json"):
        (tmp_path / name).write_bytes((compare_dir / name).read_bytes())
    rows, meta = read_results(tmp_path)
    scored = []
    for i, r in enumerate(rows):
        if r.scheme == "fp32":
            sqnr = math.inf
        elif r.scheme == "dynamic" or r.layer == "flatten":
            sqnr = math.nan
        else:
            sqnr = math.inf if i % 3 == 0 else 20.0 + i
        scored.append(replace(r, sqnr_db=sqnr))
    write_results(tmp_path, scored, meta)
    markdown = write_report(tmp_path)[0].read_text()
    assert "figures/layer_sqnr.svg" in markdown
    summary = {c["scheme"].split()[0]: c["SQNR dB"] for c in md_table(markdown, "Summary")}
    totals = {r.scheme: r.sqnr_db for r in scored if r.layer == "total"}
    assert summary == {
        s: ("-" if math.isnan(v) else "exact" if math.isinf(v) else f"{v:.1f}") for s, v in totals.items()
    }
    assert {c["SQNR dB"] for c in md_table(markdown, "Per-layer numbers: static")} >= {"exact", "-"}
    assert "SQNR at the network output against fp32: woq" in markdown
    svg_ok((tmp_path / "figures/layer_sqnr.svg").read_bytes())

    write_results(tmp_path, rows, meta)
    assert "layer_sqnr" not in write_report(tmp_path)[0].read_text()
    assert not (tmp_path / "figures/layer_sqnr.svg").exists()


@pytest.mark.parametrize("make", ["missing", "empty", "corrupt", "no_hardware"])
def test_bad_results_dir_is_one_line_exit_2(tmp_path: Path, make: str, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "results"
    if make != "missing":
        folder.mkdir()
    if make == "corrupt":
        (folder / "results.json").write_text("{not json")
    if make == "no_hardware":
        (folder / "results.json").write_text(json.dumps({"meta": {"workload": {"name": "w"}}, "rows": []}))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    named = f"{folder}/results.json" if make in ("corrupt", "no_hardware") else str(folder)  # the file at fault
    assert err.startswith(f"accelsim: error: {named}: ") and err.count("\n") == 1


def test_setup_names_each_schemes_settings(tmp_path: Path) -> None:
    """The setup line says what each scheme ran with: the dynamic flavour, the requant rounding and a
    weight format other than the default symmetric int8."""
    assert (
        main(
            [
                "compare",
                "tiny_cnn",
                "--timing-only",
                "--out",
                str(tmp_path),
                "--report",
                "--weights",
                "asymmetric",
                "--flavour",
                "pytorch",
            ]
        )
        == 0
    )
    (folder,) = tmp_path.glob("tiny_cnn/*")
    setup = (folder / "report.md").read_text()
    assert "dynamic (flavour pytorch, asymmetric weights, timing only)" in setup
    assert "static (requant rounding tflite, asymmetric weights, timing only)" in setup
    assert "woq (asymmetric weights, timing only)" in setup and "fp32 (timing only)" in setup
