"""Hostile quantized ONNX models on the command line (``accelsim run m.onnx``): a QLinearConv whose scale is
missing, zero, negative, NaN or infinite, a zero point of the wrong dtype or size; a QLinearMul by a constant
(attention's scale: the values run reads the constant's codes) whose constant has several scales, a zero
point of another dtype than its codes, or float values instead of codes. Each must end in one line naming
the file and the node (exit 2) and write nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .case import Case

#: a QLinearConv's parameters: x (uint8), w (int8, 3 channels), y (uint8), int32 bias
GOOD: dict[str, Any] = {
    "xs": np.float32(0.25),
    "xz": np.uint8(128),
    "w": np.ones((3, 2, 3, 3), np.int8),
    "ws": np.float32(0.125),
    "wz": np.int8(0),
    "ys": np.float32(0.0625),
    "yz": np.uint8(100),
    "B": np.zeros(3, np.int32),
}


def qlinear_conv(**changes: Any) -> bytes:
    """A one-QLinearConv model with ``changes`` to its parameters (None: the input left out)."""
    consts = GOOD | changes
    inputs = ["x", *(name if consts[name] is not None else "" for name in GOOD)]
    node = helper.make_node("QLinearConv", inputs, ["y"], name="conv", pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if v is not None],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


BAD: dict[str, dict[str, Any]] = {
    "missing-scale": {"xs": None},
    "zero-scale": {"ws": np.float32(0.0)},
    "negative-scale": {"ys": np.float32(-0.5)},
    "nan-scale": {"xs": np.float32(np.nan)},
    "inf-scale": {"ws": np.float32(np.inf)},
    "int-scale": {"ys": np.int32(1)},
    "zero-point-int32": {"xz": np.int32(300)},
    "zero-point-per-channel-size": {"wz": np.zeros(2, np.int8), "ws": np.full(3, 0.125, np.float32)},
}

#: a QLinearMul of an activation by a constant scalar: a (uint8), its parameters, the constant's codes and
#: parameters, the output's
GOOD_MUL: dict[str, Any] = {
    "as": np.float32(0.25),
    "az": np.uint8(128),
    "c": np.uint8(255),
    "cs": np.float32(1 / 1024),
    "cz": np.uint8(0),
    "ys": np.float32(0.0625),
    "yz": np.uint8(100),
}


def qlinear_mul_by_constant(**changes: Any) -> bytes:
    """``Dequantize(QLinearMul(Quantize(x), c))`` (QOperator, com.microsoft) with ``changes`` to its constants."""
    consts = GOOD_MUL | changes
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "as", "az"], ["a"], name="quantize"),
        helper.make_node("QLinearMul", ["a", *GOOD_MUL], ["q"], name="scale", domain="com.microsoft"),
        helper.make_node("DequantizeLinear", ["q", "ys", "yz"], ["y"], name="dequantize"),
    ]
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


BAD_MUL: dict[str, dict[str, Any]] = {
    "constant-per-axis-scale": {"cs": np.full(3, 1 / 1024, np.float32), "cz": np.zeros(3, np.uint8)},
    "constant-zero-point-dtype": {"cz": np.int8(0)},
    "constant-float-codes": {"c": np.float32(0.25), "cz": np.uint8(0)},
}

CASES = [
    Case(
        f"onnx-quantized-{label}-{command}",
        (command, "m.onnx", "--out", "{tmp}/out"),
        {"m.onnx": qlinear_conv(**changes)},
        match=r"m\.onnx: .*(node 'conv'|node name: conv)",
    )
    for label, changes in BAD.items()
    for command in ("run", "compare")
] + [
    Case(
        f"onnx-quantized-mul-{label}",
        ("run", "m.onnx", "--out", "{tmp}/out"),
        {"m.onnx": qlinear_mul_by_constant(**changes)},
        match=r"m\.onnx: .*node 'scale'",
    )
    for label, changes in BAD_MUL.items()
]
