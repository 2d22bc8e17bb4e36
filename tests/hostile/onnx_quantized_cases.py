"""Hostile quantized ONNX models on the command line (``accelsim run m.onnx``): a QLinearConv whose scale is
missing, zero, negative, NaN or infinite, a zero point of the wrong dtype or size. Each must end in one
line naming the file and the node (exit 2) and write nothing.
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

CASES = [
    Case(
        f"onnx-quantized-{label}-{command}",
        (command, "m.onnx", "--out", "{tmp}/out"),
        {"m.onnx": qlinear_conv(**changes)},
        match=r"m\.onnx: .*(node 'conv'|node name: conv)",
    )
    for label, changes in BAD.items()
    for command in ("run", "compare")
]
