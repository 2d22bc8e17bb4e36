"""Hostile ONNX models, import outputs, user data (``--input`` / ``--calibration``) and weights files.

The model is the shipped ``workloads/residual_cnn.onnx`` (batch 2, input ``x`` of [3, 16, 16]), copied into
each case's folder as ``m.onnx``. Every case must end in one line naming the file (exit 2) and write nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from .case import Case
from .cli_cases import BAD_OUT_FILES, Setup, fifo, folder, sparse, symlink

MODEL = (Path(__file__).resolve().parents[2] / "workloads" / "residual_cnn.onnx").read_bytes()
SHAPE = (2, 3, 16, 16)
GOOD = np.zeros(SHAPE, np.float32)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def bomb() -> bytes:
    """An .npz of a few hundred bytes whose one array's header claims 4 TiB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 3, 16, 16)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 64)
    return buffer.getvalue()


def with_nan() -> np.ndarray:
    array = GOOD.copy()
    array[1, 2, 3, 4] = np.nan
    return array


#: bad model files, for ``import onnx`` and for ``run`` on the model directly: (label, path, files, setup)
BAD_MODELS: list[tuple[str, str, dict[str, str | bytes], Setup | None]] = [
    ("not-onnx", "m.onnx", {"m.onnx": "name: not a model\n"}, None),
    ("truncated", "m.onnx", {"m.onnx": MODEL[: len(MODEL) // 2]}, None),
    ("empty", "m.onnx", {"m.onnx": b""}, None),
    ("huge-sparse", "m.onnx", {}, sparse("m.onnx")),
    ("fifo", "m.onnx", {}, fifo("m.onnx")),
    ("folder", "m.onnx", {}, folder("m.onnx")),
    ("link-loop", "m.onnx", {}, symlink("m.onnx", "m.onnx")),
    ("missing", "m.onnx", {}, None),
]

#: bad ``--input`` / ``--calibration`` files for the model (label, file content or setup, message)
BAD_DATA: list[tuple[str, bytes | Setup, str]] = [
    ("wrong-batch", npy(np.zeros((3, 3, 16, 16), np.float32)), r"shape \[3, 3, 16, 16\], expected \[.*2, 3, 16, 16\]"),
    ("wrong-sample-shape", npy(np.zeros((2, 3, 16, 15), np.float32)), r"expected \[.*2, 3, 16, 16\]"),
    ("scalar", npy(np.float32(1.0)), r"shape \[\], expected"),
    ("complex", npy(GOOD.astype(np.complex64)), "not a real number type"),
    ("strings", npy(np.array(["a", "b"])), "not a real number type"),
    ("nan", npy(with_nan()), r"non-finite value nan at index \[1, 2, 3, 4\]"),
    ("inf-after-float32", npy(np.full(SHAPE, 1e300)), "non-finite value inf"),
    ("pickled-object-array", npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled object array"),
    ("pickle-file", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "not a .npy or .npz file"),
    ("truncated-npy", npy(GOOD)[:200], "truncated"),
    ("npz-wrong-key", npz(image=GOOD, other=GOOD), "no input named 'image'.*allowed: x"),
    ("npz-no-arrays", npz(), "holds no arrays"),
    ("npz-bomb", bomb(), "larger than the 2 GiB limit"),
    ("fifo", fifo("d.npy"), "FIFO"),
    ("folder", folder("d.npy"), "directory"),
    ("huge-sparse", sparse("d.npy"), "larger than"),
    ("link-loop", symlink("d.npy", "d.npy"), "link"),
]


def _import_cases() -> list[Case]:
    cases = [
        Case(f"onnx-import-{label}", ("import", "onnx", path, "-o", "w.yaml"), files=files, setup=setup, timeout_s=10)
        for label, path, files, setup in BAD_MODELS
    ]
    cases += [
        Case(f"onnx-run-{label}", ("run", path, "--timing-only"), files=files, setup=setup, timeout_s=10)
        for label, path, files, setup in BAD_MODELS
    ]
    cases += [
        Case(
            f"onnx-import-out-{label}",
            ("import", "onnx", "m.onnx", "-o", path),
            files={"m.onnx": MODEL},
            setup=setup,
            timeout_s=20,
        )
        for label, path, setup in BAD_OUT_FILES
    ]
    cases += [
        Case(
            "onnx-import-out-onto-input",
            ("import", "onnx", "m.onnx", "-o", "m.onnx"),
            files={"m.onnx": MODEL},
            match="would overwrite the input model",
        ),
        Case(
            "onnx-import-weights-onto-input",
            ("import", "onnx", "m.npz", "-o", "m.yaml"),
            files={"m.npz": MODEL},
            match="m.npz.*would overwrite the input model",
        ),
        Case(
            "onnx-import-bad-input-shape",
            ("import", "onnx", "m.onnx", "--input-shape", "x=2,3,a"),
            files={"m.onnx": MODEL},
            match="--input-shape",
        ),
        Case(
            "onnx-import-batch-zero", ("import", "onnx", "m.onnx", "--batch", "0"), files={"m.onnx": MODEL}, match="0"
        ),
    ]
    return cases


def _data_cases() -> list[Case]:
    cases = []
    for option in ("--input", "--calibration"):
        for label, content, message in BAD_DATA:
            files: dict[str, str | bytes] = {"m.onnx": MODEL}
            setup = None
            if isinstance(content, bytes):
                files["d.npy"] = content
            else:
                setup = content
            cases.append(
                Case(
                    f"onnx-data{option}-{label}",
                    ("run", "m.onnx", "--scheme", "static", option, "d.npy"),
                    files=files,
                    setup=setup,
                    match=f"d.npy.*{message}",
                    timeout_s=20,
                )
            )
    cases.append(
        Case(
            "onnx-data-calibration-partial-batch",
            ("compare", "m.onnx", "--calibration", "d.npy"),
            files={"m.onnx": MODEL, "d.npy": npy(np.zeros((3, 3, 16, 16), np.float32))},
            match=r"expected \[k\*2, 3, 16, 16\]",
        )
    )
    cases.append(
        Case(
            "onnx-data-yaml-workload-wrong-shape",
            ("explain", "tiny_cnn", "--layer", "conv1", "--input", "d.npy"),
            files={"d.npy": npy(np.zeros((2, 3, 32, 32), np.float32))},
            match=r"d.npy.*expected \[2, 3, 16, 16\]",
        )
    )
    return cases


WORKLOAD = """schema_version: 1
name: w
weights_file: {weights}
input_shape: [4]
layers:
  - {{name: fc, type: linear, out_features: 2}}
"""


def _weights_file_cases() -> list[Case]:
    """A workload's ``weights_file``: it must stay in the workload's folder and hold finite, fitting arrays."""
    bad: list[tuple[str, str, dict[str, str | bytes], str]] = [
        ("absolute", "/etc/passwd", {}, "leaves the workload's folder"),
        ("climbs-out", "../w.npz", {}, "leaves the workload's folder"),
        ("missing", "w.npz", {}, "w.npz.*file not found"),
        ("wrong-shape", "w.npz", {"w.npz": npz(**{"fc.weight": np.zeros((2, 5), np.float32)})}, r"shape \[2, 5\]"),
        ("nan", "w.npz", {"w.npz": npz(**{"fc.weight": np.full((2, 4), np.nan, np.float32)})}, "non-finite"),
        ("object", "w.npy", {"w.npy": npy(np.array([None], dtype=object), allow_pickle=True)}, "pickled object"),
    ]
    return [
        Case(
            f"onnx-weights-file-{label}",
            ("run", "w.yaml", "--scheme", "fp32"),
            files={"w.yaml": WORKLOAD.format(weights=name), **files},
            match=message,
            timeout_s=20,
        )
        for label, name, files, message in bad
    ]


CASES = _import_cases() + _data_cases() + _weights_file_cases()


def _export_cases() -> list[Case]:
    """``export onnx``'s ``-o``: never the model or workload it reads (nor its weights, nor through a link),
    never a folder, device, FIFO or /proc entry; and bad models, one line each, nothing written."""
    cases = [
        Case(f"onnx-export-out-{label}", ("export", "onnx", "tiny_cnn", "-o", path), setup=setup, timeout_s=20)
        for label, path, setup in BAD_OUT_FILES
    ]
    cases += [
        Case(f"onnx-export-model-{label}", ("export", "onnx", path, "-o", "o.onnx"), files=files, setup=setup)
        for label, path, files, setup in BAD_MODELS
    ]
    weighted = {"w.yaml": WORKLOAD.format(weights="w.npz"), "w.npz": npz(**{"fc.weight": np.ones((2, 4), np.float32)})}
    cases += [
        Case(
            "onnx-export-out-onto-input",
            ("export", "onnx", "m.onnx", "-o", "m.onnx", "--scheme", "static"),
            files={"m.onnx": MODEL},
            match="m.onnx.*would overwrite the input model",
        ),
        Case(
            "onnx-export-out-onto-input-through-link",
            ("export", "onnx", "m.onnx", "-o", "l.onnx"),
            files={"m.onnx": MODEL},
            setup=symlink("l.onnx", "m.onnx"),
            match="l.onnx.*would overwrite the input model",
        ),
        Case(
            "onnx-export-out-onto-workload",
            ("export", "onnx", "w.yaml", "-o", "w.yaml"),
            files=weighted,
            match="w.yaml.*would overwrite the input model",
        ),
        Case(
            "onnx-export-out-onto-weights",
            ("export", "onnx", "w.yaml", "-o", "w.npz"),
            files=weighted,
            match="w.npz.*would overwrite the input weights",
        ),
        Case(
            "onnx-export-out-link-loop",
            ("export", "onnx", "tiny_cnn", "-o", "o.onnx"),
            setup=symlink("o.onnx", "o.onnx"),
            match="o.onnx",
        ),
        Case("onnx-export-scheme-dynamic", ("export", "onnx", "tiny_cnn", "-o", "o.onnx", "--scheme", "dynamic")),
    ]
    return cases


CASES += _export_cases()


def _one_node_model(op: str, attrs: dict, constants: dict[str, np.ndarray]) -> bytes:
    """``x [1, 2, 4, 4]`` through one ``op`` node reading ``x``, then ``constants`` in order ("" skips an
    optional input)."""
    from onnx import TensorProto, helper, numpy_helper

    inputs = ["x", *constants]
    initializers = [numpy_helper.from_array(v, k) for k, v in constants.items() if k]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])]
    node = helper.make_node(op, [k if k else "" for k in inputs], ["y"], name="n", **attrs)
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", graph_inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _upsampling_cases() -> list[Case]:
    """ConvTranspose, Resize, Slice, ReduceMean and Pow with attributes or inputs their layers cannot express:
    one line naming the node."""
    scales = {"": np.zeros(0, np.float32), "s": np.asarray([1, 1, 2, 2], np.float32)}
    weight = {"w": np.ones((2, 3, 2, 2), np.float32)}
    bounds = {"b": np.asarray([0], np.int64), "e": np.asarray([2], np.int64), "a": np.asarray([1], np.int64)}
    models = {
        "resize-cubic": ("Resize", {"mode": "cubic"}, scales, "mode 'cubic'"),
        "resize-crop": ("Resize", {"coordinate_transformation_mode": "tf_crop_and_resize"}, scales, "coordinate"),
        "resize-antialias": ("Resize", {"antialias": 1}, scales, "antialias"),
        "resize-channels": ("Resize", {}, {"": scales[""], "s": np.asarray([1, 2, 2, 2], np.float32)}, "channel"),
        "resize-huge": ("Resize", {}, {"": scales[""], "s": np.asarray([1, 1, 1e9, 2], np.float32)}, "scale"),
        "slice-reverse": ("Slice", {}, {**bounds, "st": np.asarray([-1], np.int64)}, "step -1"),
        "slice-empty": ("Slice", {}, {**bounds, "e": np.asarray([0], np.int64)}, "selects nothing"),
        "conv-transpose-output-padding": (
            "ConvTranspose",
            {"strides": [2, 2], "output_padding": [3, 0]},
            weight,
            "output_padding",
        ),
        "conv-transpose-weight-channels": ("ConvTranspose", {}, {"w": np.ones((3, 3, 2, 2), np.float32)}, "weight"),
        "reduce-mean-channels": ("ReduceMean", {"axes": [1]}, {}, r"axes \[1\]"),
        "reduce-mean-all": ("ReduceMean", {}, {}, "all axes"),
        "reduce-mean-dropped": ("ReduceMean", {"axes": [-1], "keepdims": 0}, {}, "keepdims 0"),
        "pow-cube": ("Pow", {}, {"e": np.asarray(3, np.float32)}, r"exponent \[3\.0\]"),
        "pow-nan": ("Pow", {}, {"e": np.asarray(np.nan, np.float32)}, "exponent"),
    }
    return [
        Case(
            f"onnx-import-{label}",
            ("import", "onnx", "m.onnx", "-o", "w.yaml"),
            files={"m.onnx": _one_node_model(op, attrs, constants)},
            match=rf"m\.onnx: node 'n' \({op}\): .*{message}",
        )
        for label, (op, attrs, constants, message) in models.items()
    ]


CASES += _upsampling_cases()
