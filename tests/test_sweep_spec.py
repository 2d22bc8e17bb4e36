"""Sweep specs: bad specs are exit 2 with one line naming the spec and the field; constraints are safe;
the shipped examples load; every spec field is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config import load_hardware
from accelsim.config.constraint import Constraint, ConstraintError
from accelsim.config.sweep import SweepSpec, load_sweep
from accelsim.sweep import expand

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
schema_version: 1
base: default
axes:
  array.rows: [8, 16]
  array.dataflow: [os, ws]
workloads: [tiny_cnn]
schemes: [static]
"""

# (case, spec text, fragments the one-line message must hold)
CASES = [
    (
        "unknown_path",
        SPEC.replace("array.dataflow:", "array.colour:"),
        ["axes.array.colour", "unknown hardware field 'colour' in array", "allowed: accumulator, cols, dataflow"],
    ),
    (
        "unknown_section",
        SPEC.replace("array.dataflow:", "colour:"),
        ["axes.colour", "unknown hardware field 'colour'", "allowed: area, array, clock_mhz"],
    ),
    ("unknown_leaf_below", SPEC.replace("array.dataflow:", "array.rows.bits:"), ["axes.array.rows.bits", "unknown"]),
    ("empty_axis", SPEC.replace("[os, ws]", "[]"), ["axes.array.dataflow", "at least one value"]),
    (
        "no_axes",
        SPEC.replace("  array.rows: [8, 16]\n  array.dataflow: [os, ws]\n", "  {}\n"),
        ["axes", "at least one axis"],
    ),
    ("axis_not_a_list", SPEC.replace("[8, 16]", "8"), ["axes.array.rows", "valid list"]),
    (
        "bad_value",
        SPEC.replace("[8, 16]", "[8, 0]"),
        ["axes.array.rows[1]", "0 is outside the plausible range (allowed: a whole number from 1 to 4,096 PEs)"],
    ),
    (
        "wrong_type_value",
        SPEC.replace("[8, 16]", "[8, sixteen]"),
        ["axes.array.rows[1]", "'sixteen' is not a whole number"],
    ),
    ("string_number", SPEC.replace("[8, 16]", "[8, '16']"), ["axes.array.rows[1]", "'16' is not a whole number"]),
    (
        "bad_literal",
        SPEC.replace("[os, ws]", "[os, xs]"),
        ["axes.array.dataflow[1]", "'xs' is not allowed", "allowed: os, ws, is"],
    ),
    (
        "value_breaks_other_field",
        SPEC.replace("array.dataflow: [os, ws]", "dram.bandwidth_gb_per_s: [10]"),
        ["axes.dram.bandwidth_gb_per_s[0]", "in default.yaml, dram.bandwidth_bytes_per_cycle", "exactly one"],
    ),
    (
        "combination_invalid",
        SPEC.replace(
            "array.dataflow: [os, ws]",
            "dram: [{bandwidth_gb_per_s: 10, latency_cycles: 9}]\n  dram.bandwidth_bytes_per_cycle: [32]",
        ),
        ["axes: the combination", "is not a valid hardware config", "dram.bandwidth_bytes_per_cycle: give exactly one"],
    ),
    ("duplicate_value", SPEC.replace("[8, 16]", "[8, 8]"), ["axes.array.rows[1]", "8 is listed twice"]),
    (
        "zip_mismatch",
        SPEC.replace("[os, ws]", "[os, ws, is]") + "combine: zip\n",
        ["axes.array.dataflow", "zip needs axes of equal length", "array.rows has 2 values, array.dataflow has 3"],
    ),
    (
        "zip_repeats_a_point",
        SPEC.replace("[8, 16]", "[8, 8]").replace("[os, ws]", "[os, os]") + "combine: zip\n",
        ["axes", "the combination", "appears twice"],
    ),
    ("bad_combine", SPEC + "combine: cross\n", ["combine", "'cross' is not allowed", "allowed: grid, zip"]),
    (
        "unknown_scheme",
        SPEC.replace("[static]", "[static, int4]"),
        ["schemes[1]", "allowed: fp32, woq, dynamic, static"],
    ),
    ("duplicate_scheme", SPEC.replace("[static]", "[static, static]"), ["schemes[1]", "listed twice"]),
    ("workloads_not_list", SPEC.replace("[tiny_cnn]", "tiny_cnn"), ["workloads", "valid list"]),
    ("no_workloads", SPEC.replace("workloads: [tiny_cnn]\n", ""), ["workloads", "required field is missing"]),
    (
        "unknown_workload",
        SPEC.replace("tiny_cnn", "tiny_cnnn"),
        ["workloads[0]", "workload 'tiny_cnnn' not found", "allowed: a path, or a shipped workload: bert_base_layer"],
    ),
    ("unknown_base", SPEC.replace("base: default", "base: default9"), ["base", "hardware 'default9' not found"]),
    ("timing_only_string", SPEC + "timing_only: 'yes'\n", ["timing_only", "valid boolean"]),
    ("unknown_key", SPEC + "axis: {}\n", ["axis", "unknown field", "allowed: axes, base, combine"]),
    ("schema_version", SPEC.replace("schema_version: 1", "schema_version: 2"), ["schema_version", "allowed: 1"]),
    ("name_with_slash", SPEC + "name: ../../etc\n", ["name", "pattern"]),
    (
        "over_max_points",
        SPEC + "max_points: 3\n",
        [
            "axes",
            "4 points (2 x 2 hardware configs, 1 workload, 1 scheme) is more than max_points (3)",
            "raise max_points",
        ],
    ),
    ("max_points_absurd", SPEC + "max_points: 1000000000\n", ["max_points", "less than or equal to 1000000"]),
    (
        "constraint_removes_all",
        SPEC + "constraints: ['pe_count > 100000']\n",
        ["constraints", "the constraints remove all 4 hardware configs"],
    ),
    (
        "constraint_unknown_field",
        SPEC + "constraints: ['array.colour < 3']\n",
        ["constraints[0]", "unknown field 'array.colour'"],
    ),
    (
        "constraint_not_comparison",
        SPEC + "constraints: ['array.rows * 2']\n",
        ["constraints[0]", "is not a comparison"],
    ),
    (
        "constraint_call",
        SPEC + "constraints: [\"__import__('os').mkdir('{tmp}/pwned') == 0\"]\n",
        ["constraints[0]", "is not allowed", "allowed: numbers"],
    ),
    (
        "constraint_power",
        SPEC + "constraints: ['9 ** 9 ** 9 > array.rows']\n",
        ["constraints[0]", "'9 ** 9 ** 9' is not allowed"],
    ),
    ("constraint_lambda", SPEC + "constraints: ['(lambda: 1)() < 2']\n", ["constraints[0]", "not allowed"]),
    ("constraint_syntax", SPEC + "constraints: ['array.rows <']\n", ["constraints[0]", "cannot parse"]),
    (
        "constraint_string_bomb",
        SPEC + "constraints: [\"array.dataflow * 1000000000 == 'x'\"]\n",
        ["constraints[0]", "arithmetic needs numbers, got 'os'"],
    ),
    (
        "constraint_unset_field",
        SPEC + "constraints: ['dram.bandwidth_gb_per_s > 1']\n",
        ["constraints[0]", "dram.bandwidth_gb_per_s is not set"],
    ),
]


