"""Real pretrained networks shipped inside a wheel (issue 16): rapidocr-onnxruntime 1.4.4's PP-OCR models,
found with importlib.resources. The classifier imports, equals ONNX Runtime in fp32 on a real-looking input
(a rendered text-line-like image, not noise), counts the MACs onnx's own shape inference gives its Conv /
Gemm / MatMul nodes on ORT's tensors, and runs and times under every scheme; the recognizer and the detector stop with one
clear error naming the node and the op the importer lacks."""

from __future__ import annotations

import importlib.resources
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config.loader import load_hardware
from accelsim.errors import AccelsimError
from accelsim.onnx import import_onnx
from accelsim.schemes import SCHEMES, SchemeName
from accelsim.simulation import PreparedModel, simulate

pytest.importorskip("rapidocr_onnxruntime")
sys.path.insert(0, str(Path(__file__).parent))
ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime

MODELS = importlib.resources.files("rapidocr_onnxruntime") / "models"
CLS = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
#: the classifier's input as rapidocr feeds it (TextClassifier: 3 x 48 x 192, normalized to [-1, 1])
CLS_SHAPE = [1, 3, 48, 192]
#: onnx's backend-test tolerance
RTOL = 1e-3
#: the smallest SQNR (dB) of the classifier's output per scheme against fp32, measured 2026-12 less a margin
MIN_SQNR = {SchemeName.FP32: math.inf, SchemeName.WOQ: 6.0, SchemeName.DYNAMIC: 9.0, SchemeName.STATIC: 25.0}
#: the models the importer cannot express yet: (input shape, node, op, reason in the message)
REFUSED = {
    # SVTR's attention splits q, k, v along a dim its Transpose moves in front of the batch (then Slice):
    # the model imports as one sample, where a conv has no batch to keep first
    "ch_PP-OCRv4_rec_infer.onnx": ([1, 3, 48, 320], "p2o.Conv.0", "Conv", "'p2o.Transpose.1' (Transpose) moves"),
    "ch_PP-OCRv4_det_infer.onnx": ([1, 3, 96, 96], "p2o.Resize.0", "Resize", "no resize / upsampling layer"),
}


def _path(name: str) -> str:
    return str(MODELS / name)


def _text_line(shape: list[int]) -> np.ndarray:
    """A text-line-like image: dark strokes on a light background, normalized as rapidocr does."""
    rng = np.random.default_rng(0)
    _, c, h, w = shape
    image = np.full((h, w), 0.9)
    for x0 in range(4, w - 12, 14):  # glyph-like boxes of strokes
        height = rng.integers(h // 3, h - 8)
        image[(h - height) // 2 : (h + height) // 2, x0 : x0 + 3] = 0.1
        image[h // 2 - 1 : h // 2 + 2, x0 : x0 + 10] = 0.15
    image = image + rng.normal(0, 0.03, image.shape)
    return np.broadcast_to(((image - 0.5) / 0.5)[None, None], (1, c, h, w)).astype(np.float32)


def _onnx_macs(path: str, x: np.ndarray) -> int:
    """MACs counted from the tensors ONNX Runtime computes (every node's output dumped): Conv (output
    elements x input channels per group x kernel), Gemm and MatMul (output elements x the reduced dim)."""
    model = onnx.load(path)
    shapes = {k: v.shape for k, v in ort_reference.node_outputs(model, {"x": x}).items()}
    shapes |= {t.name: tuple(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        out = math.prod(shapes[node.output[0]])
        if node.op_type == "Conv":
            total += out * math.prod(shapes[node.input[1]][1:])
        elif node.op_type in ("Gemm", "MatMul"):
            trans_a = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
            total += out * shapes[node.input[0]][-2 if trans_a else -1]
    return total


def test_the_ocr_classifier_imports_and_equals_onnxruntime() -> None:
    path = _path(CLS)
    imported = import_onnx(path, input_shapes={"x": CLS_SHAPE})
    x = _text_line(CLS_SHAPE)
    assert imported.workload.macs == _onnx_macs(path, x)
    (want,) = ort_reference.run(onnx.load(path), {"x": x}, "disabled")
    assert np.ptp(want) > 0.02  # not a uniform softmax
    hw = load_hardware()
    prepared = PreparedModel(tensors=imported.tensors({"x": x}))
    for scheme in SCHEMES:
        run = simulate(imported.workload, hw, scheme, prepared=prepared)
        assert run.values is not None and run.total.total_cycles >= run.total.compute_cycles > 0
        got = run.values.layers[next(iter(imported.outputs.values()))].stored
        if scheme == SchemeName.FP32:
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=RTOL, atol=1e-6)
        assert run.total.sqnr_db >= MIN_SQNR[scheme], (scheme, run.total.sqnr_db)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_ocr_models_outside_the_layer_types_are_one_clear_error(name: str) -> None:
    shape, node, op, reason = REFUSED[name]
    with pytest.raises(AccelsimError) as info:
        import_onnx(_path(name), input_shapes={"x": shape})
    message = str(info.value)
    assert f"node {node!r} ({op}): " in message and reason in message and "\n" not in message
