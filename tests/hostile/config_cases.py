"""Hostile config files and overrides (issue 14 items 1, 10, 11, 12, 13, 15): names that are paths,
duplicate keys, deep nesting, huge and non-finite numbers, absurd sizes, broken SCALE-Sim CSVs.

Each error case must end with exit 2 and a short message naming the file and the field (``match``).
"""

from __future__ import annotations

import re

from .case import Case

HW = """\
schema_version: 1
name: t
clock_mhz: 1000
array: {rows: 16, cols: 16, dataflow: ws}
sram: {ifmap_kib: 64, filter_kib: 64, ofmap_kib: 32}
dram: {bandwidth_bytes_per_cycle: 16, latency_cycles: 100}
requant: {lanes: 16, latency_cycles: 3}
vector: {lanes: 16, latency_cycles: 4}
"""

WL = """\
schema_version: 1
name: t
batch: 1
input_shape: [3, 8, 8]
layers:
  - {name: c1, type: conv2d, out_channels: 4, kernel: 3, padding: 1}
  - {name: c2, type: conv2d, out_channels: 4, kernel: 3, stride: 1}
"""

TOPOLOGY = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
RUN = ("--timing-only", "--out", "{tmp}/out")


def _wl(old: str, new: str) -> dict[str, str]:
    assert old in WL
    return {"w.yaml": WL.replace(old, new, 1)}


def _hw(old: str, new: str) -> dict[str, str]:
    assert old in HW
    return {"h.yaml": HW.replace(old, new, 1)}


def _names() -> list[Case]:
    """Item 1: a name becomes a folder name; path-like names must be refused before anything is written."""
    bad = {
        "dotdot-path": '"../../x"',
        "absolute": '"/abs/dir"',
        "slash": '"a/b"',
        "dotdot": '".."',
        "dot": '"."',
        "nul": '"a\\0b"',
        "newline": '"a\\nb"',
        "escape": '"a\\x1b[31mb"',
        "backslash": '"a\\\\b"',
        "long": "x" * 200,
        "empty": '""',
        "dash-first": '"-rf"',
        "space-only": '" "',
    }
    cases = []
    for key, name in bad.items():
        cases.append(
            Case(
                f"config-wl-name-{key}",
                ("run", "{tmp}/w.yaml", *RUN),
                _wl("name: t", f"name: {name}"),
                match=r"w\.yaml: name: ",
            )
        )
        cases.append(
            Case(
                f"config-hw-name-{key}",
                ("run", "tiny_cnn", "--hw", "{tmp}/h.yaml", *RUN),
                _hw("name: t", f"name: {name}"),
                match=r"h\.yaml: name: ",
            )
        )
    cases += [
        Case(
            "config-hw-name-set",
            ("run", "tiny_cnn", "--hw", "gemmini", "--set", "name=../../evil", *RUN),
            match=r"gemmini\.yaml: name: ",
        ),
        Case(
            "config-wl-name-set",
            ("run", "tiny_cnn", "--set-workload", "name=/tmp/evil", *RUN),
            match=r"tiny_cnn\.yaml: name: ",
        ),
        Case(
            "config-layer-name-newline",
            ("validate", "{tmp}/w.yaml"),
            _wl("name: c1,", 'name: "c\\nl",'),
            match=r"layers\[0\]\.name: ",
        ),
        Case(
            "config-layer-name-long",
            ("validate", "{tmp}/w.yaml"),
            _wl("name: c1,", f"name: {'c' * 300},"),
            match=r"layers\[0\]\.name: ",
        ),
        Case("config-name-ok-dots", ("validate", "{tmp}/w.yaml"), _wl("name: t", "name: my-net_v1.2+x"), expect="ok"),
        Case(
            "config-import-name-path",
            ("import", "scalesim", "{tmp}/t.csv", "-o", "{tmp}/t.yaml", "--name", "../x"),
            {"t.csv": TOPOLOGY + "c1, 8, 8, 3, 3, 4, 8, 1,\n"},
            match=r"name",
        ),
    ]
    return cases


DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_MAP = "schema_version: 1\nlayers: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"
ALIAS_CHAIN = (
    "a: &a "
    + "[" * 40
    + "1"
    + "]" * 40
    + "\n"
    + "".join(f"{c}: &{c} " + "[" * 40 + f"*{p}" + "]" * 40 + "\n" for p, c in zip("abcdefgh", "bcdefghi"))
)


