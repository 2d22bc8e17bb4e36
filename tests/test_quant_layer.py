"""The layer API (every scheme, every layer kind) and the golden-vector writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.errors import AccelsimError
from accelsim.kernels import ConvGeometry, int_conv2d
from accelsim.kernels.gemm import Overflow
from accelsim.quant import Accumulator, Prepared, QParams, Quantization, run_layer, write_golden
from accelsim.requant_modes import REQUANT_MODES

RNG = np.random.default_rng(0)
X_CONV = RNG.normal(size=(2, 4, 9, 9)).astype(np.float32)
W_CONV = (RNG.normal(size=(6, 2, 3, 3)) * 0.2).astype(np.float32)
B_CONV = RNG.normal(size=6).astype(np.float32)
CONV_GEOMETRY = ConvGeometry.from_args(stride=2, padding=1, groups=2)


def _conv(**options):
    """``run_layer`` on the module's conv layer (X_CONV, W_CONV, B_CONV, CONV_GEOMETRY)."""
    return run_layer("conv2d", X_CONV, W_CONV, B_CONV, geometry=CONV_GEOMETRY, **options)


def _sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - got).astype(np.float64) ** 2)))


@pytest.mark.parametrize(
    ("scheme", "variant"),
    [("woq", None)]
    + [("static", m) for m in REQUANT_MODES]
    + [("dynamic", f) for f in ("tflite", "tflite_symmetric", "onnx", "pytorch")],
)
def test_every_scheme_tracks_fp32(scheme, variant):
    """Each scheme's output is the fp32 output up to quantization noise (SQNR well above 25 dB)."""
    ref = _conv(quantization=Quantization(scheme="fp32")).output
    kw = {"requant_mode": variant} if scheme == "static" else {"flavour": variant} if scheme == "dynamic" else {}
    res = _conv(quantization=Quantization(scheme=scheme, **kw))
    assert res.output.shape == ref.shape and res.output.dtype == np.float32
    assert _sqnr_db(ref, res.output) > 25


def test_static_intermediates_are_consistent():
    """acc equals the int conv of the recorded int8 tensors plus bias_q; dtypes and qparams are recorded."""
    res = _conv(quantization=Quantization(scheme="static", requant_mode="tflite"))
    t = res.tensors
    assert t["input_q"].values.dtype == np.int8 and t["weight_q"].values.dtype == np.int8
    assert t["bias_q"].values.dtype == np.int32 and t["acc"].values.dtype == np.int32
    assert t["output_q"].qparams.dtype == "int8" and t["weight_q"].qparams.granularity == "per_channel"
    acc = int_conv2d(
        t["input_q"].values,
        t["weight_q"].values,
        ConvGeometry.from_args(2, 1, 1, 2),
        x_zero_point=int(t["input_q"].qparams.zero_point[0]),
        bias=t["bias_q"].values,
    ).values
    np.testing.assert_array_equal(acc, t["acc"].values)
    assert res.accumulator_overflows == 0 and res.requant.multiplier.dtype == np.int32


def test_linear_and_matmul_agree():
    """linear(x, W) and matmul(x, W.T) are the same layer (channel axis handled for both)."""
    x = RNG.normal(size=(3, 5, 16)).astype(np.float32)
    w = (RNG.normal(size=(8, 16)) * 0.3).astype(np.float32)
    for scheme, kw in [("static", {"requant_mode": "tflite"}), ("dynamic", {"flavour": "tflite"}), ("woq", {})]:
        a = run_layer("linear", x, w, quantization=Quantization(scheme=scheme, **kw))
        b = run_layer("matmul", x, w.T.copy(), quantization=Quantization(scheme=scheme, **kw))
        np.testing.assert_array_equal(a.output, b.output)
        assert a.output.shape == (3, 5, 8)


