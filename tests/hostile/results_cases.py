"""Hostile results folders (issue 14 items 3, 4, 6, 7): corrupt, old-format or mixed files already in the
target folder, a folder holding another configuration's results, and an import that would overwrite its input.

The folder ``{tmp}/out/tiny_cnn/default-32x32`` is where ``run tiny_cnn --out {tmp}/out`` saves; cases that
need real results there make them in ``setup`` with a quick ``--timing-only`` run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import accelsim

from .case import Case

FOLDER = "out/tiny_cnn/default-32x32"
RUN = ("run", "tiny_cnn", "--timing-only", "--out", "{tmp}/out")
TOPOLOGY = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\nConv1,32,32,3,3,3,8,1,\n"


def _accelsim(*argv: str) -> None:
    """Run the CLI quietly while setting a case up; a failing setup is a broken case, so it raises."""
    from accelsim.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        if main(list(argv)) != 0:
            raise RuntimeError(f"case setup failed: accelsim {' '.join(argv)}")


def _saved(*steps: Callable[[Path], None], scheme: str = "woq", extra: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """Set up: results of one ``run`` in the folder, then ``steps`` that damage it."""

    def make(tmp: Path) -> None:
        _accelsim(*(a.replace("{tmp}", str(tmp)) for a in RUN), "--scheme", scheme, *extra)
        for step in steps:
            step(tmp / FOLDER)

    return make


def _write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def step(folder: Path) -> None:
        (folder / name).write_bytes(content.encode() if isinstance(content, str) else content)

    return step


def _edit_results(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """Change ``results.json`` in place (pair with :func:`_no_manifest`, or the manifest catches the edit)."""

    def step(folder: Path) -> None:
        doc = json.loads((folder / "results.json").read_text())
        edit(doc)
        (folder / "results.json").write_text(json.dumps(doc))

    return step


def _no_manifest(folder: Path) -> None:
    """A folder as accelsim wrote them before manifests: its files are read unchecked, so every field must be."""
    (folder / "manifest.json").unlink(missing_ok=True)


def _mixed_generations(tmp: Path) -> None:
    """results.csv of one save beside results.json and timeline.json of the next (what a kill left before)."""
    _saved(scheme="woq")(tmp)
    old_csv = (tmp / FOLDER / "results.csv").read_bytes()
    _saved(scheme="fp32")(tmp)
    (tmp / FOLDER / "results.csv").write_bytes(old_csv)


def _symlink(link: str, target: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        os.symlink(tmp / target, tmp / link)

    return make


def _results_dir_is_folder(tmp: Path) -> None:
    (tmp / FOLDER / "results.json").mkdir(parents=True)


def _results_json_is_fifo(tmp: Path) -> None:
    (tmp / FOLDER).mkdir(parents=True)
    os.mkfifo(tmp / FOLDER / "results.json")


def _results_json_sparse_600_mib(tmp: Path) -> None:
    (tmp / FOLDER).mkdir(parents=True)
    with open(tmp / FOLDER / "results.json", "wb") as handle:
        handle.truncate(600 * 2**20)  # sparse: no disk used, but no results file is this large


def _drop(*keys: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        for key in keys:
            target = doc
            *parents, last = key.split(".")
            for part in parents:
                target = target[int(part) if part.isdigit() else part]
            del target[last]

    return edit


def _first_row(field: str, value: object) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        doc["rows"][0][field] = value

    return edit


def _hardware_edited(tmp: Path) -> None:
    """Results for a copy of the default hardware, then the copy edited to 16 rows under the same name."""
    default = (Path(accelsim.__file__).parents[1] / "hwconfigs" / "default.yaml").read_text()
    (tmp / "hw.yaml").write_text(default)
    _accelsim(*(a.replace("{tmp}", str(tmp)) for a in RUN), "--scheme", "woq", "--hw", str(tmp / "hw.yaml"))
    (tmp / "hw.yaml").write_text(default.replace("rows: 32 ", "rows: 16 "))


def _corrupt(name: str, content: str | bytes) -> dict[str, str | bytes]:
    return {f"{FOLDER}/{name}": content}


RUN_WOQ = (*RUN, "--scheme", "woq")
NOT_JSON = r"results\.json.*(unreadable|not valid JSON)"

CASES: list[Case] = [
    # item 6: what is already in the target folder of `run`
    Case("results-json-not-json", RUN_WOQ, files=_corrupt("results.json", "{not json"), match=NOT_JSON),
    Case(
        "results-json-binary",
        RUN_WOQ,
        files=_corrupt("results.json", b"\xff\xfe\x00\x81garbage"),
        match=r"results\.json",
    ),
    Case("results-json-empty", RUN_WOQ, files=_corrupt("results.json", ""), match=r"results\.json"),
    Case("results-json-list", RUN_WOQ, files=_corrupt("results.json", "[]"), match=r"results\.json"),
    Case("results-json-deep-nesting", RUN_WOQ, files=_corrupt("results.json", "[" * 200_000), match=r"results\.json"),
    Case(
        "results-json-old-format-no-meta",
        RUN_WOQ,
        files=_corrupt("results.json", '{"rows": []}'),
        match=r"results\.json.*meta",
    ),
    Case("results-json-is-a-folder", RUN_WOQ, setup=_results_dir_is_folder, match=r"results\.json"),
    Case(
        "results-json-rows-missing-fields",
        RUN,
        setup=_saved(_edit_results(_drop("rows.0.macs")), _no_manifest, scheme="fp32"),
        match=r"results\.json.*rows\[0\]\.macs",
    ),
    Case(
        "results-json-row-wrong-type",
        RUN,
        setup=_saved(_edit_results(_first_row("total_cycles", "many")), _no_manifest, scheme="fp32"),
        match=r"results\.json.*rows\[0\]\.total_cycles",
    ),
    Case(
        "results-json-meta-hardware-missing",
        RUN,
        setup=_saved(_edit_results(_drop("meta.hardware")), _no_manifest, scheme="fp32"),
        match=r"results\.json.*meta\.hardware",
    ),
    Case(
        "results-json-runs-not-a-mapping",
        RUN,
        setup=_saved(_edit_results(lambda d: d["meta"].update(runs=[1])), _no_manifest, scheme="fp32"),
        match=r"results\.json.*meta\.runs",
    ),
    Case(
        "timeline-json-corrupt", RUN, setup=_saved(_write("timeline.json", "{"), scheme="fp32"), match=r"timeline\.json"
    ),
    Case(
        "timeline-json-wrong-shape",
        RUN,
        setup=_saved(_write("timeline.json", '{"woq": 3}'), _no_manifest, scheme="fp32"),
        match=r"timeline\.json.*woq",
    ),
    Case(
        "timeline-json-corrupt-no-manifest",
        RUN,
        setup=_saved(_write("timeline.json", "[[["), _no_manifest, scheme="fp32"),
        match=r"timeline\.json.*not valid JSON",
    ),
    Case(
        "results-csv-missing",
        ("report", f"{{tmp}}/{FOLDER}"),
        setup=_saved(lambda f: (f / "results.csv").unlink()),
        match=r"results\.csv.*missing",
    ),
    Case("results-json-is-a-fifo", RUN_WOQ, setup=_results_json_is_fifo, match=r"results\.json.*FIFO", timeout_s=10),
    Case("results-json-600-mib", RUN_WOQ, setup=_results_json_sparse_600_mib, match=r"results\.json.*larger"),
    Case(
        "manifest-generation-is-a-path",
        RUN,
        setup=_saved(
            _write(
                "manifest.json",
                json.dumps({"format": 1, "generation": "../../../x", "files": {"results.json": "0" * 64}}),
            ),
            scheme="fp32",
        ),
        match=r"manifest\.json.*not an accelsim results manifest",
    ),
    Case("manifest-corrupt", RUN, setup=_saved(_write("manifest.json", "]"), scheme="fp32"), match=r"manifest\.json"),
    # item 3: files of different saves side by side
    Case(
        "report-mixed-generations",
        ("report", f"{{tmp}}/{FOLDER}"),
        setup=_mixed_generations,
        match=r"results\.csv.*(another save|different save)",
    ),
    Case(
        "run-into-mixed-generations",
        RUN,
        setup=_mixed_generations,
        match=r"results\.csv.*(another save|different save)",
    ),
    Case(
        "report-results-json-corrupt",
        ("report", f"{{tmp}}/{FOLDER}"),
        files=_corrupt("results.json", "{"),
        match=NOT_JSON,
    ),
    Case(
        "report-timeline-corrupt",
        ("report", f"{{tmp}}/{FOLDER}"),
        setup=_saved(_write("timeline.json", "nul")),
        match=r"timeline\.json",
    ),
    # item 4: another configuration's results under the same folder name
    Case(
        "run-after-hardware-edit",
        (*RUN, "--hw", "{tmp}/hw.yaml"),
        setup=_hardware_edited,
        match=r"array\.rows.*(another --out|remove)",
    ),
    Case(
        "run-ideal-memory-into-real-memory-folder",
        (*RUN, "--ideal-memory"),
        setup=_saved(),
        match=r"ideal_memory.*(another --out|remove)",
    ),
    Case("run-other-scheme-fills-comparison", RUN, setup=_saved(), expect="ok", writes=True),
    Case(
        "compare-after-run-ok",
        ("compare", "tiny_cnn", "--timing-only", "--out", "{tmp}/out"),
        setup=_saved(),
        expect="ok",
        writes=True,
    ),
    # item 7: import writing over its own input
    Case(
        "import-output-is-input",
        ("import", "scalesim", "{tmp}/r.csv", "-o", "{tmp}/r.csv"),
        files={"r.csv": TOPOLOGY},
        match=r"r\.csv",
    ),
    Case(
        "import-output-is-input-respelled",
        ("import", "scalesim", "{tmp}/r.csv", "-o", "{tmp}/./r.csv"),
        files={"r.csv": TOPOLOGY},
        match=r"r\.csv",
    ),
    Case(
        "import-output-symlink-to-input",
        ("import", "scalesim", "{tmp}/r.csv", "-o", "{tmp}/link.yaml"),
        files={"r.csv": TOPOLOGY},
        setup=_symlink("link.yaml", "r.csv"),
        match=r"link\.yaml",
    ),
]
