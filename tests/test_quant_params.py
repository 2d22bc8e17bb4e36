"""QuantizeMultiplier, QParams, bias quantization, observers and the scheme table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numerics_refs import tfl_quantize_multiplier

from accelsim.dynamic_flavours import FlavourName, get_flavour
from accelsim.errors import AccelsimError
from accelsim.quant import (
    DYNAMIC_FLAVOURS,
    REQUANT_MODES,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PercentileObserver,
    QParams,
    affine_qparams,
    quantize_bias,
    quantize_multiplier,
    quantize_tensor,
    symmetric_qparams,
    weight_qparams,
)
from accelsim.requant_modes import RequantModeName, get_mode
from accelsim.schemes import SCHEMES, WEIGHT_FORMATS, SchemeName, WeightFormatName, get_scheme, get_weight_format


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e4, allow_nan=False))
def test_quantize_multiplier_matches_tflite(real):
    """Same (M0, shift) as the TFLite source transcribed in numerics_refs; M0 in [2^30, 2^31)."""
    m0, shift = quantize_multiplier(real)
    assert (m0, shift) == tfl_quantize_multiplier(real)
    if m0:
        assert (1 << 30) <= m0 < (1 << 31)
        assert abs(m0 * 2.0 ** (shift - 31) - real) <= real * 2.0**-30


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.375, (3 << 29, -1)),
        (1.0 - 2.0**-40, (1 << 30, 1)),  # q * 2^31 rounds to exactly 2^31: halved, shift bumped
        (2.0**-33, (0, 0)),  # shift < -31: flushed to zero
        (0.0, (0, 0)),
    ],
)
def test_quantize_multiplier_edge_cases(real, expected):
    assert quantize_multiplier(real) == expected


def test_single_rounding_clamps_shift():
    """TFLITE_SINGLE_ROUNDING saturates shifts above 30."""
    assert quantize_multiplier(2.0**40, single_rounding=True) == ((1 << 31) - 1, 30)
    assert quantize_multiplier(2.0**40) == (1 << 30, 41)


def test_qparams_ranges_and_granularity():
    qp = symmetric_qparams(np.array([1.27, 0.0]), axis=0)
    assert qp.granularity == "per_channel" and qp.symmetric and (qp.qmin, qp.qmax) == (-127, 127)
    np.testing.assert_array_equal(qp.scale, np.float32([np.float32(1.27) / np.float32(127), 1.0]))
    a = affine_qparams(-1.0, 3.0, dtype="uint8")
    assert a.qmin == 0 and a.qmax == 255 and a.zero_point[0] == 64
    with pytest.raises(ValueError):
        QParams([1.0, 2.0], [0, 0], "int8")  # per-tensor needs one scale


def test_a_subnormal_range_gets_scale_one_and_quantizes_to_zero():
    """Pruned weights below float32's normal range (PP-OCRv4's recognizer has such channels): the scale would
    be subnormal and ``1 / scale`` inf (codes of inf * w, NaN for its zeros); scale 1 quantizes them to 0."""
    w = np.array([[1.0, -0.5], [3e-39, 0.0], [0.0, 0.0]], np.float32)
    qp = weight_qparams(w)
    np.testing.assert_array_equal(qp.scale, np.float32([1.0 / 127, 1.0, 1.0]))
    with np.errstate(all="raise"):
        codes, _ = quantize_tensor(w, qp)
    np.testing.assert_array_equal(codes[1:], 0)
    assert affine_qparams(np.float32(-1e-38), np.float32(0.0), dtype="uint8").scale[0] == 1.0


def test_weight_qparams_axis():
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10
    qp = weight_qparams(w, axis=1)
    np.testing.assert_array_equal(qp.scale * 127, np.abs(w).max(axis=(0, 2)).astype(np.float32) / np.float32(127) * 127)
    assert weight_qparams(w, granularity="per_tensor").scale.size == 1


def test_quantize_bias_scale_and_saturation():
    q, qp, sats = quantize_bias(np.array([1.0, -2.5, 1e9]), 0.5, np.array([0.25, 0.5, 1e-9]))
    np.testing.assert_array_equal(qp.scale, np.float32([0.125, 0.25, np.float32(0.5) * np.float32(1e-9)]))
    assert q[0] == 8 and q[1] == -10 and q[2] == (1 << 31) - 1 and sats == 1


def test_observers():
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=1000).astype(np.float32) for _ in range(5)]
    mm, ma, pc = MinMaxObserver(), MovingAverageMinMaxObserver(0.5), PercentileObserver(99.0)
    for b in batches:
        for obs in (mm, ma, pc):
            obs.observe(b)
    lo, hi = mm.range()
    assert lo == min(b.min() for b in batches) and hi == max(b.max() for b in batches)
    mlo, mhi = ma.range()
    assert lo <= mlo < 0 < mhi <= hi  # bit-exact against torch's observer: test_numerics_pytorch.py
    plo, phi = pc.range()
    allv = np.concatenate(batches)
    assert abs(plo - np.percentile(allv, 1)) < 0.05 and abs(phi - np.percentile(allv, 99)) < 0.05
    assert mm.qparams(dtype="uint8").dtype == "uint8"
    assert pc.qparams(symmetric=True).symmetric
    p100 = PercentileObserver(100.0)
    p100.observe(batches[0])
    assert p100.range() == pytest.approx((batches[0].min(), batches[0].max()))


def test_scheme_names_are_the_table_keys_and_properties_read_the_table():
    """The enum is the table's vocabulary: same names in the same order, each row keyed by its own name, and
    each property the code branches on follows from the row's data, one scheme each."""
    assert list(SCHEMES) == list(SchemeName) and all(k is s.name for k, s in SCHEMES.items())
    holders = {
        prop: [n for n, s in SCHEMES.items() if getattr(s, prop)]
        for prop in ("is_reference", "runtime_activations", "calibrated")
    }
    assert holders == {"is_reference": ["fp32"], "runtime_activations": ["dynamic"], "calibrated": ["static"]}
    assert [n for n, s in SCHEMES.items() if s.float_gemm] == ["fp32", "woq"]
    assert SchemeName("static") == "static" and f"{SchemeName.DYNAMIC}" == "dynamic"


