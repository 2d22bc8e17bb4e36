"""Hostile file paths and sizes for every CLI entry point (issue 14 items 8, 9, 11).

Inputs that are FIFOs (a reader must not block), devices (``/dev/zero`` never ends), folders, huge sparse
files (3 GB that use no disk), missing files, names with a NUL; outputs that are files where a folder is
needed, folders where a file is needed, devices, ``/proc``, empty names; and runs too big to finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .case import Case

Setup = Callable[[Path], None]
HUGE = 3 * 2**30


def fifo(name: str) -> Setup:
    def make(tmp: Path) -> None:
        os.mkfifo(tmp / name)

    return make


def folder(name: str) -> Setup:
    def make(tmp: Path) -> None:
        (tmp / name).mkdir(parents=True)

    return make


def sparse(name: str, size: int = HUGE) -> Setup:
    """A file of ``size`` bytes that occupies no disk (``truncate`` leaves a hole)."""

    def make(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp / name, "wb") as handle:
            handle.truncate(size)

    return make


def symlink(name: str, target: str) -> Setup:
    def make(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, tmp / name)

    return make


def results_folder(name: str, entry: str, make: Callable[[Path], None]) -> Setup:
    """A folder that looks like ``run``'s output except that ``entry`` (e.g. results.json) is hostile."""

    def build(tmp: Path) -> None:
        (tmp / name).mkdir()
        for file in ("results.json", "results.csv", "timeline.json"):
            if file != entry:
                (tmp / name / file).write_text("{}\n")
        make(tmp / name / entry)

    return build


#: hostile things to name where a config file is read: (label, path argument, setup)
BAD_INPUTS: list[tuple[str, str, Setup | None]] = [
    ("fifo", "{tmp}/in.yaml", fifo("in.yaml")),
    ("dev-zero", "/dev/zero", None),
    ("dev-urandom", "/dev/urandom", None),
    ("folder", "{tmp}/in.yaml", folder("in.yaml")),
    ("huge-sparse", "{tmp}/in.yaml", sparse("in.yaml")),
    ("nul-in-name", "{tmp}/in\0.yaml", None),
    ("empty-name", "", None),
    ("link-to-fifo", "{tmp}/link.yaml", lambda tmp: (fifo("f")(tmp), symlink("link.yaml", "f")(tmp))),
    ("link-loop", "{tmp}/loop.yaml", symlink("loop.yaml", "loop.yaml")),
    ("proc-mem", "/proc/self/mem", None),
    ("name-too-long", "{tmp}/" + "x" * 300 + ".yaml", None),
]

#: how each entry point takes a workload file (the {in} placeholder) and a hardware file ({hw})
READERS: dict[str, tuple[str, ...]] = {
    "validate": ("validate", "{in}"),
    "show": ("show", "{in}"),
    "run": ("run", "{in}", "--timing-only"),
    "run-hw": ("run", "tiny_cnn", "--hw", "{in}", "--timing-only"),
    "compare": ("compare", "{in}", "--timing-only"),
    "explain": ("explain", "{in}", "--layer", "conv1"),
    "golden": ("golden", "{in}", "--layer", "conv1", "-o", "{tmp}/g.npz"),
    "lower": ("lower", "{in}"),
    "lower-hw": ("lower", "tiny_cnn", "--hw", "{in}"),
    "import": ("import", "scalesim", "{in}", "-o", "{tmp}/w.yaml"),
    "sweep": ("sweep", "{in}", "--workers", "1"),
}


def _reader_cases() -> list[Case]:
    cases = []
    for command, argv in READERS.items():
        for label, path, setup in BAD_INPUTS:
            if command not in ("validate", "show") and label in ("dev-urandom", "link-loop", "name-too-long"):
                continue  # the generic loader's cases; other commands share it
            args = tuple(a.replace("{in}", path) for a in argv)
            cases.append(Case(f"read-{command}-{label}", args, setup=setup, timeout_s=10))
    return cases