def _yaml() -> list[Case]:
    """Item 10: duplicate keys, deep nesting, huge integers, recursive aliases."""
    return [
        Case(
            "config-dup-key-top",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": WL + "batch: 4\n"},
            match=r"w\.yaml: batch: duplicate key .batch. at line 3, column 1 and again at line 8",
        ),
        Case(
            "config-dup-key-nested",
            ("validate", "{tmp}/h.yaml"),
            _hw("rows: 16, cols: 16", "rows: 16, cols: 16, rows: 4"),
            match=r"h\.yaml: array\.rows: duplicate key",
        ),
        Case(
            "config-dup-key-layer",
            ("validate", "{tmp}/w.yaml"),
            _wl("stride: 1}", "stride: 1, stride: 2}"),
            match=r"layers\[1\]\.stride: duplicate key",
        ),
        Case(
            "config-dup-key-set", ("validate", "tiny_cnn", "--set", "input_shape={a: 1, a: 2}"), match=r"duplicate key"
        ),
        Case(
            "config-dup-key-equal-values",
            ("validate", "{tmp}/h.yaml"),
            _hw("rows: 16,", "rows: 16, rows: 16,"),
            match=r"array\.rows: duplicate key",
        ),
        Case(
            "config-merge-key-ok",
            ("validate", "{tmp}/h.yaml"),
            {
                "h.yaml": HW.replace(
                    "requant: {lanes: 16, latency_cycles: 3}", "requant: &u {lanes: 16, latency_cycles: 3}"
                ).replace("vector: {lanes: 16, latency_cycles: 4}", "vector: {<<: *u, latency_cycles: 4}")
            },
            expect="ok",
        ),
        Case("config-deep-list", ("validate", "{tmp}/w.yaml"), {"w.yaml": DEEP}, match=r"w\.yaml: .*nest"),
        Case("config-deep-map", ("validate", "{tmp}/w.yaml"), {"w.yaml": DEEP_MAP}, match=r"w\.yaml: .*nest"),
        Case("config-deep-set", ("validate", "tiny_cnn", "--set", "batch=" + "[" * 3000 + "]" * 3000), match=r"nest"),
        Case(
            "config-deep-alias-chain", ("validate", "{tmp}/w.yaml"), {"w.yaml": ALIAS_CHAIN}, match=r"w\.yaml: .*nest"
        ),
        Case("config-recursive-alias", ("validate", "{tmp}/w.yaml"), {"w.yaml": "a: &a [1, *a]\n"}, match=r"w\.yaml"),
        Case(
            "config-huge-int",
            ("validate", "{tmp}/w.yaml"),
            _wl("batch: 1", "batch: " + "9" * 5000),
            match=r"w\.yaml: .*digits",
        ),
        Case("config-huge-int-set", ("validate", "tiny_cnn", "--set", "seed=" + "7" * 5000), match=r"digits"),
        Case(
            "config-huge-hex-int",
            ("validate", "{tmp}/w.yaml"),
            _wl("batch: 1", "batch: 0x" + "f" * 5000),
            match=r"w\.yaml: .*digits",
        ),
        Case(
            "config-huge-float-literal",
            ("validate", "{tmp}/h.yaml"),
            _hw("clock_mhz: 1000", "clock_mhz: 1.0e+999"),
            match=r"h\.yaml: clock_mhz: .*finite",
        ),
    ]


