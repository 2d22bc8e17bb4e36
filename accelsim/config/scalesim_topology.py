"""Import of SCALE-Sim topology CSVs, so users can bring the layer lists they already have.

SCALE-Sim's conventions, kept here so the imported layers are the ones SCALE-Sim simulates:

* every row is an independent layer with its own IFMAP; rows are not chained, so each imported
  layer reads its own named source tensor (``extra_inputs``);
* there is no padding field: the IFMAP as written is the padded input, so a "same" convolution must
  be given its padded extent;
* output extents round up, ``ceil((H - R) / S) + 1`` (a last window runs off the input and is
  streamed anyway); where the stride does not divide ``H - R`` the imported layer gets just enough
  padding for PyTorch's floor formula to give the same extent, else ``padding: 0``;
* rows end with a trailing comma and SCALE-Sim drops the last field of every row, so a row
  without it silently loses its stride there; here both forms are read;
* a conv row whose name contains ``DP`` is depthwise (SCALE-Sim splits it into one layer per
  channel), imported as ``groups = channels``;
* the GEMM format (``Layer, M, N, K``) is ``M x K`` times ``K x N``, imported as a ``linear``
  layer on an ``[M, K]`` input (SCALE-Sim's own conversion: IFMAP ``M x K``, filter ``1 x K``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import yaml

from accelsim import file_checks
from accelsim.config.ranges import plain_name, whole_number
from accelsim.config.validation import FieldError, describe, validate
from accelsim.config.workload import INPUT, MAX_DIM, Workload
from accelsim.config.yaml_source import MAX_FILE_BYTES
from accelsim.errors import AccelsimError

CONV_COLUMNS = ["name", "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "filters", "stride"]
GEMM_COLUMNS = ["name", "m", "n", "k"]
#: words each conv-format header field holds (SCALE-Sim: "IFMAP Height, ..., Num Filter, Strides"), so a
#: layout or other SCALE-Sim CSV with as many columns is not read as a topology
CONV_HEADER_WORDS = ["height", "width", "height", "width", "channel", "filter", "stride"]
#: the plausible range of each column: the workload's bounds for the layer field it becomes
WINDOW_COLUMNS = {"filter_h", "filter_w", "stride"}


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    raw = file_checks.read_user_file(
        path, MAX_FILE_BYTES, expected="a SCALE-Sim topology CSV"
    )  # type and size before reading
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AccelsimError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    rows = [(i + 1, [c.strip() for c in row]) for i, row in enumerate(csv.reader(text.splitlines()))]
    rows = [(n, r[:-1] if r and r[-1] == "" else r) for n, r in rows if any(r)]
    if not rows:
        raise AccelsimError("file is empty, expected a SCALE-Sim topology CSV with a header row", file=str(path))
    return rows[0][1], rows[1:]


def _ints(line: int, row: list[str], columns: list[str], file: str) -> dict[str, Any]:
    if len(row) < len(columns):
        raise AccelsimError(
            f"{len(row)} fields, expected {len(columns)}", file=file, path=f"line {line}", allowed=", ".join(columns)
        )
    out: dict[str, Any] = {"name": row[0]}
    for column, value in zip(columns[1:], row[1 : len(columns)]):
        where = f"line {line}, column {column}"
        if not re.fullmatch(r"[-+]?[0-9]{1,30}", value):
            raise AccelsimError(f"{describe(value)} is not a whole number", file=file, path=where)
        try:
            out[column] = whole_number(int(value), 1, 1024 if column in WINDOW_COLUMNS else MAX_DIM)
        except FieldError as exc:
            raise AccelsimError(exc.message, file=file, path=where, allowed=exc.allowed) from None
    return out


def _check_header(header: list[str], file: str) -> None:
    """A conv-format header must name SCALE-Sim's topology columns (a layout CSV has as many)."""
    fields = [h.lower() for h in header[1:8]]
    if len(fields) < len(CONV_HEADER_WORDS) or any(w not in f for w, f in zip(CONV_HEADER_WORDS, fields)):
        raise AccelsimError(
            f"header {describe(', '.join(header))} is not a SCALE-Sim topology",
            file=file,
            path="line 1",
            allowed="Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
            "Strides (conv) or Layer, M, N, K (GEMM)",
        )


