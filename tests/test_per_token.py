"""W8A8 dynamic with per-token activation scales (issue 18): the ``pytorch_per_token`` flavours against
PyTorch's decomposed per-token ops (``torch/ao/quantization/fx/_decomposed.py``), with forced rounding ties and
saturation, and their timing (per-row range, rescale and parameter bytes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim.config.loader import load_hardware, load_workload
from accelsim.dynamic_flavours import get_flavour
from accelsim.lowering.program import ROW_PARAMETER_BYTES, lower, lowering_options
from accelsim.quant import Quantization, run_layer
from accelsim.quant.dynamic import dynamic_quantize

torch = pytest.importorskip("torch")
pytest.importorskip("torch.ao.quantization.fx._decomposed")  # registers torch.ops.quantized_decomposed

OPS = {
    "pytorch_per_token": "choose_qparams_per_token_asymmetric",
    "pytorch_per_token_symmetric": "choose_qparams_per_token",
}


def _torch_per_token(x: np.ndarray, flavour: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, scales, zero points) as PyTorch's decomposed ops compute them."""
    t = torch.from_numpy(x)
    scales, zero_points = getattr(torch.ops.quantized_decomposed, OPS[flavour])(t, torch.int8)
    q = torch.ops.quantized_decomposed.quantize_per_token(t, scales, zero_points, -128, 127, torch.int8)
    return q.numpy(), scales.numpy().reshape(-1), zero_points.numpy().reshape(-1)


def _assert_equal_to_torch(x: np.ndarray, flavour: str) -> np.ndarray:
    q, qp = dynamic_quantize(x, flavour)
    want_q, want_s, want_z = _torch_per_token(x, flavour)
    np.testing.assert_array_equal(qp.scale.astype(np.float64), want_s)
    np.testing.assert_array_equal(qp.zero_point, want_z.astype(np.int64))
    np.testing.assert_array_equal(q, want_q)
    return q