def _sizes() -> list[Case]:
    """Item 11: sizes far outside any real accelerator or network are refused at validation."""
    huge = str(10**30)
    hw_fields = {
        "rows": ("rows: 16,", f"rows: {huge},", r"array\.rows"),
        "cols": ("cols: 16,", f"cols: {huge},", r"array\.cols"),
        "clock": ("clock_mhz: 1000", f"clock_mhz: {huge}", r"clock_mhz"),
        "clock-tiny": ("clock_mhz: 1000", "clock_mhz: 0.000001", r"clock_mhz"),
        "sram": ("ifmap_kib: 64", "ifmap_kib: 1.0e+300", r"sram\.ifmap_kib"),
        "dram-bw": (
            "bandwidth_bytes_per_cycle: 16",
            f"bandwidth_bytes_per_cycle: {huge}",
            r"dram\.bandwidth_bytes_per_cycle",
        ),
        "dram-bw-tiny": (
            "bandwidth_bytes_per_cycle: 16",
            "bandwidth_bytes_per_cycle: 1.0e-300",
            r"dram\.bandwidth_bytes_per_cycle",
        ),
        "dram-latency": ("latency_cycles: 100", f"latency_cycles: {huge}", r"dram\.latency_cycles"),
        "dram-channels": ("latency_cycles: 100}", f"latency_cycles: 100, channels: {huge}}}", r"dram\.channels"),
        "requant-lanes": ("lanes: 16, latency_cycles: 3", f"lanes: {huge}, latency_cycles: 3", r"requant\.lanes"),
        "requant-latency": (
            "lanes: 16, latency_cycles: 3",
            f"lanes: 16, latency_cycles: {huge}",
            r"requant\.latency_cycles",
        ),
        "vector-lanes": ("lanes: 16, latency_cycles: 4", f"lanes: {huge}, latency_cycles: 4", r"vector\.lanes"),
        "float-rate": ("dataflow: ws}", "dataflow: ws, float_rate: 1.0e+30}", r"array\.float_rate"),
    }
    cases = [
        Case(f"config-hw-huge-{key}", ("validate", "{tmp}/h.yaml"), _hw(old, new), match=rf"h\.yaml: {path}: .*allowed")
        for key, (old, new, path) in hw_fields.items()
    ]
    wl_fields = {
        "batch": ("batch: 1", "batch: 1000000000", r"batch"),
        "input": ("input_shape: [3, 8, 8]", "input_shape: [3, 1000000000, 1000000000]", r"input_shape\[1\]"),
        "input-float": ("input_shape: [3, 8, 8]", "input_shape: [3, 1e9, 1e9]", r"input_shape\[1\]"),
        "input-elements": ("input_shape: [3, 8, 8]", "input_shape: [65536, 65536, 65536]", r"input_shape"),
        "channels": (
            "out_channels: 4, kernel: 3, padding",
            f"out_channels: {huge}, kernel: 3, padding",
            r"layers\[0\]\.out_channels",
        ),
        "padding": ("padding: 1}", "padding: 100000000}", r"layers\[0\]\.padding"),
        "kernel": ("kernel: 3, padding", f"kernel: {huge}, padding", r"layers\[0\]\.kernel"),
        "seed": ("batch: 1", f"batch: 1\nseed: {huge}", r"seed"),
        # issue 16's vector layers: a constant operand, a coefficient and a bound out of range or not finite
        **{
            key: ("stride: 1}", f"stride: 1}}\n  - {{name: v, {fields}}}", rf"layers\[2\]\.{field}")
            for key, fields, field in (
                ("elementwise-constant", "type: elementwise, op: mul, constant: [1000000000]", r"constant\[0\]"),
                ("activation-alpha", "type: activation, function: leaky_relu, alpha: 1.0e+300", "alpha"),
                ("activation-nan", "type: activation, function: clip, min: .nan", "min"),
                ("activation-inf", "type: activation, function: clip, max: .inf", "max"),
                # the upsampling and slicing layers' fields: huge, not finite, of the wrong type, or past the input
                (
                    "conv-transpose-output-padding",
                    "type: conv_transpose2d, out_channels: 2, kernel: 2, output_padding: 100000000",
                    "output_padding",
                ),
                (
                    "conv-transpose-output-padding-stride",
                    "type: conv_transpose2d, out_channels: 2, kernel: 2, stride: 2, output_padding: 2",
                    "output_padding",
                ),
                ("conv-transpose-crop", "type: conv_transpose2d, out_channels: 2, kernel: 1, padding: 1000", "padding"),
                ("resize-scale", "type: resize, scale: [1.0e+300, 2]", r"scale\[0\]"),
                ("resize-scale-nan", "type: resize, scale: [.nan, 2]", r"scale\[0\]"),
                ("resize-scale-text", "type: resize, scale: [two, 2]", r"scale\[0\]"),
                ("resize-size", "type: resize, size: [1000000000, 4]", r"size\[0\]"),
                ("resize-both", "type: resize, scale: [2, 2], size: [4, 4]", "scale"),
                ("resize-mode", "type: resize, scale: [2, 2], mode: bicubic", "mode"),
                ("slice-end", "type: slice, end: 1000000000", "end"),
                ("slice-past", "type: slice, axis: 1, end: 9", "end"),
                ("slice-step", "type: slice, end: 2, step: 0", "step"),
                ("slice-start", "type: slice, start: -1, end: 2", "start"),
                ("slice-axis", "type: slice, axis: 100, end: 2", "axis"),
                # a written-out LayerNorm's steps: reduce_mean has no fields, square and sqrt no parameters
                ("reduce-mean-axis", "type: reduce_mean, axis: 0", "axis"),
                ("reduce-mean-keepdims", "type: reduce_mean, keepdims: false", "keepdims"),
                ("activation-sqrt-alpha", "type: activation, function: sqrt, alpha: 2", "alpha"),
                ("activation-square-max", "type: activation, function: square, max: .inf", "max"),
            )
        },
    }
    cases += [
        Case(f"config-wl-huge-{key}", ("validate", "{tmp}/w.yaml"), _wl(old, new), match=rf"w\.yaml: {path}: ")
        for key, (old, new, path) in wl_fields.items()
    ]
    cases += [
        Case(
            f"config-wl-huge-{key}",
            ("validate", "{tmp}/w.yaml"),
            _wl("stride: 1}", f"stride: 1}}\n  - {{name: v, {fields}}}"),
            match=r"w\.yaml: layers\[2\]: .*elements",
        )
        for key, fields in (  # outputs of more than 2^30 elements per sample
            ("conv-transpose-elements", "type: conv_transpose2d, out_channels: 1048576, kernel: 1024"),
            ("resize-size-elements", "type: resize, size: [1048576, 1048576]"),
        )
    ]
    cases += [
        Case(
            "config-wl-huge-output",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": WL.replace("[3, 8, 8]", "[3, 16384, 16384]").replace("out_channels: 4", "out_channels: 64", 1)},
            match=r"w\.yaml: layers\[0\]: .*elements",
        ),
        Case(
            "config-wl-batch-set",
            ("run", "tiny_cnn", "--set-workload", "batch=1000000000", *RUN),
            match=r"tiny_cnn\.yaml: batch: ",
        ),
        Case(
            "config-hw-rows-set",
            ("run", "tiny_cnn", "--set", f"array.rows={huge}", *RUN),
            match=r"default\.yaml: array\.rows: ",
        ),
    ]
    return cases


