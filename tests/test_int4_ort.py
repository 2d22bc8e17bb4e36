"""int4 group-wise weights against ONNX Runtime's MatMulNBits (issue 18, Bits).

Models are made by ``onnxruntime.quantization``'s weight-only quantizer (``MatMulNBitsQuantizer``) from a
float MatMul. Claims (docs/numerics.md, "int4 group-wise weights"):
- the quantizer's packed codes, scales and zero points are reproduced byte for byte;
- ``accuracy_level`` 4 (W4A8): with power-of-two values, where every float step of ORT is exact, outputs are
  bit-exact, ties included on both roundings, and each rounding swapped fails;
- otherwise each path's float sum is within a derived bound of ORT's (measured ratios in the docs).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization.matmul_nbits_quantizer")  # needs onnx_ir

import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import matmul_nbits_quantizer as nbits

from accelsim.quant import int4

EPS = float(np.finfo(np.float32).eps)


def _matmulnbits(w: np.ndarray, block: int, symmetric: bool, level: int) -> tuple[ort.InferenceSession, dict]:
    """A session of ``x @ w`` quantized by ORT's weight-only quantizer, and the MatMulNBits initializers."""
    k, n = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "int4",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = nbits.DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, accuracy_level=level)
    quantizer = nbits.MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    done = quantizer.model.model
    (node,) = done.graph.node
    assert node.op_type == "MatMulNBits"
    arrays = {t.name: numpy_helper.to_array(t) for t in done.graph.initializer}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(done.SerializeToString(), options, providers=["CPUExecutionProvider"]), arrays