def test_narrow_accumulator_overflows_are_counted():
    """A 16-bit accumulator overflows on a long K; wrap and saturate give different outputs."""
    x = np.abs(RNG.normal(size=(4, 512))).astype(np.float32) * 3
    w = np.abs(RNG.normal(size=(8, 512))).astype(np.float32)
    wide = run_layer("linear", x, w, quantization=Quantization(scheme="static"), accumulator=Accumulator(bits=32))
    wrap = run_layer(
        "linear", x, w, quantization=Quantization(scheme="static"), accumulator=Accumulator(bits=16, overflow="wrap")
    )
    sat = run_layer(
        "linear",
        x,
        w,
        quantization=Quantization(scheme="static"),
        accumulator=Accumulator(bits=16, overflow="saturate"),
    )
    assert wide.accumulator_overflows == 0 and wrap.accumulator_overflows == sat.accumulator_overflows > 0
    assert not np.array_equal(wrap.output, sat.output)


def test_saturation_counts_and_fused_relu():
    """A too-small output range saturates; ReLU's own clamp is not counted."""
    tight = QParams(np.float32(0.001), 0, "int8")
    res = _conv(quantization=Quantization(scheme="static"), prepared=Prepared(output_qparams=tight))
    relu = _conv(activation="relu", quantization=Quantization(scheme="static"), prepared=Prepared(output_qparams=tight))
    assert res.requant_saturations > relu.requant_saturations > 0
    assert relu.tensors["output_q"].values.min() >= 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="allowed"):
        run_layer("conv3d", X_CONV, W_CONV)
    with pytest.raises(AccelsimError, match="allowed"):
        run_layer("linear", X_CONV[0, 0], W_CONV[0, 0, 0], quantization=Quantization(scheme="int4"))
    with pytest.raises(AccelsimError, match="allowed"):  # every table's unknown name is the same error
        run_layer(
            "linear", X_CONV[0, 0], W_CONV[0, 0, 0], quantization=Quantization(scheme="static", requant_mode="nearest")
        )
    with pytest.raises(AccelsimError, match="allowed"):
        run_layer(
            "linear", X_CONV[0, 0], W_CONV[0, 0, 0], quantization=Quantization(scheme="dynamic", flavour="tensorrt")
        )


@pytest.mark.parametrize("mistake", [{"scheme": "int4"}, {"flavour": "tensorrt"}, {"weights": "uint4"}])
def test_an_unknown_name_is_one_error_everywhere(mistake):
    """An unknown scheme, flavour or weight format is the same AccelsimError (one line, what is allowed)
    whether it reaches the library through ``simulate``, ``run_values`` or the scheme table itself."""
    from accelsim.config import load_hardware, load_workload
    from accelsim.dynamic_flavours import get_flavour
    from accelsim.schemes import get_scheme
    from accelsim.simulation import RunOptions, simulate
    from accelsim.values.runner import run_values

    workload, hw = load_workload("tiny_cnn"), load_hardware("edge-npu")
    args = {"scheme": "static", "flavour": "onnx", "weights": "symmetric"} | mistake
    scheme = args.pop("scheme")
    messages = set()
    for call in (
        lambda: simulate(workload, hw, scheme, options=RunOptions(timing_only=True, **args)),
        lambda: run_values(workload, hw, scheme, **args),
        lambda: get_scheme(scheme, args["weights"]) and get_flavour(args["flavour"]),
    ):
        with pytest.raises(AccelsimError, match="allowed") as err:
            call()
        messages.add(str(err.value))
    assert len(messages) == 1, messages


def test_write_golden_roundtrip(tmp_path):
    """The .npz carries inputs, int8 weights, qparams, int32 accumulators, outputs and the requant registers."""
    res = _conv(activation="relu6", quantization=Quantization(scheme="static", requant_mode="tflite"))
    path = write_golden(res, tmp_path / "vectors.npz")
    with np.load(path) as z:
        for name in (
            "input",
            "input_q",
            "weight_q",
            "bias_q",
            "acc",
            "output_q",
            "requant_multiplier",
            "requant_shift",
        ):
            np.testing.assert_array_equal(
                z[name],
                res.tensors[name].values if name in res.tensors else getattr(res.requant, name.split("_", 1)[1]),
            )
        assert z["weight_q"].dtype == np.int8 and z["acc"].dtype == np.int32
        np.testing.assert_array_equal(z["output"], res.output)
        assert z["input_q_zero_point"][0] == res.tensors["input_q"].qparams.zero_point[0]
        meta = json.loads(str(z["meta_json"]))
    assert meta["scheme"] == "static" and meta["variant"] == "tflite" and meta["geometry"]["groups"] == 2
    assert meta["settings"]["activation"] == "relu6" and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("scheme", ["woq", "dynamic", "static"])