def _nonfinite() -> list[Case]:
    """Item 12: infinities, NaN, 1e308 and buffers too small for any tile."""
    cases = [
        Case(
            f"config-set-{field.split('.')[-1]}-{label}",
            ("show", "gemmini", "--set", f"{field}={value}"),
            match=rf"gemmini\.yaml: {field.replace('.', '[.]')}: ",
        )
        for field in ("sram.ifmap_kib", "dram.bandwidth_bytes_per_cycle", "clock_mhz", "array.float_rate")
        for label, value in (("inf", ".inf"), ("nan", ".nan"), ("1e308", "1.0e+308"), ("neg-inf", "-.inf"))
    ]
    cases += [
        Case(
            "config-set-alpha-nan",
            ("validate", "bert_base_layer", "--set", "layers[4].alpha=.nan"),
            match=r"layers\[4\]\.alpha: ",
        ),
        Case(
            "config-set-gbps-inf",
            ("show", "tpu-v1", "--set", "dram.bandwidth_gb_per_s=.inf"),
            match=r"dram\.bandwidth_gb_per_s: ",
        ),
    ]
    for buffer, small in (("ifmap", 0.05), ("filter", 0.05), ("ofmap", 0.005)):
        cases.append(
            Case(
                f"config-sram-1-byte-{buffer}",
                ("run", "tiny_cnn", "--hw", "gemmini", "--set", f"sram.{buffer}_kib=0.0009765625", *RUN),
                match=rf"gemmini\.yaml: sram\.{buffer}_kib: .*at least",
            )
        )
        cases.append(
            Case(
                f"config-sram-small-{buffer}-lower",
                ("lower", "resnet18", "--hw", "gemmini", "--set", f"sram.{buffer}_kib={small}"),
                match=rf"gemmini\.yaml: sram\.{buffer}_kib: .*at least",
            )
        )
    return cases


def _scalesim() -> list[Case]:
    """Item 13: broken SCALE-Sim topologies name the file, the row and the column."""
    imp = ("import", "scalesim", "{tmp}/t.csv", "-o", "{tmp}/t.yaml")
    layout = (
        "Layer name, IFMAP SRAM Bank, IFMAP Row, IFMAP Column, Filter SRAM Bank, Filter Row, Filter Column,"
        " OFMAP SRAM Bank,\nConv1, 1, 1, 1, 1, 1, 1, 1,\n"
    )
    rows = {
        "stride-0": ("c1, 8, 8, 3, 3, 4, 8, 0,", r"line 2.*stride"),
        "stride-negative": ("c1, 8, 8, 3, 3, 4, 8, -1,", r"line 2.*stride"),
        "filter-0": ("c1, 8, 8, 0, 3, 4, 8, 1,", r"line 2.*filter_h"),
        "channels-huge": (f"c1, 8, 8, 3, 3, {10**30}, 8, 1,", r"line 2"),
        "filter-larger": ("c1, 4, 4, 9, 9, 4, 8, 1,", r"line 2"),
        "ifmap-0": ("c1, 0, 8, 3, 3, 4, 8, 1,", r"line 2.*ifmap_h"),
        "bad-name": ("c\x1b1, 8, 8, 3, 3, 4, 8, 1,", r"line 2.*name"),
        "huge-digits": ("c1, " + "9" * 5000 + ", 8, 3, 3, 4, 8, 1,", r"line 2.*ifmap_h"),
        "nan": ("c1, nan, 8, 3, 3, 4, 8, 1,", r"line 2.*ifmap_h"),
    }
    cases = [
        Case(f"config-scalesim-{key}", imp, {"t.csv": TOPOLOGY + row + "\n"}, match=rf"t\.csv: {where}")
        for key, (row, where) in rows.items()
    ]
    cases += [
        Case("config-scalesim-layout-csv", imp, {"t.csv": layout}, match=r"t\.csv: "),
        Case(
            "config-scalesim-gemm-zero", imp, {"t.csv": "Layer, M, N, K,\ng1, 0, 4, 4,\n"}, match=r"t\.csv: line 2.*m"
        ),
        Case(
            "config-scalesim-name-from-stem",
            ("import", "scalesim", "{tmp}/my topo (1).csv", "-o", "{tmp}/t.yaml"),
            {"my topo (1).csv": TOPOLOGY + "c1, 8, 8, 3, 3, 4, 8, 1,\n"},
            expect="ok",
            writes=True,
        ),
        Case("config-scalesim-ok", imp, {"t.csv": TOPOLOGY + "c1, 8, 8, 3, 3, 4, 8, 2,\n"}, expect="ok", writes=True),
    ]
    return cases