@pytest.mark.parametrize("case,text,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_is_one_line_exit_2(
    case: str, text: str, fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.replace("{tmp}", str(tmp_path)) + f"output: {tmp_path / 'out'}\n")
    code = main(["sweep", str(spec), "--workers", "1"])
    _out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"accelsim: error: {spec}: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "pwned").exists(), "a constraint ran code"
    assert not (tmp_path / "out").exists(), "a bad spec must fail before anything is written"


@pytest.mark.parametrize("option,value", [("--workers", "0"), ("--batch", "0")])
def test_bad_counts_are_user_errors(
    option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + f"output: {tmp_path / 'out'}\n")
    assert main(["sweep", str(spec), option, value]) == 2
    assert f"{option}: " in capsys.readouterr().err


def test_constraints_evaluate_like_arithmetic() -> None:
    hw = load_hardware("default")  # 32x32 ws, 3 x 256 KiB SRAM, 32 B/cycle
    truths = {
        "sram.ifmap_kib + sram.filter_kib + sram.ofmap_kib <= 1024": True,
        "sram_total_kib == 768": True,
        "array.rows * array.cols <= 512": False,
        "pe_count == 1024 and array.dataflow == 'ws'": True,
        "not (array.dataflow != 'ws' or dram_bytes_per_cycle < 16)": True,
        "8 < array.rows < 32": False,
        "-array.rows + 40 // 3 % 7 > -40": True,
        "clock_mhz / 1000 >= 1": True,
    }
    for text, expected in truths.items():
        assert Constraint.parse(text).holds(hw) is expected, text


@pytest.mark.parametrize(
    "text",
    [
        "array.rows.__class__ == 1",
        "array.__dict__ == 1",
        "[x for x in (1,)] == 1",
        "array.rows if 1 else 2 < 3",
        "{} == 1",
        "array.rows < 3" + " " * 600,
    ],
)
def test_unsafe_or_unknown_constraints_are_rejected_at_parse(text: str) -> None:
    with pytest.raises(ConstraintError):
        Constraint.parse(text)


def test_shipped_examples_load_and_expand() -> None:
    specs = sorted((ROOT / "hwconfigs/sweeps").glob("*.yaml"))
    assert len(specs) >= 3
    combines = set()
    for path in specs:
        sweep = load_sweep(path)
        points, pruned, _ = expand(sweep)
        assert points and len({p.id for p in points}) == len(points)
        combines.add(sweep.spec.combine)
        if sweep.spec.constraints:
            assert pruned > 0, f"{path.name}: its constraint should prune something"
    assert combines == {"grid", "zip"}


def test_point_ids_follow_content(tmp_path: Path) -> None:
    """Same spec, same ids; a changed base config gives new ids (no stale results reused)."""
    base = tmp_path / "hw.yaml"
    base.write_text((ROOT / "hwconfigs/default.yaml").read_text())
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("base: default", "base: hw.yaml"))
    first = [p.id for p in expand(load_sweep(spec))[0]]
    assert first == [p.id for p in expand(load_sweep(spec))[0]]
    base.write_text(base.read_text().replace("latency_cycles: 100", "latency_cycles: 101"))
    assert not set(first) & {p.id for p in expand(load_sweep(spec))[0]}


def test_every_spec_field_is_documented() -> None:
    doc = (ROOT / "docs/sweeps.md").read_text()
    assert not [f for f in SweepSpec.model_fields if f"`{f}`" not in doc]
