"""Labelled data for measuring accuracy (``--data``): a user's ``.npz`` of inputs ``x`` and labels ``y``, or
the built-in ``digits`` set, as a calibration part and a test part.

``digits`` is scikit-learn's bundled ``load_digits`` (1,797 8x8 greyscale images of handwritten digits,
inside the wheel: no download), pixels scaled from 0..16 to 0..1. Its split is fixed by the image's index
in that array, so it needs no random numbers and never changes (docs/data.md): index mod 10 in 0..5 is the
training set (1,080 images, what ``tools/train_digits.py`` trains on), 6 the calibration set (180), 7..9 the
test set (537). A user's ``.npz`` is read with the checks of :mod:`accelsim.values.user_data` (regular file,
size, no pickles, finite numbers): ``x`` is the test set, ``y`` its labels, and the optional
``x_calibration`` the calibration set (without it, the first images of ``x`` calibrate).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError

#: the built-in data sets, by the name ``--data`` takes
BUILTIN = ("digits",)
#: the digits split: the part each image's index mod 10 falls in
DIGITS_PARTS = {"train": range(6), "calibration": range(6, 7), "test": range(7, 10)}
#: images a user's ``.npz`` without ``x_calibration`` calibrates on (the first of ``x``) unless told
DEFAULT_CALIBRATION = 100
#: the arrays a user's ``.npz`` may hold
DATA_KEYS = ("x", "y", "x_calibration")


@dataclass(frozen=True)
class LabelledData:
    """A test set with its labels and a calibration set, batch first, shaped as the workload's input."""

    name: str  # "digits" or the file as the user named it
    test_x: np.ndarray  # [N, *input_shape] float32
    test_y: np.ndarray  # [N] int64, each in 0..classes-1
    calibration_x: np.ndarray  # [C, *input_shape] float32

    @property
    def digest(self) -> str:
        """sha256 of the arrays (their bytes in this order), so results name the exact data they measured."""
        h = hashlib.sha256()
        for array in (self.test_x, self.test_y, self.calibration_x):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, object]:
        """What results files record of the data: its name, sizes and digest."""
        return {
            "name": self.name,
            "test_images": int(self.test_x.shape[0]),
            "calibration_images": int(self.calibration_x.shape[0]),
            "sha256": self.digest,
        }


def digits_split() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's digits as ``{part: (x [n, 64] float32 in 0..1, y [n] int64)}``, split by index mod 10."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise AccelsimError(
            "the built-in digits data set needs scikit-learn",
            path="--data",
            allowed="pip install 'accelsim[data]', or an .npz of x and y",
        ) from None
    digits = load_digits()
    x = (np.asarray(digits.data, np.float32) / np.float32(16)).astype(np.float32)
    y = np.asarray(digits.target, np.int64)
    part_of = np.arange(len(y)) % 10
    return {part: (x[np.isin(part_of, list(r))], y[np.isin(part_of, list(r))]) for part, r in DIGITS_PARTS.items()}


def load_labelled(
    spec: str, input_shape: tuple[int, ...], classes: int, *, calibration_size: int | None = None
) -> LabelledData:
    """The data ``--data`` names (``digits`` or an ``.npz``) for a workload with per-sample ``input_shape``
    and ``classes`` output classes; ``calibration_size`` takes the first images of the calibration set."""
    if spec in BUILTIN:
        parts = digits_split()
        test_x, test_y = parts["test"]
        data = LabelledData(
            spec, _shaped_digits(test_x, input_shape), test_y, _shaped_digits(parts["calibration"][0], input_shape)
        )
        _check_labels(test_y, classes, "digits", "y")
    elif not os.path.lexists(spec):
        raise AccelsimError(
            "no such file, and not a built-in data set",
            file=spec,
            path="--data",
            allowed=f"{', '.join(BUILTIN)}, or an .npz of x and y",
        )
    else:
        data = _user_data(spec, input_shape, classes)
    return _first_calibration(data, calibration_size)


