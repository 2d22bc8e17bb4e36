"""Applying a framework's float-to-code rule (:data:`accelsim.quantize_rules.RULES`, the rules as data).

The kernels are imported by the functions that call them, on first use.
"""

from __future__ import annotations

import numpy as np

from accelsim.quant.qparams import QParams
from accelsim.quantize_rules import ONNX, QuantizeRule


def quantize_tensor(
    x: np.ndarray, qp: QParams, rule: QuantizeRule = ONNX, *, inv_scale: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Quantize ``x`` with ``qp`` under ``rule``: (codes in ``qp``'s numpy dtype, clamped count)."""
    from accelsim.kernels.quantize import quantize

    q, sats = quantize(
        x,
        qp.scale,
        qp.zero_point,
        qmin=qp.qmin,
        qmax=qp.qmax,
        axis=qp.axis,
        reciprocal=rule.reciprocal,
        half_away=rule.half_away,
        zero_point_before_rounding=rule.zero_point_before_rounding,
        inv_scale=inv_scale,
        fused=rule.fused,
        wide=rule.wide,
        out_dtype=qp.numpy_dtype,
    )
    return q, sats


def dequantize_tensor(q: np.ndarray, qp: QParams) -> np.ndarray:
    """``float32(q - z) * s`` (all frameworks agree on this one)."""
    from accelsim.kernels.quantize import dequantize

    return dequantize(q, qp.scale, qp.zero_point, axis=qp.axis)


#: float32 clamp of the activations a residual add can fuse
ADD_CLAMPS = {"none": (-np.inf, np.inf), "relu": (0.0, np.inf), "relu6": (0.0, 6.0)}


def add_tensors(
    a: np.ndarray, a_qp: QParams, b: np.ndarray, b_qp: QParams, out_qp: QParams, rule: QuantizeRule, activation: str
) -> tuple[np.ndarray, int]:
    """Per-tensor codes ``a + b`` on the vector unit (dequantize, add, activation, quantize with ``rule``,
    all float32) in one pass: (codes in ``out_qp``'s dtype, clamped count)."""
    from accelsim.kernels.quantize import add_codes

    def pair(qp: QParams) -> tuple[float, int]:
        return float(qp.scale[0]), int(qp.zero_point[0])

    return add_codes(
        a,
        pair(a_qp),
        b,
        pair(b_qp),
        ADD_CLAMPS[activation],
        pair(out_qp),
        qmin=out_qp.qmin,
        qmax=out_qp.qmax,
        reciprocal=rule.reciprocal,
        half_away=rule.half_away,
        zero_point_before_rounding=rule.zero_point_before_rounding,
        fused=rule.fused,
        out_dtype=out_qp.numpy_dtype,
    )
