"""How SCALE-Sim 3.0 turns a conv topology row into the GEMM it times.

Needed to reproduce its cycle counts for rows as users write them. Its conventions:

* no padding field: the row's IFMAP extent is the (already padded) input;
* output extent per side is ``ceil((H - R) / stride) + 1``, not the usual ``floor``: when the stride
  does not divide ``H - R``, SCALE-Sim adds an output row (and column) whose window runs off the
  input (those operand addresses are marked invalid, but the fold still streams them). Feeding the
  extent a padded conv actually reads, ``(Ho - 1) * stride + R``, makes the two agree;
* K = R * S * C (the whole window), N = number of filters, batch 1;
* a row whose name contains ``DP`` is split into C layers of one channel each (not modelled here).
"""

from __future__ import annotations


def scalesim_conv_gemm(
    ifmap_h: int, ifmap_w: int, filter_h: int, filter_w: int, channels: int, filters: int, stride: int
) -> tuple[int, int, int]:
    """``(M, K, N)`` that SCALE-Sim simulates for one conv topology row."""
    if filter_h > ifmap_h or filter_w > ifmap_w or min(filter_h, filter_w, channels, filters, stride) < 1:
        raise ValueError(
            f"invalid conv row: ifmap {ifmap_h}x{ifmap_w}, filter {filter_h}x{filter_w}, "
            f"{channels} channels, {filters} filters, stride {stride}"
        )
    out_h = -(-(ifmap_h - filter_h) // stride) + 1  # ceil division, in integers
    out_w = -(-(ifmap_w - filter_w) // stride) + 1
    return out_h * out_w, filter_h * filter_w * channels, filters