#: where ``run``/``compare`` write their results folder (``--out``): none is a usable folder
BAD_OUT_FOLDERS: list[tuple[str, str, Setup | None]] = [
    ("file", "{tmp}/out", lambda tmp: (tmp / "out").write_text("a file\n")),
    ("under-file", "{tmp}/out/sub", lambda tmp: (tmp / "out").write_text("a file\n")),
    ("dev-null", "/dev/null", None),
    ("proc", "/proc/self/accelsim", None),
    ("empty-name", "", None),
    ("nul-in-name", "{tmp}/o\0ut", None),
    ("fifo", "{tmp}/out", fifo("out")),
    (
        "results-folder-is-file",
        "{tmp}/out",
        lambda tmp: (folder("out/tiny_cnn")(tmp), (tmp / "out/tiny_cnn/default-32x32").write_text("x")),
    ),
    ("results-json-is-folder", "{tmp}/out", folder("out/tiny_cnn/default-32x32/results.json")),
    (
        "results-json-is-fifo",
        "{tmp}/out",
        lambda tmp: (folder("out/tiny_cnn/default-32x32")(tmp), fifo("out/tiny_cnn/default-32x32/results.json")(tmp)),
    ),
    ("results-json-huge", "{tmp}/out", sparse("out/tiny_cnn/default-32x32/results.json")),
    ("name-too-long", "{tmp}/" + "o" * 300, None),
]

#: where ``golden -o`` and ``import -o`` write one file: none is a usable file name
BAD_OUT_FILES: list[tuple[str, str, Setup | None]] = [
    ("folder", "{tmp}/out", folder("out")),
    ("under-file", "{tmp}/f/out", lambda tmp: (tmp / "f").write_text("a file\n")),
    ("dev-null", "/dev/null", None),
    ("proc", "/proc/self/accelsim", None),
    ("empty-name", "", None),
    ("nul-in-name", "{tmp}/o\0ut", None),
    ("fifo", "{tmp}/out", fifo("out")),
    ("trailing-slash", "{tmp}/out/", None),
    ("name-too-long", "{tmp}/" + "o" * 300, None),
]


def _writer_cases() -> list[Case]:
    cases = []
    for command in ("run", "compare"):
        for label, path, setup in BAD_OUT_FOLDERS:
            cases.append(
                Case(
                    f"out-{command}-{label}",
                    (command, "tiny_cnn", "--timing-only", "--out", path),
                    setup=setup,
                    timeout_s=20,
                )
            )
    for label, path, setup in BAD_OUT_FILES:
        cases.append(
            Case(
                f"out-golden-{label}", ("golden", "tiny_cnn", "--layer", "conv1", "-o", path), setup=setup, timeout_s=20
            )
        )
        cases.append(
            Case(
                f"out-import-{label}",
                ("import", "scalesim", "t.csv", "-o", path),
                files={"t.csv": TOPOLOGY},
                setup=setup,
                timeout_s=20,
            )
        )
    return cases


TOPOLOGY = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    "conv1, 16, 16, 3, 3, 3, 8, 1,\n"
)


def _report_cases() -> list[Case]:
    """``report`` reads results.json / timeline.json from a folder and writes report.md / report.html into it."""
    folder_args = [
        ("missing", "{tmp}/nope", None),
        ("file", "{tmp}/r", lambda tmp: (tmp / "r").write_text("x")),
        ("fifo", "{tmp}/r", fifo("r")),
        ("dev-zero", "/dev/zero", None),
        ("empty-name", "", None),
        ("nul-in-name", "{tmp}/r\0", None),
        ("proc", "/proc/self", None),
    ]
    entries = [
        ("results-json-fifo", "results.json", lambda p: os.mkfifo(p)),
        ("results-json-folder", "results.json", lambda p: p.mkdir()),
        ("results-json-huge", "results.json", lambda p: sparse(p.name)(p.parent)),
        ("results-json-dev-zero", "results.json", lambda p: os.symlink("/dev/zero", p)),
        ("timeline-json-fifo", "timeline.json", lambda p: os.mkfifo(p)),
        ("timeline-json-huge", "timeline.json", lambda p: sparse(p.name)(p.parent)),
    ]
    cases = [Case(f"report-{label}", ("report", path), setup=setup, timeout_s=10) for label, path, setup in folder_args]
    cases += [
        Case(f"report-{label}", ("report", "{tmp}/r"), setup=results_folder("r", entry, make), timeout_s=10)
        for label, entry, make in entries
    ]
    return cases