#: item 15 cases: (id, the file's edit, the field the message names: regex after "<file>: ")
_MESSAGE_EDITS = [
    ("stride-string", _wl("stride: 1}", 'stride: "x"}'), r"layers\[1\]\.stride: .*allowed"),
    ("stride-zero", _wl("stride: 1}", "stride: 0}"), r"layers\[1\]\.stride: .*allowed"),
    ("stride-list3", _wl("stride: 1}", "stride: [1, 2, 3]}"), r"layers\[1\]\.stride: "),
    ("stride-list-zero", _wl("stride: 1}", "stride: [1, 0]}"), r"layers\[1\]\.stride\[1\]: "),
    ("in-channels-str", _wl("stride: 1}", "stride: 1, in_channels: x}"), r"layers\[1\]\.in_channels: "),
    ("input-shape-str", _wl("[3, 8, 8]", "[3, x, 8]"), r"input_shape\[1\]: "),
    ("extra-inputs", _wl("batch: 1", "batch: 1\nextra_inputs: {a: [0]}"), r"extra_inputs\.a\[0\]: "),
    (
        "bandwidth-str",
        _hw("bandwidth_bytes_per_cycle: 16", "bandwidth_bytes_per_cycle: fast"),
        r"dram\.bandwidth_bytes_per_cycle: ",
    ),
    (
        "layer-type",
        _wl("type: conv2d, out_channels: 4, kernel: 3, stride", "type: conv3d, out_channels: 4, kernel: 3, stride"),
        r"layers\[1\]\.type: .*allowed: conv2d",
    ),
    ("layer-not-mapping", {"w.yaml": WL + "  - 7\n"}, r"layers\[2\]: "),
]


def _messages() -> list[Case]:
    """Item 15: messages name the field as users write it, never pydantic's type names."""
    no_internals = r"^(?!.*(constrained|function-|union\[|list\[|tagged-union|literal\[))"
    cases = []
    for name, files, field in _MESSAGE_EDITS:
        (file,) = files
        cases.append(
            Case(
                f"config-msg-{name}",
                ("validate", f"{{tmp}}/{file}"),
                files,
                match=no_internals + rf".*{re.escape(file)}: {field}",
            )
        )
    return cases


def _outputs() -> list[Case]:
    """The workload's ``outputs``: each a layer named once; anything else one line naming ``outputs[i]``."""
    bad = {
        "unknown": ("[c1, nope]", r"outputs\[1\]: 'nope' is not a layer of this workload \(allowed: c1, c2\)"),
        "the-input": ("[input]", r"outputs\[0\]: 'input' is not a layer"),
        "twice": ("[c1, c2, c1]", r"outputs\[2\]: 'c1' is listed twice"),
        "not-a-list": ("c1", r"outputs: "),
        "number": ("[7]", r"outputs\[0\]: "),
        "mapping": ("{c1: 1}", r"outputs: "),
        "nested": ("[[c1]]", r"outputs\[0\]: "),
        "control-char": ('["c1\\n"]', r"outputs\[0\]: "),
        "huge": ("[" + ", ".join(["c1"] * 10_001) + "]", r"outputs: "),
    }
    cases = [
        Case(f"workload-outputs-{name}", ("run", "{tmp}/w.yaml", *RUN), {"w.yaml": WL + f"outputs: {value}\n"}, match=m)
        for name, (value, m) in bad.items()
    ]
    ok = {"w.yaml": WL + "outputs: [c2, c1]\n"}
    return [
        *cases,
        Case("workload-outputs-two", ("run", "{tmp}/w.yaml", "--scheme", "static", *RUN), ok, "ok", writes=True),
    ]


ENERGY = """\
energy:
  int8_mac_pj: 0.2
  accumulate_pj: 0.1
  vector_op_pj: 4.6
  requant_op_pj: 3.4
  sram_read_pj_per_byte: {ifmap: 6.6, filter: 6.6, ofmap: 6.6}
  sram_write_pj_per_byte: {ifmap: 6.6, filter: 6.6, ofmap: 6.6}
  dram_read_pj_per_byte: 162.5
  dram_write_pj_per_byte: 162.5
  static_mw: 30
area: {pe_um2: 720, sram_um2_per_kib: 4050, requant_lane_um2: 3906, vector_lane_um2: 11884}
"""