def test_prepared_weight_codes_give_the_same_bits(scheme: str) -> None:
    """run_layer(weight_q=quantize_weight(...)) is the same layer as quantizing the weights inside."""
    from accelsim.quant import quantize_weight

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(8).astype(np.float32) * 0.1
    args = {
        "quantization": Quantization(scheme=scheme),
        "geometry": ConvGeometry.from_args(stride=2, padding=1),
        "activation": "relu",
    }
    inside = run_layer("conv2d", x, w, b, **args)
    kept = run_layer("conv2d", x, w, b, prepared=Prepared(weight=quantize_weight("conv2d", w)), **args)
    for name, record in inside.tensors.items():
        assert np.array_equal(record.values, kept.tensors[name].values), name
    assert np.array_equal(inside.output, kept.output)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["conv1x1", "conv1x1s2", "conv3x3", "conv3x3s2", "conv3x3d2", "linear"]),
    channels=st.integers(1, 70),
    out=st.integers(1, 90),
    size=st.integers(5, 12),
    mode=st.sampled_from(list(REQUANT_MODES)),
    activation=st.sampled_from([None, "relu", "relu6"]),
    seed=st.integers(0, 2**32 - 1),
    weights=st.sampled_from(["symmetric", "asymmetric", "asymmetric_int8"]),
)
def test_accumulators_handed_to_the_requant_unit_give_the_same_layer(
    kind, channels, out, size, mode, activation, seed, weights
):
    """Without kept accumulators a static layer may skip the int32 tensor (the array feeding the
    requant unit directly): codes, counts and the accumulator range equal the kept-accumulator run,
    also with weight zero points (their row-sum term in the tiles' start values)."""
    from accelsim.quant.layer import quantize_weight, run_static_codes

    rng = np.random.default_rng(seed)
    dtype = REQUANT_MODES[mode].activation_dtype
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    conv = kind != "linear"
    x = (rng.integers(lo, hi, (2, channels, size, size)) if conv else rng.integers(lo, hi, (3, channels))).astype(dtype)
    kernel = 3 if kind.startswith("conv3") else 1
    w = rng.standard_normal((out, channels, kernel, kernel) if conv else (out, channels)).astype(np.float32)
    geometry = (
        ConvGeometry.from_args(
            stride=2 if kind.endswith("s2") else 1,
            padding=kernel // 2 * (1 + kind.endswith("d2")),
            dilation=2 if kind.endswith("d2") else 1,
        )
        if conv
        else None
    )
    args = (
        "conv2d" if conv else "linear",
        x,
        QParams(np.float32([0.05]), np.int32([int(rng.integers(lo, hi))]), dtype),
        quantize_weight("conv2d" if conv else "linear", w, weights=weights),
        rng.standard_normal(out).astype(np.float32),
        QParams(np.float32([0.2]), np.int32([int(rng.integers(lo, hi))]), dtype),
    )
    kept = run_static_codes(*args, requant_mode=mode, activation=activation, geometry=geometry)
    handed = run_static_codes(
        *args,
        requant_mode=mode,
        activation=activation,
        keep_accumulators=False,
        geometry=geometry,
    )
    np.testing.assert_array_equal(handed.tensors["output_q"].values, kept.tensors["output_q"].values)
    assert (handed.requant_saturations, handed.accumulator_overflows, handed.accumulator_range) == (
        kept.requant_saturations,
        kept.accumulator_overflows,
        kept.accumulator_range,
    )
    assert kept.accumulator_range == (int(kept.tensors["acc"].values.min()), int(kept.tensors["acc"].values.max()))
    if REQUANT_MODES[mode].arithmetic != "float32":  # on every host: the kernels pick VNNI or not themselves
        assert "acc" not in handed.tensors


