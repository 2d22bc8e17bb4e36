"""Structure layer types (issue 16): concat, transpose, reshape, lrn, asymmetric padding, pool ceil_mode and
count_include_pad, broadcast matmul, Gemm transA. Each against ONNX Runtime (fp32, onnx's backend tolerance),
the static int8 layout ops against their definition (exact codes) and QLinearConcat (ties, saturation),
the light models that need them against their shipped outputs, an independent MAC count and every hardware
config, and the workload fields' refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from accelsim.config.loader import load_hardware
from accelsim.config.validation import validate
from accelsim.config.workload import Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import LRN_OPS, Lowerer, lower
from accelsim.onnx import import_onnx
from accelsim.quant import QParams
from accelsim.values.runner import run_values

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as om

ort_reference = pytest.importorskip("ort_reference")  # imports onnxruntime
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-3, 1e-7  # onnx's backend-test tolerance


def _save(model: onnx.ModelProto, tmp_path: Path, name: str = "model") -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _fp32(imported, feeds: dict[str, np.ndarray], scheme: str = "fp32") -> np.ndarray:
    values = run_values(imported.workload, load_hardware(), scheme, tensors=imported.tensors(feeds))
    return values.layers[next(iter(imported.outputs.values()))].output


def _against_ort(built: om.Built, tmp_path: Path) -> list[str]:
    """Import ``built``, check its fp32 output against ORT's, run it under every scheme; its layer types."""
    imported = import_onnx(_save(built.model, tmp_path))
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    np.testing.assert_allclose(_fp32(imported, built.inputs).reshape(want.shape), want, rtol=RTOL, atol=1e-6)
    for scheme in ("woq", "dynamic", "static"):  # every scheme computes it (static: calibrated on the run batch)
        assert np.all(np.isfinite(_fp32(imported, built.inputs, scheme)))
    return [layer.type for layer in imported.workload.layers]


# ---------------------------------------------------------------------------------------------------
# E's builders and models written here, against ORT


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("conv_dilated_asymmetric_pads", ["conv2d"]),
        ("conv_same_upper_stride_2_1", ["conv2d"]),
        ("layout_ops", ["conv2d", "conv2d", "concat", "transpose", "reshape", "transpose", "flatten", "linear"]),
        ("batched_matmul", ["linear", "transpose", "matmul"]),
        ("attention", ["linear", "linear", "linear", "transpose", "matmul", "softmax", "matmul", "linear"]),
    ],
)
def test_builder_imports_and_matches_onnxruntime(name: str, types: list[str], tmp_path: Path) -> None:
    assert _against_ort(om.BUILDERS[name](), tmp_path) == types


def test_asymmetric_padding_lands_as_four_sides(tmp_path: Path) -> None:
    """Explicit pads [0, 1, 2, 1] and SAME_UPPER's odd total (1 row: at the end) become [top, left, bottom, right]."""
    padding = {
        name: import_onnx(_save(om.BUILDERS[name]().model, tmp_path, name)).workload.layers[0].padding  # type: ignore[union-attr]
        for name in ("conv_dilated_asymmetric_pads", "conv_same_upper_stride_2_1")
    }
    assert padding == {"conv_dilated_asymmetric_pads": [0, 1, 2, 1], "conv_same_upper_stride_2_1": [0, 0, 1, 1]}


