"""What a newcomer's terminal shows: tables that fit it, overridden configs marked as such, the results
folder's hash suffix explained, and help with defaults and examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accelsim.cli import build_parser, main
from accelsim.report.table import format_table

HEADERS = ["scheme", "latency ms", "cycles", "weights MB", "ifmap MB", "SQNR dB"]
ROWS = [
    ["fp32", "259.307", "259,306,930", "119.01", "113.17", "exact"],
    ["static *+", "6.330", "6,329,767", "25.62", "25.18", "35.8"],
]


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_a_table_that_fits_is_unchanged_by_a_width() -> None:
    assert format_table(HEADERS, ROWS, width=200) == format_table(HEADERS, ROWS)
    assert lines(format_table(HEADERS, ROWS))[0].split() == [
        "scheme",
        "latency",
        "ms",
        "cycles",
        "weights",
        "MB",
        "ifmap",
        "MB",
        "SQNR",
        "dB",
    ]


def test_headers_wrap_before_any_column_is_hidden() -> None:
    full = format_table(HEADERS, ROWS)
    width = max(map(len, lines(full))) - 8
    fitted = format_table(HEADERS, ROWS, width=width, hide_order=["ifmap MB"])
    assert max(map(len, lines(fitted))) <= width
    assert lines(fitted)[0].split() == ["latency", "weights", "ifmap", "SQNR"]  # two header lines, nothing hidden
    assert "hidden" not in fitted and "113.17" in fitted


def test_columns_are_hidden_in_the_given_order_and_named() -> None:
    fitted = format_table(HEADERS, ROWS, width=30, hide_order=["ifmap MB", "weights MB", "cycles", "scheme"])
    table, note = fitted.split("\n(")
    note = " ".join(note.split())  # the note wraps to the width too
    assert max(map(len, lines(fitted))) <= 30
    assert "scheme" in table  # hidden only as far as needed
    assert "113.17" not in table and "119.01" not in table and "259,306,930" not in table
    assert "ifmap MB" in note and "weights MB" in note and "cycles" in note and "--wide" in note
    assert "6.330" in table and "exact" in table


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_and_run_fit_the_terminal(
    columns: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    simulate = ["--timing-only", "--out", str(tmp_path)]
    for command in (
        ["compare", "resnet18", *simulate],
        ["run", "resnet18", *simulate],
        ["lower", "resnet18", "--tiles"],
    ):
        out = run_cli(command, capsys)
        table = [line for line in lines(out) if not line.startswith(("workload ", "hardware ", "results: "))]
        assert max(map(len, table)) <= columns, (command, max(table, key=len))
    wide = run_cli(["compare", "resnet18", "--timing-only", "--out", str(tmp_path), "--wide"], capsys)
    assert "bias+scales MB" in wide and max(map(len, lines(wide))) > 120


def test_output_to_a_pipe_is_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # capsys's stdout is not a terminal
    out = run_cli(["compare", "tiny_cnn", "--timing-only", "--out", str(tmp_path)], capsys)
    assert "bias+scales MB" in out and "hidden" not in out


def test_lower_names_its_columns_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(["lower", "tiny_cnn", "--wide"], capsys)
    assert "GEMM size M x K x N" in out and "tile size M x K x N" in out and "loop order" in out
    assert "count x MxKxN" not in out and "output positions" in out


def test_overridden_configs_are_marked(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(["show", "gemmini", "--set", "array.rows=32"], capsys)
    assert lines(out)[0].startswith("hardware gemmini-16x16 (overridden: array.rows=32): 32x16 ")
    assert "overridden" not in run_cli(["show", "gemmini"], capsys)
    out = run_cli(["validate", "tiny_cnn", "--set", "batch=2"], capsys)
    assert "workload tiny_cnn (overridden: batch=2): " in out


def test_results_path_explains_its_hash_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(
        ["run", "tiny_cnn", "--timing-only", "--out", str(tmp_path), "--hw", "gemmini", "--set", "array.rows=32"],
        capsys,
    )
    (folder,) = (tmp_path / "tiny_cnn").iterdir()
    suffix = folder.name.removeprefix("gemmini-16x16")
    assert re.fullmatch(r"-[0-9a-f]{8}", suffix)
    assert f"results: {folder}/results.csv" in out
    assert f"({suffix}: a hash of gemmini-16x16 with array.rows=32" in out
    plain = run_cli(["run", "tiny_cnn", "--timing-only", "--out", str(tmp_path)], capsys)
    assert "a hash of" not in plain


@pytest.mark.parametrize(
    "command", ["validate", "show", "run", "compare", "lower", "report", "sweep", "explain", "golden"]
)
def test_every_command_help_has_examples(command: str) -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
    examples = help_text.split("examples:\n")[1]
    assert f"accelsim {command} " in examples
    if command in ("run", "lower", "explain", "golden"):
        assert re.search(
            r"--scheme \{fp32,woq,dynamic,static\}\s+quantization scheme: .*\(default:\s+static\)",
            help_text,
            flags=re.DOTALL,
        )
