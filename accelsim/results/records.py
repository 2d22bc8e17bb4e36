"""Result records: one row per layer and scheme, and totals; field names carry their units.

Every field is defined in docs/metrics.md. Records are plain dataclasses so CSV, JSON and the reports
read the same numbers.
"""

# No `from __future__ import annotations`: pydantic reads LayerRecord's field types when it builds the saved
# rows' validator, twice as fast from the types as from their text (a run into an existing folder builds it).
import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import cache, cached_property
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelsim.errors import AccelsimError, format_path
from accelsim.results import folder as results_folder

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError


@dataclass
class LayerRecord:
    """What one layer cost and how accurate it was under one scheme."""

    workload: str
    hardware: str
    scheme: str
    layer: str
    type: str
    unit: str
    macs: int
    compute_cycles: int
    stall_cycles_ifmap: int
    stall_cycles_weights: int
    stall_cycles_ofmap_buffer: int
    stall_cycles_vector_unit: int
    stall_cycles_range_pass: int
    stall_cycles: int
    total_cycles: int
    latency_s: float
    utilization: float
    vector_busy_cycles: int
    requant_busy_cycles: int
    dram_read_bytes_weights: int
    dram_read_bytes_weight_scales: int
    dram_read_bytes_bias: int
    dram_read_bytes_ifmap: int
    dram_write_bytes_ofmap: int
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int
    tiles: int
    roofline_cycles: int
    bound_by: str
    accumulator_overflows: int = 0
    requant_saturations: int = 0
    sqnr_db: float = math.nan
    max_abs_error: float = math.nan
    top1_agreement: float = math.nan
    # per-buffer SRAM traffic (added with energy, issue 19: 0 in rows saved before; docs/energy.md)
    sram_read_bytes_ifmap: int = 0
    sram_read_bytes_filter: int = 0
    sram_read_bytes_ofmap: int = 0
    sram_write_bytes_ifmap: int = 0
    sram_write_bytes_filter: int = 0
    sram_write_bytes_ofmap: int = 0
    # energy (results.energy): NaN (empty / null) when the hardware has no energy table: absent, not 0
    energy_pj_array: float = math.nan
    energy_pj_vector: float = math.nan
    energy_pj_requant: float = math.nan
    energy_pj_sram_ifmap: float = math.nan
    energy_pj_sram_filter: float = math.nan
    energy_pj_sram_ofmap: float = math.nan
    energy_pj_dram_ifmap: float = math.nan
    energy_pj_dram_weights: float = math.nan
    energy_pj_dram_weight_scales: float = math.nan
    energy_pj_dram_bias: float = math.nan
    energy_pj_dram_kv_cache: float = math.nan
    energy_pj_dram_ofmap: float = math.nan
    energy_pj_static: float = math.nan
    energy_pj: float = math.nan
    energy_delay_pj_s: float = math.nan
    pj_per_mac: float = math.nan
    tops_per_w: float = math.nan
    #: a KV cache's keys and values the attention matmuls read (0 in results stored before issue 18)
    dram_read_bytes_kv_cache: int = 0


def total_record(rows: list[LayerRecord], pe_count: int, clock_mhz: float) -> LayerRecord:
    """The workload total of one scheme's rows: sums, utilization over the whole run."""
    first = rows[0]
    summed = {f.name: sum(getattr(r, f.name) for r in rows) for f in fields(LayerRecord) if f.type is int}
    total_cycles = summed["total_cycles"]
    return LayerRecord(
        workload=first.workload,
        hardware=first.hardware,
        scheme=first.scheme,
        layer="total",
        type="total",
        unit="",
        **summed,
        latency_s=total_cycles / (clock_mhz * 1e6),
        utilization=summed["macs"] / (pe_count * total_cycles) if total_cycles else 0.0,
        bound_by="",
        sqnr_db=math.nan,
        max_abs_error=math.nan,
        top1_agreement=math.nan,
    )


def repeated(total: LayerRecord, repeat: int, pe_count: int) -> LayerRecord:
    """A block's total row counted for ``repeat`` blocks in a row (``Workload.repeat``): every count, cycle,
    byte and energy times ``repeat`` (the energy-delay product ``repeat^2``); utilization, pJ per MAC and
    TOPS/W are the block's."""
    if repeat == 1:
        return total
    scaled = {
        f.name: getattr(total, f.name) * repeat
        for f in fields(LayerRecord)
        if f.type is int or f.name == "latency_s" or f.name.startswith("energy_pj")
    }
    row = replace(total, **scaled, energy_delay_pj_s=total.energy_delay_pj_s * repeat * repeat)
    row.utilization = row.macs / (pe_count * row.total_cycles) if row.total_cycles else 0.0
    return row


