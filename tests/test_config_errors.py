"""Bad input gets exit code 2 and one line naming the file and the field, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelsim.cli import main
from tests.hostile.config_cases import HW  # one minimal hardware file for the config tests

WL = """\
schema_version: 1
name: t
input_shape: [3, 8, 8]
layers:
  - {name: c1, type: conv2d, out_channels: 4, kernel: 3, padding: 1}
  - {name: c2, type: conv2d, out_channels: 4, kernel: 3}
"""

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# (case, file text or None for "no file", expected fragments of the message)
CASES = [
    ("empty", "", ["file is empty"]),
    ("syntax", "schema_version: 1\narray: {rows: 16\n", ["YAML syntax error", "line"]),
    (
        "python_tag",
        "schema_version: 1\nname: !!python/object/apply:os.system ['echo pwned']\n",
        [": name: line 2", "python/object/apply", "allowed: plain YAML"],
    ),
    ("billion_laughs", BILLION_LAUGHS, ["alias"]),
    ("not_mapping", "- 1\n- 2\n", ["top level is a list"]),
    ("wrong_type_hw", HW.replace("rows: 16", "rows: sixteen"), ["array.rows: 'sixteen' is not a whole number"]),
    ("string_number", HW.replace("rows: 16", "rows: '16'"), ["array.rows: '16' is not a whole number"]),
    ("bool_for_int", HW.replace("rows: 16", "rows: true"), ["array.rows: True is not a whole number"]),
    (
        "zero_size",
        HW.replace("cols: 16", "cols: 0"),
        ["array.cols: 0 is outside the plausible range (allowed: a whole number from 1 to 4,096 PEs)"],
    ),
    (
        "negative_sram",
        HW.replace("ifmap_kib: 64", "ifmap_kib: -64"),
        ["sram.ifmap_kib: -64 is outside", "0.0009765625 to 1,048,576 KiB"],
    ),
    (
        "negative_latency",
        HW.replace("latency_cycles: 100", "latency_cycles: -1"),
        ["dram.latency_cycles: -1 is outside", "from 0 to 1,000,000 cycles"],
    ),
    (
        "unknown_key_hw",
        HW.replace("rows: 16", "rows: 16, colour: red"),
        ["array.colour", "unknown field", "allowed: accumulator, cols, dataflow"],
    ),
    ("unknown_top_key", HW + "turbo: true\n", ["turbo", "unknown field", "allowed:"]),
    (
        "unknown_dataflow",
        HW.replace("dataflow: ws", "dataflow: rs"),
        ["array.dataflow", "'rs' is not allowed", "allowed: os, ws, is"],
    ),
    (
        "unknown_rounding",
        HW.replace("latency_cycles: 3}", "latency_cycles: 3, rounding: up}"),
        ["requant.rounding", "allowed: tflite, tflite_single"],
    ),
    (
        "two_bandwidths",
        HW.replace("latency_cycles: 100", "latency_cycles: 100, bandwidth_gb_per_s: 10"),
        ["dram.bandwidth_bytes_per_cycle", "exactly one"],
    ),
    (
        "missing_section",
        HW.replace("vector: {lanes: 16, latency_cycles: 4}\n", ""),
        ["vector", "required field is missing"],
    ),
    ("schema_version", HW.replace("schema_version: 1", "schema_version: 7"), ["schema_version", "allowed: 1"]),
    (
        "unknown_layer_type",
        WL.replace("type: conv2d, out_channels: 4, kernel: 3}", "type: conv3d, out_channels: 4, kernel: 3}"),
        ["layers[1].type: unknown type 'conv3d'", "allowed: conv2d, linear"],
    ),
    (
        "unknown_layer_key",
        WL.replace("kernel: 3}", "kernel: 3, strides: 2}"),
        ["layers[1].strides", "unknown field", "stride"],
    ),
    (
        "negative_channels",
        WL.replace("out_channels: 4, kernel: 3,", "out_channels: -4, kernel: 3,"),
        ["layers[0].out_channels: -4 is outside"],
    ),
    # issue 14 item 15: union and constrained types name the field only, and say what is allowed
    (
        "stride_text",
        WL.replace("kernel: 3}", "kernel: 3, stride: x}"),
        ["layers[1].stride: 'x' is not a whole number (allowed: a whole number from 1 to 1,024)"],
    ),
    ("stride_list_item", WL.replace("kernel: 3}", "kernel: 3, stride: [1, 0]}"), ["layers[1].stride[1]: 0 is outside"]),
    (
        "stride_three",
        WL.replace("kernel: 3}", "kernel: 3, stride: [1, 1, 1]}"),
        ["layers[1].stride: a list of 3 values", "list of two"],
    ),
    (
        "float_field_path",
        HW.replace("dataflow: ws}", "dataflow: ws, float_rate: .nan}"),
        ["array.float_rate: nan is not a finite number"],
    ),
    (
        "text_for_list",
        WL.replace("[3, 8, 8]", "big"),
        ["input_shape: input should be a valid list, got 'big' (allowed: a list)"],
    ),
    (
        "yaml_1e3_is_text",
        HW.replace("clock_mhz: 1000", "clock_mhz: 1e3"),
        ["clock_mhz: '1e3' is not a number (YAML reads 1e3 as text"],
    ),
    # item 11: absurd sizes, with the range in the message
    (
        "huge_batch",
        WL.replace("name: t", "name: t\nbatch: 1000000000"),
        ["batch: 1000000000 is outside", "1 to 4,096 samples"],
    ),
    (
        "huge_rows",
        HW.replace("rows: 16", "rows: " + "1" + "0" * 30),
        ["array.rows: 1e+30 is outside", "1 to 4,096 PEs"],
    ),
    (
        "huge_tensor",
        WL.replace("[3, 8, 8]", "[1024, 1024, 1025]"),
        [
            (
                "input_shape: the input [1024, 1024, 1025] has 1,074,790,400"
                " elements per sample (allowed: at most 1,073,741,824)"
            )
        ],
    ),
    (
        "huge_weights",
        WL.replace("[3, 8, 8]", "[1048576]").replace(
            "type: conv2d, out_channels: 4, kernel: 3, padding: 1", "type: linear, out_features: 8192"
        ),
        ["layers[0]: layer 'c1' has 8,589,942,784 weights and biases (allowed: at most 4,294,967,296 per layer)"],
    ),
    # item 12: non-finite numbers
    ("infinite_sram", HW.replace("ifmap_kib: 64", "ifmap_kib: .inf"), ["sram.ifmap_kib: inf is not a finite number"]),
    (
        "nan_bandwidth",
        HW.replace("bytes_per_cycle: 16", "bytes_per_cycle: .nan"),
        ["dram.bandwidth_bytes_per_cycle: nan is not a finite"],
    ),
    # item 1: names that would become paths outside the results folder
    (
        "name_parent",
        HW.replace("name: t", "name: ../../x"),
        ["name: '../../x' cannot be used as a folder name", "allowed: 1 to 64 letters, digits and . _ + -"],
    ),
    ("name_absolute", WL.replace("name: t", "name: /abs/dir"), ["name: '/abs/dir' cannot be used as a folder name"]),
    ("name_nul", WL.replace("name: t", 'name: "a\\0b"'), ["name: 'a\\x00b' cannot be used"]),
    ("name_dotdot", WL.replace("name: t", "name: '..'"), ["name: '..' cannot be used"]),
    ("layer_name_control", WL.replace("name: c2", 'name: "c\\n2"'), ["layers[1].name: 'c\\n2' is not a usable name"]),
    # item 10: duplicate keys, nesting, huge integers
    (
        "duplicate_key",
        HW + "clock_mhz: 500\n",
        ["clock_mhz: duplicate key 'clock_mhz' at line 3, column 1 and again at line 9, column 1"],
    ),
    ("duplicate_nested_key", HW.replace("cols: 16", "cols: 16, cols: 8"), ["array.cols: duplicate key 'cols'"]),
    ("deep_nesting", "a: " + "[" * 2000 + "]" * 2000 + "\n", ["nested more than 32 levels deep"]),
    (
        "long_integer",
        WL.replace("name: t", "name: t\nseed: " + "9" * 5000),
        ["seed: line 3, column 7: integer of 5000 digits (at most 100)"],
    ),
    (
        "channel_mismatch",
        WL.replace("out_channels: 4, kernel: 3}", "out_channels: 4, kernel: 3, in_channels: 8}"),
        ["layers[1].in_channels", "'c2'", "input has 4 channels"],
    ),
    (
        "kernel_too_big",
        WL.replace("kernel: 3}", "kernel: 9}"),
        ["layers[1].kernel", "'c2'", "larger than the padded input 8"],
    ),
    (
        "unknown_input",
        WL.replace("kernel: 3}", "kernel: 3, inputs: [c9]}"),
        ["layers[1].inputs", "unknown input 'c9'", "allowed: input, c1"],
    ),
    (
        "cycle",
        WL.replace("padding: 1}", "padding: 1, inputs: [c2]}").replace("kernel: 3}", "kernel: 3, inputs: [c1]}"),
        ["layers[0].inputs", "cycle: c1 -> c2 -> c1"],
    ),
    ("duplicate_name", WL.replace("name: c2", "name: c1"), ["layers[1].name", "duplicate"]),
    ("add_shapes", WL + "  - {name: s, type: add, inputs: [c1, c2]}\n", ["layers[2].inputs", "shapes differ"]),
    ("neither_kind", "schema_version: 1\nname: x\n", ["cannot tell", "allowed: a workload"]),
]


@pytest.mark.parametrize("case,text,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_file_gives_one_line_and_exit_2(
    case: str, text: str, fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    start = time.monotonic()
    code, out, err = run_cli(capsys, "validate", str(path))
    assert time.monotonic() - start < 10, "a bad file must be rejected quickly (alias bombs included)"
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"accelsim: error: {path}: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert err.strip() == f"accelsim: error: {tmp_path / 'nope.yaml'}: file not found"


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "show", str(tmp_path))
    assert code == 2
    assert err.strip() == f"accelsim: error: {tmp_path}: is a directory, expected a YAML file"


def test_many_problems_are_counted_on_the_same_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text(HW.replace("rows: 16", "rows: 0").replace("cols: 16", "cols: 0"))
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert "array.rows" in err and "[+1 more problem in this file]" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("c1", "c2", "line"),
    [
        (
            "padding: 1, bogus: 2",
            "type: conv2d, out_channels: 0, kernel: 0, stride: x",
            "[+4 more problems in this file]",
        ),
        (
            "padding: 1",
            "type: conv2d, out_channels: 0, kernel: 0, stride: x",
            "[+3 more problems in this file]",
        ),
        (
            "padding: 1",
            "type: conv3d",
            "[+1 more problem in this file]",
        ),
    ],
)
def test_problems_inside_a_layer_are_all_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], c1: str, c2: str, line: str
) -> None:
    """A layer is validated by its type's own model (config.workload._layer), yet every problem inside it counts,
    as when the workload's validator held the layers' schemas: one per layer field, beside the other fields'."""
    path = tmp_path / "wl.yaml"
    text = WL.replace("padding: 1}", c1 + "}").replace("type: conv2d, out_channels: 4, kernel: 3}", c2 + "}")
    path.write_text(text + "batch: 0\n")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    batch = "batch: 0 is outside the plausible range (allowed: a whole number from 1 to 4,096 samples)"
    assert err.strip() == f"accelsim: error: {path}: {batch} {line}"