def _energy() -> list[Case]:
    """Issue 19: energy and area tables: negative, non-finite, huge, missing or mistyped entries are one line
    naming the field; a component the hardware uses (float MACs when float_rate > 0) must be priced."""

    def hw(old: str, new: str) -> dict[str, str]:
        assert old in ENERGY
        return {"h.yaml": HW + ENERGY.replace(old, new, 1)}

    bad = {
        "negative": ("int8_mac_pj: 0.2", "int8_mac_pj: -0.2", r"energy\.int8_mac_pj: -0\.2 is outside"),
        "nan": ("static_mw: 30", "static_mw: .nan", r"energy\.static_mw: nan is not a finite number"),
        "inf": ("dram_read_pj_per_byte: 162.5", "dram_read_pj_per_byte: .inf", r"energy\.dram_read_pj_per_byte: "),
        "huge": (
            "dram_write_pj_per_byte: 162.5",
            "dram_write_pj_per_byte: 1.0e+308",
            r"energy\.dram_write_pj_per_byte",
        ),
        "text": ("accumulate_pj: 0.1", "accumulate_pj: cheap", r"energy\.accumulate_pj: 'cheap' is not a number"),
        "missing": ("  vector_op_pj: 4.6\n", "", r"energy\.vector_op_pj: required field is missing"),
        "missing-buffer": (
            "{ifmap: 6.6, filter: 6.6, ofmap: 6.6}",
            "{ifmap: 6.6}",
            r"energy\.sram_read_pj_per_byte\.filter",
        ),
        "unknown-buffer": ("ofmap: 6.6}", "ofmap: 6.6, psum: 1}", r"energy\.sram_read_pj_per_byte\.psum"),
        "unknown-key": ("static_mw: 30", "static_mw: 30\n  leakage: 3", r"energy\.leakage"),
        "list": ("static_mw: 30", "static_mw: [30]", r"energy\.static_mw: "),
        "area-negative": ("pe_um2: 720", "pe_um2: -1", r"area\.pe_um2: -1 is outside"),
        "area-inf": ("vector_lane_um2: 11884", "vector_lane_um2: .inf", r"area\.vector_lane_um2: "),
    }
    cases = [
        Case(f"config-energy-{key}", ("validate", "{tmp}/h.yaml"), hw(old, new), match=rf"h\.yaml: {m}")
        for key, (old, new, m) in bad.items()
    ]
    float_array = {"h.yaml": HW.replace("dataflow: ws}", "dataflow: ws, float_rate: 0.5}") + ENERGY}
    return [
        *cases,
        Case(
            "config-energy-float-mac-missing",
            ("validate", "{tmp}/h.yaml"),
            float_array,
            match=r"h\.yaml: energy\.float_mac_pj: missing: array\.float_rate is 0\.5",
        ),
        Case(
            "config-energy-set-negative",
            ("show", "default", "--set", "energy.sram_read_pj_per_byte.ofmap=-1"),
            match=r"default\.yaml: energy\.sram_read_pj_per_byte\.ofmap: -1 is outside",
        ),
        Case(
            "config-energy-set-float-rate-unpriced",
            ("show", "default", "--set", "energy.float_mac_pj=null", "--set", "array.float_rate=0.5"),
            match=r"default\.yaml: energy\.float_mac_pj: missing",
        ),
        Case("config-energy-ok", ("run", "tiny_cnn", "--hw", "{tmp}/h.yaml", *RUN), hw("", ""), "ok", writes=True),
    ]


DECODER = """\
schema_version: 1
name: t
input_shape: [8, 64]
layers:
  - {name: norm, type: rmsnorm, eps: 1.0e-5}
  - {name: q, type: linear, out_features: 64}
  - {name: k, type: linear, inputs: [norm], out_features: 32}
  - {name: q_rope, type: rotary, inputs: [q], heads: 4}
  - {name: k_rope, type: rotary, inputs: [k], heads: 2}
  - {name: scores, type: matmul, inputs: [q_rope, k_rope], transpose_b: true, heads: 4, kv_heads: 2}
  - {name: gate, type: activation, function: silu, inputs: [q]}
  - {name: k_cache, type: kv_cache, inputs: [k_rope], heads: 2, context: 16, dtype: int8}
  - {name: probs, type: softmax, inputs: [scores], causal: true}
"""


