"""Bit-exactness against PyTorch's quantized CPU operators (fbgemm engine; qnnpack for its dynamic flavour).

Every comparison also has a tie-forcing case: power-of-two scales and inputs on half steps, so that
the rounding rule decides the bits, with a check that the rule's alternative (zero point added after
rounding, round half up / away, an unfused output) would have failed, and saturating values."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accelsim.quant import Prepared, Quantization

torch = pytest.importorskip("torch")

from accelsim.dynamic_flavours import DynamicFlavour, get_flavour
from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm
from accelsim.kernels.quantize import scale_accumulator
from accelsim.quant import RULES, QParams, make_requant_params, quantize_tensor, requantize, run_layer
from accelsim.quant.dynamic import dynamic_qparams, dynamic_quantize
from accelsim.quant.observers import MovingAverageMinMaxObserver

SETTINGS = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True)
def _fbgemm_engine():
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    warnings.filterwarnings("ignore", category=UserWarning)
    yield
    torch.backends.quantized.engine = previous


def _torch_weight(w_int: np.ndarray, scale: np.ndarray):
    """A qint8 weight tensor with exactly these codes and scales (per tensor if one scale)."""
    w_f = torch.from_numpy(w_int.astype(np.float32))
    if scale.size == 1:
        return torch._make_per_tensor_quantized_tensor(torch.from_numpy(w_int), float(scale[0]), 0)
    shape = [-1] + [1] * (w_int.ndim - 1)
    return torch.quantize_per_channel(
        w_f * torch.from_numpy(scale.astype(np.float32)).reshape(shape),
        torch.from_numpy(scale.astype(np.float64)),
        torch.zeros(scale.size, dtype=torch.long),
        0,
        torch.qint8,
    )


@SETTINGS
@given(
    size=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.5, 0.25, 0.375, 0.0173, 0.1]),
    ties=st.booleans(),
    dtype=st.sampled_from(["uint8", "int8"]),
)
def test_quantize_per_tensor(size, seed, scale, ties, dtype):
    """torch.quantize_per_tensor == rule fbgemm: rint(fma(x, float(1/s), z)), ties included, across SIMD tails."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(-400, 400, size) + 0.5) * scale if ties else rng.normal(size=size) * 150 * scale).astype(
        np.float32
    )
    zp = int(rng.integers(0, 256)) if dtype == "uint8" else int(rng.integers(-128, 128))
    want = (
        torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8 if dtype == "uint8" else torch.qint8)
        .int_repr()
        .numpy()
    )
    got, _ = quantize_tensor(x, QParams(np.float32(scale), zp, dtype), RULES["fbgemm"])
    np.testing.assert_array_equal(got, want)


def _half_steps(rng: np.random.Generator, lo: int, hi: int, size: int | tuple[int, ...], scale: float) -> np.ndarray:
    """float32 ``(k + 0.5) * scale`` for integers k in [lo, hi): exact ties for any power-of-two scale."""
    return ((rng.integers(lo, hi, size) + 0.5) * scale).astype(np.float32)


def _count_ties(v: np.ndarray) -> int:
    """How many values lie exactly halfway between two integers."""
    v = np.asarray(v, np.float64)
    return int(np.count_nonzero(v - np.floor(v) == 0.5))


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_per_tensor_ties_and_saturation(dtype):
    """On exact ties with an odd zero point only the fused rule ``rint(x/s + z)`` gives torch's codes:
    the fake-quantize rule ``rint(x/s) + z`` differs on every tie whose ``rint(x/s)`` is odd; values
    beyond the range saturate (counted)."""
    rng = np.random.default_rng(17)
    scale, zp = 0.125, (77 if dtype == "uint8" else -51)
    x = _half_steps(rng, -300, 300, 4000, scale)
    want = (
        torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8 if dtype == "uint8" else torch.qint8)
        .int_repr()
        .numpy()
    )
    qp = QParams(np.float32(scale), zp, dtype)
    got, sats = quantize_tensor(x, qp, RULES["fbgemm"])
    np.testing.assert_array_equal(got, want)
    wrong, _ = quantize_tensor(x, qp, RULES["torch_fake_quant"])
    assert _count_ties(x / np.float32(scale)) == x.size and np.count_nonzero(wrong != want) > x.size // 4
    exact = np.rint(x.astype(np.float64) / scale + zp)  # power-of-two scale: exact, one rounding
    assert sats == np.count_nonzero((exact < qp.qmin) | (exact > qp.qmax)) > 100