@pytest.mark.parametrize("auto_pad", ["SAME_LOWER", "SAME_UPPER"])
def test_same_lower_puts_the_odd_row_first(auto_pad: str, tmp_path: Path) -> None:
    g = om._Graph("same", (2, 3, 8, 7))
    built = g.build(g.conv("x", 3, 4, (2, 4), auto_pad=auto_pad, strides=[2, 1]))
    imported = import_onnx(_save(built.model, tmp_path))
    assert imported.workload.layers[0].padding == ([0, 1, 0, 2] if auto_pad == "SAME_UPPER" else [0, 2, 0, 1])  # type: ignore[union-attr]
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    np.testing.assert_allclose(_fp32(imported, built.inputs), want, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize(("op", "count_include_pad"), [("MaxPool", 0), ("AveragePool", 0), ("AveragePool", 1)])
@pytest.mark.parametrize(
    ("pads", "ceil_mode", "kernel", "strides"),
    [
        ([1, 0, 0, 1], 0, [3, 2], [2, 2]),  # asymmetric
        ([1, 1, 1, 1], 1, [3, 3], [2, 2]),  # ceil_mode adds a window that runs past the padding
        ([0, 1, 1, 0], 1, [2, 3], [3, 2]),  # both
        ([0, 0, 0, 0], 1, [3, 3], [2, 2]),  # ceil_mode alone
    ],
)
def test_pools_with_asymmetric_pads_ceil_mode_and_count_include_pad(
    op: str,
    count_include_pad: int,
    pads: list[int],
    ceil_mode: int,
    kernel: list[int],
    strides: list[int],
    tmp_path: Path,
) -> None:
    """ORT's MaxPool / AveragePool on a 10x9 input: the overhang a ceil_mode window reads never counts, the
    explicit padding counts only with count_include_pad."""
    g = om._Graph("pool", (2, 3, 10, 9))
    extra = {"count_include_pad": count_include_pad} if op == "AveragePool" else {}
    built = g.build(g.op(op, "x", kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=ceil_mode, **extra))
    imported = import_onnx(_save(built.model, tmp_path))
    (layer,) = imported.workload.layers
    assert layer.ceil_mode == bool(ceil_mode)  # type: ignore[union-attr]
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    got = _fp32(imported, built.inputs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)


def test_lrn_squeeze_unsqueeze_and_flatten_at_an_axis(tmp_path: Path) -> None:
    """LRN, Unsqueeze / Squeeze to reshapes, a
    Flatten at axis 2 (it merges the batch into the rows: the model imports as one sample)."""
    g = om._Graph("structure", (2, 6, 5, 4))
    x = g.op("LRN", "x", size=3, alpha=0.3, beta=0.6, bias=1.5)
    x = g.op("Unsqueeze", x, g.const([2], np.int64))  # [2, 6, 1, 5, 4]
    x = g.op("Squeeze", g.op("Transpose", x, perm=[0, 2, 1, 3, 4]), g.const([1], np.int64))  # [2, 6, 5, 4]
    built = g.build(g.op("Flatten", x, axis=1))
    assert _against_ort(built, tmp_path) == ["lrn", "reshape", "transpose", "reshape", "flatten"]
    g = om._Graph("flatten_axis_2", (2, 6, 5, 4))
    built = g.build(g.op("Flatten", g.op("Relu", g.conv("x", 6, 6, (1, 1))), axis=2))  # [12, 20]: rows mix the batch
    with pytest.raises(
        AccelsimError, match=r"node 'conv0' \(Conv\): needs .* node 'flatten2' \(Flatten\) moves the batch dim"
    ):
        import_onnx(_save(built.model, tmp_path, "flatten_axis_2"))
    g = om._Graph("flatten_axis_2", (2, 6, 5, 4))
    built = g.build(g.op("Softmax", g.op("Flatten", "x", axis=2), axis=-1))
    assert _against_ort(built, tmp_path) == ["reshape", "softmax"]
    imported = import_onnx(_save(built.model, tmp_path, "flatten_axis_2"))
    assert (imported.workload.batch, imported.workload.input_shape) == (1, [2, 6, 5, 4])


def test_matmul_operands_broadcast(tmp_path: Path) -> None:
    """[3, 4, 5] x [1, 5, 6] per sample: the right operand repeats over the left's leading dim."""
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("x", [2, 3, 4, 5]), ("y", [2, 1, 5, 6]))
    ]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "y"], ["z"], name="mm")],
        "broadcast",
        inputs,
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", om.OPSET)])
    rng = np.random.default_rng(1)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in (("x", (2, 3, 4, 5)), ("y", (2, 1, 5, 6)))}
    imported = import_onnx(_save(model, tmp_path))
    (shapes,) = imported.workload.shapes
    assert (shapes.layer.type, shapes.output_shape, shapes.macs) == ("matmul", (3, 4, 6), 3 * 4 * 5 * 6)
    (want,) = ort_reference.run(model, feeds, "disabled")
    np.testing.assert_allclose(_fp32(imported, feeds), want, rtol=RTOL, atol=1e-6)
    for scheme in ("dynamic", "static"):
        assert np.all(np.isfinite(_fp32(imported, feeds, scheme)))


