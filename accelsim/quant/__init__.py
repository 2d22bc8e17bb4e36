"""Bit-exact quantization: parameters, calibration, requant modes, dynamic flavours, schemes, layers.

Public API::

    QParams, affine_qparams, symmetric_qparams, weight_qparams      # real = scale * (q - zero_point)
    quantize_tensor(x, qp, rule) / dequantize_tensor(q, qp); RULES  # per-framework float->int rules
    quantize_multiplier(real) -> (M0, shift)                        # TFLite QuantizeMultiplier
    quantize_bias(bias, s_x, s_w) -> (int32 bias, qparams, saturations)
    MinMaxObserver, MovingAverageMinMaxObserver, PercentileObserver # static calibration
    REQUANT_MODES, make_requant_params, requantize                  # the requant unit
    DYNAMIC_FLAVOURS, dynamic_quantize                              # run-time activation quantization
    SCHEMES, get_scheme                                             # fp32 / woq / dynamic / static as data
    run_layer(kind, x, weight, bias, quantization=Quantization(scheme=...), geometry=ConvGeometry(...),
              accumulator=Accumulator(...), prepared=Prepared(...)) -> LayerResult
    quantize_weight(kind, w, weights=) -> QuantizedWeight           # kept codes, packed GEMM operands
    zero_point_correction(result)                                   # -z_w[c] * rowsum(x_q - z_x), for RTL checks
    run_static_codes(kind, xq, in_qp, weight_q, bias, out_qp, ...)   # a static layer on stored codes
    write_golden(result, path)                                      # .npz golden vectors for RTL
"""

from accelsim.dynamic_flavours import DYNAMIC_FLAVOURS
from accelsim.lazy_exports import lazy_exports
from accelsim.quantize_rules import RULES, QuantizeRule
from accelsim.requant_modes import REQUANT_MODES

# The tables (numpy-free leaves beside accelsim.schemes) are imported above; each other public name's module
# is imported on first use, so reading a table never pays for NumPy or the Numba kernels.
_HOME = {
    "quantize_bias": "bias",
    "dynamic_quantize": "dynamic",
    "write_golden": "golden",
    **dict.fromkeys(
        (
            "Accumulator",
            "ConvGeometry",
            "ConvTransposeGeometry",
            "LayerResult",
            "Prepared",
            "QuantizedWeight",
            "TensorRecord",
            "input_row_sums",
            "quantize_weight",
            "run_layer",
            "run_static_codes",
            "zero_point_correction",
        ),
        "layer",
    ),
    "Quantization": "options",
    "quantize_multiplier": "multiplier",
    "quantize_multipliers": "multiplier",
    **dict.fromkeys(("OBSERVERS", "MinMaxObserver", "MovingAverageMinMaxObserver", "PercentileObserver"), "observers"),
    **dict.fromkeys(("QParams", "affine_qparams", "dtype_range", "symmetric_qparams", "weight_qparams"), "qparams"),
    **dict.fromkeys(("RequantParams", "make_requant_params", "requantize"), "requant"),
    **dict.fromkeys(("dequantize_tensor", "quantize_tensor"), "rules"),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)


__all__ = [
    "DYNAMIC_FLAVOURS",
    "OBSERVERS",
    "REQUANT_MODES",
    "RULES",
    "Accumulator",
    "ConvGeometry",
    "ConvTransposeGeometry",
    "LayerResult",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "Prepared",
    "QParams",
    "Quantization",
    "QuantizeRule",
    "QuantizedWeight",
    "RequantParams",
    "TensorRecord",
    "affine_qparams",
    "dequantize_tensor",
    "dtype_range",
    "dynamic_quantize",
    "input_row_sums",
    "make_requant_params",
    "quantize_bias",
    "quantize_multiplier",
    "quantize_multipliers",
    "quantize_tensor",
    "quantize_weight",
    "requantize",
    "run_layer",
    "run_static_codes",
    "symmetric_qparams",
    "weight_qparams",
    "write_golden",
    "zero_point_correction",
]
