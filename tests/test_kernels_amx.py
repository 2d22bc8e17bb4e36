"""The AMX tiles (accelsim.kernels.amx) against exact int64 products and the VNNI kernel, bit for bit.

On a host with AMX-INT8 every GEMM with K >= 128 and no weight zero point takes the tiles; these tests pin
their edges (rows not a multiple of 32, columns not a multiple of 32 or 64, K not a multiple of 64), the
start row read with stride 0, int8 A (run as A + 128), the wrap modulo 2**32 and the split over threads.
``ACCELSIM_AMX=0`` turns the tiles off (tests/test_gemm_paths.py reruns the kernel tests so).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from accelsim.kernels import amx, vnni
from accelsim.kernels import threads as gemm_threads
from accelsim.kernels.gemm import PackedWeights, int_gemm

needs_amx = pytest.mark.skipif(not amx.AVAILABLE, reason="needs AMX-INT8 (and Linux's permission for its tiles)")


def _ints(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=np.int64).astype(dtype)


@needs_amx
@pytest.mark.parametrize(("m", "k", "n"), [(1, 128, 1), (31, 130, 33), (33, 200, 64), (70, 517, 130), (196, 2304, 96)])
@pytest.mark.parametrize("a_dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("threads", [1, 2])
def test_tiles_equal_the_exact_product(m: int, k: int, n: int, a_dtype: type, threads: int) -> None:
    """Every edge of the 32 x 32 tiles and of K's 64-byte steps, from a non-zero start row (bias and the
    int8-A correction, wrapping int32): the exact product plus the offset, modulo 2**32."""
    rng = np.random.default_rng(m * k + n)
    a, b = _ints(rng, (m, k), a_dtype), _ints(rng, (k, n), np.int8)
    offset = rng.integers(-(2**40), 2**40, n)
    packed = PackedWeights.of(b)
    assert vnni.row_block(None, vnni.words_per_row(k)) == amx.ROWS  # these shapes take the tiles
    gemm_threads.set_threads(threads)
    try:
        got = vnni.vnni_product(a, b, b_packed=packed.vnni_panels, b_col_sums=packed.col_sums, row_offset=offset)
    finally:
        gemm_threads.set_threads(gemm_threads.CPUS)
    exact = a.astype(np.int64) @ b.astype(np.int64) + offset
    np.testing.assert_array_equal(got, ((exact + 2**31) % 2**32 - 2**31).astype(np.int32))


@needs_amx
def test_tiles_wrap_like_the_vnni_kernel() -> None:
    """K = 70,000 of 255 * 127 leaves int32: the tiles hold the two's complement wrap, as ``vpdpbusd`` does."""
    a = np.full((40, 70000), 255, np.uint8)
    b = np.full((70000, 40), 127, np.int8)
    b[:, 1] = -128
    got = vnni.vnni_product(a, b)
    exact = a[:1].astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(got, np.broadcast_to((exact + 2**31) % 2**32 - 2**31, got.shape))


@needs_amx
def test_small_k_and_weight_zero_points_stay_on_vnni() -> None:
    """Below MIN_K4 words, and with a weight zero point's rank-1 term, the VNNI kernel runs (same bits)."""
    assert vnni.row_block(None, amx.MIN_K4 - 1) == vnni.MR
    assert vnni.row_block(np.zeros(6, np.int32), amx.MIN_K4) == vnni.MR
    rng = np.random.default_rng(7)
    a, b = _ints(rng, (50, 300), np.uint8), _ints(rng, (300, 70), np.int8)
    zb = rng.integers(-128, 128, 70)
    got = int_gemm(a, b, a_zero_point=3, b_zero_point=zb, method="vnni").values
    np.testing.assert_array_equal(got, (a.astype(np.int64) - 3) @ (b.astype(np.int64) - zb))


def test_the_switch_turns_amx_off() -> None:
    probe = "from accelsim.kernels import amx, vnni; print(amx.AVAILABLE, vnni.words_per_row(130))"
    env = {**os.environ, amx.ENV_VAR: "0"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "33"]  # K/4 rounded up, no padding to whole tiles
