"""Static int8 values of the whole tiny CNN equal a chain written out here from run_layer and numpy.

The chain below repeats the network by hand: its own fp32 calibration pass (min/max of every
tensor), the input quantized with the requant mode's rule, every conv/linear through ``run_layer``
(whose kernels are reference-checked in the numerics tests), maxpool on the codes with numpy, and
add / avgpool as dequantize -> float32 -> quantize. Every layer's codes must match bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config import load_hardware, load_workload
from accelsim.quant import (
    REQUANT_MODES,
    ConvGeometry,
    Prepared,
    Quantization,
    affine_qparams,
    dequantize_tensor,
    quantize_tensor,
    run_layer,
)
from accelsim.values.runner import run_values
from accelsim.values.tensors import materialize

CONVS = {  # name: (padding, stride, groups, activation) as in workloads/tiny_cnn.yaml
    "conv1": (1, 1, 1, "relu"),
    "conv2": (1, 2, 1, "relu"),
    "dw": (1, 1, 32, "relu6"),
    "pw": (0, 1, 1, None),
}


def _float_chain(x: np.ndarray, params) -> dict[str, np.ndarray]:
    """fp32 tiny CNN, every tensor by name."""
    t = {"input": x}
    prev = x
    for name, (pad, stride, groups, act) in CONVS.items():
        p = params[name]
        prev = t[name] = run_layer(
            "conv2d",
            prev,
            p.weight,
            p.bias,
            activation=act,
            quantization=Quantization(scheme="fp32"),
            geometry=ConvGeometry.from_args(padding=pad, stride=stride, groups=groups),
        ).output
    t["add"] = np.maximum(t["pw"] + t["conv2"], 0)
    n, c, h, w = t["add"].shape
    t["maxpool"] = t["add"].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    t["avgpool"] = t["maxpool"].mean(axis=(2, 3), keepdims=True, dtype=np.float32)
    t["flatten"] = t["avgpool"].reshape(n, -1)
    t["fc"] = run_layer(
        "linear", t["flatten"], params["fc"].weight, params["fc"].bias, quantization=Quantization(scheme="fp32")
    ).output
    return t


@pytest.mark.parametrize("mode", ["tflite", "tflite_float64", "float_half_even"])
def test_static_tiny_cnn_equals_hand_chain(mode: str) -> None:
    wl = load_workload("tiny_cnn")
    hw = load_hardware(None, [f"requant.rounding={mode}"])
    tensors = materialize(wl)
    values = run_values(wl, hw, "static", tensors=tensors)
    rule, dtype = REQUANT_MODES[mode].input_rule, REQUANT_MODES[mode].activation_dtype
    p = tensors.params

    calib = _float_chain(tensors.calibration["input"], p)
    qp = {name: affine_qparams(float(v.min()), float(v.max()), dtype=dtype) for name, v in calib.items()}
    for name, expected in qp.items():
        assert np.array_equal(values.qparams[name].scale, expected.scale), name
        assert np.array_equal(values.qparams[name].zero_point, expected.zero_point), name

    codes = {"input": quantize_tensor(tensors.inputs["input"], qp["input"], rule)[0]}
    prev = "input"
    for name, (pad, stride, groups, act) in CONVS.items():
        res = run_layer(
            "conv2d",
            dequantize_tensor(codes[prev], qp[prev]),
            p[name].weight,
            p[name].bias,
            activation=act,
            quantization=Quantization(scheme="static", requant_mode=mode),
            geometry=ConvGeometry.from_args(padding=pad, stride=stride, groups=groups),
            prepared=Prepared(input_qparams=qp[prev], output_qparams=qp[name]),
        )
        assert np.array_equal(res.tensors["input_q"].values, codes[prev])  # dequantize -> quantize round-trips
        codes[name] = res.tensors["output_q"].values
        prev = name
    real = lambda name: dequantize_tensor(codes[name], qp[name])
    codes["add"] = quantize_tensor(np.maximum(real("pw") + real("conv2"), 0), qp["add"], rule)[0]
    n, c, h, w = codes["add"].shape
    codes["maxpool"] = codes["add"].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    qp["maxpool"] = qp["add"]  # max of codes keeps the input's parameters
    avg = dequantize_tensor(codes["maxpool"], qp["maxpool"]).mean(axis=(2, 3), keepdims=True, dtype=np.float32)
    codes["avgpool"] = quantize_tensor(avg, qp["avgpool"], rule)[0]
    codes["flatten"] = codes["avgpool"].reshape(n, -1)
    fc = run_layer(
        "linear",
        dequantize_tensor(codes["flatten"], qp["avgpool"]),
        p["fc"].weight,
        p["fc"].bias,
        quantization=Quantization(scheme="static", requant_mode=mode),
        prepared=Prepared(input_qparams=qp["avgpool"], output_qparams=qp["fc"]),
    )
    codes["fc"] = fc.tensors["output_q"].values

    for name, lv in values.layers.items():
        assert lv.codes.dtype == codes[name].dtype, name
        assert np.array_equal(lv.codes, codes[name]), name
    assert np.array_equal(values.output, dequantize_tensor(codes["fc"], qp["fc"]))
    assert values.layers["maxpool"].qparams is values.layers["add"].qparams


@pytest.mark.parametrize("rule", ["onnx", "fbgemm", "tflite"])
@pytest.mark.parametrize("activation", ["none", "relu", "relu6"])
def test_fused_residual_add_equals_its_steps(rule: str, activation: str) -> None:
    """The one-pass residual add gives the codes and clamp count of dequantize, float32 add, activation,
    quantize, also when its operands lie in different memory orders and the output saturates."""
    from accelsim.quant import RULES, QParams
    from accelsim.quant.rules import add_tensors
    from accelsim.values.runner import activate

    rng = np.random.default_rng(11)
    a = rng.integers(-128, 128, (2, 6, 5, 4)).astype(np.int8)
    b = np.ascontiguousarray(rng.integers(-128, 128, (2, 5, 4, 6)).astype(np.int8)).transpose(
        0, 3, 1, 2
    )  # channels last
    qa, qb = QParams(np.float32([0.031]), np.int32([3]), "int8"), QParams(np.float32([0.017]), np.int32([-9]), "int8")
    out = QParams(np.float32([0.02]), np.int32([5]), "int8")  # narrower than the sum: some outputs saturate
    y = (dequantize_tensor(a, qa) + dequantize_tensor(b, qb)).astype(np.float32)
    want, want_sats = quantize_tensor(activate(y, activation), out, RULES[rule])
    got, sats = add_tensors(a, qa, b, qb, out, RULES[rule], activation)
    np.testing.assert_array_equal(got, want)
    assert sats == want_sats and want_sats > 0 and got.dtype == np.int8


@settings(max_examples=60, deadline=None)
@given(
    rule=st.sampled_from(["onnx", "fbgemm", "torch_fake_quant", "tflite", "tflite_hybrid"]),
    activation=st.sampled_from(["none", "relu", "relu6"]),
    dtype=st.sampled_from(["int8", "uint8"]),
    size=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_residual_add_lanes_equal_their_steps(rule, activation, dtype, size, seed, ties):
    """The residual add's 16-lane path (and its element tail) equals dequantize, add, activation,
    quantize on random codes, on exact ties of every rule's rounding and on saturating outputs."""
    from accelsim.quant import RULES, QParams
    from accelsim.quant.rules import add_tensors
    from accelsim.values.runner import activate

    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    a, b = rng.integers(lo, hi, size).astype(dtype), rng.integers(lo, hi, size).astype(dtype)
    scales = (0.5, 0.5, 1.0) if ties else tuple(rng.uniform(0.005, 0.1, 3))  # ties: half-integer sums on the unit grid
    qa, qb, out = (QParams(np.float32([sc]), np.int32([rng.integers(lo, hi)]), dtype) for sc in scales)
    y = (dequantize_tensor(a, qa) + dequantize_tensor(b, qb)).astype(np.float32)
    want, want_sats = quantize_tensor(activate(y, activation), out, RULES[rule])
    got, sats = add_tensors(a, qa, b, qb, out, RULES[rule], activation)
    np.testing.assert_array_equal(got, want)
    assert sats == want_sats
