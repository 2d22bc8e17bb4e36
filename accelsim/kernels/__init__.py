"""Numba ``@njit(cache=True)`` kernels that produce the accelerator's exact bits.

Public API::

    int_gemm(a, b | PackedWeights, a_zero_point=, bias=, acc_bits=, overflow=, method=) -> AccumulatorResult
    int_conv2d(x, w, ConvGeometry, x_zero_point=, bias=, packed=, ...) -> AccumulatorResult; float_conv2d; im2col
    PackedWeights.of(b), pack_conv_weights(w, groups, k_order)  # weights prepared once
    requant_fixed_point(...), requant_float(...)      # the requant unit's arithmetic
    quantize(...), dequantize(...), add_codes(...), scale_accumulator(...), row_minmax(x), tensor_minmax(x)
    max_pool2d(x, kernel, stride, padding, pad_value)

``accelsim.kernels.reference`` holds the slow numpy twins; tests only.
"""

from accelsim.kernels import numba_cache

numba_cache.refresh()  # before any kernel module is compiled or loaded from the cache

from accelsim.kernels.conv import ConvGeometry, float_conv2d, im2col, int_conv2d, pack_conv_weights
from accelsim.kernels.gemm import AccumulatorResult, PackedWeights, accumulator_range, exact_product, int_gemm
from accelsim.kernels.pool import max_pool2d
from accelsim.kernels.quantize import add_codes, dequantize, quantize, row_minmax, scale_accumulator, tensor_minmax
from accelsim.kernels.requant import requant_fixed_point, requant_float

__all__ = [
    "AccumulatorResult",
    "ConvGeometry",
    "PackedWeights",
    "accumulator_range",
    "add_codes",
    "dequantize",
    "exact_product",
    "float_conv2d",
    "im2col",
    "int_conv2d",
    "int_gemm",
    "max_pool2d",
    "pack_conv_weights",
    "quantize",
    "requant_fixed_point",
    "requant_float",
    "row_minmax",
    "scale_accumulator",
    "tensor_minmax",
]
