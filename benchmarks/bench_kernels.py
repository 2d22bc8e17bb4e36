"""GOP/s of accelsim's exact int8 GEMM vs ONNX Runtime MatMulInteger (uint8 x int8) vs numpy float32.

Run: ``python benchmarks/bench_kernels.py [--repeats N]``. One op = one multiply or one add
(2 * M * K * N per GEMM). Each figure is the best of N timed runs after a warm-up; accelsim and
ORT are measured interleaved so that both see the same machine load, numpy separately afterwards
(OpenBLAS threads keep spinning after a call and would steal the CPU from the next measurement).
accelsim's output is checked against ORT's bit for bit on every shape.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np

from accelsim.kernels import int_gemm, vnni
from accelsim.kernels import threads as gemm_threads

SHAPES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (128, 768, 3072)]


def _ort_matmul_integer(m: int, k: int, n: int, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "bench",
        [
            helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k]),
            helper.make_tensor_value_info("B", TensorProto.INT8, [k, n]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # ORT's pool threads spin after each run by default; interleaved, they would steal the CPU from
    # the next measurement (accelsim's). accelsim's pool threads block instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"A": a, "B": b})[0]


def _best_times(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads for accelsim and ORT (numpy: BLAS default)"
    )
    args = parser.parse_args()
    gemm_threads.set_threads(args.threads)
    rng = np.random.default_rng(0)
    print(
        f"cpus={os.cpu_count()} threads={args.threads} vnni={vnni.AVAILABLE} (accelsim path: {'vnni' if vnni.AVAILABLE else 'blas'})"
    )
    print(f"{'M x K x N':>18} | {'accelsim':>9} | {'ORT':>9} | {'np fp32':>9} | accelsim/ORT   [GOP/s]")
    for m, k, n in SHAPES:
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        af, bf = a.astype(np.float32), b.astype(np.float32)
        ort_mm = _ort_matmul_integer(m, k, n, args.threads)
        if not np.array_equal(int_gemm(a, b).values, ort_mm(a, b)):
            raise SystemExit(f"accelsim and ORT disagree on {m}x{k}x{n}")
        best = _best_times({"accelsim": partial(int_gemm, a, b), "ort": partial(ort_mm, a, b)}, args.repeats)
        best |= _best_times({"np": partial(np.matmul, af, bf)}, args.repeats)
        gops = {name: 2 * m * k * n / t / 1e9 for name, t in best.items()}
        print(
            f"{f'{m}x{k}x{n}':>18} | {gops['accelsim']:9.1f} | {gops['ort']:9.1f} | {gops['np']:9.1f} | {gops['accelsim'] / gops['ort']:.2f}"
        )


if __name__ == "__main__":
    main()
