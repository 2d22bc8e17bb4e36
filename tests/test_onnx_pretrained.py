"""Real pretrained networks shipped inside a wheel (issue 16): rapidocr-onnxruntime 1.4.4's PP-OCR models,
found with importlib.resources. The classifier imports, equals ONNX Runtime in fp32 on a real-looking input
(a rendered text-line-like image, not noise), counts the MACs onnx's own shape inference gives its Conv /
Gemm / MatMul nodes on ORT's tensors, and runs and times under every scheme; so do PP-OCRv4's recognizer (SVTR,
its batch-moving q / k / v split) and detector (DB: Resize, ConvTranspose) on rendered text, on every
hardware config."""

from __future__ import annotations

import importlib.resources
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config.loader import load_hardware
from accelsim.onnx import import_onnx
from accelsim.schemes import SCHEMES, SchemeName
from accelsim.simulation import PreparedModel, RunOptions, simulate
from accelsim.values.runner import run_values

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
#: PP-OCRv4's recognizer (SVTR: its q / k / v split moves the batch dim, then Slice) and detector (DB: Resize,
#: ConvTranspose), each at a shape rapidocr feeds (a text line 48 high; a page scaled to a multiple of 32)
REC, DET = "ch_PP-OCRv4_rec_infer.onnx", "ch_PP-OCRv4_det_infer.onnx"
OCR_SHAPES = {REC: [1, 3, 48, 160], DET: [1, 3, 96, 192]}
#: fp32 against ONNX Runtime: softmax probabilities (rec) and a sigmoid probability map (det)
OCR_ATOL = {REC: 1e-5, DET: 1e-4}
#: the smallest output SQNR (dB) per scheme on the rendered text, measured 2026-12 (rec: woq 44.9, dynamic
#: 33.4, static 30.1; det: woq 21.3, dynamic 12.6, static 12.6) less a margin
OCR_MIN_SQNR = {
    REC: {SchemeName.WOQ: 40.0, SchemeName.DYNAMIC: 29.0, SchemeName.STATIC: 26.0},
    DET: {SchemeName.WOQ: 18.0, SchemeName.DYNAMIC: 10.0, SchemeName.STATIC: 10.0},
}
HWCONFIGS = sorted((Path(__file__).parents[1] / "hwconfigs").glob("*.yaml"))


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


def _rendered_text(shape: list[int], text: str, normalize: tuple[float, float] | None = None) -> np.ndarray:
    """``text`` drawn by OpenCV (rapidocr's own dependency) in black on white, normalized as rapidocr feeds
    its models: ``(v - 0.5) / 0.5`` (rec), or ImageNet's mean and std (det, ``normalize`` None)."""
    cv2 = pytest.importorskip("cv2")
    _, _, h, w = shape
    image = np.full((h, w, 3), 255, np.uint8)
    cv2.putText(image, text, (4, h * 2 // 3), cv2.FONT_HERSHEY_SIMPLEX, h / 48, (0, 0, 0), 2)
    v = image / 255.0
    if normalize is None:
        v = (v - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    else:
        v = (v - normalize[0]) / normalize[1]
    return v.transpose(2, 0, 1)[None].astype(np.float32)


def _onnx_macs(path: str, x: np.ndarray) -> int:
    """MACs counted from the tensors ONNX Runtime computes (every node's output dumped): Conv (output
    elements x input channels per group x kernel), ConvTranspose (input elements x output channels per group
    x kernel), Gemm and MatMul (output elements x the reduced dim)."""
    model = onnx.load(path)
    shapes = {k: v.shape for k, v in ort_reference.node_outputs(model, {"x": x}).items()}
    shapes |= {t.name: tuple(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        out = math.prod(shapes[node.output[0]])
        if node.op_type == "Conv":
            total += out * math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "ConvTranspose":  # weight [C, O/groups, kh, kw]
            total += math.prod(shapes[node.input[0]]) * math.prod(shapes[node.input[1]][1:])
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


def _ocr_input(name: str) -> np.ndarray:
    shape = OCR_SHAPES[name]
    return _rendered_text(shape, "Hello 2026", (0.5, 0.5)) if name == REC else _rendered_text(shape, "Text 42")


@pytest.mark.parametrize("name", [REC, DET])
def test_the_ocr_models_import_equal_onnxruntime_and_run_under_every_scheme(name: str) -> None:
    """The recognizer keeps its batch (the q / k / v Slices and Squeezes move before the Transpose) and the
    detector imports its Resizes and ConvTransposes (bias Add and BatchNormalization folded); both count
    the MACs of ORT's tensors, equal ORT in fp32 on rendered text and run under every scheme."""
    path = _path(name)
    imported = import_onnx(path, input_shapes={"x": OCR_SHAPES[name]})
    assert not imported.one_sample
    types = {layer.type for layer in imported.workload.layers}
    assert ({"slice", "matmul"} if name == REC else {"resize", "conv_transpose2d"}) <= types
    x = _ocr_input(name)
    assert imported.workload.macs == _onnx_macs(path, x)
    (want,) = ort_reference.run(onnx.load(path), {"x": x}, "disabled")
    if name == DET:
        assert 0.02 < np.mean(want > 0.3) < 0.5  # the text is found (DB's binarization threshold)
    hw = load_hardware()
    prepared = PreparedModel(tensors=imported.tensors({"x": x}))
    for scheme in SCHEMES:
        run = simulate(imported.workload, hw, scheme, prepared=prepared)
        assert run.values is not None and run.total.total_cycles >= run.total.compute_cycles > 0
        got = run.values.layers[next(iter(imported.outputs.values()))].output.reshape(want.shape)
        if scheme == SchemeName.FP32:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=OCR_ATOL[name])
        else:
            assert run.total.sqnr_db >= OCR_MIN_SQNR[name][scheme], (scheme, run.total.sqnr_db)


@pytest.mark.parametrize("name", [REC, DET])
def test_the_ocr_models_lower_and_time_on_every_hwconfig(name: str) -> None:
    workload = import_onnx(_path(name), input_shapes={"x": OCR_SHAPES[name]}).workload
    for path in HWCONFIGS:
        for scheme in SCHEMES:
            run = simulate(workload, load_hardware(path), scheme, options=RunOptions(timing_only=True))
            assert run.total.macs == workload.macs and run.total.total_cycles >= run.total.compute_cycles > 0


def test_the_recognizer_keeps_a_batch_of_text_lines() -> None:
    """Three different lines in one batch: the moved q / k / v split keeps the samples apart (fp32 == ORT)."""
    shape = [3, *OCR_SHAPES[REC][1:]]
    imported = import_onnx(_path(REC), input_shapes={"x": shape})
    assert imported.workload.batch == 3 and not imported.one_sample
    x = np.concatenate([_rendered_text([1, *shape[1:]], text, (0.5, 0.5)) for text in ("Hello 2026", "OCR", "x = 7")])
    (want,) = ort_reference.run(onnx.load(_path(REC)), {"x": x}, "disabled")
    values = run_values(imported.workload, load_hardware(), SchemeName.FP32, tensors=imported.tensors({"x": x}))
    got = values.layers[next(iter(imported.outputs.values()))].output.reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=OCR_ATOL[REC])
    assert len({tuple(row) for row in want.argmax(-1)}) == 3  # three different readings