def test_console_script_exit_code_and_no_traceback(tmp_path: Path) -> None:
    """The real installed command, in a fresh process: exit 2, one line, no 'Traceback'."""
    path = tmp_path / "bad.yaml"
    path.write_text(HW.replace("dataflow: ws", "dataflow: diagonal"))
    proc = subprocess.run(
        [sys.executable, "-m", "accelsim", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"accelsim: error: {path}: array.dataflow: 'diagonal' is not allowed (allowed: os, ws, is)"
    ]


@pytest.mark.parametrize("workload", ["tiny_cnn", "mlp"])
@pytest.mark.parametrize("scheme", ["static", "dynamic", "fp32"])
@pytest.mark.parametrize("buffer", ["ifmap", "filter", "ofmap"])
def test_smallest_sram_named_in_the_error_is_exact(workload: str, scheme: str, buffer: str) -> None:
    """Issue 14 item 12: a 1-byte SRAM is refused naming the buffer and the smallest size that works;
    that size lowers the whole workload, and 2 bytes less (1 per half) does not."""
    from accelsim.config import load_hardware, load_workload
    from accelsim.errors import AccelsimError
    from accelsim.lowering.program import lower

    w = load_workload(workload)
    with pytest.raises(
        AccelsimError,
        match=f"no tile fits the SRAM buffers: (layer '.*'|a vector layer) needs .* double-buffered {buffer} buffer",
    ) as info:
        lower(w, load_hardware("gemmini", [f"sram.{buffer}_kib={1 / 1024!r}"]), scheme)
    assert info.value.path == f"sram.{buffer}_kib"
    kib = float(re.fullmatch(r"at least (\S+) KiB \(.*\) for this workload", info.value.allowed).group(1))
    lower(w, load_hardware("gemmini", [f"sram.{buffer}_kib={kib!r}"]), scheme)
    with pytest.raises(AccelsimError) as info:  # at 2 bytes, 0 is refused earlier, as outside the range
        lower(w, load_hardware("gemmini", [f"sram.{buffer}_kib={kib - 2 / 1024!r}"]), scheme)
    assert info.value.path == f"sram.{buffer}_kib"