@pytest.mark.parametrize("ties", [True, False])
def test_fake_quantize_per_tensor(ties):
    """torch.fake_quantize_per_tensor_affine == rule torch_fake_quant: ``z + rint(x * float32(1/s))``,
    on exact ties (where the fused rule differs) and on values within an ulp of ties with a scale that is
    not a power of two (where ``x / s`` differs), saturation included."""
    rng = np.random.default_rng(3 if ties else 4)
    scale, zp = (0.25, 27) if ties else (0.0371, 101)
    x = _half_steps(rng, -zp - 40, 296 - zp, 5000, scale)  # not ties: within an ulp of one (float32 of (k + 0.5) * s)
    fq = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zp, 0, 255).numpy()
    want = (np.rint(fq.astype(np.float64) / np.float32(scale)) + zp).astype(np.int64)  # fq = (q - z) * s
    qp = QParams(np.float32(scale), zp, "uint8")
    got, sats = quantize_tensor(x, qp, RULES["torch_fake_quant"])
    np.testing.assert_array_equal(got, want)
    assert sats > 100 and np.count_nonzero(want == 255) > 0 and np.count_nonzero(want == 0) > 0
    if ties:
        assert np.count_nonzero(quantize_tensor(x, qp, RULES["fbgemm"])[0] != want) > x.size // 4
    else:
        by_division = np.clip(np.rint(x / np.float32(scale)) + zp, 0, 255)
        assert np.count_nonzero(by_division != want) > 0


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(),
    relu=st.booleans(),
    ties=st.booleans(),
)
@example(m=7, k=33, n=5, seed=0, per_channel=True, relu=False, ties=False)
def test_quantized_linear(m, k, n, seed, per_channel, relu, ties):
    """torch.ao.nn.quantized.Linear(ReLU) == int GEMM + fbgemm requant with float bias."""
    rng = np.random.default_rng(seed)
    x_q = rng.integers(0, 256, (m, k)).astype(np.uint8)
    w_q = rng.integers(-128, 128, (n, k)).astype(np.int8)
    sx, zx = (0.5, 128) if ties else (float(rng.uniform(1e-3, 0.05)), int(rng.integers(0, 256)))
    sw = (
        np.full(n if per_channel else 1, 0.25, np.float32)
        if ties
        else rng.uniform(1e-3, 2e-2, n if per_channel else 1).astype(np.float32)
    )
    sy, zy = (0.25 if ties else float(rng.uniform(0.01, 0.5))), int(rng.integers(0, 256))
    bias = (rng.integers(-50, 50, n) * 0.0625 if ties else rng.normal(size=n)).astype(np.float32)
    cls = torch.ao.nn.intrinsic.quantized.LinearReLU if relu else torch.ao.nn.quantized.Linear
    lin = cls(k, n)
    lin.set_weight_bias(_torch_weight(w_q, sw), torch.from_numpy(bias))
    lin.scale, lin.zero_point = sy, zy
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x_q), sx, zx)
    want = lin(xt).int_repr().numpy()
    rq = make_requant_params(
        "fbgemm",
        np.float32(sx),
        sw,
        QParams(np.float32(sy), zy, "uint8"),
        activation="relu" if relu else None,
        bias=bias,
    )
    got = requantize(int_gemm(x_q, w_q.T, a_zero_point=zx).values, rq, axis=1).codes
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("kind", "per_channel", "relu"),
    [("linear", True, False), ("linear", False, True), ("conv2d", True, False), ("conv2d", False, False)],
)
def test_static_requant_ties_and_saturation(kind, per_channel, relu):
    """Quantized Linear(ReLU) / Conv2d with power-of-two scales: ``(acc + bias / (s_x s_w)) * s_x s_w / s_y``
    lands on exact halves in an eighth of the outputs or more; accelsim's fbgemm requant equals torch there,
    rounding those ties away from zero instead would not, and the extreme rows saturate at 0 and 255."""
    rng = np.random.default_rng(23)
    sx, zx, sy, zy = 0.5, 131, 0.25, 127
    if kind == "linear":
        x_q = (zx + rng.integers(-8, 9, (64, 48))).astype(np.uint8)
        w_q = rng.integers(-8, 9, (24, 48)).astype(np.int8)
        x_q[0], x_q[1] = 255, 0  # |acc| far beyond the output range: saturates both ways
    else:
        x_q = (zx + rng.integers(-8, 9, (2, 4, 9, 9))).astype(np.uint8)
        w_q = rng.integers(-8, 9, (6, 4, 3, 3)).astype(np.int8)
        x_q[0, :, :3], x_q[1, :, :3] = 255, 0
    o = w_q.shape[0]
    sw = rng.choice([0.125, 0.25], o).astype(np.float32) if per_channel else np.float32([0.125])
    bias = (rng.integers(-40, 40, o) * 0.0625).astype(np.float32)
    if kind == "linear":
        mod = (torch.ao.nn.intrinsic.quantized.LinearReLU if relu else torch.ao.nn.quantized.Linear)(48, o)
        acc = int_gemm(x_q, w_q.T, a_zero_point=zx).values
    else:
        mod = torch.ao.nn.quantized.Conv2d(4, o, 3, padding=1)
        acc = int_conv2d(x_q, w_q, ConvGeometry.from_args(1, 1, 1, 1), x_zero_point=zx).values
    mod.set_weight_bias(_torch_weight(w_q, sw), torch.from_numpy(bias))
    mod.scale, mod.zero_point = sy, zy
    want = mod(torch._make_per_tensor_quantized_tensor(torch.from_numpy(x_q), sx, zx)).int_repr().numpy()
    rq = make_requant_params(
        "fbgemm",
        np.float32(sx),
        sw,
        QParams(np.float32(sy), zy, "uint8"),
        activation="relu" if relu else None,
        bias=bias,
    )
    got = requantize(acc, rq, axis=1).codes
    np.testing.assert_array_equal(got, want)
    shape = [1, -1] + [1] * (acc.ndim - 2)
    sxw = (sx * np.broadcast_to(sw, (o,))).reshape(shape)  # powers of two: every step below is exact
    v = (acc + bias.reshape(shape) / sxw) * sxw / sy
    away = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zy, zy if relu else 0, 255)
    assert _count_ties(v) > v.size // 8 and np.count_nonzero(away != want) > v.size // 20
    assert np.count_nonzero(want == 255) > 0 and np.count_nonzero(v + zy < (zy if relu else 0)) > 0