def _decoder() -> list[Case]:
    """Issue 18's decoder fields (rmsnorm, rotary, kv_heads, silu): huge, not finite, of the wrong type, or not
    fitting the shapes; each one line naming the field."""
    bad = {
        "rmsnorm-eps-zero": ("eps: 1.0e-5", "eps: 0", r"layers\[0\]\.eps"),
        "rmsnorm-eps-nan": ("eps: 1.0e-5", "eps: .nan", r"layers\[0\]\.eps"),
        "rotary-heads-huge": ("inputs: [q], heads: 4", "inputs: [q], heads: 100000000000", r"layers\[3\]\.heads"),
        "rotary-heads-odd": ("inputs: [q], heads: 4", "inputs: [q], heads: 3", r"layers\[3\]\.heads: .*do not split"),
        "rotary-heads-text": ("inputs: [q], heads: 4", "inputs: [q], heads: four", r"layers\[3\]\.heads"),
        "rotary-base-inf": ("inputs: [q], heads: 4", "inputs: [q], heads: 4, base: .inf", r"layers\[3\]\.base"),
        "rotary-base-zero": ("inputs: [q], heads: 4", "inputs: [q], heads: 4, base: 0", r"layers\[3\]\.base"),
        "rotary-position-huge": (
            "inputs: [q], heads: 4",
            "inputs: [q], heads: 4, position: 100000000000",
            r"layers\[3\]\.position",
        ),
        "rotary-position-negative": (
            "inputs: [q], heads: 4",
            "inputs: [q], heads: 4, position: -1",
            r"layers\[3\]\.position",
        ),
        "rotary-on-image": ("input_shape: [8, 64]", "input_shape: [2, 8, 64]", r"layers\[3\]\.inputs: .*rotary needs"),
        "kv-heads-not-divisor": ("kv_heads: 2", "kv_heads: 3", r"layers\[5\]\.kv_heads: 3 does not divide heads 4"),
        "kv-heads-huge": ("kv_heads: 2", "kv_heads: 100000000000", r"layers\[5\]\.kv_heads"),
        "kv-heads-zero": ("kv_heads: 2", "kv_heads: 0", r"layers\[5\]\.kv_heads"),
        "kv-heads-list": ("kv_heads: 2", "kv_heads: [2]", r"layers\[5\]\.kv_heads"),
        "kv-cache-context-huge": ("context: 16", "context: 100000000000", r"layers\[7\]\.context"),
        "kv-cache-context-negative": ("context: 16", "context: -1", r"layers\[7\]\.context"),
        "kv-cache-context-float": ("context: 16", "context: 1.5", r"layers\[7\]\.context"),
        "kv-cache-dtype": ("dtype: int8", "dtype: int4", r"layers\[7\]\.dtype"),
        "kv-cache-heads": (
            "heads: 2, context",
            "heads: 3, context",
            r"layers\[7\]\.heads: layer 'k_cache': 3 does not divide the input's 32 features",
        ),
        "kv-cache-context-past-max": ("context: 16", "context: 1048577", r"layers\[7\]\.context: .*1,048,576"),
        "silu-alpha": ("function: silu", "function: silu, alpha: 1", r"layers\[6\]\.alpha: is not a parameter of silu"),
        "causal-text": ("causal: true", "causal: maybe", r"layers\[8\]\.causal"),
        "causal-list": ("causal: true", "causal: [true]", r"layers\[8\]\.causal"),
        "causal-not-last-axis": (
            "causal: true",
            "causal: true, axis: 0",
            r"layers\[8\]\.causal: layer .probs.: needs the softmax",
        ),
    }
    for key, (old, _, _) in bad.items():
        assert old in DECODER, key
    cases = [
        Case(
            f"config-decoder-{key}",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": DECODER.replace(old, new, 1)},
            match=rf"w\.yaml: {path}",
        )
        for key, (old, new, path) in bad.items()
    ]
    block = (
        DECODER.replace("name: t\n", "name: t\nrepeat: 3\n")
        + "  - {name: out, type: linear, inputs: [gate], out_features: 64}\n"
    )
    repeats = {
        "huge": ("repeat: 3", "repeat: 100000000000", r"repeat: "),
        "zero": ("repeat: 3", "repeat: 0", r"repeat: "),
        "float": ("repeat: 3", "repeat: 2.5", r"repeat: "),
        "text": ("repeat: 3", "repeat: many", r"repeat: "),
        "shape": (
            "[gate], out_features: 64}",
            "[gate], out_features: 32}",
            r"repeat: 3 repeats a block whose output \[8, 32\]",
        ),
        "outputs": ("repeat: 3", "repeat: 3\noutputs: [q, out]", r"repeat: .*outputs"),
    }
    cases += [
        Case(
            f"config-decoder-repeat-{key}",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": block.replace(old, new, 1)},
            match=rf"w\.yaml: {path}",
        )
        for key, (old, new, path) in repeats.items()
    ]
    cases.append(
        Case(
            "config-decoder-repeat-values",
            ("run", "{tmp}/w.yaml", "--out", "{tmp}/out"),
            {"w.yaml": block},
            match=r"repeat: values of a block repeated 3 times are not computed",
        )
    )
    cases.append(Case("config-decoder-repeat-ok", ("run", "{tmp}/w.yaml", *RUN), {"w.yaml": block}, "ok", writes=True))
    # the workload-level defaults of the rotary / kv_cache layers (context, kv_cache_dtype)
    defaults = {
        "context-huge": ("name: t\n", "name: t\ncontext: 100000000000\n", r"context: "),
        "context-negative": ("name: t\n", "name: t\ncontext: -1\n", r"context: "),
        "context-text": ("name: t\n", "name: t\ncontext: long\n", r"context: "),
        "context-list": ("name: t\n", "name: t\ncontext: [16]\n", r"context: "),
        "context-taken-by-none": (
            "heads: 4}\n  - {name: k_rope, type: rotary, inputs: [k], heads: 2}",
            "heads: 4, position: 0}\n  - {name: k_rope, type: rotary, inputs: [k], heads: 2, position: 0}",
            r"context: no layer takes it",
        ),
        "kv-cache-dtype": ("name: t\n", "name: t\nkv_cache_dtype: int4\n", r"kv_cache_dtype: "),
        "kv-cache-dtype-taken-by-none": (
            "name: t\n",
            "name: t\nkv_cache_dtype: activation\n",
            r"kv_cache_dtype: no layer",
        ),
    }
    taken = DECODER.replace("name: t\n", "name: t\ncontext: 4\n", 1)
    cases += [
        Case(
            f"config-decoder-workload-{key}",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": (DECODER if key != "context-taken-by-none" else taken).replace(old, new, 1)},
            match=rf"w\.yaml: {path}",
        )
        for key, (old, new, path) in defaults.items()
    ]
    ok = {"w.yaml": DECODER}
    return [
        *cases,
        Case("config-decoder-ok", ("run", "{tmp}/w.yaml", "--scheme", "static", *RUN), ok, "ok", writes=True),
    ]


