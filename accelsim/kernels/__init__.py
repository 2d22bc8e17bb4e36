"""Numba ``@njit(cache=True)`` kernels that produce the accelerator's exact bits.

Public API::

    int_gemm(a, b, a_zero_point=, bias=, acc_bits=, overflow=, method=) -> AccumulatorResult
    int_conv2d(x, w, ConvGeometry, x_zero_point=, bias=, ...) -> AccumulatorResult; float_conv2d; im2col
    requant_fixed_point(...), requant_float(...)      # the requant unit's arithmetic
    quantize(...), dequantize(...), scale_accumulator(...), row_minmax(x), tensor_minmax(x)

``accelsim.kernels.reference`` holds the slow numpy twins; tests only.
"""

from accelsim.kernels.conv import ConvGeometry, float_conv2d, im2col, int_conv2d
from accelsim.kernels.gemm import AccumulatorResult, accumulator_range, exact_product, int_gemm
from accelsim.kernels.quantize import dequantize, quantize, row_minmax, scale_accumulator, tensor_minmax
from accelsim.kernels.requant import requant_fixed_point, requant_float

__all__ = [
    "AccumulatorResult",
    "ConvGeometry",
    "accumulator_range",
    "dequantize",
    "exact_product",
    "float_conv2d",
    "im2col",
    "int_conv2d",
    "int_gemm",
    "quantize",
    "requant_fixed_point",
    "requant_float",
    "row_minmax",
    "scale_accumulator",
    "tensor_minmax",
]