def write_results(folder: Path, rows: list[LayerRecord], meta: dict[str, Any]) -> tuple[Path, Path]:
    """Save ``rows`` and ``meta`` as ``folder``'s new generation, keeping its event logs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with results_folder.locked(folder):
        saved = results_folder.current(folder)
        logs = _parse_timeline(saved["timeline.json"], folder) if saved and "timeline.json" in saved else {}
        results_folder.commit(folder, _files(rows, meta, logs))
    return folder / "results.csv", folder / "results.json"


@dataclass(frozen=True)
class MergeCheck:
    """The generation :func:`check_mergeable` found in a results folder before simulating (None: none), with
    its parse. The run's save (:func:`update_results`) finds the same files unless another process saved in
    between, and then reuses the parse instead of parsing and validating every row and event again (2% of a
    timing-only ResNet-50 run into an existing folder)."""

    saved: dict[str, bytes] | None = None
    parsed: "SavedResults | None" = None

    def parse(self, saved: dict[str, bytes], folder: Path) -> "SavedResults":
        """The parse of generation ``saved`` of ``folder``: the checked one if these are the checked files."""
        if self.parsed is not None and saved == self.saved:
            return self.parsed
        return _parse(saved, folder)


def update_results(
    folder: Path,
    rows: list[LayerRecord],
    meta: dict[str, Any],
    logs: dict[str, list[tuple[str, int, int, str]]],
    checked: MergeCheck = MergeCheck(),
) -> None:
    """Write these schemes' rows, meta and event logs into ``folder``, keeping other schemes' from
    earlier runs of the same workload and hardware (``run --scheme`` one at a time fills a comparison),
    and the last accuracy table (``meta.accuracy``, from ``--data``) when this save has none.

    Under the folder's lock, so concurrent runs merge rather than overwrite each other; results of
    another configuration already there are an error (:func:`check_mergeable`, whose parse of the folder,
    ``checked``, this save reuses if the folder still holds the same files; by default nothing was checked).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "config_digest": config_digest(shared_config(meta))}
    with results_folder.locked(folder):
        saved = results_folder.current(folder)
        if saved is not None:
            old = checked.parse(saved, folder)
            _check_same_config(folder, old, shared_config(meta), meta["config_digest"])
            fresh = {row.scheme for row in rows}
            rows = [r for r in old.rows if r.scheme not in fresh] + rows
            meta = {**meta, **{key: {**old.meta.get(key, {}), **meta[key]} for key in ("runs", "events")}}
            if "accuracy" not in meta and "accuracy" in old.meta:  # a run without --data keeps the last table
                meta["accuracy"] = old.meta["accuracy"]
            logs = {**old.timeline, **logs}
        results_folder.commit(folder, _files(rows, meta, logs))


def check_mergeable(
    folder: Path, workload: dict[str, Any], hardware: dict[str, Any], ideal_memory: bool, weights_sha256: str
) -> MergeCheck:
    """Before simulating: results already in ``folder`` are readable and of this configuration, so a
    long run does not fail only when it saves (:func:`update_results` checks again under the lock; pass it
    the returned check). ``weights_sha256``: of the workload's weights file ("" without one;
    values.user_data.weights_digest)."""
    folder = Path(folder)
    with results_folder.guarded(folder):
        saved = results_folder.current(folder) if folder.is_dir() else None
        if saved is None:
            return MergeCheck()
        parsed = _parse(saved, folder)
        _check_same_config(folder, parsed, _config(workload, hardware, [ideal_memory], weights_sha256))
    return MergeCheck(saved, parsed)


def shared_config(meta: dict[str, Any]) -> dict[str, Any]:
    """What every scheme in one folder must share for their numbers to be comparable: the workload and
    hardware as validated, the bytes of the workload's weights file (its sha256: the workload names the
    file, not what it holds), and whether DRAM was ideal. (A scheme's own settings, e.g. the dynamic
    flavour or the weight format, are stored and replaced with its rows, and the report shows them.)"""
    return _config(
        meta["workload"],
        meta["hardware"],
        [bool(r.get("ideal_memory", False)) for r in meta["runs"].values()],
        str(meta.get("weights_sha256", "")),
    )


