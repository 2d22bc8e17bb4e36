"""int4 group-wise weights: ONNX Runtime's ``MatMulNBits`` layout, as GPTQ and AWQ checkpoints store them.

Two ways to multiply by them (docs/numerics.md, "int4 group-wise weights"):
- weight-only (``accuracy_level`` 0-3 in ORT): dequantize to float32, float GEMM;
- W4A8 (``accuracy_level`` 4): activations quantized per block to int8, int8 x uint4 dot products per
  block (the integer array), each block's int32 partial sum rescaled by ``a_scale * w_scale`` and summed in
  float32 (the rescale unit). The integer parts are exact; only the float sum's order is MLAS's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from accelsim.kernels import int4
from accelsim.kernels.gemm import float_gemm

#: the group sizes (elements along K per scale) the int4 weight formats offer
GROUP_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class GroupWeights:
    """int4 codes of a weight ``[K, N]`` as unsigned nibbles ``[N, blocks * block]`` (K padded with the zero
    point's code), float32 scales and uint8 zero points ``[N, blocks]``."""

    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    k: int
    block: int

    @property
    def blocks(self) -> int:
        return int(self.scales.shape[1])

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(``B`` uint8 ``[N, blocks, block / 2]``, zero points uint8 ``[N, ceil(blocks / 2)]``) as
        ``MatMulNBits`` stores them: even positions in the low nibble, odd in the high; an odd number of
        blocks pads the zero points with 8."""
        n = self.codes.shape[0]
        zps = (
            self.zero_points if self.blocks % 2 == 0 else np.pad(self.zero_points, ((0, 0), (0, 1)), constant_values=8)
        )
        return pack_nibbles(self.codes).reshape(n, self.blocks, self.block // 2), pack_nibbles(zps)

    @classmethod
    def unpacked(
        cls, b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray | None, k: int, block: int
    ) -> GroupWeights:
        """From ``MatMulNBits``'s inputs (``zero_points`` None: 8, the symmetric default)."""
        n, blocks = scales.shape
        codes = unpack_nibbles(b.reshape(n, -1))
        zps = np.full((n, blocks), 8, np.uint8) if zero_points is None else unpack_nibbles(zero_points)[:, :blocks]
        return cls(codes, np.asarray(scales, np.float32), zps, k, block)

    @cached_property
    def dequantized(self) -> np.ndarray:
        """float32 ``[K, N]`` (a transposed view): ``(code - zp) * scale``; computed once, as the weight-only
        path's float weights."""
        return int4.dequantize_blocks(self.codes, self.scales, self.zero_points, self.k).T

    @cached_property
    def code_blocks(self) -> np.ndarray:
        """The codes as the W4A8 block dot products take them (:func:`accelsim.kernels.int4.code_blocks`), once."""
        return int4.code_blocks(self.codes, self.block)

    @property
    def stored_bytes(self) -> int:
        """Bytes in DRAM: packed codes, float32 scales and (unless symmetric) packed zero points."""
        n = self.codes.shape[0]
        return n * (self.blocks * self.block // 2 + 4 * self.blocks + (self.blocks + 1) // 2 * (not self.symmetric))

    @property
    def symmetric(self) -> bool:
        return bool(np.all(self.zero_points == 8))


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """uint8 ``[..., L / 2]`` of 4-bit codes ``[..., L]`` (L even): code ``2i`` low nibble, ``2i + 1`` high."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_nibbles`."""
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), np.uint8)
    out[..., 0::2] = packed & 0x0F
    out[..., 1::2] = packed >> 4
    return out


def check_group(block: int) -> None:
    if block not in GROUP_SIZES:
        raise ValueError(f"int4 group size {block} is not one of {', '.join(map(str, GROUP_SIZES))}")


def quantize_groups(w: np.ndarray, block: int, *, symmetric: bool, half_away: bool = True) -> GroupWeights:
    """int4 codes of float ``w [K, N]`` in groups of ``block`` along K, as ORT's ``MatMulNBitsQuantizer``
    makes them (``half_away``: ``roundf``; False only to show a test that rounding matters)."""
    check_group(block)
    w = np.asarray(w, np.float32)
    codes, scales, zps = int4.quantize_weight_blocks(np.ascontiguousarray(w.T), block, symmetric, half_away)
    return GroupWeights(codes, scales, zps, w.shape[0], block)


@dataclass(frozen=True)
class W4A8Result:
    """The W4A8 path's steps: activation codes and scales per block, int32 block dot products, output."""

    a_codes: np.ndarray
    a_scales: np.ndarray
    dots: np.ndarray
    output: np.ndarray


def _padded(a: np.ndarray, gw: GroupWeights) -> np.ndarray:
    a = np.ascontiguousarray(a, np.float32).reshape(-1, a.shape[-1])
    if a.shape[1] != gw.k:
        raise ValueError(f"activations have K = {a.shape[1]}, the weights {gw.k}")
    return a


def matmul_w4a8(a: np.ndarray, gw: GroupWeights, *, half_away: bool = False) -> W4A8Result:
    """``a [..., K] @ W`` with int8 activations per block (ORT ``accuracy_level`` 4's arithmetic;
    ``half_away`` True only to show a test that its ties-to-even rounding matters)."""
    x = _padded(a, gw)
    a_codes, a_scales = int4.quantize_activation_blocks(x, gw.block, half_away)
    dots = int4.block_dots(a_codes, gw.code_blocks)
    y = int4.rescale_blocks(dots, a_codes, a_scales, gw.scales, gw.zero_points, gw.block)
    return W4A8Result(a_codes, a_scales, dots, y.reshape(*a.shape[:-1], -1))


def matmul_weight_only(a: np.ndarray, gw: GroupWeights) -> np.ndarray:
    """``a [..., K] @ W`` in float32 on dequantized weights (ORT ``accuracy_level`` 0-3)."""
    x = _padded(a, gw)
    return float_gemm(x, gw.dequantized).reshape(*a.shape[:-1], -1)