def _shaped_digits(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Digits' 64 pixels as the workload's per-sample input (``[64]``, ``[1, 8, 8]``, ...)."""
    if int(np.prod(input_shape)) != x.shape[1]:
        raise AccelsimError(
            f"digits images have 64 pixels (8x8), the workload's input_shape {list(input_shape)} has "
            f"{int(np.prod(input_shape))} elements",
            path="--data",
            allowed="a workload whose input has 64 elements, e.g. [64] or [1, 8, 8]",
        )
    return np.ascontiguousarray(x.reshape(x.shape[0], *input_shape))


def _user_data(spec: str, input_shape: tuple[int, ...], classes: int) -> LabelledData:
    from accelsim.values.user_data import load_arrays

    file = os.fspath(spec)
    arrays = load_arrays(file, field="--data")
    unknown = sorted(set(arrays) - set(DATA_KEYS))
    if unknown:
        raise AccelsimError(f"unknown array {unknown[0]!r}", file=file, path="--data", allowed=", ".join(DATA_KEYS))
    for key in ("x", "y"):
        if key not in arrays:
            raise AccelsimError(f"no array {key!r}", file=file, path="--data", allowed=", ".join(DATA_KEYS))
    x = _checked_inputs(arrays["x"], input_shape, file, "x")
    y = arrays["y"]
    if y.shape != (x.shape[0],):
        raise AccelsimError(
            f"shape {list(y.shape)}, expected [{x.shape[0]}] (one label per image of x)", file=file, path="--data[y]"
        )
    labels = _check_labels(y, classes, file, "y")
    calibration = arrays.get("x_calibration")
    calibration_x = x if calibration is None else _checked_inputs(calibration, input_shape, file, "x_calibration")
    return LabelledData(file, x, labels, calibration_x)


def _checked_inputs(x: np.ndarray, input_shape: tuple[int, ...], file: str, key: str) -> np.ndarray:
    if x.ndim == 0 or x.shape[0] < 1 or x.shape[1:] != input_shape:
        raise AccelsimError(
            f"shape {list(x.shape)}, expected [N, {', '.join(map(str, input_shape))}] (N >= 1 images of the "
            f"workload's input_shape {list(input_shape)})",
            file=file,
            path=f"--data[{key}]",
        )
    return np.ascontiguousarray(x)


def _check_labels(y: np.ndarray, classes: int, file: str, key: str) -> np.ndarray:
    """Labels as int64, each a whole number in ``0..classes-1`` (the index of the workload's output)."""
    bad = np.flatnonzero((y != np.rint(y)) | (y < 0) | (y >= classes))
    if bad.size:
        i = int(bad[0])
        raise AccelsimError(
            f"label {y[i]:g} at index {i} is not a class of the workload's output",
            file=file,
            path=f"--data[{key}]",
            allowed=f"whole numbers 0..{classes - 1}",
        )
    return y.astype(np.int64)


def _first_calibration(data: LabelledData, size: int | None) -> LabelledData:
    """``data`` calibrating on the first ``size`` images of its calibration set (default: all of a separate
    set, :data:`DEFAULT_CALIBRATION` of a test set that calibrates too)."""
    available = data.calibration_x.shape[0]
    if size is None:
        size = min(DEFAULT_CALIBRATION, available) if data.calibration_x is data.test_x else available
    if not 1 <= size <= available:
        raise AccelsimError(
            f"{size} calibration images asked, {data.name} has {available}",
            path="--calibration-size",
            allowed=f"1..{available}",
        )
    return LabelledData(data.name, data.test_x, data.test_y, data.calibration_x[:size])


def workload_classes(output_shape: tuple[int, ...], workload: str) -> int:
    """The classes of a classifier workload (its per-sample output ``[classes]``); accuracy needs one."""
    if len(output_shape) != 1 or output_shape[0] < 2:
        raise AccelsimError(
            f"workload {workload} outputs {list(output_shape)} per sample, not class scores",
            path="--data",
            allowed="a classifier whose last layer outputs [classes]",
        )
    return output_shape[0]