def config_digest(config: dict[str, Any]) -> str:
    """A short fingerprint of :func:`shared_config`, stored in ``results.json`` as ``meta.config_digest``."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _config(
    workload: dict[str, Any], hardware: dict[str, Any], ideal_memory: list[bool], weights_sha256: str
) -> dict[str, Any]:
    """The configuration a folder's digest covers; the weights key only with a weights file, so folders of
    workloads without one keep the digest they were saved with."""
    weights = {"weights_sha256": weights_sha256} if weights_sha256 else {}
    return {"workload": workload, **weights, "hardware": hardware, "ideal_memory": sorted(set(ideal_memory))}


def _check_same_config(folder: Path, saved: "SavedResults", new: dict[str, Any], digest: str = "") -> None:
    """``saved`` holds results of configuration ``new`` (whose :func:`config_digest` is ``digest`` if given)."""
    if saved.config_digest == (digest or config_digest(new)):
        return
    old = shared_config(saved.meta)
    changed = [f"{path} {_short(a)} -> {_short(b)}" for path, a, b in _differences(old, new)]
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    raise AccelsimError(
        f"holds results of another configuration under the same name ({shown}); merging them would "
        f"mix the two: save into another --out, or remove this folder to start over",
        file=str(folder / "results.json"),
    )


def _differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted paths where two JSON documents differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new), key=str)
            for d in _differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        ]
    return [] if old == new else [(path, old, new)]


def _short(value: Any) -> str:
    value = value[0] if isinstance(value, list) and len(value) == 1 else value
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class SavedResults:
    """One generation of a results folder, parsed."""

    rows: list[LayerRecord]
    meta: dict[str, Any]
    timeline: dict[str, list[tuple[str, int, int, str]]]

    @cached_property
    def config_digest(self) -> str:
        """:func:`config_digest` of their configuration, once: a save that reuses its check's parse compares it
        again (a digest dumps the workload and hardware to JSON)."""
        return config_digest(shared_config(self.meta))


def read_saved(folder: Path) -> SavedResults:
    """Rows, meta and event logs of ``folder``'s current generation, read together under its lock."""
    folder = Path(folder)
    with results_folder.guarded(folder):
        saved = results_folder.current(folder) if folder.is_dir() else None
    if saved is None:
        raise AccelsimError(
            "not a results folder: no results.json (write one with `accelsim run` or `compare`)", file=str(folder)
        )
    return _parse(saved, folder)


def read_results(folder: Path) -> tuple[list[LayerRecord], dict[str, Any]]:
    """Load what ``write_results`` wrote (JSON is the lossless copy)."""
    saved = read_saved(folder)
    return saved.rows, saved.meta


def _files(
    rows: list[LayerRecord], meta: dict[str, Any], logs: dict[str, list[tuple[str, int, int, str]]]
) -> dict[str, bytes]:
    """The three files of a generation: ``results.csv``, ``results.json`` and ``timeline.json`` (the
    engine's event log per scheme, for timeline plots: ``[lane, start_cycle, end_cycle, layer]``)."""
    columns = list(zip(*map(_row_values, rows)))
    csv_columns, json_columns, plain = zip(*map(_column_texts, columns)) if rows else ((), (), ())
    if all(plain):  # strings only, none that the csv writer would quote: its lines are the fields joined
        csv_text = "".join([",".join(row) + "\n" for row in [_FIELDS, *zip(*csv_columns)]])
    else:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([_FIELDS, *zip(*csv_columns)])
        csv_text = buffer.getvalue()
    rows_text = ",".join(["\n  {" + ",".join(map(str.__add__, _ROW_KEYS, row)) + "\n  }" for row in zip(*json_columns)])
    results = '{\n "meta": ' + json.dumps(meta, indent=1).replace("\n", "\n ") + ',\n "rows": '
    return {
        "results.csv": csv_text.encode(),
        "results.json": (results + (f"[{rows_text}\n ]" if rows else "[]") + "\n}\n").encode(),
        # each event tuple a list; no check for cycles (json's C encoder tracks every list to find one: a tenth of it)
        "timeline.json": (json.dumps(logs, separators=(",", ":"), check_circular=False) + "\n").encode(),
    }


_FIELDS = [f.name for f in fields(LayerRecord)]
#: a row's values in field order, in one call (dataclasses.asdict deep-copies every value)
_row_values = attrgetter(*_FIELDS)
# results.json holds the text of ``json.dumps({"meta": meta, "rows": rows}, indent=1)`` and results.csv that of
# csv.writer: json's indented encoder is pure Python (3% of a timing-only ResNet-50 run for its 76 rows), and
# both write the floats' repr once each. A row is an object of scalars at depth 2 with the fields' keys, so a
# column of one type turns into text by one C call per column; tests/test_results_safety.py holds the texts equal.
_ROW_KEYS = [f"\n   {encode_basestring_ascii(name)}: " for name in _FIELDS]
_JSON_FLOATS = {"nan": "null", "inf": '"inf"', "-inf": '"-inf"'}  # float.__repr__'s words, as _json_value has them
_CSV_QUOTED = re.compile('[,"\r\n]')  # what the csv writer quotes (the delimiter, quote char, line ends)


