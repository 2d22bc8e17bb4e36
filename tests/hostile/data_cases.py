"""Hostile labelled data (``--data``, ``--calibration-size``) for an accuracy run (issue 17).

The workload is the shipped ``digits-mlp`` (batch 100, input [64], 10 classes). Every case must end in one
line naming the file or the option and what is allowed (exit 2), and write nothing: the data are checked
before the results folder is touched.
"""

from __future__ import annotations

import numpy as np

from .case import Case
from .cli_cases import fifo, folder, sparse, symlink
from .onnx_cases import bomb, npy, npz

X = np.zeros((100, 64), np.float32)
Y = np.arange(100) % 10


def _run(*extra: str) -> tuple[str, ...]:
    return ("compare", "digits-mlp", "--schemes", "fp32", "static", "--out", "{tmp}/out", *extra)


def _file_case(id_: str, content: bytes, match: str) -> Case:
    return Case(f"data-{id_}", _run("--data", "{tmp}/d.npz"), files={"d.npz": content}, match=f"d.npz.*{match}")


def _setup_case(id_: str, setup: object, match: str) -> Case:
    return Case(f"data-{id_}", _run("--data", "{tmp}/d.npz"), setup=setup, match=f"d.npz.*{match}")  # type: ignore[arg-type]


CASES = [
    _file_case("not-npz", b"x,y\n1,2\n", "not a .npy or .npz file"),
    _file_case("truncated-zip", npz(x=X, y=Y)[:300], r"not a \.npy or \.npz file|unreadable \.npz member"),
    _file_case("npy-not-npz", npy(X), "unknown array ''"),
    _file_case("no-labels", npz(x=X), "--data: no array 'y'.*allowed: x, y, x_calibration"),
    _file_case("no-images", npz(y=Y), "--data: no array 'x'"),
    _file_case("unknown-key", npz(x=X, y=Y, labels=Y), "unknown array 'labels'.*allowed: x, y, x_calibration"),
    _file_case(
        "images-wrong-shape",
        npz(x=np.zeros((100, 8, 8), np.float32), y=Y),
        r"--data\[x\]: shape \[100, 8, 8\], expected \[N, 64\]",
    ),
    _file_case("images-scalar", npz(x=np.float32(1), y=Y), r"--data\[x\]: shape \[\], expected"),
    _file_case(
        "no-images-at-all", npz(x=np.zeros((0, 64), np.float32), y=np.zeros(0)), r"--data\[x\]: shape \[0, 64\]"
    ),
    _file_case(
        "labels-wrong-shape", npz(x=X, y=np.zeros((100, 1))), r"--data\[y\]: shape \[100, 1\], expected \[100\]"
    ),
    _file_case("labels-too-few", npz(x=X, y=Y[:99]), r"--data\[y\]: shape \[99\], expected \[100\]"),
    _file_case(
        "label-out-of-range",
        npz(x=X, y=np.where(Y == 3, 10, Y)),
        r"label 10 at index 3 .*allowed: whole numbers 0\.\.9",
    ),
    _file_case("label-negative", npz(x=X, y=np.where(Y == 5, -1, Y)), r"label -1 at index 5"),
    _file_case("label-fraction", npz(x=X, y=Y + 0.5), r"label 0\.5 at index 0"),
    _file_case("label-nan", npz(x=X, y=np.where(Y == 2, np.nan, Y)), r"--data\[y\]: non-finite value nan"),
    _file_case("image-inf", npz(x=np.full((100, 64), np.inf, np.float32), y=Y), r"--data\[x\]: non-finite value inf"),
    _file_case("images-strings", npz(x=np.array(["a"] * 100), y=Y), "not a real number type"),
    _file_case("images-complex", npz(x=X.astype(np.complex64), y=Y), "not a real number type"),
    _file_case("pickled-labels", npz(x=X, y=np.array([{"a": 1}] * 100, dtype=object)), "pickled object array"),
    _file_case(
        "calibration-wrong-shape",
        npz(x=X, y=Y, x_calibration=np.zeros((10, 63), np.float32)),
        r"--data\[x_calibration\]: shape \[10, 63\]",
    ),
    _file_case(
        "fewer-than-a-batch", npz(x=X[:5], y=Y[:5]), r"--data: 5 test images, fewer than the workload's batch 100"
    ),
    _file_case("bomb", bomb(), "larger than the 2 GiB limit"),
    _setup_case("fifo", fifo("d.npz"), "FIFO"),
    _setup_case("folder", folder("d.npz"), "directory"),
    _setup_case("huge-sparse", sparse("d.npz"), "larger than"),
    _setup_case("link-loop", symlink("d.npz", "d.npz"), "link"),
    # a name with a path in it is a file, never a built-in data set
    Case(
        "data-path-escape",
        _run("--data", "../../digits"),
        match=r"\.\./\.\./digits: --data: no such file.*allowed: digits",
    ),
    Case(
        "data-unknown-name", _run("--data", "mnist"), match="mnist: --data: no such file, and not a built-in data set"
    ),
    Case(
        "data-digits-wrong-input",
        ("compare", "tiny_cnn", "--data", "digits", "--out", "{tmp}/out"),
        match=r"--data: digits images have 64 pixels.*\[3, 16, 16\]",
    ),
    Case(
        "data-calibration-size-zero",
        _run("--data", "digits", "--calibration-size", "0"),
        match=r"--calibration-size: 0 calibration images asked, digits has 180.*allowed: 1\.\.180",
    ),
    Case(
        "data-calibration-size-huge",
        _run("--data", "digits", "--calibration-size", "100000"),
        match=r"--calibration-size: 100000 .*allowed: 1\.\.180",
    ),
    Case(
        "data-calibration-size-alone",
        _run("--calibration-size", "10"),
        match=r"--calibration-size: only applies to an accuracy run.*allowed: with --data",
    ),
    Case("data-sweep-alone", _run("--accuracy-sweep"), match=r"--accuracy-sweep: only applies"),
    Case(
        "data-observer-unknown",
        _run("--data", "digits", "--observer", "bogus"),
        match=r"--observer: invalid choice: 'bogus' \(choose from 'minmax', 'moving_average_minmax', 'percentile'\)",
    ),
    Case(
        "data-granularity-unknown",
        _run("--data", "digits", "--granularity", "per_row"),
        match=r"--granularity: invalid choice: 'per_row' \(choose from 'per_channel', 'per_tensor'\)",
    ),
    Case(
        "data-with-input",
        _run("--data", "digits", "--input", "{tmp}/x.npy"),
        files={"x.npy": npy(X)},
        match="--data: .*leave out --input",
    ),
    Case("data-with-timing-only", _run("--data", "digits", "--timing-only"), match="--data: .*leave out --timing-only"),
]
