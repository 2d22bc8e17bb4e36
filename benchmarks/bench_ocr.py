"""PP-OCRv4's detector and recognizer (rapidocr-onnxruntime's wheel) through accelsim, against ONNX Runtime.

Run: ``python benchmarks/bench_ocr.py [--repeats N]``. Each model is imported at the shape the tests use
(detector ``[1, 3, 96, 192]``, recognizer ``[1, 3, 48, 160]``) and fed a zero image; per model it prints the
import time, ONNX Runtime's fp32 inference (1 intra-op thread, ORT_ENABLE_EXTENDED), and accelsim's values
alone under fp32 and static (static: parameters calibrated once beforehand, as a deployed model has them)
as a ratio to ORT's fp32, then the whole ``simulate`` (values, timing, records) under static. Each figure is
the best of N calls after a warm-up, in one process, so the ratios hold on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time

import numpy as np
import onnx
import onnxruntime as ort
from best_of import best_of

from accelsim.config.loader import load_hardware
from accelsim.lowering.program import lower
from accelsim.onnx import import_onnx
from accelsim.requant_modes import get_mode
from accelsim.simulation import PreparedModel, simulate
from accelsim.values.runner import calibrate, run_values

MODELS = {"ch_PP-OCRv4_det_infer.onnx": [1, 3, 96, 192], "ch_PP-OCRv4_rec_infer.onnx": [1, 3, 48, 160]}


def bench(name: str, shape: list[int], repeats: int) -> None:
    path = str(importlib.resources.files("rapidocr_onnxruntime") / "models" / name)
    start = time.perf_counter()
    imported = import_onnx(path, input_shapes={"x": shape})
    imported_s = time.perf_counter() - start
    x = np.zeros(shape, np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(onnx.load(path).SerializeToString(), options, providers=["CPUExecutionProvider"])
    ort_s = best_of(lambda: session.run(None, {"x": x}), repeats)
    hw, workload, tensors = load_hardware(), imported.workload, imported.tensors({"x": x})
    programs = {scheme: lower(workload, hw, scheme) for scheme in ("fp32", "static")}
    dtype = get_mode(hw.requant.rounding).activation_dtype
    qparams = calibrate(workload, tensors, programs["static"], dtype=dtype)
    fp32_s = best_of(lambda: run_values(workload, hw, "fp32", tensors=tensors, program=programs["fp32"]), repeats)
    static_s = best_of(
        lambda: run_values(workload, hw, "static", tensors=tensors, qparams=qparams, program=programs["static"]),
        repeats,
    )
    prepared = PreparedModel(tensors=tensors)
    simulate_s = best_of(lambda: simulate(workload, hw, "static", prepared=prepared), max(1, repeats // 3))
    print(
        f"{name}: {len(workload.layers)} layers, {workload.macs / 1e6:.1f} M MACs, import {imported_s:.2f} s; "
        f"ORT fp32 {ort_s * 1e3:.1f} ms; accelsim values fp32 {fp32_s * 1e3:.1f} ms ({fp32_s / ort_s:.1f}x), "
        f"static {static_s * 1e3:.1f} ms ({static_s / ort_s:.1f}x); simulate static (calibrating) "
        f"{simulate_s * 1e3:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, shape in MODELS.items():
        bench(name, shape, args.repeats)


if __name__ == "__main__":
    main()
