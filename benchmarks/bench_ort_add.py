"""accelsim's QLinearAdd (accelsim.quant.ort_vector.add, one Numba kernel) vs ONNX Runtime's own QLinearAdd.

Run: ``python benchmarks/bench_ort_add.py [--repeats N]``. Shapes: a ResNet-50 residual add ``[1, 256, 56,
56]`` (two operands of one shape), an SE block's per-channel operand ``[1, 256, 1, 1]`` and a scalar. Each
figure is the best of N runs after a warm-up, accelsim and ORT (one thread) interleaved so both see the same
machine load; the ratio is accelsim's time over ORT's. The codes are checked equal to ORT's on every shape.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from accelsim.quant import QParams, ort_vector

CASES = {"residual": (1, 256, 56, 56), "per-channel": (1, 256, 1, 1), "scalar": ()}
SCALES = {"a": (0.05, 3), "b": (0.04, 0), "y": (0.06, 1)}


def _ort_add(a_shape: tuple[int, ...], b_shape: tuple[int, ...]):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    params = [numpy_helper.from_array(np.float32(s), f"s{k}") for k, (s, _) in SCALES.items()]
    params += [numpy_helper.from_array(np.uint8(z), f"z{k}") for k, (_, z) in SCALES.items()]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "bench",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, s) for n, s in (("a", a_shape), ("b", b_shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        params,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        helper.make_model(graph, opset_imports=opsets).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda a, b: session.run(None, {"a": a, "b": b})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    qp = {k: QParams(np.float32([s]), np.int32([z]), "uint8") for k, (s, z) in SCALES.items()}
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, CASES["residual"]).astype(np.uint8)
    print(f"{'b operand':<12} {'accelsim ms':>12} {'ORT ms':>8} {'ratio':>6}")
    for name, b_shape in CASES.items():
        b = rng.integers(0, 256, b_shape).astype(np.uint8)
        session = _ort_add(a.shape, b.shape)
        runs = {
            "accelsim": partial(lambda a, b: ort_vector.add(a, qp["a"], b, qp["b"], qp["y"])[0], a, b),
            "ort": partial(session, a, b),
        }
        np.testing.assert_array_equal(runs["accelsim"](), runs["ort"]())
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(args.repeats):
            for who, fn in runs.items():
                start = time.perf_counter()
                fn()
                best[who] = min(best[who], time.perf_counter() - start)
        ratio = best["accelsim"] / best["ort"]
        print(f"{name:<12} {best['accelsim'] * 1e3:>12.2f} {best['ort'] * 1e3:>8.2f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
