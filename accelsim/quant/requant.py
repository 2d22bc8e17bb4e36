"""The per-channel parameters each requant mode (:data:`accelsim.requant_modes.REQUANT_MODES`, the modes
as data) derives from the scales, and the requant unit run on accumulators.

See docs/numerics.md for the arithmetic and the tests that prove each mode. The kernels are imported by
the functions that call them, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from accelsim.quant.multiplier import effective_scale, quantize_multipliers
from accelsim.quant.qparams import QParams, dtype_range
from accelsim.requant_modes import get_mode

if TYPE_CHECKING:
    from accelsim.kernels.requant import Requantized

ACTIVATIONS = (None, "relu", "relu6")


@dataclass(frozen=True)
class RequantParams:
    """Everything the requant unit holds for one layer (per output channel where it varies)."""

    mode: str
    output: QParams
    act_min: int
    act_max: int
    sat_min: int  # below / above these the dtype clamped a value the activation would have kept
    sat_max: int
    multiplier: np.ndarray | None = None  # int32 M0 (fixed point)
    shift: np.ndarray | None = None  # int32 shift (fixed point)
    scale: np.ndarray | None = None  # effective scale: float32 (float32 modes) or float64 (tflite_float64)
    bias_term: np.ndarray | None = None  # float32 bias in accumulator units (fbgemm)

    def lanes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(multiplier, shift, lane table, scalars) for :func:`~accelsim.kernels.requant.requant_region`
        (fixed point; float64 with its scales' bits as the int64 multiplier; float32 with its scales' and bias
        terms' bits as multiplier and shift)."""
        from accelsim.kernels.requant import DOUBLE_ROUNDING, FLOAT32, FLOAT64, SINGLE_ROUNDING, lane_plan

        if self.multiplier is not None and self.shift is not None:
            mult, shift = self.multiplier.astype(np.int64), self.shift.astype(np.int64)
            arithmetic = SINGLE_ROUNDING if get_mode(self.mode).single_rounding else DOUBLE_ROUNDING
        elif get_mode(self.mode).arithmetic == "float64" and self.scale is not None:
            mult, shift, arithmetic = (
                self.scale.astype(np.float64).view(np.int64),
                np.zeros(self.scale.size, np.int64),
                FLOAT64,
            )
        elif self.scale is not None:  # per channel both (a per-tensor scale beside per-channel bias terms repeats)
            bias = np.zeros(1, np.float32) if self.bias_term is None else self.bias_term.astype(np.float32).reshape(-1)
            scale, bias = np.broadcast_arrays(self.scale.astype(np.float32).reshape(-1), bias)
            mult = np.ascontiguousarray(scale).view(np.int32).astype(np.int64)
            shift, arithmetic = np.ascontiguousarray(bias).view(np.int32).astype(np.int64), FLOAT32
        else:
            return None
        zp = int(self.output.zero_point[0])
        return (
            mult,
            shift,
            *lane_plan(mult, shift, zp, self.act_min, self.act_max, self.sat_min, self.sat_max, arithmetic),
        )

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for golden vectors."""
        out = {"requant_act_min": np.array(self.act_min, np.int32), "requant_act_max": np.array(self.act_max, np.int32)}
        for name in ("multiplier", "shift", "scale", "bias_term"):
            value = getattr(self, name)
            if value is not None:
                out[f"requant_{name}"] = value
        return out


_UNBOUNDED = 1 << 62


def _activation_bounds(output: QParams, activation: str | None) -> tuple[int, int]:
    """The fused activation's own clamp in output codes, before the dtype range applies."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {ACTIVATIONS}")
    zp = int(output.zero_point[0])
    if activation is None:
        return -_UNBOUNDED, _UNBOUNDED
    if activation == "relu":
        return zp, _UNBOUNDED
    six = np.float64(np.float32(6.0) / output.scale[0])  # TFLite Quantize(6.0): z + round(6 / s)
    return zp, zp + int(np.floor(six + 0.5))


def activation_range(output: QParams, activation: str | None) -> tuple[int, int]:
    """Fused activation as a clamp, TFLite's CalculateActivationRangeQuantized."""
    qmin, qmax = dtype_range(output.dtype)
    lo, hi = _activation_bounds(output, activation)
    return max(qmin, lo), min(qmax, hi)


