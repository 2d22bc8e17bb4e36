"""What the values run reports besides outputs (overflows, saturations, accumulator range), weights from
``.npz``, user errors, and the vector unit's float ops against PyTorch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim.config import load_hardware, load_workload
from accelsim.config.workload import AvgPool, MaxPool
from accelsim.errors import AccelsimError
from accelsim.values.runner import avgpool, gelu, layernorm, maxpool, run_values, softmax
from accelsim.values.tensors import LayerParams, materialize

ARRAY_LAYERS = ("conv1", "conv2", "dw", "pw", "fc")


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_narrow_accumulator_overflows(overflow: str) -> None:
    wl = load_workload("tiny_cnn")
    wide = run_values(wl, load_hardware(None), "static")
    narrow = run_values(
        wl, load_hardware(None, ["array.accumulator.bits=16", f"array.accumulator.overflow={overflow}"]), "static"
    )
    assert all(wide.layers[n].accumulator_overflows == 0 for n in ARRAY_LAYERS)
    # conv2 needs more than 16 bits at 32 bits wide (measured range about +-80k)
    assert max(abs(wide.layers["conv2"].accumulator_min), wide.layers["conv2"].accumulator_max) > 1 << 15
    conv2 = narrow.layers["conv2"]
    assert conv2.accumulator_overflows > 0
    assert -(1 << 15) <= conv2.accumulator_min and conv2.accumulator_max <= (1 << 15) - 1
    assert not np.array_equal(conv2.codes, wide.layers["conv2"].codes)
    dynamic = run_values(wl, load_hardware(None, ["array.accumulator.bits=16"]), "dynamic")
    assert dynamic.layers["conv2"].accumulator_overflows > 0


def test_out_of_range_input_saturates() -> None:
    """Inputs 4x larger than the calibration batch: the input and the requant unit clamp."""
    wl, hw = load_workload("tiny_cnn"), load_hardware(None)
    t = materialize(wl)
    loud = dataclasses.replace(t, inputs={"input": 4 * t.inputs["input"]})
    quiet = run_values(wl, hw, "static", tensors=t)
    values = run_values(wl, hw, "static", tensors=loud)
    assert values.source_saturations["input"] > quiet.source_saturations["input"]
    assert sum(values.layers[n].requant_saturations for n in ARRAY_LAYERS) > sum(
        quiet.layers[n].requant_saturations for n in ARRAY_LAYERS
    )
    assert all(lv.accumulator_min is None for n, lv in values.layers.items() if n not in ARRAY_LAYERS)


def test_weights_from_npz(tmp_path) -> None:
    wl, hw = load_workload("mlp"), load_hardware(None)
    t = materialize(wl)
    w = np.full((10, 128), 0.01, np.float32)
    np.savez(tmp_path / "w.npz", **{"fc3.weight": w, "fc3.bias": np.zeros(10, np.float32)})
    loaded = materialize(wl, weights=tmp_path / "w.npz")
    assert np.array_equal(loaded.params["fc3"].weight, w)
    assert np.array_equal(loaded.params["fc1"].weight, t.params["fc1"].weight)  # absent: drawn as before
    fc2 = run_values(wl, hw, "fp32", tensors=loaded).layers["fc2"].output
    expected = 0.01 * fc2.sum(axis=1, keepdims=True)
    assert np.allclose(run_values(wl, hw, "fp32", tensors=loaded).output, expected, rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "bad.npz", **{"fc3.weight": w.T})
    with pytest.raises(AccelsimError, match="fc3.weight"):
        materialize(wl, weights=tmp_path / "bad.npz")


def test_unknown_scheme_is_a_user_error() -> None:
    wl, hw = load_workload("mlp"), load_hardware(None)
    with pytest.raises(AccelsimError, match="allowed"):
        run_values(wl, hw, "int4")
    with pytest.raises(AccelsimError, match="flavour"):
        run_values(wl, hw, "dynamic", flavour="tensorrt")


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (2, 2, 0), (3, 1, 1)])
def test_vector_ops_match_pytorch(kernel: int, stride: int, padding: int) -> None:
    """Pooling (ResNet's 3x3/2 pad 1 included), softmax, layernorm and GELU against torch on float32."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    geo = {"kernel": kernel, "stride": stride, "padding": padding}
    mp, ap = MaxPool(name="m", type="maxpool", **geo), AvgPool(name="a", type="avgpool", **geo)
    t = torch.from_numpy(x)
    assert np.array_equal(maxpool(x, mp, -np.inf), F.max_pool2d(t, kernel, stride, padding).numpy())
    codes = (x * 20).astype(np.int8)  # on codes, padding with the dtype minimum
    want = F.max_pool2d(torch.from_numpy(codes.astype(np.float32)), kernel, stride, padding).numpy()
    assert np.array_equal(maxpool(codes, mp, -128), want)
    channels_last = np.ascontiguousarray(codes.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # a conv output's layout
    assert np.array_equal(maxpool(channels_last, mp, -128), want)
    assert np.array_equal(
        maxpool(-np.abs(x), mp, 0.0),
        F.max_pool2d(F.pad(torch.from_numpy(-np.abs(x)), [padding] * 4, value=0.0), kernel, stride).numpy(),
    )
    expected = F.avg_pool2d(t, kernel, stride, padding, count_include_pad=False).numpy()
    assert np.allclose(avgpool(x, ap), expected, rtol=1e-6, atol=1e-6)
    seq = x.reshape(2, 27, 9)
    assert np.allclose(softmax(seq), F.softmax(torch.from_numpy(seq), -1).numpy(), rtol=1e-6, atol=1e-7)
    gamma, beta = np.full(9, 1.5, np.float32), np.full(9, 0.25, np.float32)
    ln = F.layer_norm(torch.from_numpy(seq), (9,), torch.from_numpy(gamma), torch.from_numpy(beta), 1e-5).numpy()
    assert np.allclose(layernorm(seq, LayerParams(gamma, beta), 1e-5), ln, rtol=1e-5, atol=1e-5)
    assert np.allclose(gelu(seq), F.gelu(torch.from_numpy(seq)).numpy(), rtol=1e-6, atol=1e-6)  # torch: float32 erf