@pytest.mark.parametrize("flavour", list(OPS))
@pytest.mark.parametrize("seed", range(4))
def test_per_token_matches_torch_on_random_rows(flavour, seed):
    """Rows of very different magnitudes, an all-zero row, one-signed rows and rows below the 1e-5 / eps floors."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((48, 77)) * rng.uniform(1e-3, 80.0, (48, 1))).astype(np.float32)
    x[0] = 0
    x[1] = np.abs(x[1])
    x[2] = -np.abs(x[2])
    x[3] *= np.float32(1e-8)
    _assert_equal_to_torch(x, flavour)


def _tie_rows() -> tuple[np.ndarray, int]:
    """Rows whose scale is 1/8 (range 255/8) so that every value on a sixteenth is an exact tie, and whose zero
    point is itself a tie (-26.5 -> -26 half to even) so that the row maximum lands on 127.5 and saturates; also
    the number of rows built to saturate."""
    rows = []
    for low_eighths in (101.5, 80.0, 33.0, 201.5):  # min = -low/8, max = (255 - low)/8
        lo, hi = -low_eighths / 8, (255 - low_eighths) / 8
        ties = (np.arange(np.ceil(lo * 8), np.floor(hi * 8)) + 0.5) / 8
        rows.append(np.concatenate([[lo, hi], ties[:220]]).astype(np.float32))
    width = min(len(r) for r in rows)
    return np.stack([r[:width] for r in rows]), 2  # 101.5 and 201.5: zero points -26.5 and 73.5 round to even


def _symmetric_tie_rows() -> np.ndarray:
    """Rows with ``max|x| = 127/8`` (symmetric scale 1/8) and values on sixteenths: exact ties."""
    ties = (np.arange(-120, 120) + 0.5) / 8
    return np.stack([np.concatenate([[127 / 8], ties]), np.concatenate([[-127 / 8], -ties])]).astype(np.float32)


def test_per_token_ties_and_saturation_bit_exact():
    """Power-of-two scales put every code on an exact half: PyTorch rounds half to even (in float64, with the
    scale's reciprocal in float64) and so does accelsim; rounding half away from zero misses. Rows whose zero
    point is a tie saturate at 127 in both."""
    x, saturating_rows = _tie_rows()
    q, qp = dynamic_quantize(x, "pytorch_per_token")
    np.testing.assert_array_equal(qp.scale, np.float32(1 / 8))
    _assert_equal_to_torch(x, "pytorch_per_token")
    codes = x.astype(np.float64) * 8 + qp.zero_point[:, None]
    ties = np.count_nonzero(codes % 1 == 0.5)
    assert ties >= 600
    # the row maximum sits on 127.5 in the rows whose zero point was a rounded tie: saturated to 127
    assert np.count_nonzero(codes > 127) == saturating_rows
    assert np.count_nonzero(q == 127) >= saturating_rows
    flavour = get_flavour("pytorch_per_token")
    away = dataclasses.replace(flavour, rule=dataclasses.replace(flavour.rule, half_away=True))
    assert np.count_nonzero(dynamic_quantize(x, away)[0] != q) >= ties // 3  # the swapped rounding fails


def test_per_token_symmetric_ties():
    """Symmetric per token: ``max|x| = 127/8`` gives scale 1/8, codes ``8x`` on exact halves; torch rounds half to
    even (its scales are float32 here), half away misses. (Symmetric codes never saturate: max|x| maps to 127.)"""
    x = _symmetric_tie_rows()
    q = _assert_equal_to_torch(x, "pytorch_per_token_symmetric")
    flavour = get_flavour("pytorch_per_token_symmetric")
    away = dataclasses.replace(flavour, rule=dataclasses.replace(flavour.rule, half_away=True))
    assert np.count_nonzero(dynamic_quantize(x, away)[0] != q) >= 200


@pytest.mark.parametrize("flavour", list(OPS))
def test_per_token_linear_equals_torch_dequantized_linear(flavour):
    """The layer: int8 codes per token x int8 weights per channel into int32, ``float32(acc) * (s_x[row] *
    s_w[c]) + bias``, equals PyTorch's ``F.linear(dequantize_per_token(q), dequantized weights) + bias`` bit for
    bit when every step is exact (power-of-two weight scales, tie rows with scale 1/8)."""
    x, _ = _tie_rows()
    x = (x if flavour == "pytorch_per_token" else _symmetric_tie_rows())[:, :64]
    rng = np.random.default_rng(3)
    w_codes = rng.integers(-127, 128, (24, x.shape[1])).astype(np.float32)
    w_codes[:, 0] = 127  # max|w| / 127 = 2**-5 per channel
    w = w_codes * np.float32(2**-5)
    bias = (rng.integers(-64, 64, 24) / 16).astype(np.float32)
    res = run_layer("linear", x, w, bias, quantization=Quantization(scheme="dynamic", flavour=flavour))
    q, s, z = _torch_per_token(x, flavour)
    scales = torch.from_numpy(s.reshape(-1, 1))
    zps = torch.from_numpy(z.reshape(-1, 1))
    deq = torch.ops.quantized_decomposed.dequantize_per_token(
        torch.from_numpy(q), scales, zps, -128, 127, torch.int8, torch.float32
    )
    want = torch.nn.functional.linear(deq, torch.from_numpy(w), torch.from_numpy(bias)).numpy()
    np.testing.assert_array_equal(res.output, want)


def _layer_work(flavour: str, workload: str = "tinyllama_1b_decode"):
    hw = load_hardware("default")
    wl = load_workload(workload)
    program = lower(wl, hw, "dynamic", **lowering_options(flavour, "symmetric"))
    return {layer.name: layer for layer in program.layers}


def test_per_token_timing_range_rescale_and_parameter_bytes():
    """A per-token layer whose K is cut into blocks (down_proj: K 5632 in blocks of 96) reduces each row's range in
    a pass ahead of its tiles; one whose K fits one block (q_proj) reduces it on the fly. Both rescale each output
    by its row's scale (one more vector op per output than per tensor), keep the row parameters in SRAM (8 bytes a
    row, written once and read with each output block) and read the same DRAM bytes as per tensor."""
    per_token = _layer_work("pytorch_per_token")
    per_tensor = _layer_work("onnx")
    down, q = per_token["mlp.down_proj"], per_token["self_attn.q_proj"]
    assert down.plan.kt < down.view.k and any(t.range_pass for t in down.tiles)
    assert q.plan.kt == q.view.k and not any(t.range_pass for t in q.tiles)
    for name in ("mlp.down_proj", "self_attn.q_proj"):
        tok, ten = per_token[name], per_tensor[name]
        assert tok.work.dram_read_bytes == ten.work.dram_read_bytes
        post = sum(t.post_cycles for t in tok.tiles) - sum(t.post_cycles for t in ten.tiles)
        outputs = tok.view.m * tok.view.n
        assert post >= outputs // 16  # one more op per output on 16 lanes
        extra_sram = sum(t.sram_read_bytes_ifmap for t in tok.tiles if not t.range_pass) - sum(
            t.sram_read_bytes_ifmap for t in ten.tiles if not t.range_pass
        )
        n_blocks = -(-tok.view.n // tok.plan.nt)
        assert extra_sram == ROW_PARAMETER_BYTES * tok.view.m * n_blocks


def test_per_token_explain_names_the_row_parameters(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "accelsim", "explain", "mlp", "--layer", "fc1", "--scheme", "dynamic"]
        + ["--flavour", "pytorch_per_token"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "per row: one scale and zero point per token" in out and "s_x[row]" in out
