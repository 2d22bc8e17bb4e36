"""``--set PATH=VALUE`` changes a field before validation, and is validated like the file."""

from __future__ import annotations

import pytest

from accelsim.cli import main
from accelsim.config import load_hardware, load_workload
from accelsim.errors import AccelsimError


def test_override_hardware_fields() -> None:
    hw = load_hardware(None, ["array.rows=64", "array.dataflow=os", "dram.latency_cycles=7"])
    assert (hw.array.rows, hw.array.dataflow, hw.dram.latency_cycles) == (64, "os", 7)


def test_override_list_item_and_top_level() -> None:
    w = load_workload(
        "tiny_cnn", ["batch=4", "layers[1].stride=1", "layers.0.out_channels=8", "layers.1.in_channels=8"]
    )
    assert w.batch == 4
    assert w.shapes[1].output_shape[1:] == (16, 16)
    assert w.shapes[0].output_shape[0] == 8


@pytest.mark.parametrize(
    "item,fragment",
    [
        (
            "array.rows=-1",
            "array.rows: -1 is outside the plausible range (allowed: a whole number from 1 to 4,096 PEs)",
        ),
        # issue 14 items 1, 10, 12: overrides pass the same checks as files
        ("sram.ifmap_kib=.inf", "sram.ifmap_kib: inf is not a finite number"),
        ("dram.bandwidth_bytes_per_cycle=.nan", "dram.bandwidth_bytes_per_cycle: nan is not a finite number"),
        (
            "clock_mhz=1.0e+308",
            "clock_mhz: 1e+308 is outside the plausible range (allowed: a number from 1 to 10,000 MHz)",
        ),
        ("name=../../x", "name: '../../x' cannot be used as a folder name"),
        (
            "array.rows={a: 1, a: 2}",
            "--set array.rows: a: duplicate key 'a' at line 1, column 2 and again at line 1, column 8",
        ),
        ("array.rows=" + "[" * 100 + "]" * 100, "--set array.rows: line 1, column 33: nested more than 32 levels deep"),
        ("array.rows=" + "9" * 5000, "--set array.rows: line 1, column 1: integer of 5000 digits (at most 100)"),
        ("array.dataflow=rs", "allowed: os, ws, is"),
        ("array.nothing=1", "array.nothing: unknown field"),
        ("arrays.rows=1", "no field 'arrays'"),
        ("array.rows", "expected PATH=VALUE"),
        ("array.rows=[1", "YAML syntax error"),
    ],
)
def test_bad_override_is_a_user_error(item: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AccelsimError) as info:
        load_hardware(None, [item])
    assert fragment in str(info.value)
    assert main(["show", "hwconfigs/default.yaml", "--set", item]) == 2
    assert fragment in capsys.readouterr().err


def test_override_index_out_of_range() -> None:
    with pytest.raises(AccelsimError, match=r"index 99 out of range \(allowed: 0\.\.8\)"):
        load_workload("tiny_cnn", ["layers[99].stride=1"])


def test_show_and_validate_take_shipped_names(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `accelsim show gemmini --set array.rows=32`: shipped configs by name, from any folder."""
    assert main(["show", "gemmini", "--set", "array.rows=32"]) == 0
    assert "32x16 WS array" in capsys.readouterr().out
    assert main(["validate", "tiny_cnn", "default"]) == 0
    assert main(["show", "no_such_config"]) == 2
    assert "no_such_config: file not found" in capsys.readouterr().err