def test_gemm_trans_a_imports_as_one_sample(tmp_path: Path) -> None:
    """transA mixes the first dim into the product, so the model is one sample of its whole input shape:
    a transpose layer, then the linear layer (alpha, beta folded)."""
    g = om._Graph("gemm_trans_a", (16, 4))
    built = g.build(g.op("Gemm", "x", g.weight(10, 16), g.weight(10, scale=0.1), transA=1, transB=1, alpha=0.5))
    imported = import_onnx(_save(built.model, tmp_path))
    workload = imported.workload
    assert (workload.batch, workload.input_shape, [layer.type for layer in workload.layers]) == (
        1,
        [16, 4],
        ["transpose", "linear"],
    )
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    np.testing.assert_allclose(_fp32(imported, built.inputs)[0], want, rtol=RTOL, atol=1e-6)


def test_transpose_of_the_batch_without_gemm_is_one_sample_too(tmp_path: Path) -> None:
    g = om._Graph("batch_transpose", (3, 4, 5))
    built = g.build(g.op("Transpose", "x", perm=[2, 0, 1]))
    imported = import_onnx(_save(built.model, tmp_path))
    assert imported.workload.layers[0].perm == [2, 0, 1]  # type: ignore[union-attr]
    np.testing.assert_array_equal(_fp32(imported, built.inputs)[0], built.inputs["x"].transpose(2, 0, 1))


# ---------------------------------------------------------------------------------------------------
# static int8: layout ops are exact on the codes; concat requantizes as QLinearConcat


def _workload(layers: list[dict], input_shape: list[int], extra: dict | None = None, batch: int = 2) -> Workload:
    doc = {"schema_version": 1, "name": "w", "batch": batch, "input_shape": input_shape, "layers": layers}
    return validate(Workload, {**doc, "extra_inputs": extra or {}}, "w.yaml")


