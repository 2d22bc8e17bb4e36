"""A results folder survives concurrent runs and kills (issue 14 items 2-4, 6, 7).

- concurrent ``run --scheme`` processes into one folder keep every scheme's rows, and all files agree;
- SIGKILL at every step of a save, and at random times in a loop of saves: the folder is always one
  generation (the old or the new, whole), ``report`` accepts it, and the next locker leaves no temp file;
- another configuration's results in the folder are refused before simulating; a corrupt folder is one
  line; ``import scalesim`` never writes over its input.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.config import load_hardware, load_workload
from accelsim.config.loader import resolve
from accelsim.results import folder as results_folder
from accelsim.results import records
from accelsim.results.records import LayerRecord, MergeCheck, check_mergeable, read_saved, update_results
from accelsim.simulation import SCHEMES, RunOptions, compare_schemes, run_meta

FOLDER = ("tiny_cnn", "default-32x32")
FORK = multiprocessing.get_context("fork")  # children inherit the imported simulator: milliseconds to start
TINY, DEFAULT = load_workload("tiny_cnn"), load_hardware(None)


@pytest.fixture(scope="module")
def runs() -> list:
    """Every scheme of tiny_cnn, timing only: the rows the save tests write."""
    return compare_schemes(TINY, DEFAULT, options=RunOptions(log=True, timing_only=True))


def _save(folder: Path, runs: list, tag: int = 0, checked: MergeCheck | None = None) -> None:
    """Save ``runs`` with every file carrying ``tag`` (in each row's ``tiles``, and the event logs), so
    files of different saves can be told apart; ``checked``: the run's check of the folder before it ran."""
    rows = [replace(row, tiles=tag) for run in runs for row in run.rows + [run.total]]
    logs = {run.scheme: [("tag", tag, tag, "x")] + run.engine.log for run in runs}
    update_results(folder, rows, run_meta(TINY, DEFAULT, runs), logs, checked or MergeCheck())


def assert_one_generation(folder: Path) -> dict[str, set[int]]:
    """The folder's files match its manifest and each other; returns the tags found per scheme."""
    saved = read_saved(folder)  # checks every file against the manifest (after finishing a killed save)
    with open(folder / "results.csv", newline="") as handle:
        csv_rows = [(r["scheme"], r["layer"], int(r["total_cycles"]), int(r["tiles"])) for r in csv.DictReader(handle)]
    assert csv_rows == [(r.scheme, r.layer, r.total_cycles, r.tiles) for r in saved.rows]
    assert set(saved.timeline) == {r.scheme for r in saved.rows} == set(saved.meta["runs"]) == set(saved.meta["events"])
    tags = {s: {r.tiles for r in saved.rows if r.scheme == s} for s in saved.timeline}
    assert all(tags[s] == {events[0][1]} for s, events in saved.timeline.items() if events[0][0] == "tag")
    return tags


def assert_no_leftovers(folder: Path) -> None:
    names = set(os.listdir(folder)) - {"report.md", "report.html", "figures"}
    assert names == {"results.csv", "results.json", "timeline.json", "manifest.json"}


def test_concurrent_cli_runs_keep_every_scheme(tmp_path: Path) -> None:
    """Four ``run`` processes, one per scheme, into one folder at once: every row is there and equals
    what ``compare`` computes, and the files agree."""
    assert main(["compare", "tiny_cnn", "--timing-only", "--out", str(tmp_path / "reference")]) == 0
    reference = {(r.scheme, r.layer): r for r in read_saved(tmp_path.joinpath("reference", *FOLDER)).rows}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accelsim",
                "run",
                "tiny_cnn",
                "--timing-only",
                "--scheme",
                scheme,
                "--out",
                str(tmp_path / "runs"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for scheme in SCHEMES
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(SCHEMES), errors
    folder = tmp_path.joinpath("runs", *FOLDER)
    assert_one_generation(folder)
    assert {(r.scheme, r.layer): r for r in read_saved(folder).rows} == reference
    assert_no_leftovers(folder)


def _save_repeatedly(folder: Path, runs: list, times: int) -> None:
    for tag in range(times):
        _save(folder, runs, tag)


def test_concurrent_saves_lose_nothing(tmp_path: Path, runs: list) -> None:
    """Many interleaved read-merge-writes, one process per scheme: without the lock one process writes
    back rows it read before another's save, and schemes vanish; with it all four stay."""
    folder = tmp_path / "r"
    procs = [FORK.Process(target=_save_repeatedly, args=(folder, [run], 15)) for run in runs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    assert assert_one_generation(folder) == {s: {14} for s in SCHEMES}  # every scheme, its last save


def _hold_lock(folder: Path, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    with results_folder.locked(folder):
        ready.set()
        time.sleep(60)


def test_a_held_folder_is_busy_and_a_killed_holder_frees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path.joinpath(*FOLDER)
    folder.mkdir(parents=True)
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(folder, ready))
    holder.start()
    assert ready.wait(30)
    monkeypatch.setattr(results_folder, "LOCK_TIMEOUT_S", 0.3)
    argv = ["run", "tiny_cnn", "--timing-only", "--scheme", "woq", "--out", str(tmp_path)]
    try:
        assert main(argv) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"accelsim: error: {folder}: results folder busy") and "0.3 s" in line
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    assert main(argv) == 0  # the kernel dropped the dead holder's lock: nothing stale to remove


def _kill_at_step(folder: Path, runs: list, step: int) -> None:
    """Save tag 2, SIGKILLing this process at the ``step``-th file-system call of the save."""
    calls = 0

    def hook(real):
        def call(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return call

    for name in ("replace", "fsync", "mkdir", "rename"):
        setattr(os, name, hook(getattr(os, name)))
    _save(folder, runs, 2)
    os._exit(0)


def test_kill_at_every_step_of_a_save(tmp_path: Path, runs: list) -> None:
    """A save killed at any fsync, rename or mkdir: the folder then reads as the old save or the new one,
    whole, never a mix; from the commit point on it is the new one; the next locker removes what the
    killed save left behind; ``report`` accepts the folder."""
    seen = []
    for step in range(1, 40):
        folder = tmp_path / f"step{step}"
        _save(folder, runs, 1)
        child = FORK.Process(target=_kill_at_step, args=(folder, runs, step))
        child.start()
        child.join(60)
        if child.exitcode == 0:
            break  # the save needs fewer steps: every one was killed once
        assert child.exitcode == -signal.SIGKILL
        tags = assert_one_generation(folder)
        assert set(map(frozenset, tags.values())) in ({frozenset({1})}, {frozenset({2})})
        seen.append(next(iter(tags["fp32"])))
        assert_no_leftovers(folder)
    assert step > 8 and seen == sorted(seen) and seen[0] == 1 and seen[-1] == 2  # old until the commit, then new
    assert main(["report", str(folder)]) == 0


def _save_forever(folder: Path, runs: list, tag: int) -> None:
    while True:
        tag += 1
        _save(folder, runs, tag)


def test_kill_at_random_times(tmp_path: Path, runs: list) -> None:
    """SIGKILL a process that saves in a loop (a save takes tens of ms, mostly fsync), at random times,
    20 times: always one generation."""
    folder = tmp_path / "r"
    _save(folder, runs, 0)
    rng = random.Random(14)
    tags = set()
    for kill in range(1, 21):
        child = FORK.Process(target=_save_forever, args=(folder, runs, 1000 * kill))
        child.start()
        time.sleep(rng.uniform(0.01, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        found = assert_one_generation(folder)
        assert len(set(map(frozenset, found.values()))) == 1
        tags |= found["fp32"]
        assert_no_leftovers(folder)
    assert len(tags) > 8  # most kills came after the child's first save, in its first few or later ones
    assert main(["report", str(folder)]) == 0


def test_run_scheme_by_scheme_fills_a_comparison(tmp_path: Path) -> None:
    """Existing behaviour kept: ``run --scheme`` one at a time gives the rows ``compare`` gives, and a
    byte-identical save (manifest included) when repeated."""
    for scheme in SCHEMES:
        assert main(["run", "tiny_cnn", "--timing-only", "--scheme", scheme, "--out", str(tmp_path / "runs")]) == 0
    for name in ("a", "b"):
        assert main(["compare", "tiny_cnn", "--timing-only", "--out", str(tmp_path / name)]) == 0
    by_run, a, b = (tmp_path.joinpath(n, *FOLDER) for n in ("runs", "a", "b"))
    assert sorted(read_saved(by_run).rows, key=lambda r: (r.scheme, r.layer)) == sorted(
        read_saved(a).rows, key=lambda r: (r.scheme, r.layer)
    )
    for name in ("results.csv", "results.json", "timeline.json", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (
        json.loads((a / "results.json").read_text())["meta"]["config_digest"]
        == json.loads((by_run / "results.json").read_text())["meta"]["config_digest"]
    )


def test_a_save_parses_again_only_when_the_files_changed_since_the_check(
    tmp_path: Path, runs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run parses its results folder before simulating (check_mergeable) and merges into it under the lock
    when it saves, handed the check: the save reuses that parse while the folder holds the same files, and
    parses again when another save came in between, whose rows it then keeps."""
    folder = tmp_path / "r"
    _save(folder, runs, 1)
    parses: list[Path] = []
    parse = records._parse
    monkeypatch.setattr(records, "_parse", lambda saved, where: parses.append(where) or parse(saved, where))
    by_scheme = {run.scheme: [run] for run in runs}

    def check() -> MergeCheck:
        return check_mergeable(folder, TINY.model_dump(mode="json"), DEFAULT.model_dump(mode="json"), False, "")

    _save(folder, by_scheme["static"], 2, check())
    assert len(parses) == 1  # the save merged into the files the check had parsed
    checked = check()
    _save(folder, by_scheme["dynamic"], 3, checked)  # another run that checked the same files saves first
    _save(folder, by_scheme["fp32"], 4, checked)  # this run's save: the files changed since its check
    assert len(parses) == 3  # the dynamic save reused the check's parse; the fp32 save read the new files
    assert assert_one_generation(folder) == {"fp32": {4}, "woq": {1}, "dynamic": {3}, "static": {2}}


def test_other_config_is_refused_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Results of the workload before an edit (same name, batch 2 -> 3) are refused with one line that
    says how to go on, before a long simulation would start; another --out works."""
    source = Path(resolve("tiny_cnn", "workload")).read_text()
    (tmp_path / "w.yaml").write_text(source)
    argv = ["run", str(tmp_path / "w.yaml"), "--timing-only", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    folder = tmp_path.joinpath("out", *FOLDER)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (tmp_path / "w.yaml").write_text(source.replace("batch: 2", "batch: 3"))
    from accelsim import simulation

    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: pytest.fail("simulated before checking the folder"))
    assert main([*argv, "--scheme", "woq"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{folder}/results.json: holds results of another configuration" in line
    assert "workload.batch 2 -> 3" in line and "another --out" in line and "remove this folder" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    assert main([*argv[:-1], str(tmp_path / "elsewhere")]) == 0


def test_overrides_get_their_own_folder_not_a_refusal(tmp_path: Path) -> None:
    """``--set`` changes the folder name (a hash), so it never collides with the unmodified config."""
    base = ["run", "tiny_cnn", "--timing-only", "--out", str(tmp_path)]
    assert main(base) == 0 and main([*base, "--set", "array.rows=16"]) == 0
    assert len(list(tmp_path.glob("tiny_cnn/default-32x32*"))) == 2


def test_old_format_results_json_is_one_line_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path.joinpath(*FOLDER)
    folder.mkdir(parents=True)
    old = json.dumps({"rows": [{"workload": "tiny_cnn", "scheme": "static"}]}).encode()
    (folder / "results.json").write_bytes(old)
    assert main(["run", "tiny_cnn", "--timing-only", "--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"accelsim: error: {folder}/results.json: meta: not an accelsim results file")
    assert os.listdir(folder) == ["results.json"] and (folder / "results.json").read_bytes() == old


def test_a_folder_from_before_manifests_is_read_and_upgraded(tmp_path: Path, runs: list) -> None:
    """Folders written before this change have no manifest: read as they are, and the next save adds one."""
    folder = tmp_path / "r"
    _save(folder, runs[:1], 1)
    (folder / "manifest.json").unlink()
    assert assert_one_generation(folder) == {"fp32": {1}}
    _save(folder, runs[1:2], 2)
    assert assert_one_generation(folder) == {"fp32": {1}, "woq": {2}}
    assert_no_leftovers(folder)


def test_import_never_overwrites_its_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    topology = tmp_path / "r.csv"
    text = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\nC,8,8,3,3,3,4,1,\n"
    topology.write_text(text)
    os.link(topology, tmp_path / "hard.yaml")
    for output in (topology, tmp_path / "hard.yaml"):
        assert main(["import", "scalesim", str(topology), "-o", str(output)]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"accelsim: error: {output}: --output: would overwrite the input topology")
    assert topology.read_text() == text
    assert main(["import", "scalesim", str(topology), "-o", str(tmp_path / "r.yaml")]) == 0


def test_records_round_trip_every_field(tmp_path: Path, runs: list) -> None:
    """Validation on read keeps every value (NaN, inf, ints, strings) as written."""
    rows = [replace(r, sqnr_db=float("inf"), max_abs_error=0.25) for r in runs[0].rows] + [runs[0].total]
    update_results(tmp_path, rows, run_meta(TINY, DEFAULT, runs[:1]), {})
    back = read_saved(tmp_path).rows
    assert [type(r) for r in back] == [LayerRecord] * len(rows)
    assert [repr(r) for r in back] == [repr(r) for r in rows]


def test_results_files_hold_the_text_json_and_csv_write(runs: list) -> None:
    """results.json is written without json's (pure-Python) indented encoder and results.csv mostly without the
    csv writer: their bytes equal what ``json.dumps(indent=1)`` and ``csv.DictWriter`` write, for plain rows and
    for odd ones (text the csv writer quotes, non-ASCII, infinities, a column of mixed types, nested meta)."""
    import io
    import math
    from dataclasses import fields

    names = [f.name for f in fields(LayerRecord)]

    def expected(rows: list[LayerRecord], meta: dict) -> tuple[bytes, bytes]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: records._csv_value(getattr(row, k)) for k in names} for row in rows)
        doc = {"meta": meta, "rows": [{k: records._json_value(getattr(r, k)) for k in names} for r in rows]}
        return buffer.getvalue().encode(), (json.dumps(doc, indent=1) + "\n").encode()

    plain = [row for run in runs for row in run.rows + [run.total]]
    meta = run_meta(TINY, DEFAULT, runs) | {
        "odd": {"a": [], "b": {}, "c": [1, 2.5, None, True, "\u00e9"], "d": {1: (2, [])}}
    }
    odd = [
        replace(plain[0], layer='conv "1", \u2603', sqnr_db=math.inf, max_abs_error=-math.inf, utilization=1e-300),
        replace(plain[1], layer="line\nbreak"),
        replace(plain[2], macs=True, tiles=1.5, latency_s=2, bound_by=None),  # types no record has: value by value
    ]
    for rows in (plain, odd[:1], odd, plain[:1] + odd[2:], []):
        files = records._files(rows, meta, {})
        assert (files["results.csv"], files["results.json"]) == expected(rows, meta)


def test_a_save_hashes_no_file_its_check_hashed(tmp_path: Path, runs: list) -> None:
    """A run's check and its save each read the folder's files and check them against the manifest: the save
    hashes none that the check hashed (the digests of the same bytes are remembered), only the files it writes."""
    folder = tmp_path / "r"
    _save(folder, runs, 1)
    results_folder._sha256.cache_clear()
    checked = check_mergeable(folder, TINY.model_dump(mode="json"), DEFAULT.model_dump(mode="json"), False, "")
    _save(folder, runs, 2, checked)
    info = results_folder._sha256.cache_info()
    assert (info.hits, info.misses) == (3, 6)  # the check's three files hashed once; the save's three new ones
    assert assert_one_generation(folder) == {run.scheme: {2} for run in runs}
