"""Engine speed against peers, measured in one run on this machine.

1. Timing only: ResNet-18's conv layers (SCALE-Sim's own ``Resnet18.csv``) on one array, SCALE-Sim 3.0
   (ideal memory, CALC mode; in its own venv, see validate_scalesim.py) against ``accelsim run
   --timing-only`` of the same topology imported with ``accelsim import scalesim``. Goal: accelsim at
   least 1000x faster. Two ratios: warm in-process simulation time (``simulate`` in a process that has
   already imported and run once: what a sweep or a notebook pays per point) and whole process against
   whole process (``accelsim run --timing-only`` started from the shell: interpreter, imports, loading,
   lowering, engine, records and the results files, as SCALE-Sim's timed run is its whole process).
2. Full bit-exact static int8 ResNet-50: ``simulate`` computing every layer's exact int8 values, the
   timing simulation and the records, the model prepared once as ORT's session is (weights drawn,
   quantized and packed, activations calibrated and the model lowered for the accelerator
   beforehand; the ratio with lowering in every run is printed too), against ONNX Runtime running an
   int8 model of the same shapes (float model built from the same workload YAML, quantized with
   onnxruntime.quantization.quantize_static, QOperator format: QLinearConv/QLinearAdd/QGemm), at 1
   thread each and at every CPU each (at 1 thread the timing simulation, then the values; at more,
   the engine plays in slices on the calling thread while each GEMM runs on a pool thread, and the
   GEMMs split over the threads once it is over: docs/engine.md). Goal: within 3x of ONNX Runtime's time.
3. Events and peak memory of the ResNet-50 run.

    python benchmarks/bench_engine.py [--array 32] [--dataflow ws] [--skip-scalesim]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from accelsim.config import load_hardware, load_workload
from accelsim.config.scalesim_topology import import_topology, workload_yaml
from accelsim.config.workload import Add, AvgPool, Conv2d, Flatten, Linear, MaxPool, Workload, pair
from accelsim.kernels import threads as gemm_threads
from accelsim.lowering.program import Program, lower
from accelsim.quant import REQUANT_MODES
from accelsim.schemes import SchemeName
from accelsim.simulation import PreparedModel, RunOptions, simulate
from accelsim.values.runner import calibrate, run_values
from accelsim.values.tensors import materialize

sys.path.insert(0, str(Path(__file__).parent))
from validate_scalesim import CONFIG, RUNNER, TOPOLOGIES, scalesim_python

TIMING_ONLY = RunOptions(timing_only=True)


def time_scalesim(rows: int, cols: int, dataflow: str) -> float:
    python = scalesim_python()
    with tempfile.TemporaryDirectory(prefix="bench-scalesim-") as tmp:
        config = Path(tmp, "scale.cfg")
        config.write_text(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        start = time.perf_counter()
        subprocess.run(
            [
                str(python),
                "-c",
                RUNNER,
                str(config),
                str(TOPOLOGIES / "Resnet18.csv"),
                str(TOPOLOGIES / "layout_dummy.csv"),
                str(Path(tmp, "out")),
                "conv",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


def time_accelsim_timing(rows: int, cols: int, dataflow: str, repeats: int = 5) -> float:
    workload = import_topology(TOPOLOGIES / "Resnet18.csv")
    hw = load_hardware(
        None, [f"array.rows={rows}", f"array.cols={cols}", f"array.dataflow={dataflow}", "array.model=scalesim"]
    )
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        simulate(workload, hw, SchemeName.STATIC, options=TIMING_ONLY)
        best = min(best, time.perf_counter() - start)
    return best


def time_accelsim_process(rows: int, cols: int, dataflow: str, repeats: int = 3) -> float:
    """``accelsim run --timing-only`` of the imported topology as a process of its own, best of ``repeats``."""
    with tempfile.TemporaryDirectory(prefix="bench-accelsim-") as tmp:
        workload = Path(tmp, "resnet18_scalesim.yaml")
        workload.write_text(workload_yaml(import_topology(TOPOLOGIES / "Resnet18.csv")))
        command = [
            sys.executable,
            "-m",
            "accelsim",
            "run",
            str(workload),
            "--timing-only",
            "--scheme",
            "static",
            "--set",
            f"array.rows={rows}",
            "--set",
            f"array.cols={cols}",
            "--set",
            f"array.dataflow={dataflow}",
            "--set",
            "array.model=scalesim",
            "--out",
            str(Path(tmp, "reports")),
        ]
        return min(
            _timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)) for _ in range(repeats)
        )


def onnx_float_model(workload: Workload, weights_seed: int = 0):
    """A float ONNX graph of a CNN workload (conv, linear, add, pooling, flatten) with random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(weights_seed)
    nodes, inits = [], []
    batch = workload.batch

    def act(name: str, out: str, activation: str) -> str:
        if activation == "relu":
            nodes.append(helper.make_node("Relu", [name], [out]))
            return out
        if activation == "relu6":
            lo, hi = (
                numpy_helper.from_array(np.float32(0), out + ".lo"),
                numpy_helper.from_array(np.float32(6), out + ".hi"),
            )
            inits.extend([lo, hi])
            nodes.append(helper.make_node("Clip", [name, lo.name, hi.name], [out]))
            return out
        return name

    produced = {"input": "input"}
    for s in workload.shapes:
        layer, ins = s.layer, [produced[n] for n in s.input_names]
        raw = layer.name + ".raw"
        if isinstance(layer, Conv2d):
            c = s.input_shapes[0][0]
            kh, kw = pair(layer.kernel)
            w = rng.standard_normal((layer.out_channels, c // layer.groups, kh, kw)).astype(np.float32)
            w *= np.sqrt(2.0 / (c // layer.groups * kh * kw))
            inits += [
                numpy_helper.from_array(w, layer.name + ".w"),
                numpy_helper.from_array(rng.normal(0, 0.01, layer.out_channels).astype(np.float32), layer.name + ".b"),
            ]
            ph, pw = pair(layer.padding)
            nodes.append(
                helper.make_node(
                    "Conv",
                    [ins[0], layer.name + ".w", layer.name + ".b"],
                    [raw],
                    kernel_shape=[kh, kw],
                    strides=list(pair(layer.stride)),
                    pads=[ph, pw, ph, pw],
                    dilations=list(pair(layer.dilation)),
                    group=layer.groups,
                )
            )
            produced[layer.name] = act(raw, layer.name, layer.activation)
        elif isinstance(layer, Linear):
            k = s.input_shapes[0][-1]
            w = (rng.standard_normal((layer.out_features, k)) * np.sqrt(1.0 / k)).astype(np.float32)
            inits += [
                numpy_helper.from_array(w, layer.name + ".w"),
                numpy_helper.from_array(np.zeros(layer.out_features, np.float32), layer.name + ".b"),
            ]
            nodes.append(helper.make_node("Gemm", [ins[0], layer.name + ".w", layer.name + ".b"], [raw], transB=1))
            produced[layer.name] = act(raw, layer.name, layer.activation)
        elif isinstance(layer, Add):
            nodes.append(helper.make_node("Add", ins, [raw]))
            produced[layer.name] = act(raw, layer.name, layer.activation)
        elif isinstance(layer, MaxPool):
            kh, kw = pair(layer.kernel)
            ph, pw = pair(layer.padding)
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    ins,
                    [layer.name],
                    kernel_shape=[kh, kw],
                    strides=list(pair(layer.stride or layer.kernel)),
                    pads=[ph, pw, ph, pw],
                )
            )
            produced[layer.name] = layer.name
        elif isinstance(layer, AvgPool) and layer.global_pool:
            nodes.append(helper.make_node("GlobalAveragePool", ins, [layer.name]))
            produced[layer.name] = layer.name
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", ins, [layer.name], axis=1))
            produced[layer.name] = layer.name
        else:
            raise NotImplementedError(f"{layer.type} is not needed for the CNN benchmark")
    out = produced[workload.layers[-1].name]
    graph = helper.make_graph(
        nodes,
        workload.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, *workload.input_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        inits,
    )
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def time_onnxruntime_int8(workload: Workload, threads: int, repeats: int = 10) -> tuple[float, str]:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    shape = (workload.batch, *workload.input_shape)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.batches = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="bench-ort-") as tmp:
        fp32, int8 = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        onnx.save(onnx_float_model(workload), fp32)
        quantize_static(
            str(fp32),
            str(int8),
            Reader(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        ops = sorted({n.op_type for n in onnx.load(int8).graph.node})
        x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
        session.run(None, {"input": x})
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, {"input": x})
            best = min(best, time.perf_counter() - start)
    return best, ", ".join(ops)


REPEATS = 10


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best(fn) -> float:
    return min(_timed(fn) for _ in range(REPEATS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--array", type=int, default=32, help="square array size for the SCALE-Sim comparison")
    parser.add_argument("--dataflow", default="ws", choices=("os", "ws", "is"))
    parser.add_argument("--skip-scalesim", action="store_true")
    args = parser.parse_args()

    if not args.skip_scalesim:
        ours = time_accelsim_timing(args.array, args.array, args.dataflow)
        process = time_accelsim_process(args.array, args.array, args.dataflow)
        theirs = time_scalesim(args.array, args.array, args.dataflow)
        print(
            f"1. ResNet-18 convs (SCALE-Sim Resnet18.csv, 21 layers), {args.array}x{args.array} {args.dataflow.upper()}, timing only"
        )
        print(f"   SCALE-Sim 3.0, whole process: {theirs:9.2f} s")
        print(
            f"   accelsim, warm in-process simulate: {ours * 1e3:9.2f} ms   {theirs / ours:,.0f}x faster (goal >= 1000x)"
        )
        print(
            f"   accelsim, whole process (accelsim run --timing-only): {process:6.2f} s   {theirs / process:,.0f}x faster"
        )

    workload, hw = load_workload("resnet50"), load_hardware(None)
    # Like ORT's session, the deployed model is prepared once, before the timed runs: weights drawn,
    # quantized and packed (on the first run), activations calibrated, and the model compiled for the
    # accelerator (lowered: tiling and dataflow per layer, which depend on the model and hardware only).
    tensors = materialize(workload)
    program = lower(workload, hw, "static")
    qparams = calibrate(workload, tensors, program, dtype=REQUANT_MODES[hw.requant.rounding].activation_dtype)
    lowering_seconds = min(_timed(lambda: lower(workload, hw, "static")) for _ in range(5))

    def run(prepared: Program | None) -> None:
        """One bit-exact static run with its timing simulation and records (no fp32 run for errors)."""
        simulate(
            workload,
            hw,
            SchemeName.STATIC,
            options=RunOptions(errors_against_fp32=False),
            prepared=PreparedModel(program=prepared, tensors=tensors, qparams=qparams),
        )

    cores = gemm_threads.CPUS
    print(f"2. ResNet-50 static int8, batch 1, default hardware, best of {REPEATS} after a warm-up")
    print(f"   preparation, once: lowering {lowering_seconds * 1e3:.1f} ms")
    for threads in sorted({1, cores}):
        gemm_threads.set_threads(threads)
        ort_seconds, ops = time_onnxruntime_int8(workload, threads)
        run(program), run(None)  # JIT (disk-cached), weight packing
        ours = _best(lambda: run(program))
        fresh = _best(lambda: run(None))
        values = _best(lambda: run_values(workload, hw, "static", tensors=tensors, qparams=qparams, program=program))
        timing = _best(
            lambda: simulate(
                workload, hw, SchemeName.STATIC, options=TIMING_ONLY, prepared=PreparedModel(program=program)
            )
        )
        how = "timing, then values" if threads == 1 else "timing beside the values' GEMMs"
        print(f"   {threads} thread{'s' if threads > 1 else ''} each ({how})")
        print(f"   ONNX Runtime int8 ({ops}): {ort_seconds * 1e3:8.1f} ms")
        print(
            f"   accelsim values + timing + records:  {ours * 1e3:8.1f} ms   ratio accelsim/ORT {ours / ort_seconds:.1f}x (goal <= 3x)"
        )
        print(f"   the same, lowering in every run:     {fresh * 1e3:8.1f} ms   ratio {fresh / ort_seconds:.1f}x")
        print(f"   (alone: bit-exact values {values * 1e3:.1f} ms, timing simulation {timing * 1e3:.1f} ms)")
    gemm_threads.set_threads(cores)
    tracemalloc.start()
    full_seconds = _timed(lambda: simulate(workload, hw, SchemeName.STATIC))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    timing = simulate(workload, hw, SchemeName.STATIC, options=TIMING_ONLY)
    print(
        f"   whole `accelsim run --scheme static` work (weights, calibration, fp32 reference, errors): {full_seconds:.1f} s"
    )
    print(
        f"3. events: {timing.engine.events:,} engine events, {sum(len(l.tiles) for l in timing.program.layers):,} tiles; "
        f"peak Python heap of the whole run {peak / 2**20:.0f} MiB (tracemalloc)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