@pytest.mark.parametrize(
    ("table", "names"),
    [
        (SCHEMES, SchemeName),
        (REQUANT_MODES, RequantModeName),
        (DYNAMIC_FLAVOURS, FlavourName),
        (WEIGHT_FORMATS, WeightFormatName),
    ],
    ids=["schemes", "requant_modes", "dynamic_flavours", "weight_formats"],
)
def test_every_table_is_keyed_by_its_enum(table, names):
    """Each vocabulary is its table's keys, in order, each row keyed by its own name (a name added to one
    and not the other fails here)."""
    assert list(table) == list(names) and all(k is row.name for k, row in table.items())


@pytest.mark.parametrize(
    ("lookup", "table", "line"),
    [
        (get_scheme, SCHEMES, "scheme: unknown scheme 'int4'"),
        (get_mode, REQUANT_MODES, "requant.rounding: unknown requant mode 'int4'"),
        (get_flavour, DYNAMIC_FLAVOURS, "flavour: unknown flavour 'int4'"),
        (get_weight_format, WEIGHT_FORMATS, "weights: unknown weights 'int4'"),
    ],
)
def test_an_unknown_name_is_the_same_error_for_every_table(lookup, table, line):
    """Every table's lookup refuses a name it lacks with one AccelsimError line listing the table's names,
    and finds each row from its plain string."""
    with pytest.raises(AccelsimError) as err:
        lookup("int4")
    assert str(err.value) == f"{line} (allowed: {', '.join(table)})"
    assert all(lookup(str(name)).name is name for name in table)