def _ceil_padding(size: int, kernel: int, stride: int) -> int:
    """Padding that makes ``(size + 2p - kernel) // stride + 1`` equal SCALE-Sim's rounded-up extent."""
    rest = (size - kernel) % stride if size >= kernel else 0
    return -(-(stride - rest) // 2) if rest else 0


def _conv_layer(r: dict[str, Any], source: str) -> tuple[list[int], dict[str, Any]]:
    depthwise = "DP" in r["name"]
    padding = [
        _ceil_padding(r["ifmap_h"], r["filter_h"], r["stride"]),
        _ceil_padding(r["ifmap_w"], r["filter_w"], r["stride"]),
    ]
    layer = {
        "name": r["name"],
        "type": "conv2d",
        "inputs": [source],
        "out_channels": r["channels"] * r["filters"] if depthwise else r["filters"],
        "kernel": [r["filter_h"], r["filter_w"]],
        "stride": r["stride"],
        **({"padding": padding} if any(padding) else {}),
        **({"groups": r["channels"]} if depthwise else {}),
    }
    return [r["channels"], r["ifmap_h"], r["ifmap_w"]], layer


def _gemm_layer(r: dict[str, Any], source: str) -> tuple[list[int], dict[str, Any]]:
    return [r["m"], r["k"]], {"name": r["name"], "type": "linear", "inputs": [source], "out_features": r["n"]}


def import_topology(path: str | Path, name: str | None = None) -> Workload:
    """Read a SCALE-Sim topology CSV (conv or M,N,K GEMM format) as a validated workload."""
    path = Path(path)
    file = str(path)
    header, rows = _rows(path)
    gemm = len(header) >= 4 and [h.strip().upper() for h in header[1:4]] == ["M", "N", "K"]
    columns, make = (GEMM_COLUMNS, _gemm_layer) if gemm else (CONV_COLUMNS, _conv_layer)
    if not rows:
        raise AccelsimError("no layer rows after the header", file=file)
    if not gemm:
        _check_header(header, file)
    layers, extra = [], {}
    for index, (line, row) in enumerate(rows):
        parsed = _ints(line, row, columns, file)
        source = INPUT if index == 0 else f"{parsed['name']}.ifmap"
        shape, layer = make(parsed, source)
        if index == 0:
            input_shape = shape
        else:
            extra[source] = shape
        layers.append(layer)
    doc = {
        "schema_version": 1,
        "name": name or plain_name(path.stem, "topology"),
        "description": f"Imported from SCALE-Sim topology {path.name} ({'GEMM M,N,K' if gemm else 'conv'} format); "
        "each row is an independent layer, extents as SCALE-Sim simulates them",
        "source": path.name,
        "input_shape": input_shape,
        "extra_inputs": extra,
        "layers": layers,
    }
    try:
        return validate(Workload, doc, file)
    except AccelsimError as exc:
        layer_index = re.match(r"layers\[(\d+)\]", exc.path)
        if layer_index:  # name the CSV row the layer came from
            exc.message = f"{exc.path}: {exc.message}"
            exc.path = f"line {rows[int(layer_index.group(1))][0]}"
        raise


def workload_yaml(workload: Workload) -> str:
    """The workload as YAML in the shipped files' style: one flow mapping per layer."""
    doc = workload.model_dump(mode="json", exclude_defaults=True, exclude={"layers"})
    doc = {"schema_version": workload.schema_version, **doc}
    lines = [yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120).rstrip(), "layers:"]
    for layer in workload.layers:
        item = layer.model_dump(exclude_defaults=True)
        item = {"name": item.pop("name"), "type": layer.type, **item}
        lines.append("  - " + yaml.safe_dump(item, sort_keys=False, default_flow_style=True, width=1000).strip())
    return "\n".join(lines) + "\n"