def test_layout_ops_move_static_codes_exactly() -> None:
    workload = _workload(
        [
            {"name": "t", "type": "transpose", "perm": [2, 0, 1]},
            {"name": "r", "type": "reshape", "shape": [-1, 3, 2]},
            {"name": "c", "type": "concat", "inputs": ["r", "r"], "axis": -1},
        ],
        [3, 4, 5],
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    from accelsim.values.tensors import WorkloadTensors

    values = run_values(workload, load_hardware(), "static", tensors=WorkloadTensors({}, {"input": x}, {"input": x}))
    codes = values.layers["t"].codes
    assert codes is not None and values.layers["t"].qparams == values.qparams["input"]  # the input's parameters
    source, _ = _quantized(x, values.qparams["input"])
    np.testing.assert_array_equal(codes, source.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(values.layers["r"].codes, codes.reshape(2, 10, 3, 2))
    assert values.layers["c"].codes.shape == (2, 10, 3, 4)  # type: ignore[union-attr]


def _quantized(x: np.ndarray, qp: QParams) -> tuple[np.ndarray, int]:
    from accelsim.quant import REQUANT_MODES, quantize_tensor

    return quantize_tensor(x, qp, REQUANT_MODES["tflite"].input_rule)


def _qlinear_concat(codes: list[np.ndarray], qps: list[tuple[float, int]], out: tuple[float, int]) -> np.ndarray:
    """ONNX Runtime's com.microsoft QLinearConcat on uint8 codes along axis 1."""
    names = [f"x{i}" for i in range(len(codes))]
    inits, inputs = [], ["ys", "yz"]
    inits += [
        onnx.numpy_helper.from_array(np.float32(out[0]), "ys"),
        onnx.numpy_helper.from_array(np.uint8(out[1]), "yz"),
    ]
    for name, (scale, zero) in zip(names, qps):
        inits += [
            onnx.numpy_helper.from_array(np.float32(scale), name + "s"),
            onnx.numpy_helper.from_array(np.uint8(zero), name + "z"),
        ]
        inputs += [name, name + "s", name + "z"]
    node = helper.make_node("QLinearConcat", inputs, ["y"], domain="com.microsoft", axis=1)
    graph = helper.make_graph(
        [node],
        "qconcat",
        [helper.make_tensor_value_info(n, TensorProto.UINT8, list(c.shape)) for n, c in zip(names, codes)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, codes)))[0]


def test_static_concat_requantizes_like_qlinearconcat() -> None:
    """Three inputs: one already in the output's parameters (copied), one at twice the output's scale
    (exact), one at half of it with zero point 3 (every odd code lands on a tie: ORT rounds half to even;
    codes far from the zero point saturate at 0 and 255). float_half_even is ORT's arithmetic (uint8)."""
    workload = _workload(
        [{"name": "c", "type": "concat", "inputs": ["input", "b", "d"], "axis": 0}],
        [2, 16],
        {"b": [1, 16], "d": [3, 16]},
        batch=1,
    )
    hw = load_hardware(overrides=["requant.rounding=float_half_even"])
    out = (0.25, 200)
    qps = {"input": (0.25, 128), "b": (0.5, 220), "d": (0.125, 3)}
    rng = np.random.default_rng(0)
    codes = {
        "input": rng.integers(0, 256, (1, 2, 16)),
        "b": rng.integers(0, 256, (1, 1, 16)),
        "d": np.arange(48).reshape(1, 3, 16) * 5 % 256,
    }
    floats = {k: ((c - qps[k][1]) * qps[k][0]).astype(np.float32) for k, c in codes.items()}
    qparams = {k: QParams([s], [z], "uint8") for k, (s, z) in {**qps, "c": out}.items()}
    from accelsim.values.tensors import WorkloadTensors

    values = run_values(workload, hw, "static", tensors=WorkloadTensors({}, floats, floats), qparams=qparams)
    ordered = [codes[k].astype(np.uint8) for k in ("input", "b", "d")]
    want = _qlinear_concat(ordered, [qps[k] for k in ("input", "b", "d")], out)
    got = values.layers["c"].codes
    np.testing.assert_array_equal(got, want)
    ties = (codes["d"] - 3) % 2 == 1  # d's codes map to (c - 3) * 0.125 / 0.25 = (c - 3) / 2: .5 for odd c - 3
    assert ties.sum() > 10 and 255 in want[0, 3:] and 0 in want[0, 2]  # d saturates high, b low
    assert values.layers["c"].vector_saturations > 0
    half_away = np.floor(np.abs((codes["d"] - 3) / 2) + 0.5) * np.sign(codes["d"] - 3) + 200
    assert not np.array_equal(np.clip(half_away, 0, 255)[0], want[0, 3:])  # the rounding mode matters here


# ---------------------------------------------------------------------------------------------------
# the light models onnx ships (import, MACs, shipped outputs, timing: tests/test_onnx_light.py)


@pytest.mark.parametrize("name", ["squeezenet", "bvlc_alexnet"])
def test_light_model_with_seeded_weights_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    """The shipped outputs come from constant weights (near-uniform probabilities): seeded weights give
    informative ones, which must match ORT's too."""
    built = om.light_model(name, seed=0)
    imported = import_onnx(_save(built.model, tmp_path))
    (want,) = ort_reference.run(built.model, built.inputs, "disabled")
    np.testing.assert_allclose(_fp32(imported, built.inputs).reshape(want.shape), want, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------------
# the workload fields: shape inference, ranges, lowering prices


@pytest.mark.parametrize(
    ("layer", "input_shape", "message"),
    [
        ({"type": "transpose", "perm": [0, 0, 1]}, [2, 3, 4], "is not a permutation"),
        ({"type": "transpose", "perm": [0, 1]}, [2, 3, 4], "is not a permutation"),
        ({"type": "transpose", "perm": [9]}, [2], "outside the plausible range"),
        ({"type": "reshape", "shape": [-1, -1]}, [2, 3], "more than one -1"),
        ({"type": "reshape", "shape": [5, -1]}, [2, 3], "does not hold the 6 elements"),
        ({"type": "reshape", "shape": [7]}, [2, 3], "does not hold the 6 elements"),
        ({"type": "reshape", "shape": [-2]}, [2], "outside the plausible range"),
        ({"type": "reshape", "shape": [1] * 9}, [1], "at most 8"),
        ({"type": "concat", "inputs": ["input"]}, [2, 3], "takes at least 2 input"),
        ({"type": "concat", "inputs": ["input", "e"], "axis": 0}, [2, 3], "differ outside axis 0"),
        ({"type": "concat", "inputs": ["input", "input"], "axis": 2}, [2, 3], "is not an axis"),
        ({"type": "lrn", "size": 0}, [2, 3], "outside the plausible range"),
        ({"type": "lrn", "size": 3, "beta": -1}, [2, 3], "outside the plausible range"),
        ({"type": "lrn", "size": 3}, [4], "spatial dims"),
        ({"type": "conv2d", "out_channels": 1, "kernel": 3, "padding": [1, 1, 1]}, [1, 4, 4], "a list of 3"),
        ({"type": "conv2d", "out_channels": 1, "kernel": 3, "padding": [0, 0, 2000, 0]}, [1, 4, 4], "plausible"),
        ({"type": "maxpool", "kernel": 2, "padding": [0, 0, 2, 0]}, [1, 4, 4], "more than half the kernel"),
        ({"type": "matmul", "inputs": ["input", "e"]}, [2, 3, 4], "do not broadcast"),
    ],
)
def test_structure_fields_are_checked(layer: dict, input_shape: list[int], message: str) -> None:
    extra = {"e": [3, 4, 5]} if layer["type"] == "matmul" else {"e": [2, 4]}
    with pytest.raises(AccelsimError, match="layers") as info:
        _workload([{"name": "l", **layer}], input_shape, extra)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_shapes_and_lowering_prices() -> None:
    """Reshape and flatten are free; transpose and concat move every byte through the vector unit once
    (concat requantizes under static); LRN prices its window; ceil_mode and asymmetric padding change the
    extents as ONNX says."""
    workload = _workload(
        [
            {"name": "p", "type": "maxpool", "kernel": 3, "stride": 2, "padding": [1, 0, 0, 1], "ceil_mode": True},
            {"name": "a", "type": "avgpool", "kernel": 2, "stride": 2, "ceil_mode": True, "count_include_pad": True},
            {"name": "n", "type": "lrn", "size": 5},
            {"name": "r", "type": "reshape", "shape": [2, -1, 3]},
            {"name": "t", "type": "transpose", "perm": [1, 0, 2]},
            {"name": "c", "type": "concat", "inputs": ["t", "t", "t"], "axis": 1},
        ],
        [4, 11, 10],
    )
    assert [s.output_shape for s in workload.shapes] == [
        (4, 6, 5),  # (11 + 1 - 3) / 2 ceil + 1 = 6; (10 + 1 - 3) / 2 + 1 = 5
        (4, 3, 3),
        (4, 3, 3),
        (2, 6, 3),
        (6, 2, 3),
        (6, 6, 3),
    ]
    hw = load_hardware()
    for scheme, static in (("fp32", 0), ("static", 1)):
        program = lower(workload, hw, scheme)
        layers = {layer.name: layer for layer in program.workload_layers}
        assert layers["r"].tiles == ()
        cycles = {name: sum(t.compute_cycles for t in layers[name].tiles) for name in ("t", "c", "n")}
        vector = Lowerer(hw, scheme).vector
        assert cycles["t"] == vector.cycles(2 * 36)
        assert cycles["c"] == vector.cycles(2 * 108 * (1 + 2 * static))
        assert cycles["n"] == vector.cycles(2 * 36 * (LRN_OPS + 5 + 2 * static))