def test_config_and_cli_take_their_names_from_the_tables():
    """The hardware's rounding, the sweep's flavour and the CLI's choices are the tables' names: a mode or
    flavour added to a table is accepted everywhere, and a misspelt one is refused with the table's list."""
    from accelsim.cli import FLAVOURS, WEIGHT_FORMAT_NAMES
    from accelsim.cli import SCHEMES as SCHEME_CHOICES
    from accelsim.config import HardwareConfig
    from accelsim.config.sweep import SweepSpec

    assert (SCHEME_CHOICES, FLAVOURS, WEIGHT_FORMAT_NAMES) == (
        tuple(SCHEMES),
        tuple(DYNAMIC_FLAVOURS),
        tuple(WEIGHT_FORMATS),
    )
    assert all(type(n) is str for n in (*SCHEME_CHOICES, *FLAVOURS, *WEIGHT_FORMAT_NAMES))  # argparse shows repr
    field = HardwareConfig.model_fields["requant"].annotation.model_fields["rounding"]
    assert field.annotation is RequantModeName and field.default is RequantModeName.TFLITE
    assert SweepSpec.model_fields["flavour"].annotation is FlavourName
    assert SweepSpec.model_fields["flavour"].default is FlavourName.ONNX

    from accelsim.config import load_hardware

    with pytest.raises(AccelsimError) as err:
        load_hardware(None, ["requant.rounding=tflite_double"])
    assert str(err.value).endswith(f"(allowed: {', '.join(REQUANT_MODES)})") and "'tflite_double'" in str(err.value)
    for mode in REQUANT_MODES:
        assert load_hardware(None, [f"requant.rounding={mode}"]).requant.rounding is REQUANT_MODES[mode].name


def test_scheme_and_mode_tables():
    """The tables say what each unit computes on (consumed by lowering and timing)."""
    assert set(SCHEMES) == {"fp32", "woq", "dynamic", "static"}
    assert SCHEMES["static"].unit_dtypes() == {"array": ("int8", "int32"), "requant": ("int32", "int8")}
    assert SCHEMES["dynamic"].unit_dtypes()["vector"] == ("float32", "int8")
    assert SCHEMES["woq"].weights.dram_dtype == "int8" and SCHEMES["woq"].array_operand_dtype == "float32"
    assert SCHEMES["fp32"].unit_dtypes() == {"array": ("float32", "float32")}
    assert set(REQUANT_MODES) == {"tflite", "tflite_single", "tflite_float64", "float_half_even", "fbgemm"}
    assert {f.activation_dtype for f in DYNAMIC_FLAVOURS.values()} == {"int8", "uint8"}
    assert DYNAMIC_FLAVOURS["pytorch"].reduce_range and DYNAMIC_FLAVOURS["tflite"].granularity == "per_row"
    qnnpack = DYNAMIC_FLAVOURS["pytorch_qnnpack"]
    assert not qnnpack.reduce_range and not qnnpack.fused_output and qnnpack.rule == DYNAMIC_FLAVOURS["pytorch"].rule


def test_observer_parameter_rules():
    """The pytorch rule divides a symmetric range by (qmax - qmin) / 2 = 127.5 and centres uint8 on 128;
    the onnxruntime rule divides by 127 with zero point 0; an unknown rule is refused."""
    obs = MinMaxObserver()
    obs.observe(np.float32([-1.0, 127.5]))
    torch_u8 = obs.qparams(dtype="uint8", symmetric=True, rule="pytorch")
    assert (torch_u8.scale[0], torch_u8.zero_point[0]) == (1.0, 128)
    assert obs.qparams(dtype="int8", symmetric=True, rule="pytorch").zero_point[0] == 0
    assert obs.qparams(dtype="int8", symmetric=True).scale[0] == np.float32(127.5) / np.float32(127)
    affine = obs.qparams(dtype="uint8", rule="pytorch")
    assert (affine.scale[0], affine.zero_point[0]) == (np.float32(128.5 / 255), 2)
    with pytest.raises(ValueError):
        obs.qparams(rule="tensorrt")


def test_vectorized_quantize_multipliers_equal_the_scalar_transcription() -> None:
    """The per-channel (numpy) QuantizeMultiplier gives the scalar TFLite transcription's bits, edge cases included."""
    from accelsim.quant.multiplier import quantize_multiplier, quantize_multipliers

    rng = np.random.default_rng(0)
    edges = [0.0, 1.0, 0.5, 2.0**-31, 2.0**-32, 2.0**-33, 1 - 2.0**-40, 2.0**31, 1e-300, 0.999999999999]
    reals = np.concatenate([rng.uniform(0, 1, 20000), 10 ** rng.uniform(-12, 3, 20000), edges])
    for single in (False, True):
        m0, shift = quantize_multipliers(reals, single_rounding=single)
        scalar = [quantize_multiplier(float(r), single_rounding=single) for r in reals]
        assert m0.tolist() == [s[0] for s in scalar] and shift.tolist() == [s[1] for s in scalar]
