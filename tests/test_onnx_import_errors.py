"""ONNX import refusals: hostile files and paths, external data, opsets, unsupported ops and attributes; and
the op tables in accelsim/onnx/mapping.py against docs/onnx.md. Each refusal is one AccelsimError line
naming the file (and the node where there is one)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim.errors import AccelsimError
from accelsim.onnx import import_onnx
from accelsim.onnx.mapping import FOLDED_AWAY, HANDLERS, SUPPORTED, UNSUPPORTED
from accelsim.onnx.reading import MAX_OPSET, MIN_OPSET

DOC = Path(__file__).parent.parent / "docs" / "onnx.md"


def _model(nodes: list[onnx.NodeProto], shape: list[int], inits: list[TensorProto], opset: int = 17) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _conv_model(**attrs: Any) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="the_conv", **attrs)], [1, 3, 8, 8], [w])


def _error(path: Path | str) -> str:
    with pytest.raises(AccelsimError) as info:
        import_onnx(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def _saved(model: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_non_onnx_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("layers:\n  - conv\n")
    assert "not a" in _error(path) and "ONNX" in _error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert "no graph nodes or no opset" in _error(path)


def test_truncated_file(tmp_path: Path) -> None:
    raw = _saved(_conv_model(), tmp_path).read_bytes()
    for cut in (len(raw) // 2, len(raw) - 3):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(raw[:cut])
        assert re.search(r"truncated|not a readable ONNX model", _error(path))


def test_directory_and_fifo(tmp_path: Path) -> None:
    assert "is a directory, expected an ONNX model file" in _error(tmp_path)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), expected an ONNX model file" in _error(fifo)  # and does not block
    assert "file not found" in _error(tmp_path / "missing.onnx")


def _external(tmp_path: Path) -> Path:
    model = _conv_model()
    path = tmp_path / "ext.onnx"
    onnx.save(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin", size_threshold=0
    )
    return path


def test_external_data_is_read_and_checked(tmp_path: Path) -> None:
    path = _external(tmp_path)
    imported = import_onnx(path)
    np.testing.assert_array_equal(imported.weights["the_conv.weight"], np.ones((4, 3, 3, 3), np.float32))
    data = tmp_path / "ext.bin"
    data.write_bytes(data.read_bytes()[:100])
    assert "tensor 'w': external data 'ext.bin' has 100 bytes" in _error(path)
    data.unlink()
    assert "tensor 'w': external data 'ext.bin': file not found" in _error(path)


def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    model = onnx.load(_external(tmp_path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    assert "leaves the model's folder" in _error(_saved(model, tmp_path, "escape.onnx"))


def test_opsets_out_of_range(tmp_path: Path) -> None:
    newer = _saved(_model([helper.make_node("Relu", ["x"], ["y"])], [1, 4], [], MAX_OPSET + 1), tmp_path, "new.onnx")
    assert f"opset {MAX_OPSET + 1} is newer than the installed onnx knows" in _error(newer)
    upsample = helper.make_node("Upsample", ["x"], ["y"], mode="nearest")  # opset 7 wants `scales`: no adapter
    old = _saved(_model([upsample], [1, 1, 2, 2], [], 7), tmp_path, "old.onnx")
    assert f"opset 7 cannot be converted to {MIN_OPSET}" in _error(old)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"pads": [0, 0, 2000, 1]}, "layers[0].padding[2]: 2000 is outside the plausible range"),
        ({"pads": [1, 1, 1, 1], "strides": [2000, 1]}, "layers[0].stride[0]: 2000 is outside the plausible range"),
    ],
)
def test_attributes_the_conv_layer_cannot_express(tmp_path: Path, attrs: dict[str, Any], reason: str) -> None:
    message = _error(_saved(_conv_model(**attrs), tmp_path))
    assert f"node 'the_conv' (Conv): {reason}" in message


def test_unsupported_and_unknown_ops_name_the_node(tmp_path: Path) -> None:
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], np.int64), "pads")
    pad = _saved(_model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")], [1, 4], [pads]), tmp_path)
    assert "node 'pad' (Pad): no explicit padding layer" in _error(pad)
    custom = helper.make_node("Swizzle", ["x"], ["y"], name="odd", domain="com.example")
    model = _model([custom], [1, 4], [])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert "node 'odd' (com.example.Swizzle): not an op the importer maps" in _error(_saved(model, tmp_path, "c.onnx"))


@pytest.mark.parametrize(
    ("node", "inits", "reason"),
    [
        (
            {"op_type": "ReduceMean", "axes": [1], "keepdims": 1},
            [],
            "reduces axes [1] with keepdims 1 (allowed: the last",
        ),
        ({"op_type": "ReduceMean", "axes": [-1], "keepdims": 0}, [], "reduces axes [-1] with keepdims 0 (allowed: the"),
        ({"op_type": "ReduceMean", "keepdims": 1}, [], "reduces all axes with keepdims 1"),
        ({"op_type": "ReduceMean", "axes": [0], "keepdims": 1}, [], "axis 0 is the batch dim"),
        ({"op_type": "Pow"}, [np.float32(3)], "exponent [3.0] (allowed: a constant exponent of 2)"),
        ({"op_type": "Pow"}, [np.full(4, 2, np.float32)], "exponent [2.0, 2.0, 2.0, 2.0]"),
    ],
)
def test_reduce_mean_and_pow_beyond_the_layers(
    tmp_path: Path, node: dict[str, Any], inits: list[np.ndarray], reason: str
) -> None:
    """ReduceMean imports over the last axis with its dims kept and Pow by a constant 2 only (the steps of a
    written-out LayerNorm); anything else is one error naming the node."""
    names = [f"c{i}" for i in range(len(inits))]
    tensors = [numpy_helper.from_array(np.asarray(v), n) for v, n in zip(inits, names, strict=True)]
    op = node.pop("op_type")
    model = _model([helper.make_node(op, ["x", *names], ["y"], name="step", **node)], [2, 3, 4], tensors)
    message = _error(_saved(model, tmp_path))
    assert f"node 'step' ({op}): " in message and reason in message


def test_graph_without_input_reads(tmp_path: Path) -> None:
    value = numpy_helper.from_array(np.ones(3, np.float32))
    model = _model([helper.make_node("Constant", [], ["y"], value=value)], [1, 4], [])
    assert "no node reads a graph input" in _error(_saved(model, tmp_path))


# ---------------------------------------------------------------------------------------------------
# the op tables and docs/onnx.md


def _doc_table(heading: str) -> dict[str, str]:
    """The first column of the table under ``heading`` in docs/onnx.md, cell by cell."""
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {op.strip().strip("`"): text.strip() for op, text in rows[1:]}


def test_docs_list_exactly_the_code_tables() -> None:
    assert _doc_table("Operators that import") == SUPPORTED
    assert _doc_table("Operators refused today") == UNSUPPORTED


def test_tables_are_consistent() -> None:
    assert not set(SUPPORTED) & set(UNSUPPORTED)
    assert set(HANDLERS) <= set(SUPPORTED)
    assert FOLDED_AWAY == set(SUPPORTED) - set(HANDLERS)
    assert {"Identity", "Dropout", "Constant", "ConstantOfShape"} <= FOLDED_AWAY
