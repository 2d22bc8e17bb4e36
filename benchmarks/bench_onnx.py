"""ONNX Runtime's own inference time on ResNet-50, fp32 and static QDQ int8: the bar for issue 16.

Run: ``python benchmarks/bench_onnx.py [--repeats N] [--model NAME]``. The model is onnx's shipped
``light_resnet50.onnx`` (opset 9, converted to 17) with seeded weights and BatchNorm statistics (the file
stores every weight as a ConstantOfShape of 0.02, whose activations overflow to logits of 1e19; see
``tests/onnx_models.light_model``). The QDQ model is ``quantize_static`` with QUInt8 activations and
per-channel QInt8 weights, calibrated with MinMax on four seeded uniform batches. Each figure is the best of
N runs after a warm-up, at ORT_ENABLE_EXTENDED (the fused, integer graph), for 1 and 2 intra-op threads.

accelsim's side, in the same run (issue 16's goals): importing each model from its file (fp32: ``import_onnx``;
QDQ: ``load_quantized`` (ORT's fused graph) + ``import_quantized``; goal < 2 s each), ``accelsim compare`` on the
fp32 model (in-process, all four schemes, timing and values), and the bit-exact static run of the QDQ model on
its own codes and scales (requant mode float_half_even), prepared once as ORT prepares its session (lowered,
weights packed on the warm-up): the values alone and ``simulate`` (values, timing, records) against ORT's
inference of the same quantized model at 1 and 2 threads (goal <= 3x).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from best_of import best_of
from onnx_models import light_model
from onnxruntime.quantization import QuantType
from ort_reference import Recipe, quantize, session

from accelsim.cli import main as accelsim_main
from accelsim.config.loader import load_hardware
from accelsim.dynamic_flavours import FlavourName
from accelsim.kernels import threads as gemm_threads
from accelsim.lowering.program import lower, lowering_options
from accelsim.onnx import import_onnx
from accelsim.onnx.quantized import load_quantized
from accelsim.onnx.quantized_workload import import_quantized
from accelsim.simulation import PreparedModel, RunOptions, simulate
from accelsim.values.runner import run_values

QDQ = Recipe("qdq", per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


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
    ort_ms = {}
    for label, model in (("fp32", built.model), ("qdq int8", qdq)):
        for threads in (1, 2):
            sess = session(model, "extended", threads)
            t = best_of(lambda s=sess: s.run(None, built.inputs), args.repeats)
            ort_ms[label, threads] = t * 1e3
            print(f"  ORT {label:8s} {threads} thread{'s' if threads > 1 else ' '}: {t * 1e3:8.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        fp32_file, qdq_file = Path(tmp) / f"{args.model}.onnx", Path(tmp) / f"{args.model}_int8.onnx"
        onnx.save(built.model, fp32_file)
        onnx.save(qdq, qdq_file)
        accelsim_side(args, built.inputs, fp32_file, qdq_file, Path(tmp), ort_ms)


def accelsim_side(args, feeds, fp32_file: Path, qdq_file: Path, tmp: Path, ort_ms: dict) -> None:
    """Import times, ``compare`` on the fp32 model, the bit-exact static run against ORT's int8 inference."""
    start = time.perf_counter()
    import_onnx(fp32_file, batch=1)
    fp32_import = time.perf_counter() - start
    start = time.perf_counter()
    q = import_quantized(load_quantized(qdq_file, batch=1), name=args.model)
    qdq_import = time.perf_counter() - start
    print(f"  accelsim import fp32 {fp32_import:.2f} s, QDQ {qdq_import:.2f} s (goal < 2 s each)")

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = accelsim_main(["compare", str(fp32_file), "--out", str(tmp / "reports")])
    print(
        f"  accelsim compare {fp32_file.name} (fp32, woq, dynamic, static): {time.perf_counter() - start:.2f} s (exit {code})"
    )

    workload = q.imported.workload
    hw = load_hardware(None, [f"requant.rounding={q.variant}"])
    tensors = q.static_tensors(feeds)
    program = lower(workload, hw, q.scheme, **lowering_options(FlavourName.ONNX, q.weights))

    # the model's own parameters: ORT's float groups (ResNet's Sums) run as float here too, nothing is calibrated
    qparams = q.qparams

    def values():
        return run_values(workload, hw, q.scheme, tensors=tensors, qparams=qparams, weights=q.weights, program=program)

    def simulated():
        simulate(
            workload,
            hw,
            q.scheme,
            options=RunOptions(errors_against_fp32=False, weights=q.weights),
            prepared=PreparedModel(program=program, tensors=tensors, qparams=qparams),
        )

    mine = values().output
    (theirs,) = session(onnx.load(qdq_file), "extended", 1).run(None, feeds)
    print(f"  accelsim static output vs ORT's: max abs difference {np.abs(mine - theirs).max():.3g}")
    for threads in (1, 2):
        gemm_threads.set_threads(threads)
        ort = ort_ms["qdq int8", threads]
        alone = best_of(values, args.repeats) * 1e3
        whole = best_of(simulated, args.repeats) * 1e3
        print(
            f"  accelsim static, {threads} thread{'s' if threads > 1 else ' '}: values {alone:7.1f} ms "
            f"({alone / ort:.1f}x ORT), simulate (values + timing + records) {whole:7.1f} ms ({whole / ort:.1f}x ORT; "
            "goal <= 3x)"
        )


if __name__ == "__main__":
    main()
