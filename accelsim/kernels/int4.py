"""Kernels of int4 group-wise weights (ONNX Runtime's ``MatMulNBits``, GPTQ / AWQ checkpoints).

A weight ``[K, N]`` is cut along K into blocks (groups) of ``block`` elements; each block of each
output column has its own float32 scale and 4-bit zero point. The arithmetic follows MLAS
(``MlasQuantizeBlockwise`` for the weights, ``QuantizeARow_CompInt8`` and the int8-compute GEMM for
``accuracy_level`` 4): float32 throughout, one rounding per step, each kernel one loop nest; the integer
block dot products are exact float32 BLAS sums.
Rounding is a switch (``half_away``) because the weight quantizer uses ``roundf`` (ties away from
zero) and the activation quantizer the CPU's ``cvtps2dq`` (ties to even); a test swaps each.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.kernels import threads
from accelsim.kernels.quantize import _round


@njit(cache=True, nogil=True)
def quantize_weight_blocks(wt, block, symmetric, half_away):
    """(codes uint8 ``[N, blocks * block]``, scales float32 ``[N, blocks]``, zero points uint8 ``[N, blocks]``)
    of a float32 weight ``[K, N]`` given transposed, ``wt [N, K]`` (each block contiguous; codes past K, up
    to whole blocks, are 0 as ORT stores them), as MLAS quantizes 4-bit blocks.

    Asymmetric: the range is widened to include 0, ``scale = (max - min) / 15``, ``zp = roundf(-min / scale)``
    clamped to 0..15. Symmetric: ``scale = m / -8`` with ``m`` the block's element of largest magnitude (a
    negative scale when ``m > 0``; when ``|min| = |max|``, the minimum), zero point 8. Codes ``clamp(round(v * (1 / scale) + zp), 0, 15)``."""
    n, k = wt.shape
    blocks = (k + block - 1) // block
    codes = np.zeros((n, blocks * block), np.uint8)
    scales = np.zeros((n, blocks), np.float32)
    zps = np.zeros((n, blocks), np.uint8)
    fifteen = np.float32(15.0)
    for c in range(n):
        for b in range(blocks):
            lo = np.float32(0.0)
            hi = np.float32(0.0)
            for i in range(b * block, min(k, (b + 1) * block)):
                lo = min(lo, wt[c, i])
                hi = max(hi, wt[c, i])
            if symmetric:
                m = lo if abs(lo) >= abs(hi) else hi  # a tie takes the minimum (measured)
                scale = np.float32(m / np.float32(-8.0))
                zp = np.float32(8.0)
            else:
                scale = np.float32((hi - lo) / fifteen)
                zf = np.float32(-lo / scale) if scale != 0 else lo
                zp = np.float32(min(max(_round(np.float64(zf), half_away), 0.0), 15.0))
            inv = np.float32(np.float32(1.0) / scale) if scale != 0 else np.float32(0.0)
            scales[c, b] = scale
            zps[c, b] = np.uint8(zp)
            for i in range(b * block, min(k, (b + 1) * block)):
                v = np.float32(np.float32(wt[c, i] * inv) + zp)
                codes[c, i] = np.uint8(min(max(_round(np.float64(v), half_away), 0.0), 15.0))
    return codes, scales, zps


@njit(cache=True, nogil=True)
def quantize_activation_blocks(a, block, half_away):
    """(codes int8 ``[M, blocks * block]``, scales float32 ``[M, blocks]``) of float32 ``a [M, K]``: each
    block of each row symmetric int8 with ``scale = max|a| / 127``, codes ``round(a * (127 / max|a|))``
    (MLAS ``QuantizeARow_CompInt8``; an all-zero block has scale 0 and codes 0)."""
    m, k = a.shape
    blocks = (k + block - 1) // block
    codes = np.zeros((m, blocks * block), np.int8)
    scales = np.zeros((m, blocks), np.float32)
    for r in range(m):
        for b in range(blocks):
            amax = np.float32(0.0)
            for i in range(b * block, min(k, (b + 1) * block)):
                amax = max(amax, abs(a[r, i]))
            scales[r, b] = np.float32(amax / np.float32(127.0))
            inv = np.float32(np.float32(127.0) / amax) if amax != 0 else np.float32(0.0)
            for i in range(b * block, min(k, (b + 1) * block)):
                codes[r, i] = np.int8(_round(np.float64(np.float32(a[r, i] * inv)), half_away))
    return codes, scales


def code_blocks(w_codes: np.ndarray, block: int) -> np.ndarray:
    """float32 ``[blocks, block, N]``: the unsigned codes ``[N, blocks * block]`` as :func:`block_dots` takes
    them (prepared once per weight, as the array's weight buffer holds them)."""
    n = w_codes.shape[0]
    return np.ascontiguousarray(w_codes.reshape(n, -1, block).transpose(1, 2, 0), dtype=np.float32)


def block_dots(a_codes: np.ndarray, w_blocks: np.ndarray) -> np.ndarray:
    """int32 ``[M, N, blocks]``: ``sum_k a[m, k] * w[n, k]`` of each block (``w_blocks`` from
    :func:`code_blocks`), the int8 x uint4 dot products the array computes before each block's partial sum
    is rescaled (unsigned codes: the zero point is separate). One batched float32 BLAS GEMM over the blocks,
    exact: every partial sum is an integer of magnitude at most ``128 * 15 * block`` (245,760 for 128),
    below 2**24, so no float32 addition rounds, in any order."""
    blocks, block, n = w_blocks.shape
    m = a_codes.shape[0]
    if 128 * 15 * block >= 1 << 24:
        raise ValueError(f"block {block} is too long for exact float32 block sums")
    a = a_codes.reshape(m, blocks, block).transpose(1, 0, 2).astype(np.float32)
    sums = threads.call(np.matmul, a, w_blocks, macs=m * blocks * block * n)  # [blocks, M, N]
    return np.ascontiguousarray(sums.transpose(1, 2, 0), dtype=np.int32)  # one copy: reordered and converted


@njit(cache=True, nogil=True)
def rescale_blocks(dots, a_codes, a_scales, w_scales, w_zps, block):
    """float32 ``[M, N]``: each block's int32 partial sum rescaled by ``a_scale * w_scale`` and accumulated
    in float32, plus the zero-point term ``(a_scale * sum_k a_codes) * (-w_scale * zp)`` per block, as MLAS
    adds it (from A's block sums). One rescale (a multiply and an add) per block per output: the work the
    W4A8 rescale unit does."""
    m, n, blocks = dots.shape
    out = np.zeros((m, n), np.float32)
    a_sums = np.zeros((m, blocks), np.float32)
    for r in range(m):
        for b in range(blocks):
            s = np.int32(0)
            for i in range(b * block, (b + 1) * block):
                s += np.int32(a_codes[r, i])
            a_sums[r, b] = np.float32(a_scales[r, b] * np.float32(s))
    for r in range(m):
        for c in range(n):
            acc = np.float32(0.0)
            for b in range(blocks):
                acc += np.float32(np.float32(a_scales[r, b] * w_scales[c, b]) * np.float32(dots[r, c, b]))
                acc += np.float32(a_sums[r, b] * np.float32(-w_scales[c, b] * np.float32(w_zps[c, b])))
            out[r, c] = acc
    return out


@njit(cache=True, nogil=True)
def dequantize_blocks(codes, scales, zps, k):
    """float32 ``[N, K]`` (the weight transposed): ``(code - zp) * scale`` of every weight (the float paths,
    ``accuracy_level`` 0-3)."""
    n, kp = codes.shape
    block = kp // scales.shape[1]
    out = np.zeros((n, k), np.float32)
    for c in range(n):
        for i in range(k):
            b = i // block
            out[c, i] = np.float32(np.float32(np.int32(codes[c, i]) - np.int32(zps[c, b])) * scales[c, b])
    return out
