"""The ONNX standard's own conformance cases for the quantized ops, through accelsim's public functions.

The cases are regenerated from the installed ``onnx`` package (``onnx.backend.test.case.node``): each
op module's ``export*`` functions are run again with ``expect`` captured, exactly as onnx builds its
backend test data (``np.random.seed(0)`` before each export). Every case's inputs go through
``int_gemm`` / ``int_conv2d`` / ``run_static_codes`` / ``dynamic_quantize`` / ``quantize_tensor`` /
``dequantize_tensor`` and the outputs must equal the expected ones bit for bit. Cases whose tensors
use a number format the accelerator has no code for are listed in :data:`OUT_OF_SCOPE` with the
reason, and a test checks that each really has such a tensor (so the list cannot hide an int8 case).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.test.case.base import Base

from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm
from accelsim.quant import (
    RULES,
    QParams,
    QuantizedWeight,
    dequantize_tensor,
    dynamic_quantize,
    quantize_tensor,
    run_static_codes,
)

MODULES = (
    "matmulinteger",
    "convinteger",
    "qlinearmatmul",
    "qlinearconv",
    "dynamicquantizelinear",
    "quantizelinear",
    "dequantizelinear",
)


@dataclass(frozen=True)
class Case:
    """One ``expect(node, inputs, outputs, name)`` call of the onnx test generator."""

    name: str
    node: onnx.NodeProto
    inputs: tuple
    outputs: tuple

    @property
    def attrs(self) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in self.node.attribute}

    def tensor_types(self) -> set[str]:
        """ONNX element types of every input and output (numpy arrays mapped to their TensorProto type)."""
        return {
            TensorProto.DataType.Name(t.data_type)
            if isinstance(t, TensorProto)
            else TensorProto.DataType.Name(helper.np_dtype_to_tensor_dtype(np.asarray(t).dtype))
            for t in (*self.inputs, *self.outputs)
        }


def _collect() -> dict[str, Case]:
    cases: dict[str, Case] = {}

    def capture(node, inputs, outputs, name, **_):
        assert name not in cases, name
        cases[name] = Case(name, node, tuple(inputs), tuple(outputs))

    for modname in MODULES:
        module = importlib.import_module(f"onnx.backend.test.case.node.{modname}")
        original = module.expect
        module.expect = capture
        try:
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, Base) and cls.__module__ == module.__name__:
                    for attr in sorted(vars(cls)):
                        if attr.startswith("export"):
                            np.random.seed(0)  # as onnx's _Exporter does before each export
                            getattr(cls, attr)()
        finally:
            module.expect = original
    return cases


CASES = _collect()

#: number formats without an integer code in the accelerator (its codes are int4/uint4, int8/uint8, int16)
_FORMATS_OUT = {
    "FLOAT8E4M3FN": "float8 e4m3",
    "FLOAT8E5M2": "float8 e5m2",
    "FLOAT4E2M1": "float4 e2m1",
    "INT2": "2-bit integer",
    "UINT2": "2-bit integer",
    "UINT16": "16-bit unsigned integer",
}
_NOT_A_CODE = (
    "codes: not a number format of the accelerator's datapath (DESIGN.md section 4: int4/uint4, int8/uint8, int16)"
)
OUT_OF_SCOPE: dict[str, str] = {
    "test_quantizelinear_e4m3fn": f"float8 e4m3 {_NOT_A_CODE}",
    "test_quantizelinear_e5m2": f"float8 e5m2 {_NOT_A_CODE}",
    "test_quantizelinear_float4e2m1": f"float4 e2m1 {_NOT_A_CODE}",
    "test_quantizelinear_int2": f"2-bit integer {_NOT_A_CODE}",
    "test_quantizelinear_uint2": f"2-bit integer {_NOT_A_CODE}",
    "test_quantizelinear_uint16": f"16-bit unsigned integer {_NOT_A_CODE}",
    "test_dequantizelinear_e4m3fn": f"float8 e4m3 {_NOT_A_CODE}",
    "test_dequantizelinear_e4m3fn_float16": f"float8 e4m3 {_NOT_A_CODE}",
    "test_dequantizelinear_e4m3fn_zero_point": f"float8 e4m3 {_NOT_A_CODE}",
    "test_dequantizelinear_e5m2": f"float8 e5m2 {_NOT_A_CODE}",
    "test_dequantizelinear_float4e2m1": f"float4 e2m1 {_NOT_A_CODE}",
    "test_dequantizelinear_int2": f"2-bit integer {_NOT_A_CODE}",
    "test_dequantizelinear_uint2": f"2-bit integer {_NOT_A_CODE}",
    "test_dequantizelinear_uint16": f"16-bit unsigned integer {_NOT_A_CODE}",
}
IN_SCOPE = sorted(set(CASES) - set(OUT_OF_SCOPE))
EXPECTED_IN_SCOPE, EXPECTED_OUT_OF_SCOPE = 28, 14  # incl. float16 scales, int4/uint4, int16 and blocked scales


def _array(t) -> np.ndarray:
    """A case tensor as numpy: packed 4-bit TensorProtos unpacked to int8 / uint8 values."""
    if isinstance(t, TensorProto):
        arr = numpy_helper.to_array(t)
        return arr.astype(
            np.int8 if t.data_type == TensorProto.INT4 else np.uint8 if t.data_type == TensorProto.UINT4 else arr.dtype
        )
    return np.asarray(t)


def _code_dtype(t) -> str:
    """accelsim's name of a case tensor's integer code type."""
    if isinstance(t, TensorProto):
        return {TensorProto.INT4: "int4", TensorProto.UINT4: "uint4", TensorProto.INT16: "int16"}[t.data_type]
    return str(np.asarray(t).dtype)


def _scalar(v: np.ndarray) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def _scale32(v: np.ndarray) -> np.ndarray:
    """Scales in float32 (float16 scales widen exactly)."""
    return np.asarray(v, np.float32).reshape(-1)


def _matmul_integer(case: Case) -> list[np.ndarray]:
    a, b, za, zb = (_array(t) for t in case.inputs)
    return [int_gemm(a, b, a_zero_point=_scalar(za), b_zero_point=zb.reshape(-1)).values]


def _conv_geometry(case: Case, w: np.ndarray) -> ConvGeometry:
    attrs = case.attrs
    pads = attrs.get("pads", [0, 0, 0, 0])  # ONNX: (top, left, bottom, right) for 2-D
    return ConvGeometry.from_args(
        attrs.get("strides", 1), tuple(pads), attrs.get("dilations", 1), attrs.get("group", 1)
    )


def _conv_integer(case: Case) -> list[np.ndarray]:
    x, w, zx, *zw = (_array(t) for t in case.inputs)
    return [
        int_conv2d(
            x, w, _conv_geometry(case, w), x_zero_point=_scalar(zx), w_zero_point=zw[0].reshape(-1) if zw else 0
        ).values
    ]


def _weight(codes: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> QuantizedWeight:
    """Given weight codes and parameters (per tensor or per channel along ``axis``)."""
    s, z = _scale32(scale), np.asarray(zp).reshape(-1).astype(np.int32)
    return QuantizedWeight(codes, QParams(s, z, str(codes.dtype), axis=None if s.size == 1 else axis))


def _qparams(scale: np.ndarray, zp: np.ndarray) -> QParams:
    return QParams(_scale32(scale)[0], _scalar(zp), str(np.asarray(zp).dtype))


def _qlinear_matmul(case: Case) -> list[np.ndarray]:
    a, sa, za, b, sb, zb, sy, zy = (_array(t) for t in case.inputs)
    in_qp, out_qp = _qparams(sa, za), _qparams(sy, zy)
    lead = a.shape[:-2]
    outs = [
        run_static_codes("matmul", a[i], in_qp, _weight(b[i], sb, zb, 1), None, out_qp, requant_mode="float_half_even")
        .tensors["output_q"]
        .values
        for i in np.ndindex(*lead)
    ]
    return [np.stack(outs).reshape(*lead, a.shape[-2], b.shape[-1])]


def _qlinear_conv(case: Case) -> list[np.ndarray]:
    x, sx, zx, w, sw, zw, sy, zy, *bias = (_array(t) for t in case.inputs)
    g = _conv_geometry(case, w)
    res = run_static_codes(
        "conv2d",
        x,
        _qparams(sx, zx),
        _weight(w, sw, zw, 0),
        bias[0].astype(np.int32) if bias else None,
        _qparams(sy, zy),
        requant_mode="float_half_even",
        geometry=ConvGeometry.from_args(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups),
    )
    return [res.tensors["output_q"].values]


def _dynamic_quantize_linear(case: Case) -> list[np.ndarray]:
    (x,) = (_array(t) for t in case.inputs)
    q, qp = dynamic_quantize(x.reshape(1, -1), "onnx")
    return [q.reshape(x.shape), qp.scale[0], np.uint8(qp.zero_point[0])]


def _blocks(x: np.ndarray, axis: int, block: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """``x`` as ``[blocks, block]`` rows, one row per (outer, block index, inner) in C order of the
    scale's shape, and the inverse: blocked parameters are per-channel parameters of this view."""
    pre, n, post = int(np.prod(x.shape[:axis])), x.shape[axis], int(np.prod(x.shape[axis + 1 :]))
    view = x.reshape(pre, n // block, block, post).transpose(0, 1, 3, 2)

    def back(rows: np.ndarray) -> np.ndarray:
        return rows.reshape(pre, n // block, post, block).transpose(0, 1, 3, 2).reshape(x.shape)

    return view.reshape(-1, block), back


def _linear_params(case: Case, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, dtype: str):
    """(tensor as the kernel sees it, QParams, inverse reshape) of a Quantize/DequantizeLinear case:
    per tensor, per axis (default 1), or blocked."""
    attrs = case.attrs
    zp = np.zeros(np.shape(scale), np.int32) if zp is None else zp.astype(np.int32)
    if np.size(scale) == 1:
        return x, QParams(_scale32(scale)[0], _scalar(zp), dtype), lambda y: y
    axis = attrs.get("axis", 1) % x.ndim
    if attrs.get("block_size"):
        rows, back = _blocks(x, axis, attrs["block_size"])
        return rows, QParams(_scale32(scale), zp.reshape(-1), dtype, axis=0), back
    return x, QParams(_scale32(scale), zp.reshape(-1), dtype, axis=axis), lambda y: y


def _quantize_linear(case: Case) -> list[np.ndarray]:
    x, scale, *zp = (_array(t) for t in case.inputs)
    out = case.outputs[0]
    view, qp, back = _linear_params(case, x, scale, zp[0] if zp else None, _code_dtype(out))
    return [back(quantize_tensor(view, qp, RULES["onnx"])[0])]


def _dequantize_linear(case: Case) -> list[np.ndarray]:
    q, scale, *zp = (_array(t) for t in case.inputs)
    view, qp, back = _linear_params(case, q, scale, zp[0] if zp else None, _code_dtype(case.inputs[0]))
    return [back(dequantize_tensor(view, qp))]


RUNNERS: dict[str, Callable[[Case], list[np.ndarray]]] = {
    "MatMulInteger": _matmul_integer,
    "ConvInteger": _conv_integer,
    "QLinearMatMul": _qlinear_matmul,
    "QLinearConv": _qlinear_conv,
    "DynamicQuantizeLinear": _dynamic_quantize_linear,
    "QuantizeLinear": _quantize_linear,
    "DequantizeLinear": _dequantize_linear,
}


def test_case_counts():
    """The collected cases split into the in-scope and out-of-scope counts recorded here: a change of
    the onnx package or of the scope shows up as a failure, not as silently fewer cases."""
    assert set(OUT_OF_SCOPE) <= set(CASES)
    assert len(CASES) == EXPECTED_IN_SCOPE + EXPECTED_OUT_OF_SCOPE
    assert (len(IN_SCOPE), len(OUT_OF_SCOPE)) == (EXPECTED_IN_SCOPE, EXPECTED_OUT_OF_SCOPE)
    assert {CASES[n].node.op_type for n in IN_SCOPE} == set(RUNNERS)


@pytest.mark.parametrize("name", IN_SCOPE)
def test_conformance_case(name: str):
    """accelsim's outputs == the standard's expected outputs, bit for bit (dtype and values)."""
    case = CASES[name]
    got = RUNNERS[case.node.op_type](case)
    assert len(got) == len(case.outputs)
    for g, want in zip(got, case.outputs):
        want = _array(want)
        g = np.asarray(g)
        assert g.shape == want.shape
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(g.astype(want.dtype), want)
            assert np.array_equal(
                g.astype(np.float32).view(np.int32), want.astype(np.float32).view(np.int32)
            )  # -0.0 vs 0.0 too
        else:
            np.testing.assert_array_equal(g.astype(np.int64), want.astype(np.int64))


@pytest.mark.parametrize("name", sorted(OUT_OF_SCOPE))
def test_out_of_scope_case_has_a_format_the_accelerator_lacks(name: str):
    """Each case left out really has a tensor in one of the formats named in its reason, and no case made
    only of int8 / uint8 / int4 / int16 codes and float32 / float16 scales is left out."""
    types = CASES[name].tensor_types()
    assert OUT_OF_SCOPE[name].split(" codes")[0] in {_FORMATS_OUT[t] for t in types & set(_FORMATS_OUT)}, (name, types)