def _column_texts(column: tuple[Any, ...]) -> tuple[Sequence[Any], Sequence[str], bool]:
    """One field of every row as ``results.csv`` (:func:`_csv_value`) and ``results.json`` (:func:`_json_value`)
    write it, and whether its CSV fields are plain text the csv writer would write as they are: a column of ints,
    strings or floats by one C call, mixed ones value by value."""
    types = set(map(type, column))
    if types == {int}:
        text = list(map(int.__repr__, column))
        return text, text, True
    if types == {str}:
        return column, list(map(encode_basestring_ascii, column)), not _CSV_QUOTED.search("".join(column))
    if types == {float}:
        text = list(map(float.__repr__, column))
        return ["" if word == "nan" else word for word in text], [_JSON_FLOATS.get(word, word) for word in text], True
    csv_fields = [_csv_value(value) for value in column]
    return csv_fields, [json.dumps(_json_value(value), indent=1).replace("\n", "\n   ") for value in column], False


@dataclass(frozen=True)
class _Validators:
    """Pydantic validators of a saved generation's JSON."""

    meta: "TypeAdapter[Any]"
    rows: "TypeAdapter[list[LayerRecord]]"
    timeline: "TypeAdapter[dict[str, list[tuple[str, int, int, str]]]]"


@cache
def _validators() -> _Validators:
    """Built on the first read of saved results: a run into a fresh folder reads none and does not pay
    for building them (about 10% of a timing-only ResNet-50 run as a whole process)."""
    from pydantic import BaseModel, ConfigDict, TypeAdapter

    class Meta(BaseModel):
        """What merging and reports need of ``results.json``'s ``meta``; other keys pass through."""

        model_config = ConfigDict(extra="allow")
        workload: dict[str, Any]
        hardware: dict[str, Any]
        runs: dict[str, dict[str, Any]]
        events: dict[str, Any]

    return _Validators(
        TypeAdapter(Meta),
        TypeAdapter(list[LayerRecord]),
        TypeAdapter(dict[str, list[tuple[str, int, int, str]]]),
    )


_FLOATS = frozenset(f.name for f in fields(LayerRecord) if f.type is float)


def _parse(saved: dict[str, bytes], folder: Path) -> SavedResults:
    """Parse and check a generation's JSON files: anything else is one error line naming file and field."""
    from pydantic import ValidationError

    path = folder / "results.json"
    doc = results_folder.load_json(saved["results.json"], path)
    if not isinstance(doc, dict) or not {"meta", "rows"} <= set(doc):
        raise AccelsimError(
            "not an accelsim results file (an object with meta and rows, as `accelsim run` writes); "
            "remove the folder or use another --out",
            file=str(path),
            path="meta",
        )
    try:
        _validators().meta.validate_python(doc["meta"])
    except ValidationError as exc:
        raise _field_error(exc, path, "meta") from None
    try:
        rows = _validators().rows.validate_python(
            [  # NaN is stored as null; "inf" strings are left for validation to read as floats
                {k: math.nan if v is None and k in _FLOATS else v for k, v in r.items()} if isinstance(r, dict) else r
                for r in doc["rows"]
            ]
            if isinstance(doc["rows"], list)
            else doc["rows"]
        )
    except ValidationError as exc:
        raise _field_error(exc, path, "rows") from None
    timeline = _parse_timeline(saved["timeline.json"], folder) if "timeline.json" in saved else {}
    return SavedResults(rows, doc["meta"], timeline)


def _parse_timeline(data: bytes, folder: Path) -> dict[str, list[tuple[str, int, int, str]]]:
    from pydantic import ValidationError

    path = folder / "timeline.json"
    try:
        return _validators().timeline.validate_python(results_folder.load_json(data, path))
    except ValidationError as exc:
        raise _field_error(exc, path, "") from None


def _field_error(exc: "ValidationError", path: Path, prefix: str) -> AccelsimError:
    first = exc.errors()[0]
    where = format_path([p for p in ([prefix] if prefix else []) + list(first["loc"])])
    more = exc.error_count() - 1
    error = AccelsimError(
        f"{first['msg'][0].lower()}{first['msg'][1:]} (not as accelsim writes it: remove the folder "
        f"or use another --out)",
        file=str(path),
        path=where,
    )
    error.more = more
    return error


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _json_value(value: Any) -> Any:
    """NaN as null, infinities as strings: JSON has neither."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