#: runs too big to finish: the values path's tensors, or the timing engine's per-tile state
SIZE_CASES = [
    Case(
        "size-run-values-batch-1000",
        ("run", "resnet50", "--set-workload", "batch=1000"),
        match=r"--timing-only|batch",
        timeout_s=30,
    ),
    Case(
        "size-compare-values-batch-1000",
        ("compare", "resnet50", "--set-workload", "batch=1000"),
        match=r"--timing-only|batch",
        timeout_s=30,
    ),
    Case(
        "size-golden-batch-1000",
        ("golden", "resnet50", "--layer", "conv1", "--set-workload", "batch=1000", "-o", "{tmp}/g.npz"),
        match="batch",
        timeout_s=30,
    ),
    Case(
        "size-timing-batch-1e9",
        ("run", "resnet50", "--timing-only", "--set-workload", "batch=1000000000"),
        match="batch",
        timeout_s=30,
    ),
    Case(
        "size-timing-huge-input",
        ("run", "tiny_cnn", "--timing-only", "--set-workload", "input_shape=[3, 1000000, 1000000]"),
        timeout_s=30,
    ),
    Case(
        "size-timing-batch-1000-ok",
        ("run", "tiny_cnn", "--timing-only", "--set-workload", "batch=1000"),
        expect="ok",
        writes=True,
        timeout_s=60,
    ),
]

#: usage mistakes, the options this issue's work added among them: one line naming the option, no usage block
USAGE_CASES = [
    Case(
        "usage-weights-unknown",
        ("run", "tiny_cnn", "--weights", "lopsided"),
        match=r"--weights: invalid choice: 'lopsided'",
    ),
    Case(
        "usage-weights-path",
        ("golden", "tiny_cnn", "--layer", "conv1", "--weights", "../../x", "-o", "{tmp}/g.npz"),
        match=r"--weights: invalid choice",
    ),
    Case(
        "usage-flavour-unknown",
        ("compare", "tiny_cnn", "--flavour", "tflite_symmetric\x00"),
        match=r"--flavour: invalid choice",
    ),
    Case("usage-scheme-unknown", ("lower", "tiny_cnn", "--scheme", "int4"), match=r"--scheme: invalid choice: 'int4'"),
    Case("usage-wide-with-value", ("show", "tiny_cnn", "--wide=yes"), match=r"--wide: ignored explicit argument"),
    Case("usage-unknown-command", ("frobnicate",), match=r"accelsim: error: argument COMMAND: invalid choice"),
    Case("usage-missing-workload", ("run",), match=r"accelsim run: error: .*WORKLOAD"),
    Case("usage-unknown-option", ("run", "tiny_cnn", "--colour"), match=r"unrecognized arguments: --colour"),
    Case(
        "usage-new-options-ok",
        (
            "run",
            "tiny_cnn",
            "--timing-only",
            "--weights",
            "asymmetric_int8",
            "--wide",
            "--flavour",
            "pytorch_qnnpack",
            "--scheme",
            "dynamic",
            "--out",
            "{tmp}/out",
        ),
        expect="ok",
        writes=True,
    ),
]

CASES: list[Case] = (
    _reader_cases()
    + _writer_cases()
    + _report_cases()
    + SIZE_CASES
    + USAGE_CASES
    + [
        Case("validate-ok", ("validate", "tiny_cnn", "default"), expect="ok"),
        Case("read-validate-dev-null", ("validate", "/dev/null"), match="/dev/null"),
        Case(
            "read-import-huge-csv",
            ("import", "scalesim", "{tmp}/t.csv", "-o", "{tmp}/w.yaml"),
            setup=sparse("t.csv"),
            match="t.csv",
            timeout_s=10,
        ),
        Case(
            "read-import-csv-fifo",
            ("import", "scalesim", "{tmp}/t.csv", "-o", "{tmp}/w.yaml"),
            setup=fifo("t.csv"),
            match="t.csv",
            timeout_s=10,
        ),
    ]
)
