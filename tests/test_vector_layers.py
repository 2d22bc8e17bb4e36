"""The vector-unit layer types of issue 16: ``elementwise``, standalone ``activation`` and ``scale_shift``.

Shape inference refuses what does not fit, naming the field; every activation function and elementwise op
matches ONNX Runtime on a one-node model; under static int8 each is dequantize -> float op -> quantize with
the output's parameters, checked code for code on power-of-two scales whose results fall on rounding ties
and past the int8 range, for a half-away and a half-even requant mode; lowering prices them per element."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from accelsim.config.loader import load_hardware
from accelsim.config.validation import FieldError
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import ACTIVATION_OPS, REDUCE_OPS, STATIC_REQUANT_OPS, lower
from accelsim.onnx import import_onnx
from accelsim.onnx.export import export
from accelsim.quant import QParams
from accelsim.values.runner import run_values
from accelsim.values.tensors import LayerParams, WorkloadTensors

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om

ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime


def _workload(layers: list[dict], shape: list[int], batch: int = 2, **extra: object) -> Workload:
    return Workload.model_validate(
        {"schema_version": 1, "name": "vector", "batch": batch, "input_shape": shape, "layers": layers, **extra}
    )


# ---------------------------------------------------------------------------------------------------
# shape inference


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        ({"type": "elementwise", "op": "mul", "constant": [3, 1]}, [4, 5], "shapes [4, 5] and [3, 1] do not broadcast"),
        ({"type": "elementwise", "op": "add", "inputs": ["input", "input"]}, [4], "that is the add layer"),
        ({"type": "elementwise", "op": "sub"}, [4], "elementwise reads two inputs (or one and a constant), got 1"),
        ({"type": "elementwise", "op": "div", "constant_first": True}, [4], "needs a constant operand"),
        ({"type": "elementwise", "op": "pow", "constant": [1]}, [4], "op"),
        ({"type": "elementwise", "op": "mul", "constant": [2, 1, 1, 1, 1]}, [4], "constant"),
        ({"type": "activation", "function": "sigmoid", "alpha": 0.5}, [4], "is not a parameter of sigmoid"),
        ({"type": "activation", "function": "clip"}, [4], "clip needs a min, a max or both"),
        ({"type": "activation", "function": "clip", "min": 2, "max": 1}, [4], "1 is below min 2"),
        ({"type": "activation", "function": "leaky_relu", "alpha": 1e7}, [4], "outside the plausible range"),
        ({"type": "activation", "function": "swish"}, [4], "function"),
        ({"type": "scale_shift"}, [4], "needs a [C, ...] input with a channel axis"),
        ({"type": "activation", "function": "sqrt", "alpha": 2}, [4], "is not a parameter of sqrt"),
        ({"type": "reduce_mean", "axis": 0}, [4], "axis"),
    ],
)
def test_shape_inference_refuses_naming_the_field(layer: dict, shape: list[int], message: str) -> None:
    with pytest.raises((AccelsimError, FieldError, ValueError)) as info:
        _workload([{"name": "v", **layer}], shape)
    assert message in str(info.value)


def test_broadcast_shapes_and_parameters() -> None:
    w = _workload(
        [
            {"name": "pool", "type": "avgpool", "global_pool": True},
            {"name": "gate", "type": "activation", "function": "hard_sigmoid"},
            {"name": "scaled", "type": "elementwise", "op": "mul", "inputs": ["input", "gate"]},
            {"name": "shift", "type": "elementwise", "op": "sub", "constant": [7], "constant_first": True},
            {"name": "bn", "type": "scale_shift", "activation": "hard_swish"},
        ],
        [3, 5, 7],
    )
    assert [s.output_shape for s in w.shapes] == [(3, 1, 1), (3, 1, 1), (3, 5, 7), (3, 5, 7), (3, 5, 7)]
    assert [s.params for s in w.shapes] == [0, 0, 0, 7, 6]
    assert w.layers[1].parameters == {"alpha": 0.2, "beta": 0.5}  # type: ignore[union-attr]  # ONNX's defaults


# ---------------------------------------------------------------------------------------------------
# fp32 against ONNX Runtime, one node at a time (through the importer)

ONE_NODE = {
    "Sigmoid": {},
    "Tanh": {},
    "HardSwish": {},
    "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
    "LeakyRelu": {"alpha": 0.15},
    "Relu": {},
    "Erf": {},
}


def _one_node(op: str, shape: tuple[int, ...], *constants: np.ndarray, **attrs: object) -> om.Built:
    g = om._Graph(f"one_{op}", shape)
    return g.build(g.op(op, "x", *(g.const(np.asarray(c, np.float32)) for c in constants), **attrs))


def _against_ort(built: om.Built, tmp_path: Path, kinds: list[str]) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(built.model, path)
    imported = import_onnx(path)
    assert [layer.type for layer in imported.workload.layers] == kinds
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    values = run_values(imported.workload, load_hardware(), "fp32", tensors=imported.tensors(built.inputs))
    got = values.layers[next(iter(imported.outputs.values()))].stored
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", sorted(ONE_NODE))
def test_standalone_activation_matches_onnxruntime(op: str, tmp_path: Path) -> None:
    built = _one_node(op, (2, 3, 4, 5), **ONE_NODE[op])
    built.inputs["x"] *= 5  # both sides of every kink (hard-sigmoid's clamps at +-2.5)
    _against_ort(built, tmp_path, ["activation"])


@pytest.mark.parametrize(
    ("bounds", "function"), [((-1.0, 2.5), "clip"), ((0.0, 6.0), "relu6"), ((-2.0, None), "clip"), ((None, None), "")]
)
def test_standalone_clip(bounds: tuple[float | None, float | None], function: str, tmp_path: Path) -> None:
    g = om._Graph("clip", (2, 8))
    names = ["" if b is None else g.const(np.float32(b)) for b in bounds]
    built = g.build(g.op("Clip", g.op("Sigmoid", "x"), *names) if function == "" else g.op("Clip", "x", *names))
    built.inputs["x"] *= 4
    path = tmp_path / "m.onnx"
    onnx.save(built.model, path)
    layers = import_onnx(path).workload.layers
    assert [getattr(layer, "function", None) for layer in layers] == ([function] if function else ["sigmoid"])
    _against_ort(built, tmp_path, ["activation"])


@pytest.mark.parametrize("op", ["Sub", "Div", "Mul", "Add"])
@pytest.mark.parametrize("constant_first", [False, True])
def test_elementwise_with_a_constant_on_either_side(op: str, constant_first: bool, tmp_path: Path) -> None:
    g = om._Graph("binary", (2, 3, 4))
    c = g.const(np.random.default_rng(3).uniform(0.5, 2.0, (3, 1)).astype(np.float32))
    built = g.build(g.op(op, *((c, "x") if constant_first else ("x", c))))
    _against_ort(built, tmp_path, ["elementwise"])


def test_elementwise_two_activations_broadcast(tmp_path: Path) -> None:
    g = om._Graph("broadcast", (2, 3, 4, 5))
    gate = g.op("Sigmoid", g.op("GlobalAveragePool", "x"))  # [N, 3, 1, 1]
    built = g.build(g.op("Div", gate, g.op("Add", "x", g.const(np.float32(4.0)))))
    _against_ort(built, tmp_path, ["avgpool", "activation", "elementwise", "elementwise"])


def test_standalone_batchnorm_is_a_scale_shift(tmp_path: Path) -> None:
    g = om._Graph("bn", (2, 4, 3, 3))
    built = g.build(g.op("Relu", g.batchnorm(g.op("MaxPool", "x", kernel_shape=[2, 2]), 4)))
    path = tmp_path / "m.onnx"
    onnx.save(built.model, path)
    (_pool, bn) = import_onnx(path).workload.layers
    assert bn.type == "scale_shift" and bn.activation == "relu"  # type: ignore[union-attr]
    _against_ort(built, tmp_path, ["maxpool", "scale_shift"])


def test_a_constant_that_varies_along_the_batch_is_refused(tmp_path: Path) -> None:
    built = _one_node("Mul", (2, 3), np.ones((2, 3)))
    path = tmp_path / "m.onnx"
    onnx.save(built.model, path)
    with pytest.raises(AccelsimError, match=r"\(Mul\): the constant of shape \[2, 3\] varies along the batch"):
        import_onnx(path)


# ---------------------------------------------------------------------------------------------------
# static int8: dequantize, float op, quantize with the output's parameters


def _static(layer: dict, x: np.ndarray, scales: tuple[float, float], mode: str, weight: np.ndarray | None):
    w = _workload([{"name": "v", **layer}], list(x.shape[1:]), batch=x.shape[0])
    hw = load_hardware(overrides=[f"requant.rounding={mode}"])
    dtype = "int8" if mode == "tflite" else "uint8"
    zero = 0 if dtype == "int8" else 128
    qparams = {name: QParams([s], [zero], dtype) for name, s in zip(("input", "v"), scales)}
    params = {} if weight is None else {"v": LayerParams(weight, None)}
    tensors = WorkloadTensors(params, {"input": x}, {"input": x})
    return run_values(w, hw, "static", tensors=tensors, qparams=qparams).layers["v"], zero


@pytest.mark.parametrize(("mode", "half_away"), [("tflite", True), ("float_half_even", False)])
@pytest.mark.parametrize(
    ("layer", "real", "out_scale"),
    [
        ({"type": "elementwise", "op": "mul", "constant": [1]}, lambda x: x * 1.5, 1 / 16),
        ({"type": "elementwise", "op": "div", "constant": [1], "constant_first": True}, lambda x: 1.5 / x, 1 / 2),
        ({"type": "activation", "function": "leaky_relu", "alpha": 0.5}, lambda x: np.where(x >= 0, x, x / 2), 1 / 16),
    ],
    ids=["mul", "div", "leaky_relu"],
)
def test_static_is_dequantize_float_op_quantize(layer: dict, real, out_scale: float, mode: str, half_away: bool):
    """Input codes k at scale 1/16 (exact reals): x * 1.5 at the output scale 1/16 is 1.5 k, a tie for odd k
    (away from zero under tflite, to even under ORT's rule), past the int8 range for |k| > 84; 1.5 / x and
    leaky_relu(x, 0.5) have ties too. The codes are the float op's result quantized, tie for tie."""
    k = np.arange(-100, 101, dtype=np.float32)
    x = (k[k != 0] / 16).reshape(2, -1)
    weight = np.array([1.5], np.float32) if "constant" in layer else None
    out, zero = _static(layer, x, (1 / 16, out_scale), mode, weight)
    t = real(x.astype(np.float64)) / out_scale
    rounded = np.sign(t) * np.floor(np.abs(t) + 0.5) if half_away else np.round(t)
    lo, hi = (-128, 127) if zero == 0 else (0, 255)
    assert np.any(np.abs(t - np.trunc(t)) == 0.5)  # ties present
    np.testing.assert_array_equal(out.codes, np.clip(rounded + zero, lo, hi))
    saturated = np.count_nonzero((rounded + zero < lo) | (rounded + zero > hi))
    assert out.vector_saturations == saturated and (saturated > 0) == (
        layer["type"] == "elementwise" and layer["op"] == "mul"
    )


def test_every_scheme_runs_the_vector_layers_and_lowering_prices_them() -> None:
    w = _workload(
        [
            {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel": 1, "activation": "sigmoid"},
            {"name": "bn", "type": "scale_shift", "activation": "relu6"},
            {"name": "scale", "type": "elementwise", "op": "mul", "constant": [4, 1, 1]},
            {"name": "act", "type": "activation", "function": "tanh"},
            {"name": "gate", "type": "elementwise", "op": "mul", "inputs": ["act", "conv"], "activation": "hard_swish"},
        ],
        [4, 6, 6],
    )
    hw = load_hardware()
    ref = run_values(w, hw, "fp32")
    for scheme in ("woq", "dynamic", "static"):
        values = run_values(w, hw, scheme)
        assert values.compare_to(ref)["__output__"].sqnr_db > 25  # int8 activations: about 8 bits of signal
    static = lower(w, hw, "static")
    elements = 2 * 4 * 6 * 6
    work = {layer.name: layer.work for layer in static.workload_layers}
    assert work["bn"].dram_read_bytes["ifmap"] == elements  # int8 in
    assert work["bn"].dram_read_bytes["weights"] == 2 * 4 * 4  # float32 scale and shift
    assert work["scale"].dram_read_bytes["weights"] == 4 * 4
    assert work["gate"].dram_read_bytes["ifmap"] == 2 * elements  # two int8 operands
    lanes = hw.vector.lanes
    want_act = elements * (ACTIVATION_OPS["tanh"] + STATIC_REQUANT_OPS)
    assert abs(work["act"].vector_cycles - want_act / lanes) <= hw.vector.latency_cycles + len(
        static.workload_layers[3].tiles
    )


def test_layernorm_steps_import_run_export_and_price(tmp_path: Path) -> None:
    """A LayerNorm written out whose centred tensor is read again after it (so the importer's pattern does not
    match) imports step by step: reduce_mean, sub, square (Pow 2), reduce_mean, add eps, sqrt, div. fp32 equals ONNX Runtime bit for
    bit (the reduce_means sum in ORT's order); the workload exported again computes the same in ORT; static
    prices reduce_mean as one operation per input and per output element plus the requant."""
    g = om._Graph("steps", (2, 6, 13))
    centred = g.op("Sub", "x", g.op("ReduceMean", "x", axes=[-1], keepdims=1))
    var = g.op("ReduceMean", g.op("Pow", centred, g.const(np.float32(2))), axes=[-1], keepdims=1)
    normed = g.op("Div", centred, g.op("Sqrt", g.op("Add", var, g.const(np.float32(1e-5)))))
    built = g.build(g.op("Add", normed, centred))
    path = tmp_path / "m.onnx"
    onnx.save(built.model, path)
    imported = import_onnx(path)
    kinds = [(layer.type, getattr(layer, "function", None)) for layer in imported.workload.layers]
    assert kinds == [
        ("reduce_mean", None),
        ("elementwise", None),
        ("activation", "square"),
        ("reduce_mean", None),
        ("elementwise", None),
        ("activation", "sqrt"),
        ("elementwise", None),
        ("add", None),
    ]
    assert [s.output_shape for s in imported.workload.shapes][:2] == [(6, 1), (6, 13)]
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    tensors = imported.tensors(built.inputs)
    values = run_values(imported.workload, load_hardware(), "fp32", tensors=tensors)
    got = values.layers[next(iter(imported.outputs.values()))].stored
    np.testing.assert_array_equal(got.reshape(want.shape).view(np.int32), want.view(np.int32))
    exported = export(imported.workload, load_hardware(), "fp32", tensors)
    (again,) = ort_reference.run(exported.model, {"input": built.inputs["x"]}, "disabled")
    np.testing.assert_array_equal(again.view(np.int32), want.view(np.int32))
    static = lower(imported.workload, load_hardware(), "static")
    mean = static.workload_layers[0]
    ops = (2 * 6 * 13 + 2 * 6) * (REDUCE_OPS + 1)
    lanes, hw = load_hardware().vector.lanes, load_hardware()
    assert abs(mean.work.vector_cycles - ops / lanes) <= hw.vector.latency_cycles + len(mean.tiles)