@pytest.mark.parametrize("weights,dtype", [("asymmetric", np.uint8), ("asymmetric_int8", np.int8)])
@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_asymmetric_weight_codes_cover_each_channel_range(weights, dtype, granularity):
    """Affine weights: codes of the format's dtype, zero points per channel (or one), min and max of each
    channel representable, and dequantized codes within half a step of the float weights."""
    from accelsim.quant import dequantize_tensor, quantize_weight

    rng = np.random.default_rng(4)
    w = (rng.standard_normal((6, 5, 3, 3)) * 0.1 + np.linspace(-0.2, 0.3, 6)[:, None, None, None]).astype(np.float32)
    wq = quantize_weight("conv2d", w, granularity, weights)
    qp = wq.qparams
    assert (
        wq.codes.dtype == dtype
        and not qp.symmetric
        and qp.zero_point.size == (6 if granularity == "per_channel" else 1)
    )
    err = np.abs(dequantize_tensor(wq.codes, qp) - w)
    step = qp.scale.reshape(-1, 1, 1, 1) if qp.axis is not None else qp.scale[0]
    assert (err <= step / 2 + 1e-7).all()


@pytest.mark.parametrize("kind", ["conv2d", "linear"])
@pytest.mark.parametrize("scheme,variant", [("static", "tflite"), ("dynamic", "tflite"), ("dynamic", "onnx")])
def test_golden_vectors_carry_the_weight_zero_point_correction(tmp_path, kind, scheme, variant):
    """With weight zero points the golden file holds the row sums and the correction, and they add up:
    ``acc = bias_q + sum (x_q - z_x) * w_q + correction`` with the codes' plain product computed here
    (per-row input zero points of the tflite dynamic flavour included)."""
    from accelsim.kernels import reference as ref

    conv = kind == "conv2d"
    x, w = (X_CONV, W_CONV) if conv else (X_CONV.reshape(4, -1)[:, :18], W_CONV.reshape(W_CONV.shape[0], -1))
    geometry = CONV_GEOMETRY if conv else None
    variant_arg = {"requant_mode": variant} if scheme == "static" else {"flavour": variant}
    quantization = Quantization(scheme=scheme, weights="asymmetric", **variant_arg)
    res = run_layer(kind, x, w, B_CONV, quantization=quantization, geometry=geometry)
    with np.load(write_golden(res, tmp_path / "g.npz")) as z:
        acc, corr, sums = z["acc"].astype(np.int64), z["weight_zero_point_correction"], z["input_row_sums"]
        xq, wq = z["input_q"].astype(np.int64), z["weight_q"].astype(np.int64)
        zx, zw = z["input_q_zero_point"].astype(np.int64), z["weight_q_zero_point"]
        bias = z["bias_q"].astype(np.int64) if "bias_q" in z.files else np.zeros(acc.shape[1 if conv else -1], np.int64)
        meta, w_dtype = json.loads(str(z["meta_json"])), z["weight_q"].dtype
    assert w_dtype == np.uint8 and meta["settings"]["weights"] == "asymmetric" and (zw != 0).any()
    if conv:
        g = res.geometry
        centred = xq - zx.reshape(-1, 1, 1, 1) if zx.size > 1 else xq
        plain, _ = ref.ref_int_conv2d(
            centred,
            wq,
            stride=g.stride,
            padding=g.padding,
            dilation=g.dilation,
            groups=g.groups,
            x_zero_point=0 if zx.size > 1 else int(zx[0]),
            bias=bias,
            acc_bits=48,
            overflow="wrap",
        )
    else:
        plain = (xq - (zx[:, None] if zx.size > 1 else zx[0])) @ wq.T + bias
        assert sums.shape == (xq.shape[0], 1) and np.array_equal(corr, -sums * zw)
    np.testing.assert_array_equal(acc, plain + corr)