def _run(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return session.run(None, {"x": x})[0]


CASES = [(k, block, symmetric) for k in (256, 200) for block in int4.GROUP_SIZES for symmetric in (False, True)]


@pytest.mark.parametrize(("k", "block", "symmetric"), CASES)
def test_quantizer_bytes_and_outputs_within_bounds(k: int, block: int, symmetric: bool) -> None:
    rng = np.random.default_rng(k + block + symmetric)
    w = rng.standard_normal((k, 40)).astype(np.float32)
    x = (rng.standard_normal((7, k)) * 3).astype(np.float32)
    x[:, 5] *= 20  # an outlier channel, as LLM activations have
    gw = int4.quantize_groups(w, block, symmetric=symmetric)
    packed, zps = gw.packed()
    session4, arrays = _matmulnbits(w, block, symmetric, 4)
    assert np.array_equal(packed, arrays["W_Q4"])
    assert np.array_equal(gw.scales, arrays["W_scales"])
    if symmetric:
        assert "W_zero_points" not in arrays and gw.symmetric
    else:
        assert np.array_equal(zps, arrays["W_zero_points"])
    back = int4.GroupWeights.unpacked(arrays["W_Q4"], arrays["W_scales"], arrays.get("W_zero_points"), k, block)
    assert np.array_equal(back.codes, gw.codes) and np.array_equal(back.zero_points, gw.zero_points)

    # level 4: integer parts exact; the float sums of 2 rounded products per block, in either order, within
    # (2 blocks - 1) roundings of the sum plus 2 of each product, for each of the two sums
    r = int4.matmul_w4a8(x, gw)
    terms = np.abs(r.a_scales[:, None, :] * gw.scales[None] * r.dots).sum(-1) + np.abs(
        (r.a_scales * r.a_codes.reshape(7, gw.blocks, block).sum(-1, dtype=np.int32))[:, None, :]
        * (gw.scales * gw.zero_points)[None]
    ).sum(-1)
    bound = (4 * gw.blocks + 4) * EPS * terms
    assert np.all(np.abs(_run(session4, x) - r.output) <= bound)

    # levels 0-3: one fp32 GEMM on the dequantized weights; K-sum bound
    session0, _ = _matmulnbits(w, block, symmetric, 0)
    y0 = _run(session0, x)
    bound0 = k * EPS * (np.abs(x) @ np.abs(gw.dequantized))
    assert np.all(np.abs(y0 - int4.matmul_weight_only(x, gw)) <= bound0)
    for level in (1, 2, 3):  # fp32, fp16, bf16 compute requested: this CPU runs level 0's fp32 path for each
        assert np.array_equal(_run(_matmulnbits(w, block, symmetric, level)[0], x), y0)


def _power_of_two_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weights whose symmetric blocks have scale 2^-4 (largest magnitudes -0.5 and 0.5: ORT takes the minimum,
    ``-0.5 / -8``; codes ``16 v + 8``) with values on exact ties and on 0.5 (code 16, saturating at 15); activations whose blocks have
    ``max|a| = 127 / 8`` (scale 1/8, codes ``a * 8``) with values on exact ties. Every float step of ORT is
    then exact, so its output is the integer arithmetic's."""
    k, n, m, block = 64, 16, 4, 32
    w = (rng.integers(-8, 7, (k, n)) + 0.5).astype(np.float32) / 16
    w[0::block] = -0.5  # the scale: -0.5 / -8
    w[1::block] = 0.5  # as large in magnitude: 8 + 8 = 16 saturates
    a = (rng.integers(-40, 40, (m, k)) + 0.5).astype(np.float32) / 8
    a[:, 0::block] = 127 / 8  # max|a|: scale 1/8, 127 / max|a| = 8
    return w, a


def test_level4_ties_and_saturation_bit_exact() -> None:
    w, a = _power_of_two_case(np.random.default_rng(18))
    session, arrays = _matmulnbits(w, 32, True, 4)
    gw = int4.quantize_groups(w, 32, symmetric=True)
    assert np.all(gw.scales == 2.0**-4)
    assert np.all(gw.codes[:, 1::32] == 15)  # saturated
    assert np.array_equal(gw.packed()[0], arrays["W_Q4"])
    r = int4.matmul_w4a8(a, gw)
    assert np.all(r.a_scales == 0.125) and np.all(np.abs(r.a_codes) <= 127)
    y = _run(session, a)
    assert np.array_equal(r.output, y)

    # the weight quantizer's roundf ties away from zero: half to even gives other codes and outputs
    even = int4.quantize_groups(w, 32, symmetric=True, half_away=False)
    assert (even.codes != gw.codes).sum() > 100
    assert not np.array_equal(even.packed()[0], arrays["W_Q4"])
    assert (int4.matmul_w4a8(a, even).output != y).sum() > 30
    # the activation quantizer's ties go to even: away from zero changes the outputs
    away = int4.matmul_w4a8(a, gw, half_away=True)
    assert (away.a_codes != r.a_codes).sum() > 50
    assert (away.output != y).sum() > 30


def test_asymmetric_zero_point_ties_follow_roundf() -> None:
    """Blocks spanning 15/16 have scale 2^-4 exactly; from -0.75 the zero point is 12, from -0.71875 it is
    roundf(11.5) = 12 (half to even: 12 too), from -0.65625 roundf(10.5) = 11 (half to even: 10)."""
    k, block = 64, 32
    w = np.zeros((k, 3), np.float32)
    for c, lo in enumerate((-0.75, -0.71875, -0.65625)):
        w[:block, c] = np.linspace(lo, lo + 15 / 16, block, dtype=np.float32)
        w[block:, c] = np.linspace(-0.5, 0.4375, block, dtype=np.float32)
    _, arrays = _matmulnbits(w, block, False, 4)
    gw = int4.quantize_groups(w, block, symmetric=False)
    assert np.all(gw.scales == 2.0**-4)
    assert list(gw.zero_points[:, 0]) == [12, 12, 11]
    assert np.array_equal(gw.packed()[1], arrays["W_zero_points"])
    even = int4.quantize_groups(w, block, symmetric=False, half_away=False)
    assert list(even.zero_points[:, 0]) == [12, 12, 10]


def test_group_size_checked() -> None:
    with pytest.raises(ValueError, match="group size 16 is not one of 32, 64, 128"):
        int4.quantize_groups(np.zeros((64, 2), np.float32), 16, symmetric=True)


def test_stored_bytes() -> None:
    """Packed codes (K/2 bytes per column), a float32 scale per group, packed zero points unless symmetric."""
    w = np.random.default_rng(0).standard_normal((4096, 8)).astype(np.float32)
    sym = int4.quantize_groups(w, 128, symmetric=True)
    asym = int4.quantize_groups(w, 128, symmetric=False)
    assert sym.stored_bytes == 8 * (2048 + 32 * 4)
    assert asym.stored_bytes == 8 * (2048 + 32 * 4 + 16)
    assert asym.stored_bytes == sum(a.nbytes for a in asym.packed()) + asym.scales.nbytes
