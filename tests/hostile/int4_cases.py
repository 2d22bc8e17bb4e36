"""Hostile uses of the int4 group-wise weight formats (``--weights int4_g*``, issue 18): each ends in one line
naming the option and what is allowed (exit 2)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .case import Case


def _matmulnbits_model() -> bytes:
    """One com.microsoft MatMulNBits node as ORT's weight-only quantizer writes it (K 64, N 16, block 32)."""
    b = numpy_helper.from_array(np.zeros((16, 2, 16), np.uint8), "B")
    scales = numpy_helper.from_array(np.ones((16, 2), np.float32), "scales")
    node = helper.make_node(
        "MatMulNBits", ["x", "B", "scales"], ["y"], domain="com.microsoft", K=64, N=16, bits=4, block_size=32
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [b, scales],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


CASES = [
    Case(
        "int4-static-scheme",
        ("run", "mlp", "--scheme", "static", "--weights", "int4_g32", "--timing-only", "--out", "{tmp}/o"),
        match=r"weights: int4 group-wise weights \(int4_g32\) do not run under the static scheme.*allowed: woq",
    ),
    Case(
        "int4-compare-static",
        (
            "compare",
            "mlp",
            "--schemes",
            "dynamic",
            "static",
            "--weights",
            "int4_g64_zp",
            "--timing-only",
            "--out",
            "{tmp}/o",
        ),
        match=r"int4 group-wise weights \(int4_g64_zp\) do not run under the static scheme",
    ),
    Case(
        "int4-conv-layer",
        ("run", "tiny_cnn", "--scheme", "dynamic", "--weights", "int4_g128", "--timing-only", "--out", "{tmp}/o"),
        match=r"weights: int4 group-wise weights apply to linear layers.*is conv2d.*allowed: an int8 weight format",
    ),
    Case(
        "int4-golden",
        ("golden", "mlp", "--layer", "fc1", "--weights", "int4_g32", "-o", "{tmp}/g.npz"),
        match=r"--weights: golden vectors hold one int8 layer's steps.*allowed: symmetric",
    ),
    Case(
        "int4-group-unknown",
        ("run", "mlp", "--weights", "int4_g16", "--timing-only", "--out", "{tmp}/o"),
        match=r"--weights: invalid choice: 'int4_g16'",
    ),
    Case(
        "int4-matmulnbits-model",
        ("import", "onnx", "{tmp}/m.onnx", "-o", "{tmp}/m.yaml"),
        files={"m.onnx": _matmulnbits_model()},
        match=r"m\.onnx: node 'y' \(com\.microsoft\.MatMulNBits\): not an op the importer maps",
    ),
    Case(
        "int4-explain-static",
        ("explain", "mlp", "--layer", "fc1", "--scheme", "static", "--weights", "int4_g32"),
        match=r"do not run under the static scheme",
    ),
]
