"""Hostile sweep specs and flags (issue 14 items 8, 11, 14): bad output folders, absurd sizes, wrong --dask.

Every spec is a tiny timing-only sweep of tiny_cnn, so a case that wrongly runs still ends in a second.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .case import Case

SPEC = "spec.yaml"


def spec(output: str | None = "out", **fields: object) -> dict[str, str]:
    """A spec file (JSON is YAML) of two tiny points, with ``fields`` replacing or adding keys."""
    doc: dict[str, object] = {
        "schema_version": 1,
        "base": "default",
        "axes": {"array.rows": [4, 8]},
        "workloads": ["tiny_cnn"],
        "output": output,
        **fields,
    }
    return {SPEC: json.dumps({k: v for k, v in doc.items() if v is not None})}


def sweep(*flags: str) -> tuple[str, ...]:
    return ("sweep", f"{{tmp}}/{SPEC}", "--workers", "1", *flags)


def make_proc_self_link(tmp: Path) -> None:
    (tmp / "proc").symlink_to("/proc/self")


def foreign_store(tmp: Path) -> None:
    """An SQLite file of another program, with a ``results`` table of its own."""
    db = sqlite3.connect(tmp / "out/sweep.sqlite")
    db.execute("CREATE TABLE results (x INTEGER)")
    db.commit()
    db.close()


#: 200 x 200 x 200: eight million points, refused from the axis lengths before anything is expanded
HUGE_AXES = {
    "array.rows": list(range(1, 201)),
    "array.cols": list(range(1, 201)),
    "sram.ofmap_kib": list(range(1, 201)),
}
OUTPUT_ERROR = r"spec\.yaml: output: "

CASES: list[Case] = [
    # output: where results cannot or must not go (nothing may be created)
    Case(
        "sweep-output-file",
        sweep(),
        files={**spec("taken.txt"), "taken.txt": "mine"},
        match=OUTPUT_ERROR + r"taken\.txt: this is a file, not a folder",
    ),
    Case("sweep-output-dev-null", sweep(), files=spec("/dev/null"), match=OUTPUT_ERROR + r"/dev/null: this is a file"),
    Case(
        "sweep-output-proc",
        sweep(),
        files=spec("/proc/accelsim-sweep"),
        match=OUTPUT_ERROR + r"/proc/accelsim-sweep: cannot",
    ),
    Case(
        "sweep-output-proc-self",
        sweep(),
        files=spec("proc"),
        setup=make_proc_self_link,
        match=OUTPUT_ERROR + r"proc: this folder holds other files and no sweep\.sqlite",
    ),
    Case(
        "sweep-output-below-a-file",
        sweep(),
        files={**spec("taken.txt/out"), "taken.txt": "mine"},
        match=OUTPUT_ERROR + r"taken\.txt/out: .*taken\.txt is a file, not a folder",
    ),
    Case(
        "sweep-output-current-folder",
        sweep(),
        files=spec("."),
        match=OUTPUT_ERROR + r"\.: this folder holds other files",
    ),
    # a store that is not one (the lock file is created before the store is read: writes=True)
    Case(
        "sweep-store-garbage",
        sweep(),
        files={**spec(), "out/sweep.sqlite": b"not a database" * 100},
        writes=True,
        match=r"spec\.yaml: output: out: cannot open sweep\.sqlite there: file is not a database",
    ),
    Case(
        "sweep-store-foreign",
        sweep(),
        files={**spec(), "out/sweep.sqlite": b""},
        setup=foreign_store,
        writes=True,
        match=r"out/sweep\.sqlite: cannot use the sweep store: ",
    ),
    Case("sweep-output-empty", sweep(), files=spec(""), match=r"spec\.yaml: output"),
    Case(
        "sweep-output-nul",
        sweep(),
        files=spec("out\u0000x"),
        match=r"spec\.yaml: output: a folder path cannot hold control",
    ),
    Case(
        "sweep-output-newline",
        sweep(),
        files=spec("out\nx"),
        match=r"spec\.yaml: output: a folder path cannot hold control",
    ),
    Case("sweep-output-huge", sweep(), files=spec("o" * 5000), match=r"spec\.yaml: output"),
    # absurd sizes: refused at once, before expanding
    Case(
        "sweep-grid-200-cubed",
        sweep(),
        files=spec(axes=HUGE_AXES),
        timeout_s=10,
        match=r"spec\.yaml: axes: 8,000,000 points \(200 x 200 x 200 hardware configs.*raise max_points",
    ),
    Case(
        "validate-grid-200-cubed",
        ("validate", f"{{tmp}}/{SPEC}"),
        files=spec(axes=HUGE_AXES),
        timeout_s=10,
        match=r"spec\.yaml: axes: 8,000,000 points",
    ),
    Case(
        "sweep-zip-over-max-points",
        sweep(),
        files=spec(axes={"array.rows": list(range(1, 1002)), "array.cols": [8] * 1001}, combine="zip", max_points=1000),
        match=r"spec\.yaml: axes: 1,001 points \(1,001 hardware configs, 1 workload, 1 scheme\)",
    ),
    Case(
        "sweep-many-workloads",
        sweep(),
        files=spec(workloads=[f"w{i}" for i in range(2000)], max_points=1000),
        match=r"spec\.yaml: axes: 4,000 points \(2 hardware configs, 2,000 workloads, 1 scheme\)",
    ),
    Case("sweep-max-points-absurd", sweep(), files=spec(max_points=10**30), match=r"spec\.yaml: max_points"),
    Case("sweep-max-points-zero", sweep(), files=spec(max_points=0), match=r"spec\.yaml: max_points"),
    Case(
        "sweep-max-points-exceeded",
        sweep(),
        files=spec(max_points=1),
        match=r"spec\.yaml: axes: 2 points .* max_points \(1\)",
    ),
    Case("sweep-name-huge", sweep(), files=spec(name="n" * 1000), match=r"spec\.yaml: name"),
    Case(
        "sweep-constraints-many",
        sweep(),
        files=spec(constraints=["array.rows >= 1"] * 1000),
        match=r"spec\.yaml: constraints",
    ),
    Case("sweep-description-huge", sweep(), files=spec(description="d" * 100_000), match=r"spec\.yaml: description"),
    # flags
    Case(
        "sweep-workers-absurd", ("sweep", f"{{tmp}}/{SPEC}", "--workers", "1000000"), files=spec(), match=r"--workers"
    ),
    Case("sweep-workers-zero", ("sweep", f"{{tmp}}/{SPEC}", "--workers", "0"), files=spec(), match=r"--workers"),
    Case("sweep-batch-zero", sweep("--batch", "0"), files=spec(), match=r"--batch"),
    Case(
        "sweep-dask-not-an-address",
        sweep("--dask", "nonsense"),
        files=spec(),
        timeout_s=15,
        match=r"--dask: no Dask scheduler",
    ),
    Case(
        "sweep-dask-http",
        sweep("--dask", "http://127.0.0.1:1"),
        files=spec(),
        timeout_s=15,
        match=r"--dask: no Dask scheduler",
    ),
    # legitimate: a new folder, then the same folder again (resumes, runs nothing)
    Case("sweep-ok", sweep(), files=spec(), expect="ok", writes=True),
    *[
        Case(f"sweep-workload-axis-{key}", sweep(), files=spec(**fields), match=rf"spec\.yaml: {match}")
        for key, (fields, match) in {
            # workload axes: a field a sweep does not vary, bad values, a value no layer takes
            "unknown": ({"axes": {"workload.layers": [[]]}}, r"axes\.workload\.layers: .*allowed: workload\.batch"),
            "name": ({"axes": {"workload.name": ["x"]}}, r"axes\.workload\.name: "),
            "batch-zero": ({"axes": {"workload.batch": [1, 0]}}, r"axes\.workload\.batch\[1\]: workload tiny_cnn"),
            "batch-huge": ({"axes": {"workload.batch": [10**30]}}, r"axes\.workload\.batch\[0\]: .*batch: "),
            "batch-text": ({"axes": {"workload.batch": ["many"]}}, r"axes\.workload\.batch\[0\]: "),
            "context-no-layer": (
                {"axes": {"workload.context": [16]}},
                r"axes\.workload\.context\[0\]: workload tiny_cnn .*context: no layer takes it",
            ),
            "kv-dtype-bad": ({"axes": {"workload.kv_cache_dtype": ["int4"]}}, r"axes\.workload\.kv_cache_dtype\[0\]: "),
            "repeat-huge": ({"axes": {"workload.repeat": [10**6]}}, r"axes\.workload\.repeat\[0\]: "),
            "context-past-max": (
                {"axes": {"workload.context": [2**21]}, "workloads": ["tinyllama_1b_decode"]},
                r"axes\.workload\.context\[0\]: workload tinyllama_1b_decode \(tinyllama_1b_decode\.yaml\): context: ",
            ),
            "context-tensor-too-large": (
                {"axes": {"workload.context": [2**20]}, "workloads": ["llama3_8b_decode"]},
                r"axes\.workload\.context\[0\]: workload llama3_8b_decode .*elements per sample",
            ),
            # the weights axis
            "weights-bad": ({"axes": {"weights": ["int3"]}}, r"axes\.weights\[0\]: 'int3' is not a weight format"),
            "weights-list": ({"axes": {"weights": [["int8"]]}}, r"axes\.weights\[0\]: "),
            "weights-none-run": (
                {"axes": {"weights": ["int4_g128"]}, "schemes": ["static"]},
                r"axes\.weights: 1 \(scheme, weights\) pairs do not run: no point is left",
            ),
            # the hardware axis of whole configs
            "hardware-and-base": ({"axes": {"hardware": ["default"]}}, r"base: a spec with a `hardware` axis"),
            "hardware-none": ({"base": None, "axes": {"array.rows": [4]}}, r"base: missing"),
            "hardware-unknown": (
                {"base": None, "axes": {"hardware": ["nope"]}},
                r"axes\.hardware\[0\]: hardware 'nope'",
            ),
            "hardware-number": ({"base": None, "axes": {"hardware": [7]}}, r"axes\.hardware\[0\]: 7 is not a hardware"),
            # workload entries with --set-workload style changes
            "set-unknown-path": (
                {"workloads": [{"workload": "tiny_cnn", "set": {"nothing.here": 1}}]},
                r"workloads\[0\]\.set\.nothing\.here: ",
            ),
            "set-bad-value": (
                {"workloads": [{"workload": "tiny_cnn", "set": {"batch": -1}}]},
                r"workloads\[0\]\.set: tiny_cnn\.yaml with its set: batch: ",
            ),
            "set-empty": ({"workloads": [{"workload": "tiny_cnn", "set": {}}]}, r"workloads\[0\]\.set: "),
            "set-missing-file": (
                {"workloads": [{"workload": "nope", "set": {"batch": 2}}]},
                r"workloads\[0\]\.workload: workload 'nope' not found",
            ),
            "set-extra-key": (
                {"workloads": [{"workload": "tiny_cnn", "set": {"batch": 2}, "run": "x"}]},
                r"workloads\[0\]",
            ),
            "set-twice": (
                {"workloads": [{"workload": "tiny_cnn", "set": {"batch": 2}}] * 2},
                r"workloads\[1\]: .*listed twice",
            ),
            "set-same-name": (
                {"workloads": ["tiny_cnn", {"workload": "tiny_cnn", "set": {"batch": 2}}]},
                r"workloads\[1\]: workload name 'tiny_cnn' is used by two entries",
            ),
            "set-many": (
                {"workloads": [{"workload": "tiny_cnn", "set": {f"k{i}": i for i in range(1000)}}]},
                r"workloads\[0\]\.set: ",
            ),
        }.items()
    ],
    # a hardware axis naming a file that is not a config: one line naming that file
    Case(
        "sweep-workload-axis-hardware-escape",
        sweep(),
        files=spec(base=None, axes={"hardware": ["../../../../../../etc/passwd"]}),
        match=r"etc/passwd: top level is a str",
    ),
    Case(
        "sweep-workload-axis-hardware-dev-null",
        sweep(),
        files=spec(base=None, axes={"hardware": ["/dev/null"]}),
        match=r"/dev/null: is a character device",
    ),
    Case(
        "sweep-workload-axes-ok",
        sweep(),
        files=spec(
            base=None,
            axes={"hardware": ["default"], "workload.batch": [1, 2], "weights": ["symmetric", "asymmetric"]},
            workloads=[{"workload": "tiny_cnn", "set": {"name": "tiny2", "seed": 3}}],
            schemes=["fp32", "static"],
        ),
        expect="ok",
        writes=True,
    ),
]
