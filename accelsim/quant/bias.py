"""int32 bias with scale ``s_x * s_w[c]``, so it adds straight into the accumulator."""

from __future__ import annotations

import numpy as np

from accelsim.quant.qparams import DTYPE_RANGES, QParams


def bias_qparams(input_scale: float, weight_scale: np.ndarray | float) -> QParams:
    """Per-channel (or per-tensor) int32 parameters: ``scale[c] = float32(s_x * s_w[c])``, zero point 0."""
    ws = np.asarray(weight_scale, dtype=np.float32).reshape(-1)
    scale = (np.float32(input_scale) * ws).astype(np.float32)
    return QParams(scale, np.zeros(scale.shape, np.int32), "int32", None if scale.size == 1 else 0)


def quantize_bias(
    bias: np.ndarray, input_scale: float, weight_scale: np.ndarray | float
) -> tuple[np.ndarray, QParams, int]:
    """``(bias_q, qparams, saturations)``: ``rint(bias / scale[c])`` in double, saturated to int32.

    Round half to even in double as the ONNX Runtime quantization tool (``np.round``); TFLite's
    converter differs on exact ties only, which a float bias essentially never hits.
    """
    qp = bias_qparams(input_scale, weight_scale)
    b = np.asarray(bias, dtype=np.float32).reshape(-1).astype(np.float64)
    r = np.rint(b / qp.scale.astype(np.float64))
    lo, hi = DTYPE_RANGES["int32"]
    sats = int(((r < lo) | (r > hi)).sum())
    return np.clip(r, lo, hi).astype(np.int32), qp, sats
