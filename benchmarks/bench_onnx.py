"""ONNX Runtime's own inference time on ResNet-50, fp32 and static QDQ int8: the bar for issue 16.

Run: ``python benchmarks/bench_onnx.py [--repeats N] [--model NAME]``. The model is onnx's shipped
``light_resnet50.onnx`` (opset 9, converted to 17) with seeded weights and BatchNorm statistics (the file
stores every weight as a ConstantOfShape of 0.02, whose activations overflow to logits of 1e19; see
``tests/onnx_models.light_model``). The QDQ model is ``quantize_static`` with QUInt8 activations and
per-channel QInt8 weights, calibrated with MinMax on four seeded uniform batches. Each figure is the best of
N runs after a warm-up, at ORT_ENABLE_EXTENDED (the fused, integer graph), for 1 and 2 intra-op threads.
accelsim's side (import time, the bit-exact static run) is added when the importer (accelsim/onnx) lands.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from onnx_models import light_model
from onnxruntime.quantization import QuantType
from ort_reference import Recipe, quantize, session

QDQ = Recipe("qdq", per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--model", default="resnet50", help="a light model of the onnx package")
    args = parser.parse_args()

    start = time.perf_counter()
    built = light_model(args.model, seed=0)
    load = time.perf_counter() - start
    start = time.perf_counter()
    qdq = quantize(built, QDQ)
    quant = time.perf_counter() - start
    print(f"{args.model}: load + convert {load:.2f} s, quantize_static ({QDQ.name}) {quant:.2f} s")
    for label, model in (("fp32", built.model), ("qdq int8", qdq)):
        for threads in (1, 2):
            sess = session(model, "extended", threads)
            t = best_of(lambda s=sess: s.run(None, built.inputs), args.repeats)
            print(f"  ORT {label:8s} {threads} thread{'s' if threads > 1 else ' '}: {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