def _decode_datapath() -> list[Case]:
    """Issue 18: the weight path's dequantization unit (``array.dequant_lanes``) and the DMA engine's outstanding
    transfers (``dram.outstanding_transfers``): out of range, mistyped, a unit with no float datapath to feed,
    each one line naming the field and what is allowed."""
    dequant = r"h\.yaml: array\.dequant_lanes: "
    float_array = "dataflow: ws, float_rate: 0.5"
    cases = [
        Case(
            f"config-dequant-{label}",
            ("validate", "{tmp}/h.yaml"),
            _hw("dataflow: ws}", new),
            match=dequant + ".*allowed",
        )
        for label, new in (
            ("negative", f"{float_array}, dequant_lanes: -1}}"),
            ("huge", f"{float_array}, dequant_lanes: 1000000000000}}"),
            ("fraction", f"{float_array}, dequant_lanes: 1.5}}"),
            ("text", f"{float_array}, dequant_lanes: many}}"),
            ("inf", f"{float_array}, dequant_lanes: .inf}}"),
        )
    ]
    cases.append(
        Case(
            "config-dequant-without-float-datapath",
            ("validate", "{tmp}/h.yaml"),
            _hw("dataflow: ws}", "dataflow: ws, dequant_lanes: 64}"),
            match=dequant + "64 needs a float datapath to feed, but array.float_rate is 0 .*allowed: 0",
        )
    )
    cases.append(
        Case(
            "config-dequant-set-without-float-datapath",
            ("show", "default", "--set", "array.dequant_lanes=32"),
            match=r"default\.yaml: array\.dequant_lanes: 32 needs a float datapath",
        )
    )
    cases += [
        Case(
            f"config-outstanding-{label}",
            ("validate", "{tmp}/h.yaml"),
            _hw("latency_cycles: 100}", f"latency_cycles: 100, outstanding_transfers: {value}}}"),
            match=r"h\.yaml: dram\.outstanding_transfers: .*allowed",
        )
        for label, value in (
            ("zero", "0"),
            ("huge", "100000000000"),
            ("fraction", "2.5"),
            ("text", "many"),
            ("nan", ".nan"),
        )
    ]
    return cases + _final_layers()


def _final_layers() -> list[Case]:
    """Issue 18: ``final_layers`` (a decoder's final norm and LM head after the repeated block): malformed,
    clashing with the block's names, reading nothing, out of range; and a timing run and a values run that work."""
    block = DECODER.replace("name: t\n", "name: t\nrepeat: 3\n") + (
        "  - {name: out, type: linear, inputs: [gate], out_features: 64}\nfinal_layers:\n"
    )
    head = "  - {name: final_norm, type: rmsnorm}\n  - {name: head, type: linear, out_features: 96}\n"
    bad = {
        "not-a-list": (f"final_layers:\n{head}", "final_layers: 7\n", r"final_layers: "),
        "type": ("type: rmsnorm}", "type: conv9}", r"final_layers\[0\]"),
        "duplicate": ("name: final_norm", "name: q", r"final_layers\[0\]\.name: duplicate layer name 'q'"),
        "unknown-input": (
            "type: rmsnorm}",
            "type: rmsnorm, inputs: [nowhere]}",
            r"final_layers\[0\]\.inputs: .*nowhere",
        ),
        "huge": ("out_features: 96", "out_features: 100000000000", r"final_layers\[1\]\.out_features"),
        "shape": ("type: rmsnorm}", "type: rotary, heads: 5}", r"final_layers\[0\]\.heads"),
    }
    doc = block + head
    cases = [
        Case(
            f"config-final-layers-{key}",
            ("validate", "{tmp}/w.yaml"),
            {"w.yaml": doc.replace(old, new, 1)},
            match=rf"w\.yaml: {path}",
        )
        for key, (old, new, path) in bad.items()
    ]
    once = doc.replace("repeat: 3\n", "")
    return [
        *cases,
        Case("config-final-layers-timing-ok", ("run", "{tmp}/w.yaml", *RUN), {"w.yaml": doc}, "ok", writes=True),
        Case(
            "config-final-layers-values-ok",
            ("run", "{tmp}/w.yaml", "--scheme", "static", "--out", "{tmp}/out"),
            {"w.yaml": once},
            "ok",
            writes=True,
            timeout_s=120,  # a whole static run: in a fresh clone it JIT-compiles the kernels (30 s under load)
        ),
    ]


CASES: list[Case] = (
    _names()
    + _yaml()
    + _sizes()
    + _nonfinite()
    + _scalesim()
    + _messages()
    + _outputs()
    + _energy()
    + _decoder()
    + _decode_datapath()
)
