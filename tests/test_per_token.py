"""W8A8 dynamic with per-token activation scales (issue 18): the ``pytorch_per_token`` flavours against
PyTorch's decomposed per-token ops (``torch/ao/quantization/fx/_decomposed.py``), with forced rounding ties and
saturation, on hypothesis rows and on NaN/Inf, and their timing (per-row range, rescale and parameter bytes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.config.loader import load_hardware, load_workload
from accelsim.dynamic_flavours import get_flavour
from accelsim.lowering.program import ROW_PARAMETER_BYTES, lower, lowering_options
from accelsim.quant import Quantization, run_layer
from accelsim.quant.dynamic import dynamic_qparams, dynamic_quantize

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


WIDTH = 24
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)  # subnormals and +-3.4e38 included


def _single(at_value: tuple[int, float]) -> list[float]:
    """A row of zeros but one value."""
    row = [0.0] * WIDTH
    row[at_value[0]] = at_value[1]
    return row


def _scaled(magnitude_seed: tuple[float, int]) -> list[float]:
    """Normal values times ``magnitude``: ranges of 1e-30 (below the eps floor) up to 3e38 (whose
    ``max - min`` overflows float32 to an infinite scale)."""
    magnitude, seed = magnitude_seed
    top = np.finfo(np.float32).max
    row = np.random.default_rng(seed).standard_normal(WIDTH) * magnitude
    return np.clip(row, -top, top).astype(np.float32).tolist()


def _power_of_two(low_exp_seed: tuple[int, int, int]) -> list[float]:
    """Range ``[-(low + 0.5), 254.5 - low] * 2**e``: the asymmetric scale exactly ``2**e``, the zero point a tie
    (half to even decides it), the other values on half steps (ties in every code)."""
    low, e, seed = low_exp_seed
    lo, hi = -(low + 0.5), 254.5 - low
    ties = np.random.default_rng(seed).integers(np.ceil(lo), np.floor(hi), WIDTH - 2) + 0.5
    return (np.concatenate([[lo, hi], ties]) * 2.0**e).astype(np.float32).tolist()


ROWS = st.one_of(
    st.lists(FLOAT32, min_size=WIDTH, max_size=WIDTH),
    st.just([0.0] * WIDTH),
    FLOAT32.map(lambda v: [v] * WIDTH),  # constant
    st.tuples(st.integers(0, WIDTH - 1), FLOAT32).map(_single),
    st.tuples(st.sampled_from([1e-30, 1e-7, 1.0, 80.0, 1e30, 3e38]), st.integers(0, 2**32 - 1)).map(_scaled),
    st.tuples(st.integers(0, 254), st.integers(-40, 40), st.integers(0, 2**32 - 1)).map(_power_of_two),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(ROWS, min_size=1, max_size=12))
def test_per_token_parameters_match_torch_on_hypothesis_rows(rows):
    """The rules, over all rows at once, give torch's scales, zero points (and codes) on rows of every kind: any finite
    float32s, all-zero, constant, a single nonzero, 1e-30..3e38 magnitudes (3e38's range overflows to an infinite
    scale in both) and power-of-two ranges whose scale is exact and whose zero point is a tie."""
    x = np.array(rows, np.float32)
    for flavour in OPS:
        _assert_equal_to_torch(x, flavour)


def test_per_token_non_finite_rows_pinned():
    """NaN/Inf inputs are not modelled (docs/numerics.md), but what happens is pinned. The range pass skips NaN,
    so a row's parameters are those of its other values (torch returns a NaN scale); an all-NaN row's range is
    empty (+inf..-inf): a zero range for the asymmetric rule, an infinite scale for the symmetric one. -inf rows,
    and any infinite row of the symmetric rule, get torch's infinite scale and zero point. The asymmetric rule
    divides a +inf maximum by its infinite scale: torch casts the NaN zero point to an integer, accelsim refuses
    the row."""
    nan, inf = np.float32(np.nan), np.float32(np.inf)
    with_nan = np.array([[-1.5, nan, 3.0, 2.0], [nan] * 4], np.float32)
    empty_ranges = {"pytorch_per_token": [0.0] * 4, "pytorch_per_token_symmetric": [inf, 0.0, 0.0, 0.0]}
    for flavour, empty in empty_ranges.items():
        got = dynamic_qparams(with_nan, flavour)
        want = dynamic_qparams(np.array([[-1.5, 0.25, 3.0, 2.0], empty], np.float32), flavour)
        np.testing.assert_array_equal(got.scale, want.scale)
        np.testing.assert_array_equal(got.zero_point, want.zero_point)
        assert np.isnan(_torch_per_token(with_nan, flavour)[1]).all()
    infinite = np.array([[-inf, 1.0, 2.0, 0.0], [3.0, -inf, inf, 1.0], [inf, 0.5, -2.0, 1.0]], np.float32)
    sym = dynamic_qparams(infinite, "pytorch_per_token_symmetric")
    _, want_s, want_z = _torch_per_token(infinite, "pytorch_per_token_symmetric")
    np.testing.assert_array_equal(sym.scale, want_s.astype(np.float32))
    np.testing.assert_array_equal(sym.zero_point, want_z.astype(np.int64))
    asym = dynamic_qparams(infinite[:1], "pytorch_per_token")
    _, want_s, want_z = _torch_per_token(infinite[:1], "pytorch_per_token")
    assert asym.scale[0] == want_s[0] == np.inf and asym.zero_point[0] == want_z[0] == 127
    for row in (1, 2):
        assert not -128 <= _torch_per_token(infinite[row : row + 1], "pytorch_per_token")[2][0] <= 127
        with pytest.raises(ValueError, match=r"row 1's range \[.*, inf\] gives no zero point"):
            dynamic_qparams(np.stack([infinite[0], infinite[row]]), "pytorch_per_token")


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