def test_asymmetric_weights_in_a_network_run():
    """run_values(weights=asymmetric): uint8 weight codes with zero points in every array layer, errors
    against fp32 of the same order as symmetric int8, and the timing reads the zero points."""
    from accelsim.config import load_hardware, load_workload
    from accelsim.simulation import PreparedModel, RunOptions, simulate
    from accelsim.values.runner import OUTPUT, run_values
    from accelsim.values.tensors import materialize

    wl, hw = load_workload("tiny_cnn"), load_hardware("default")
    tensors = materialize(wl)
    ref = run_values(wl, hw, "fp32", tensors=tensors)
    for scheme in ("static", "dynamic"):
        sym = run_values(wl, hw, scheme, tensors=tensors, keep_results=["conv2"])
        asym = run_values(wl, hw, scheme, tensors=tensors, keep_results=["conv2"], weights="asymmetric")
        wq = asym.layers["conv2"].results[0].tensors["weight_q"]
        assert asym.weights == "asymmetric" and wq.dtype == "uint8" and wq.qparams.zero_point.size == 32
        assert sym.layers["conv2"].results[0].tensors["weight_q"].dtype == "int8"
        assert asym.compare_to(ref)[OUTPUT].sqnr_db > 0.8 * sym.compare_to(ref)[OUTPUT].sqnr_db
    runs = {
        w: simulate(wl, hw, "static", options=RunOptions(weights=w), prepared=PreparedModel(tensors=tensors))
        for w in ("symmetric", "asymmetric")
    }
    assert runs["asymmetric"].settings["weights"] == "asymmetric"
    assert runs["asymmetric"].values.weights == "asymmetric"
    extra = (
        runs["asymmetric"].total.dram_read_bytes_weight_scales - runs["symmetric"].total.dram_read_bytes_weight_scales
    )
    assert (
        extra > 0
        and runs["asymmetric"].total.dram_read_bytes_weights == runs["symmetric"].total.dram_read_bytes_weights
    )


def test_scheme_table_weight_formats():
    """get_scheme(name, weights): the weights' plan carries the format's dtype and symmetry for the schemes
    that quantize weights; fp32 is unchanged; an unknown format is an error naming the allowed ones."""
    from accelsim.schemes import SCHEMES, TensorPlan, get_scheme

    for name in ("woq", "dynamic", "static"):
        assert get_scheme(name).weights == TensorPlan(True, "int8", "per_channel", True, "offline")
        assert get_scheme(name, "asymmetric").weights == TensorPlan(True, "uint8", "per_channel", False, "offline")
        assert get_scheme(name, "asymmetric_int8").weights == TensorPlan(True, "int8", "per_channel", False, "offline")
        assert get_scheme(name, "asymmetric").activations == SCHEMES[name].activations
    assert get_scheme("fp32", "asymmetric") == SCHEMES["fp32"]
    with pytest.raises(AccelsimError, match="asymmetric_int8"):
        get_scheme("static", "uint4")


def test_options_reject_a_misspelt_name_where_they_are_written():
    """A run's options are checked when built, against the tables: the name a user typed is in the error."""
    with pytest.raises(AccelsimError, match="nearest"):
        Quantization(requant_mode="nearest")
    with pytest.raises(AccelsimError, match="tensorrt"):
        Quantization(scheme="dynamic", flavour="tensorrt")
    with pytest.raises(ValueError, match="per_row"):
        Quantization(weight_granularity="per_row")
    with pytest.raises(ValueError, match="clip"):
        Accumulator(overflow="clip")
    with pytest.raises(ValueError, match="acc_bits"):
        Accumulator(bits=80)
    assert Quantization(scheme="static", flavour="tensorrt").variant == "tflite"  # a static run never reads it
    assert Accumulator(overflow="saturate").overflow is Overflow.SATURATE
    with pytest.raises(ValueError, match="no conv geometry"):
        run_layer("linear", X_CONV[0, 0], W_CONV[0, 0, 0], geometry=CONV_GEOMETRY)


def test_quant_leaves_the_gemm_path_to_the_kernels():
    """Which GEMM path runs (VNNI or not) is the kernels' business: no quant module imports the VNNI kernel."""
    import ast
    from pathlib import Path

    import accelsim.quant

    for path in Path(accelsim.quant.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(name.startswith("accelsim.kernels.vnni") for name in names), (path.name, names)
