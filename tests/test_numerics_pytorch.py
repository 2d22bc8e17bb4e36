"""Bit-exactness against PyTorch's quantized CPU operators on the fbgemm engine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from accelsim.kernels import ConvGeometry, int_conv2d, int_gemm  # noqa: E402
from accelsim.quant import RULES, QParams, make_requant_params, quantize_tensor, requantize, run_layer  # noqa: E402
from accelsim.quant.dynamic import pytorch_qparams  # noqa: E402

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
        w_f * torch.from_numpy(scale.astype(np.float32)).reshape(shape), torch.from_numpy(scale.astype(np.float64)),
        torch.zeros(scale.size, dtype=torch.long), 0, torch.qint8,
    )


@SETTINGS
@given(size=st.integers(1, 70), seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.5, 0.25, 0.375, 0.0173, 0.1]), ties=st.booleans(), dtype=st.sampled_from(["uint8", "int8"]))
def test_quantize_per_tensor(size, seed, scale, ties, dtype):
    """torch.quantize_per_tensor == rule fbgemm: rint(fma(x, float(1/s), z)), ties included, across SIMD tails."""
    rng = np.random.default_rng(seed)
    x = ((rng.integers(-400, 400, size) + 0.5) * scale if ties else rng.normal(size=size) * 150 * scale).astype(np.float32)
    zp = int(rng.integers(0, 256)) if dtype == "uint8" else int(rng.integers(-128, 128))
    want = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8 if dtype == "uint8" else torch.qint8).int_repr().numpy()
    got, _ = quantize_tensor(x, QParams(np.float32(scale), zp, dtype), RULES["fbgemm"])
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(
    m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(), relu=st.booleans(), ties=st.booleans(),
)
@example(m=7, k=33, n=5, seed=0, per_channel=True, relu=False, ties=False)
def test_quantized_linear(m, k, n, seed, per_channel, relu, ties):
    """torch.ao.nn.quantized.Linear(ReLU) == int GEMM + fbgemm requant with float bias."""
    rng = np.random.default_rng(seed)
    x_q = rng.integers(0, 256, (m, k)).astype(np.uint8)
    w_q = rng.integers(-128, 128, (n, k)).astype(np.int8)
    sx, zx = (0.5, 128) if ties else (float(rng.uniform(1e-3, 0.05)), int(rng.integers(0, 256)))
    sw = np.full(n if per_channel else 1, 0.25, np.float32) if ties else rng.uniform(1e-3, 2e-2, n if per_channel else 1).astype(np.float32)
    sy, zy = (0.25 if ties else float(rng.uniform(0.01, 0.5))), int(rng.integers(0, 256))
    bias = (rng.integers(-50, 50, n) * 0.0625 if ties else rng.normal(size=n)).astype(np.float32)
    cls = torch.ao.nn.intrinsic.quantized.LinearReLU if relu else torch.ao.nn.quantized.Linear
    lin = cls(k, n)
    lin.set_weight_bias(_torch_weight(w_q, sw), torch.from_numpy(bias))
    lin.scale, lin.zero_point = sy, zy
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x_q), sx, zx)
    want = lin(xt).int_repr().numpy()
    rq = make_requant_params("fbgemm", np.float32(sx), sw, QParams(np.float32(sy), zy, "uint8"), activation="relu" if relu else None, bias=bias)
    got = requantize(int_gemm(x_q, w_q.T, a_zero_point=zx).values, rq, axis=1).codes
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(
    n=st.integers(1, 2), groups=st.sampled_from([1, 2, 4]), opg=st.integers(1, 3), depthwise=st.booleans(),
    hw=st.tuples(st.integers(3, 8), st.integers(3, 8)), kernel=st.sampled_from([(1, 1), (3, 3), (2, 3)]),
    stride=st.sampled_from([(1, 1), (2, 2), (1, 2)]), padding=st.sampled_from([(0, 0), (1, 1), (1, 0)]),
    dilation=st.sampled_from([(1, 1), (2, 1)]), per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1),
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


@SETTINGS
@given(
    m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
    per_channel=st.booleans(), spread=st.sampled_from([1e-4, 1.0, 30.0]), sign=st.sampled_from([-1, 0, 1]),
)
@example(m=7, k=33, n=5, seed=0, per_channel=False, spread=1.0, sign=0)
def test_dynamic_linear(m, k, n, seed, per_channel, spread, sign):
    """torch.ao.nn.quantized.dynamic.Linear == layer API, flavour pytorch (reduce_range, FMA output)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(m, k)) * spread).astype(np.float32)
    x = np.abs(x) * sign if sign else x
    w = (rng.normal(size=(n, k)) * 0.1).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)
    res = run_layer("linear", x, w, bias, scheme="dynamic", flavour="pytorch", weight_granularity="per_channel" if per_channel else "per_tensor")
    wq = res.tensors["weight_q"]
    dl = torch.ao.nn.quantized.dynamic.Linear(k, n)
    dl.set_weight_bias(_torch_weight(wq.values, wq.qparams.scale), torch.from_numpy(bias))
    want = dl(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(res.output, want)


def test_choose_qparams_matches_torch_observer_rule():
    """pytorch_qparams == torch's own _choose_qparams_per_tensor on awkward ranges (tiny, one-sided)."""
    for lo, hi in [(-1.0, 3.0), (0.0, 1e-7), (-2e-6, 0.0), (-1e-6, 3e-6), (0.5, 2.0), (-3.0, -1.0), (0.0, 0.0)]:
        x = torch.tensor([lo, hi], dtype=torch.float32)
        scale, zp = torch._choose_qparams_per_tensor(x, True)
        assert pytorch_qparams(lo, hi, reduce_range=True) == (float(np.float32(scale)), zp)


def test_static_layer_matches_torch_conv():
    """run_layer(static, fbgemm) conv == torch quantized Conv2d fed the layer's own parameters."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 9, 7)).astype(np.float32)
    w = (rng.normal(size=(6, 2, 3, 3)) * 0.3).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    res = run_layer("conv2d", x, w, b, scheme="static", requant_mode="fbgemm", stride=2, padding=1, groups=2)
    t = res.tensors
    iq, oq, wq = t["input_q"].qparams, t["output_q"].qparams, t["weight_q"]
    conv = torch.ao.nn.quantized.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    conv.set_weight_bias(_torch_weight(wq.values, wq.qparams.scale), torch.from_numpy(b))
    conv.scale, conv.zero_point = float(oq.scale[0]), int(oq.zero_point[0])
    xt = torch.quantize_per_tensor(torch.from_numpy(x), float(iq.scale[0]), int(iq.zero_point[0]), torch.quint8)
    np.testing.assert_array_equal(xt.int_repr().numpy(), t["input_q"].values)
    np.testing.assert_array_equal(conv(xt).int_repr().numpy(), t["output_q"].values)