def saturation_bounds(output: QParams, activation: str | None) -> tuple[int, int]:
    """Outside these, the dtype (not the activation) clamped: that is a saturation."""
    qmin, qmax = dtype_range(output.dtype)
    lo, hi = _activation_bounds(output, activation)
    return (qmin if lo < qmin else -_UNBOUNDED), (qmax if hi > qmax else _UNBOUNDED)


def make_requant_params(
    mode: str,
    input_scale: float,
    weight_scale: np.ndarray | float,
    output: QParams,
    *,
    activation: str | None = None,
    bias: np.ndarray | None = None,
) -> RequantParams:
    """Derive the requant unit's parameters the way the mode's framework does.

    ``bias`` (float32, per output channel) is only used by ``fbgemm``, whose bias stays in float.
    """
    m = get_mode(mode)
    clamps = (*activation_range(output, activation), *saturation_bounds(output, activation))
    ws = np.asarray(weight_scale, dtype=np.float32).reshape(-1)
    if m.arithmetic == "fixed_point":
        mult, shift = quantize_multipliers(
            effective_scale(input_scale, ws, float(output.scale[0])), single_rounding=m.single_rounding
        )
        return RequantParams(mode, output, *clamps, multiplier=mult, shift=shift)
    if m.arithmetic == "float64":  # reference FullyConnected(PerChannel): double(s_x) * s_w[c] / double(s_y)
        return RequantParams(mode, output, *clamps, scale=effective_scale(input_scale, ws, float(output.scale[0])))
    sx, sy = np.float32(input_scale), output.scale[0]
    if m.bias_domain == "int32":  # ORT: output_scales[i] = X_scale * W_scale[i] / Y_scale in float
        return RequantParams(mode, output, *clamps, scale=((sx * ws) / sy).astype(np.float32))
    act_times_w = (sx * ws).astype(np.float32)  # fbgemm: act_times_w_scale, C_multiplier = it / y_scale
    scale = (act_times_w / sy).astype(np.float32)
    b = np.zeros(ws.size, np.float32) if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    if ws.size == 1:  # per tensor: bias * float(1.0 / double(act_times_w))
        bias_term = (b * np.float32(1.0 / np.float64(act_times_w[0]))).astype(np.float32)
    else:  # per channel: bias / act_times_w[c] in float
        bias_term = (b / act_times_w).astype(np.float32)
    return RequantParams(mode, output, *clamps, scale=scale, bias_term=bias_term)


def requantize(acc: np.ndarray, params: RequantParams, *, axis: int) -> Requantized:
    """Run the requant unit on accumulators whose output channels lie along ``axis``."""
    from accelsim.kernels.requant import requant_fixed_point, requant_float, requant_float64

    out_qp = params.output
    zero_point = int(out_qp.zero_point[0])
    clamps = {
        "act_min": params.act_min,
        "act_max": params.act_max,
        "sat_min": params.sat_min,
        "sat_max": params.sat_max,
    }
    per_channel_axis = axis if _channels(params) > 1 else None
    if params.multiplier is not None and params.shift is not None:
        return requant_fixed_point(
            acc,
            params.multiplier,
            params.shift,
            zero_point=zero_point,
            **clamps,
            single_rounding=get_mode(params.mode).single_rounding,
            axis=per_channel_axis,
            out_dtype=out_qp.numpy_dtype,
        )
    if params.scale is None:
        raise ValueError(f"requant parameters of mode {params.mode!r} carry neither M0/shift nor a scale")
    if get_mode(params.mode).arithmetic == "float64":
        return requant_float64(
            acc, params.scale, zero_point=zero_point, **clamps, axis=per_channel_axis, out_dtype=out_qp.numpy_dtype
        )
    bias_axis = axis if params.bias_term is not None and params.bias_term.size > 1 else per_channel_axis
    return requant_float(
        acc,
        params.scale,
        bias_term=0.0 if params.bias_term is None else params.bias_term,
        zero_point=zero_point,
        **clamps,
        axis=bias_axis,
        out_dtype=out_qp.numpy_dtype,
    )


def _channels(params: RequantParams) -> int:
    values = params.multiplier if params.multiplier is not None else params.scale
    return 1 if values is None else int(values.size)
