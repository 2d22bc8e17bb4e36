"""Arrays a user hands in: a workload's weights ``.npz`` and the ``--input`` / ``--calibration`` batches.

Every file goes through :func:`accelsim.file_checks.read_user_file` (a regular file under a size bound: no
FIFO that blocks, no device that never ends) and each ``.npy`` inside is parsed with ``allow_pickle=False``
after its header is checked: an object array (pickled Python objects, which run code when loaded) or an
array whose header promises more than the limit (a small compressed ``.npz`` that inflates to gigabytes)
is refused before any data is read. What passes is a finite float32 array of a real-number dtype.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from typing import IO

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.file_checks import MAX_ARRAY_BYTES, read_user_file

#: the key a bare ``.npy`` file's one array gets
NPY_KEY = ""
#: the .npy header versions of numeric arrays (3.0 exists only for structured dtypes with unicode field names)
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(stream: IO[bytes], file: str, field: str, key: str, keep_integers: bool = False) -> np.ndarray:
    """One ``.npy`` from ``stream``: header checked (dtype, size) before the data is read; float32 (finite),
    or with ``keep_integers`` an integer array as stored (a quantized model's codes and int32 biases)."""
    where = f"{field}[{key}]" if key else field
    try:
        version = np.lib.format.read_magic(stream)
        read_header = HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version[0]}.{version[1]}")
        shape, fortran, dtype = read_header(stream)
    except (ValueError, EOFError, OSError) as exc:
        raise AccelsimError(f"not a readable .npy array ({exc})", file=file, path=where) from None
    if dtype.hasobject:
        raise AccelsimError(
            "holds Python objects (a pickled object array), not numbers",
            file=file,
            path=where,
            allowed="numeric arrays",
        )
    if dtype.kind not in "fiu":
        raise AccelsimError(f"dtype {dtype} is not a real number type", file=file, path=where, allowed="float, int")
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size > MAX_ARRAY_BYTES:
        raise AccelsimError(f"array of {size:,} bytes, larger than the 2 GiB limit", file=file, path=where)
    count = int(np.prod(shape, dtype=np.int64))
    data = stream.read(size)
    if len(data) != size:
        raise AccelsimError(f"array data is {len(data):,} of {size:,} bytes (truncated?)", file=file, path=where)
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    if keep_integers and dtype.kind in "iu":
        return array.astype(dtype.newbyteorder("="))
    with np.errstate(over="ignore", invalid="ignore"):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise AccelsimError(f"non-finite value {array[first]} at index {list(first)}", file=file, path=where)
    return array


def load_arrays(path: str | os.PathLike[str], *, field: str) -> dict[str, np.ndarray]:
    """The arrays of a ``.npy`` (one, under the key ``""``) or ``.npz`` file, as finite float32."""
    file = os.fspath(path)
    return parse_arrays(read_user_file(file, MAX_ARRAY_BYTES, expected="a .npy or .npz file", field=field), file, field)


def parse_arrays(data: bytes, file: str, field: str, *, keep_integers: bool = False) -> dict[str, np.ndarray]:
    """The arrays of a ``.npy`` or ``.npz`` file's bytes, already read (:func:`load_arrays`; a workload's
    weights file, read once by config.loader.read_weights); errors name ``file`` and ``field``;
    ``keep_integers``: integer arrays keep their dtype (float ones are float32 either way)."""
    if data.startswith(b"\x93NUMPY"):
        return {NPY_KEY: _read_npy(io.BytesIO(data), file, field, NPY_KEY, keep_integers)}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise AccelsimError("not a .npy or .npz file (truncated, or another format)", file=file, path=field) from None
    arrays = {}
    with archive:
        for member in archive.namelist():
            key = member.removesuffix(".npy")
            try:
                with archive.open(member) as stream:
                    arrays[key] = _read_npy(stream, file, field, key, keep_integers)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise AccelsimError(f"unreadable .npz member ({exc})", file=file, path=f"{field}[{key}]") from None
    if not arrays:
        raise AccelsimError("holds no arrays", file=file, path=field)
    return arrays


def load_batch(
    path: str | os.PathLike[str],
    sources: Mapping[str, tuple[int, ...]],
    batch: int,
    *,
    field: str,
    aliases: Mapping[str, str] | None = None,
    whole_batches: bool = False,
) -> dict[str, np.ndarray]:
    """The source tensors (``sources``: name -> per-sample shape) a user's ``.npy`` / ``.npz`` gives, batch-first.

    A ``.npy``, or an ``.npz`` of one array, feeds a workload with one source; otherwise each array's key is a
    source name or one of ``aliases`` (an ONNX graph input's name). The leading dim is ``batch`` (the run
    batch) or, with ``whole_batches``, any positive multiple of it (calibration: batch after batch)."""
    file = os.fspath(path)
    arrays = load_arrays(file, field=field)
    names = aliases or {}
    if len(arrays) == 1 and len(sources) == 1:  # one array for the one input, whatever its key
        (source,) = sources
        shown = next((alias for alias, s in names.items() if s == source), source)
        arrays = {shown: next(iter(arrays.values()))}
    elif NPY_KEY in arrays:
        raise AccelsimError(
            f"a .npy holds one array, the workload has {len(sources)} inputs: give an .npz with one array each",
            file=file,
            path=field,
            allowed=", ".join(names or sources),
        )
    out = {}
    for key, array in arrays.items():
        source = names.get(key, key)
        if source not in sources:
            raise AccelsimError(
                f"no input named {key!r} in the workload", file=file, path=field, allowed=", ".join(names or sources)
            )
        out[source] = _checked_shape(array, sources[source], batch, whole_batches, file, f"{field}[{key}]")
    missing = [k for k in sources if k not in out]
    if missing:
        alias_of = {v: k for k, v in names.items()}
        raise AccelsimError(
            f"no array for input {alias_of.get(missing[0], missing[0])!r}",
            file=file,
            path=field,
            allowed=", ".join(names or sources),
        )
    return out


def _checked_shape(
    array: np.ndarray, sample: tuple[int, ...], batch: int, whole_batches: bool, file: str, where: str
) -> np.ndarray:
    leading = array.shape[0] if array.ndim else 0
    fits = array.shape[1:] == sample and (leading % batch == 0 and leading > 0 if whole_batches else leading == batch)
    if not fits:
        first = f"k*{batch}" if whole_batches else str(batch)
        why = f"k >= 1 batches of {batch}" if whole_batches else f"the workload's batch {batch}"
        raise AccelsimError(
            f"shape {list(array.shape)}, expected [{first}, {', '.join(map(str, sample))}] ({why}, then the "
            f"per-sample shape {list(sample)})",
            file=file,
            path=where,
        )
    return np.ascontiguousarray(array)