@SETTINGS
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 2, 4]),
    opg=st.integers(1, 3),
    depthwise=st.booleans(),
    hw=st.tuples(st.integers(3, 8), st.integers(3, 8)),
    kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    padding=st.sampled_from([(0, 0), (1, 1), (1, 0)]),
    dilation=st.sampled_from([(1, 1), (2, 1)]),
    per_channel=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_quantized_conv2d(n, groups, opg, depthwise, hw, kernel, stride, padding, dilation, per_channel, seed):
    """torch.ao.nn.quantized.Conv2d (grouped, depthwise, dilated) == im2col GEMM + fbgemm requant."""
    rng = np.random.default_rng(seed)
    cpg = 1 if depthwise else int(rng.integers(1, 4))
    c, o = groups * cpg, groups * (1 if depthwise else opg)
    geom = ConvGeometry.from_args(stride, padding, dilation, groups)
    try:
        geom.output_size(*hw, *kernel)
    except ValueError:
        return
    x_q = rng.integers(0, 256, (n, c, *hw)).astype(np.uint8)
    w_q = rng.integers(-127, 128, (o, cpg, *kernel)).astype(np.int8)
    sx, zx = float(rng.uniform(1e-3, 0.05)), int(rng.integers(0, 256))
    sw = rng.uniform(1e-3, 2e-2, o if per_channel else 1).astype(np.float32)
    sy, zy = float(rng.uniform(0.01, 0.5)), int(rng.integers(0, 256))
    bias = rng.normal(size=o).astype(np.float32)
    conv = torch.ao.nn.quantized.Conv2d(c, o, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    conv.set_weight_bias(_torch_weight(w_q, sw), torch.from_numpy(bias))
    conv.scale, conv.zero_point = sy, zy
    want = conv(torch._make_per_tensor_quantized_tensor(torch.from_numpy(x_q), sx, zx)).int_repr().numpy()
    rq = make_requant_params("fbgemm", np.float32(sx), sw, QParams(np.float32(sy), zy, "uint8"), bias=bias)
    got = requantize(int_conv2d(x_q, w_q, geom, x_zero_point=zx).values, rq, axis=1).codes
    np.testing.assert_array_equal(got, want)


#: dynamic flavour -> the engine whose torch.ao.nn.quantized.dynamic.Linear it reproduces
DYNAMIC_ENGINES = {"pytorch": "fbgemm", "pytorch_qnnpack": "qnnpack"}


def _torch_dynamic_linear(
    engine: str, x: np.ndarray, w_q: np.ndarray, sw: np.ndarray, bias: np.ndarray, *, reduce_range: bool | None = None
) -> np.ndarray:
    """torch's dynamic Linear on ``engine`` with exactly these int8 weights; ``reduce_range=None`` calls the
    module (which passes True; qnnpack ignores it), a bool calls ``quantized::linear_dynamic`` with it."""
    torch.backends.quantized.engine = engine
    dl = torch.ao.nn.quantized.dynamic.Linear(w_q.shape[1], w_q.shape[0])
    dl.set_weight_bias(_torch_weight(w_q, sw), torch.from_numpy(bias))
    if reduce_range is None:
        return dl(torch.from_numpy(x)).numpy()
    return torch.ops.quantized.linear_dynamic(
        torch.from_numpy(x), dl._packed_params._packed_params, reduce_range=reduce_range
    ).numpy()


def _pytorch_qparams(lo: float, hi: float, *, reduce_range: bool) -> tuple[float, int]:
    """accelsim's ChooseQuantizationParams on a tensor spanning ``[lo, hi]``: the pytorch flavour's parameters
    (pytorch_qnnpack's without reduce_range)."""
    qp = dynamic_qparams(np.float32([[lo, hi]]), "pytorch" if reduce_range else "pytorch_qnnpack")
    return float(qp.scale[0]), int(qp.zero_point[0])


def _torch_dynamic_codes(
    engine: str, x: np.ndarray, params_reduce_range: bool, *, reduce_range: bool | None = None
) -> np.ndarray:
    """The uint8 codes torch's dynamic Linear quantizes ``x`` to, read through identity weights of
    scale 1 and no bias: the output is ``(q - z) * s``, exact for a power-of-two ``s``; ``s`` and ``z``
    are ChooseQuantizationParams' (``pytorch_qparams``, checked against torch's own below)."""
    k = x.shape[-1]
    y = _torch_dynamic_linear(
        engine, x, np.eye(k, dtype=np.int8), np.float32([1.0]), np.zeros(k, np.float32), reduce_range=reduce_range
    )
    s, z = _pytorch_qparams(float(x.min()), float(x.max()), reduce_range=params_reduce_range)
    steps = y.astype(np.float64) / s
    assert np.log2(s) == int(np.log2(s)) and np.array_equal(steps, np.rint(steps)), (
        "codes are read exactly only with a power-of-two scale"
    )
    return (steps + z).astype(np.int64)


def _tie_input(rng: np.random.Generator, shape: tuple[int, int], scale: float, low: float, qmax: int) -> np.ndarray:
    """A dynamic input whose range is ``[-low, qmax - low] * scale``, so that torch chooses exactly ``scale``
    (a power of two), every other element on a half step. A half-integer ``low`` makes the zero point a
    rounded tie too, and then the top of the range lands on ``qmax + 0.5``."""
    x = _half_steps(rng, -int(np.ceil(low)), qmax - int(np.ceil(low)), shape, scale)
    x.flat[0], x.flat[-1] = -low * scale, (qmax - low) * scale
    return x


@SETTINGS
@given(
    m=st.integers(1, 9),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(),
    spread=st.sampled_from([1e-4, 1.0, 30.0]),
    sign=st.sampled_from([-1, 0, 1]),
    ties=st.booleans(),
    flavour=st.sampled_from(sorted(DYNAMIC_ENGINES)),
)
@example(m=7, k=33, n=5, seed=0, per_channel=False, spread=1.0, sign=0, ties=False, flavour="pytorch")
@example(m=7, k=33, n=5, seed=0, per_channel=True, spread=1.0, sign=0, ties=True, flavour="pytorch_qnnpack")
def test_dynamic_linear(m, k, n, seed, per_channel, spread, sign, ties, flavour):
    """torch.ao.nn.quantized.dynamic.Linear == layer API: flavour pytorch on fbgemm (reduce_range, FMA
    output), pytorch_qnnpack on qnnpack (full range, unfused output); random, tiny, one-signed and
    tie-forcing inputs (power-of-two scale, half steps)."""
    rng = np.random.default_rng(seed)
    if ties:
        x = _tie_input(
            rng,
            (m, k),
            2.0 ** int(rng.integers(-4, 3)),
            int(rng.integers(0, 128)),
            127 if flavour == "pytorch" else 255,
        )
    else:
        x = (rng.normal(size=(m, k)) * spread).astype(np.float32)
        x = np.abs(x) * sign if sign else x
    w = (rng.normal(size=(n, k)) * 0.1).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    res = run_layer(
        "linear",
        x,
        w,
        bias,
        quantization=Quantization(
            scheme="dynamic", flavour=flavour, weight_granularity="per_channel" if per_channel else "per_tensor"
        ),
    )
    wq = res.tensors["weight_q"]
    np.testing.assert_array_equal(
        res.output, _torch_dynamic_linear(DYNAMIC_ENGINES[flavour], x, wq.values, wq.qparams.scale, bias)
    )


PYTORCH_FULL_RANGE = dataclasses.replace(get_flavour("pytorch"), name="pytorch_full_range", reduce_range=False)


@pytest.mark.parametrize(
    ("flavour", "engine", "reduce_range"),
    [
        (get_flavour("pytorch"), "fbgemm", None),
        (get_flavour("pytorch"), "x86", None),
        (PYTORCH_FULL_RANGE, "fbgemm", False),  # quantized::linear_dynamic(..., reduce_range=False)
        (get_flavour("pytorch_qnnpack"), "qnnpack", None),
    ],
)
def test_dynamic_quantization_ties_and_saturation(flavour: DynamicFlavour, engine: str, reduce_range: bool | None):
    """Every code torch's dynamic Linear computes on exact ties, against the flavour's: scales 2**-5..2**2,
    zero points odd and even (ties of ``x / s + z`` and of ``x / s`` fall apart), and zero points that are
    themselves rounded ties, which put the range's top on ``qmax + 0.5``: with reduce_range that rounds
    to code 128, above the reduced range (fbgemm clamps to the uint8 range only), without it to 256,
    which saturates at 255. The rule the flavour had before (``rint(x / s) + z``) misses a third of them."""
    rng = np.random.default_rng(29)
    qmax = 127 if flavour.reduce_range else 255
    compared = ties = old_misses = over = 0
    for case in range(36):
        low = 2 * int(rng.integers(0, qmax // 2)) + (
            1.5 if case % 4 == 3 else float(rng.integers(0, 2))
        )  # odd + 0.5: zp rounds up
        x = _tie_input(rng, (4, 37), 2.0 ** (case % 8 - 5), low, qmax)
        want = _torch_dynamic_codes(engine, x, flavour.reduce_range, reduce_range=reduce_range)
        got, qp = dynamic_quantize(x, flavour)
        np.testing.assert_array_equal(got, want)
        assert float(qp.scale[0]) == 2.0 ** (case % 8 - 5)
        old_rule = quantize_tensor(x, qp, RULES["torch_fake_quant"])[0]
        compared += x.size
        ties += _count_ties(x / qp.scale[0])
        old_misses += np.count_nonzero(old_rule != want)
        over += np.count_nonzero(want > qmax) if flavour.reduce_range else quantize_tensor(x, qp, flavour.rule)[1]
    assert ties > compared * 0.9 and old_misses > compared // 3 and over >= 9


@pytest.mark.parametrize("flavour", sorted(DYNAMIC_ENGINES))
def test_dynamic_output_rounding_per_engine(flavour):
    """fbgemm rounds ``float(acc) * (s_x * s_w) + bias`` once (FMA), qnnpack's q8gemm dq kernels twice:
    the layer output equals torch's, and the other engine's rounding differs on some outputs."""
    rng = np.random.default_rng(31)
    x = rng.normal(size=(16, 96)).astype(np.float32)
    w = (rng.normal(size=(40, 96)) * 0.1).astype(np.float32)
    bias = rng.normal(size=40).astype(np.float32)
    res = run_layer("linear", x, w, bias, quantization=Quantization(scheme="dynamic", flavour=flavour))
    wq, xq = res.tensors["weight_q"], res.tensors["input_q"]
    want = _torch_dynamic_linear(DYNAMIC_ENGINES[flavour], x, wq.values, wq.qparams.scale, bias)
    np.testing.assert_array_equal(res.output, want)
    fused = get_flavour(flavour).fused_output
    other = scale_accumulator(
        res.tensors["acc"].values, xq.qparams.scale[0], wq.qparams.scale, bias, axis=1, fused=not fused
    )
    assert np.count_nonzero(other != want) > want.size // 20


@pytest.mark.parametrize("reduce_range", [True, False])
def test_choose_qparams_matches_torch_observer_rule(reduce_range):
    """pytorch_qparams == torch's own _choose_qparams_per_tensor (ChooseQuantizationParams) on awkward
    ranges (tiny, one-sided, empty) and on ranges whose zero point ``-min / s`` is an exact tie, which
    nearbyint rounds to even (half away from zero would give the other integer on every one)."""
    qmax = 127 if reduce_range else 255
    ranges = [(-1.0, 3.0), (0.0, 1e-7), (-2e-6, 0.0), (-1e-6, 3e-6), (0.5, 2.0), (-3.0, -1.0), (0.0, 0.0)]
    ties = [(-(a + 0.5) * 2.0**e, (qmax - a - 0.5) * 2.0**e) for a in range(0, qmax - 1, 9) for e in (-3, 1)]
    away = 0
    for lo, hi in ranges + ties:
        x = torch.tensor([lo, hi], dtype=torch.float32)
        scale, zp = torch._choose_qparams_per_tensor(x, reduce_range)
        assert _pytorch_qparams(lo, hi, reduce_range=reduce_range) == (float(np.float32(scale)), zp)
        if (lo, hi) in ties:
            tie = -lo / float(np.float32(scale))
            assert tie - np.floor(tie) == 0.5
            away += zp != np.floor(tie + 0.5)
    assert away >= len(ties) // 3


def _check_static_layer_against_torch_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, **qparams: QParams) -> dict:
    """run_layer(static, fbgemm) conv (stride 2, padding 1, 2 groups) == torch quantized Conv2d fed the
    layer's own parameters, input codes included; returns the layer's tensors."""
    res = run_layer(
        "conv2d",
        x,
        w,
        b,
        quantization=Quantization(scheme="static", requant_mode="fbgemm"),
        geometry=ConvGeometry.from_args(stride=2, padding=1, groups=2),
        prepared=Prepared(**qparams),
    )
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    conv = torch.ao.nn.quantized.Conv2d(x.shape[1], w.shape[0], w.shape[2:], stride=2, padding=1, groups=2)
    conv.set_weight_bias(_torch_weight(wq.values, wq.qparams.scale), torch.from_numpy(b))
    conv.scale, conv.zero_point = float(oq.scale[0]), int(oq.zero_point[0])
    xt = torch.quantize_per_tensor(torch.from_numpy(x), float(iq.scale[0]), int(iq.zero_point[0]), torch.quint8)
    np.testing.assert_array_equal(xt.int_repr().numpy(), t["input_q"].values)
    np.testing.assert_array_equal(conv(xt).int_repr().numpy(), t["output_q"].values)
    return t


def test_static_layer_matches_torch_conv():
    """run_layer(static, fbgemm) conv with calibrated parameters == torch quantized Conv2d."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 9, 7)).astype(np.float32)
    w = (rng.normal(size=(6, 2, 3, 3)) * 0.3).astype(np.float32)
    _check_static_layer_against_torch_conv(x, w, rng.normal(size=6).astype(np.float32))


def test_static_layer_ties_and_saturation_match_torch_conv():
    """The same with every rounding a tie: input codes ``x / 2**-3 + 77`` on half steps, weight scales
    exactly 2**-5 (each channel's largest code is 127), requant multiplier ``2**-3 * 2**-5 / 2**-7 = 0.5``
    and an integer bias term, so half the outputs are ties; a few inputs far outside the range saturate
    the input and the outputs. Adding the zero point after rounding the input would change the codes."""
    rng = np.random.default_rng(5)
    x = _half_steps(rng, -3, 2, (2, 4, 9, 7), 0.125)
    x.flat[rng.choice(x.size, 12, replace=False)] = np.float32([-100.0, 100.0] * 6)
    codes = rng.integers(-3, 4, (6, 2, 3, 3))
    codes[:, 0, 1, 1] = 127
    b = (rng.integers(-60, 60, 6) * 2.0**-8).astype(np.float32)
    in_qp, out_qp = QParams(np.float32(0.125), 77, "uint8"), QParams(np.float32(2.0**-7), 127, "uint8")
    t = _check_static_layer_against_torch_conv(
        x, (codes * 2.0**-5).astype(np.float32), b, input_qparams=in_qp, output_qparams=out_qp
    )
    assert np.all(t["weight_q"].qparams.scale == np.float32(2.0**-5))
    inputs_fake_rule = quantize_tensor(x, in_qp, RULES["torch_fake_quant"])[0]
    assert np.count_nonzero(inputs_fake_rule != t["input_q"].values) > x.size // 4
    out = t["output_q"].values
    assert np.count_nonzero(t["input_q"].values == 0) and np.count_nonzero(t["input_q"].values == 255)
    assert np.count_nonzero(out == 0) and np.count_nonzero(out == 255)
    v = (
        t["acc"].values.astype(np.float64) + b.reshape(1, -1, 1, 1) * 2.0**8
    ) * 0.5  # acc + bias / (s_x s_w), times 0.5
    away = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + 127, 0, 255)
    assert _count_ties(v) > v.size // 4 and np.count_nonzero(away != out) > v.size // 10


@pytest.mark.parametrize("averaging_constant", [0.01, 0.5, 1 / 3])
def test_moving_average_observer_matches_torch(averaging_constant):
    """MovingAverageMinMaxObserver == torch.ao.quantization.MovingAverageMinMaxObserver: the running min and
    max after every batch bit for bit (float32 arithmetic; the same update in double misses some), and
    the parameters of the pytorch rule equal torch's calculate_qparams for quint8 / qint8, affine /
    symmetric. Batches vary in spread and offset, one is an outlier."""
    rng = np.random.default_rng(37)
    ours, theirs = (
        MovingAverageMinMaxObserver(averaging_constant),
        torch.ao.quantization.MovingAverageMinMaxObserver(averaging_constant),
    )
    lo64 = hi64 = None
    double_misses = 0
    for i in range(40):
        x = (rng.normal(size=257) * rng.uniform(0.1, 5) + rng.normal() + (40.0 if i == 20 else 0.0)).astype(np.float32)
        ours.observe(x)
        theirs(torch.from_numpy(x))
        assert ours.range() == (theirs.min_val.item(), theirs.max_val.item())
        c = averaging_constant
        cur_lo, cur_hi = float(x.min()), float(x.max())
        lo64, hi64 = (cur_lo, cur_hi) if lo64 is None else (lo64 + c * (cur_lo - lo64), hi64 + c * (cur_hi - hi64))
        double_misses += (np.float32(lo64) != ours.range()[0]) + (np.float32(hi64) != ours.range()[1])
    assert double_misses > 0
    for dtype, torch_dtype in (("uint8", torch.quint8), ("int8", torch.qint8)):
        for symmetric, qscheme in ((False, torch.per_tensor_affine), (True, torch.per_tensor_symmetric)):
            obs = torch.ao.quantization.MovingAverageMinMaxObserver(
                averaging_constant, dtype=torch_dtype, qscheme=qscheme
            )
            obs.min_val.copy_(theirs.min_val)
            obs.max_val.copy_(theirs.max_val)
            scale, zp = obs.calculate_qparams()
            qp = ours.qparams(dtype=dtype, symmetric=symmetric, rule="pytorch")
            assert (qp.scale[0], qp.zero_point[0]) == (np.float32(scale.item()), zp.item()), (dtype, symmetric)


@pytest.mark.parametrize(("dtype", "torch_dtype"), [("uint8", torch.quint8), ("int8", torch.qint8)])
def test_observer_pytorch_rule_on_zero_point_ties(dtype, torch_dtype):
    """The pytorch rule's zero point ``qmin - round(min / scale)`` on ranges where ``min / scale`` is an exact
    tie (torch.round: half to even; half away would differ on half of them), and on an empty range
    (scale floored at float32 eps); first batches, which both observers take as is."""
    rounded_away = 0
    for a in range(1, 250, 7):
        lo, hi = -(a + 0.5) * 2.0**-4, (254.5 - a) * 2.0**-4  # scale (hi - lo) / 255 = 2**-4
        ours, theirs = (
            MovingAverageMinMaxObserver(),
            torch.ao.quantization.MovingAverageMinMaxObserver(dtype=torch_dtype),
        )
        ours.observe(np.float32([lo, hi]))
        theirs(torch.tensor([lo, hi]))
        scale, zp = theirs.calculate_qparams()
        qp = ours.qparams(dtype=dtype, rule="pytorch")
        assert (qp.scale[0], qp.zero_point[0]) == (np.float32(scale.item()), zp.item()) and qp.scale[0] == 2.0**-4
        rounded_away += zp.item() != qp.qmin + a + 1
    assert rounded_away >= 10
    ours, theirs = MovingAverageMinMaxObserver(), torch.ao.quantization.MovingAverageMinMaxObserver(dtype=torch_dtype)
    ours.observe(np.zeros(4, np.float32))
    theirs(torch.zeros(4))
    scale, zp = theirs.calculate_qparams()
    qp = ours.qparams(dtype=dtype, rule="pytorch")
    assert (qp.scale[0], qp.zero_point[0]) == (np.float32(scale.item()), zp.item())
