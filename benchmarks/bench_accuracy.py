"""Time per 1,000 images of the bit-exact accuracy run (issue 17), against ONNX Runtime on the same images.

Run: ``python benchmarks/bench_accuracy.py [--repeats N]``. For each shipped digits workload, the 537 test
images of ``--data digits`` go through ``accelsim.values.accuracy.evaluate`` (batches of 100, the workload's)
under each scheme as ``compare --data digits`` runs it (fp32; woq; dynamic onnx; static min-max, whose
calibration on the 180 calibration images is included); each figure is the variant's own time
(``AccuracyRow.seconds``), best of N after a warm-up (Numba compiled, weights packed). The peer, measured in the same run: ONNX Runtime (1 thread, ORT_ENABLE_EXTENDED)
on the same images in the same batches, the fp32 model accelsim exports and that model quantized by
``quantize_static`` (QDQ, uint8 activations, int8 weights per tensor, MinMax on the calibration images).
The ratio is accelsim's time over ORT's int8 time: what simulating every image bit-exactly costs against
running the model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from best_of import best_of
from onnx_models import Built
from ort_reference import Recipe, quantize, session

from accelsim.config import load_hardware, load_workload
from accelsim.kernels import threads as gemm_threads
from accelsim.onnx.export import export
from accelsim.values.accuracy import evaluate, variant
from accelsim.values.labelled_data import load_labelled, workload_classes
from accelsim.values.tensors import materialize

SCHEMES = ("fp32", "woq", "dynamic", "static")


def bench(name: str, repeats: int) -> None:
    workload = load_workload(name)
    hw = load_hardware(None)
    classes = workload_classes(workload.shapes[-1].output_shape, workload.name)
    data = load_labelled("digits", tuple(workload.input_shape), classes)
    params = materialize(workload).params
    per_1000 = 1000 / data.test_x.shape[0]
    batches = [data.test_x[i : i + workload.batch] for i in range(0, data.test_x.shape[0], workload.batch)]

    # the peer: ORT on the exported model, fp32 and QDQ int8, one batch size per session (dims are fixed)
    ort_hw = load_hardware(None, ["requant.rounding=float_half_even"])
    sessions = {}
    for size in sorted({len(b) for b in batches}):
        sized = workload.model_copy(update={"batch": size})
        fp32 = export(sized, ort_hw, "fp32", materialize(workload)).model
        calibration = [
            {"input": data.calibration_x[i : i + size]} for i in range(0, len(data.calibration_x) - size + 1, size)
        ]
        calibration = calibration or [{"input": data.calibration_x[:size]}]
        int8 = quantize(Built(name, fp32, calibration[0], calibration), Recipe("qdq"))
        sessions[size] = (session(fp32), session(int8))
    ort = {
        kind: best_of(lambda k=kind: [sessions[len(b)][k].run(None, {"input": b}) for b in batches], repeats)
        for kind in (0, 1)
    }
    print(f"{name}: {data.test_x.shape[0]} test images in batches of {workload.batch}, best of {repeats}")
    print(f"  ONNX Runtime fp32 {1e3 * ort[0] * per_1000:8.1f} ms / 1000 images")
    print(f"  ONNX Runtime int8 {1e3 * ort[1] * per_1000:8.1f} ms / 1000 images (the peer)")
    for scheme in SCHEMES:
        v = variant(scheme)
        evaluate(workload, hw, params, data, [v])  # warm-up: compiled kernels, packed weights
        # the variant's own time (evaluate always runs fp32 first too, for the agreement; it is not counted)
        seconds = min(evaluate(workload, hw, params, data, [v])[0].seconds for _ in range(repeats))
        print(
            f"  accelsim {v.label:24s} {1e3 * seconds * per_1000:8.1f} ms / 1000 images, "
            f"{seconds / ort[1]:6.1f}x ORT int8"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"GEMM threads: {gemm_threads.threads()}; ORT: 1 intra-op thread")
    for name in ("digits-mlp", "digits-cnn"):
        bench(name, args.repeats)


if __name__ == "__main__":
    main()
