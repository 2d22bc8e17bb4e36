"""The ONNX Runtime reference harness (tests/ort_reference.py) does what the import tests rely on.

Measured with onnxruntime 1.32.0 on x86 with AVX-512 VNNI; the unfused-group table is this CPU's.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")
import onnx_models as M
import ort_reference as R
from numerics_refs import max_ulp_diff
from onnxruntime.quantization import QuantType

ALL_BUILDERS = {**M.BUILDERS, "torch_cnn": M.torch_cnn}
CONVS = [n for n in M.BUILDERS if n.startswith("conv_")]
UINT8_ACTIVATIONS = [r for r in R.recipes("qdq") if r.activation_type == QuantType.QUInt8]
INT8_ACTIVATIONS = [r for r in R.recipes("qdq") if r.activation_type == QuantType.QInt8]


@functools.cache
def built(name: str) -> M.Built:
    return ALL_BUILDERS[name]()


@functools.cache
def quantized(name: str, recipe: R.Recipe) -> onnx.ModelProto:
    return R.quantize(built(name), recipe)


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_builders_are_valid_and_deterministic():
    for name, build in ALL_BUILDERS.items():
        a, b = build(), build()
        assert a.model.SerializeToString() == b.model.SerializeToString(), name
        assert all(np.array_equal(a.inputs[k], b.inputs[k]) for k in a.inputs), name
        assert not any(np.array_equal(a.inputs["x"], c["x"]) for c in a.calibration), name
        (out,) = R.run(a.model, a.inputs)
        assert np.all(np.isfinite(out)) and np.std(out) > 0, name


def test_torch_export_keeps_batchnorm():
    assert op_types(built("torch_cnn").model).count("BatchNormalization") == 2


def test_light_resnet50_matches_the_shipped_output():
    light = M.light_model("resnet50")
    assert light.model.opset_import[0].version == M.OPSET
    assert "ConstantOfShape" not in op_types(light.model)
    (out,) = R.run(light.model, light.inputs)
    np.testing.assert_allclose(out, M.light_reference_output("resnet50"), rtol=1e-3, atol=1e-7)
    seeded = M.light_model("resnet50", seed=0)
    assert np.std(R.run(seeded.model, seeded.inputs)[0]) > 0  # the shipped weights give equal logits


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("recipe", UINT8_ACTIVATIONS, ids=lambda r: r.name)
def test_fused_qdq_conv_is_qlinearconv(name, recipe):
    q = quantized(name, recipe)
    assert [g.op_type for g in R.unfused_qdq_groups(q)] == ["Conv"]  # as written: DQ -> Conv -> Q
    fz = R.fused(q)
    # input Q, the integer conv, output DQ: BatchNorm folded, Relu / Clip absorbed by the output range
    assert op_types(fz) == ["QuantizeLinear", "QLinearConv", "DequantizeLinear"]
    assert R.unfused_qdq_groups(fz) == []
    assert R.unfused_qdq_groups(R.fused(q, "disabled")) == [R.UnfusedGroup("conv0", "Conv")]


@pytest.mark.parametrize("name", ["residual_cnn", "attention", "pools", "torch_cnn"])
@pytest.mark.parametrize(
    "recipe",
    [R.Recipe("qdq", True), R.Recipe("qdq", False, activation_type=QuantType.QInt8), *R.recipes("qoperator")[:2]]
    + R.recipes("dynamic")[:2],
    ids=lambda r: r.name,
)
def test_node_dump_ends_with_the_session_output(name, recipe):
    b, q = built(name), quantized(name, recipe)
    fz = R.fused(q)
    dump = R.node_outputs(fz, b.inputs)
    assert set(dump) == {o for n in fz.graph.node for o in n.output if o}
    (want,) = R.run(q, b.inputs, "extended")
    got = dump[fz.graph.output[0].name]
    assert got.dtype == want.dtype and np.array_equal(got, want)


#: (builder, format) pairs whose outputs depend on the optimization level: ORT fuses the float Erf-GELU
#: pattern after the dynamic MatMul into com.microsoft Gelu from ORT_ENABLE_EXTENDED on.
LEVEL_DEPENDENT = {("erf_gelu", "dynamic")}


@pytest.mark.parametrize("name", ALL_BUILDERS)
@pytest.mark.parametrize("fmt", ["qoperator", "dynamic"])
def test_qoperator_and_dynamic_are_identical_at_every_level(name, fmt):
    b = built(name)
    for recipe in R.recipes(fmt):
        q = quantized(name, recipe)
        outs = {level: R.run(q, b.inputs, level)[0] for level in R.LEVELS}
        differs = [level for level, out in outs.items() if not np.array_equal(out, outs["disabled"])]
        if (name, fmt) in LEVEL_DEPENDENT:
            assert differs == ["extended", "all"], recipe.name
            assert "Gelu" in op_types(R.fused(q)), recipe.name
            assert max_ulp_diff(outs["disabled"], outs["extended"]) <= 4, recipe.name
        else:
            assert differs == [], recipe.name


def _code_diffs(slow: dict[str, np.ndarray], fast: dict[str, np.ndarray], order: list[str]) -> list[tuple[str, int]]:
    """(tensor, largest code difference) for the integer tensors both dumps hold, in ``order``."""
    return [
        (t, int(np.abs(slow[t].astype(np.int32) - fast[t].astype(np.int32)).max()))
        for t in order
        if t in slow and fast[t].dtype in (np.uint8, np.int8)
    ]


@pytest.mark.parametrize("name", ["pools", "attention"])
@pytest.mark.parametrize("recipe", UINT8_ACTIVATIONS, ids=lambda r: r.name)
def test_qdq_fake_quantization_differs_from_the_fused_graph_by_one_code(name, recipe):
    """Unoptimized QDQ (float op between DQ and Q) against ORT's integer kernels: the first tensor that
    differs, whose inputs are equal in both, differs by one code at a few positions; later tensors inherit
    it (measured at most 2 codes)."""
    b, q = built(name), quantized(name, recipe)
    fz = R.fused(q)
    slow, fast = R.node_outputs(q, b.inputs), R.node_outputs(fz, b.inputs)
    diffs = _code_diffs(slow, fast, [o for n in fz.graph.node for o in n.output])
    assert len(diffs) >= 3  # the fused graph keeps the QuantizeLinear output names
    differing = [(t, d) for t, d in diffs if d]
    assert differing and differing[0][1] == 1
    assert max(d for _, d in differing) <= 2
    first = differing[0][0]
    positions = np.count_nonzero(slow[first] != fast[first]) / slow[first].size
    # measured: at most 3.25% of an average pool's codes (13 of 400); QLinearSoftmax (lookup-table exp) 14.8%
    assert 0 < positions <= (0.15 if first.startswith("softmax") else 0.04), first


#: QDQ groups ORT 1.32 leaves unfused at ORT_ENABLE_EXTENDED on this CPU (x86, AVX-512 VNNI): float op
#: types, per builder, the same per tensor and per channel and for int8 / uint8 weights. Measured.
UNFUSED_UINT8 = {
    "gemm_trans_alpha_beta": ["Gemm"],  # transA=1: no QGemm
    "elementwise_broadcast": ["Sub", "Div"],  # no QLinearSub / QLinearDiv
    "layernorm_decomposed": ["LayerNormalization"],  # fused from the decomposed pattern, float
    "layernorm_op": ["LayerNormalization"],  # ORT's quantizer leaves it float between DQ and Q
    "torch_cnn": ["HardSigmoid"],  # HardSwish is decomposed to HardSigmoid * x
}
UNFUSED_INT8 = {
    **UNFUSED_UINT8,
    "batched_matmul": ["MatMul", "MatMul"],
    "attention": ["MatMul", "MatMul", "Mul", "MatMul"],
    "elementwise_broadcast": ["Conv", "Sub", "Mul", "Div", "Add"],
    "se_block": ["Conv", "GlobalAveragePool", "Mul"],
    "hard_swish_written_out": ["Conv", "Add", "Mul"],
    "erf_gelu": ["MatMul", "Add", "Mul", "Mul"],
    "layout_ops": ["Conv", "Conv"],
    "residual_cnn": ["Conv", "Conv", "Add", "Conv", "Conv"],
    "torch_cnn": ["Conv", "HardSigmoid", "Mul"],
}


@pytest.mark.parametrize("name", ALL_BUILDERS)
def test_unfused_qdq_groups_on_this_cpu(name):
    for recipes, table in ((UINT8_ACTIVATIONS, UNFUSED_UINT8), (INT8_ACTIVATIONS, UNFUSED_INT8)):
        for recipe in recipes:
            groups = R.unfused_qdq_groups(R.fused(quantized(name, recipe)))
            assert [g.op_type for g in groups] == table.get(name, []), recipe.name
