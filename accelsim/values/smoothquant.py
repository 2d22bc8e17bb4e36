"""SmoothQuant (Xiao et al., ICML 2023): migrate activation outliers into the weights before W8A8 quantization.

Per input channel ``j`` of the linear layers reading a normalization's output,
``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (``max|X_j|`` over the calibration batch in fp32, ``max|W_j|``
over every output channel of every linear reading that norm; both floored at 1e-5 as the reference code's
``smooth_ln_fcs`` does). ``X / s`` is folded into the norm's scale (and shift), ``W * s`` into the weights, so the
float network computes the same function while the activation's channels are flattened for int8.

Where no norm precedes a linear (attention's ``o_proj`` after the context matmul, the MLP's ``down_proj`` after
the SwiGLU product), nothing is folded: scaling there would need a per-channel multiply of the activation on the
vector unit at run time, which the reference implementation does not do either (it smooths the norm -> q/k/v and
norm -> gate/up pairs of Llama). A norm whose output also feeds anything other than a linear layer (or is a
workload output) is left alone too: that consumer would see ``X / s``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import LayerNorm, Linear, RmsNorm, Workload
from accelsim.errors import AccelsimError
from accelsim.lowering.program import lower
from accelsim.values.runner import channel_absmax
from accelsim.values.tensors import LayerParams, WorkloadTensors

#: the floor of the reference code's ``act_scales``, ``weight_scales`` and ``scales``
FLOOR = 1e-5


@dataclass(frozen=True)
class SmoothingGroup:
    """A normalization and the linear layers that read its output (and nothing else does)."""

    norm: str
    linears: tuple[str, ...]


def smoothing_groups(workload: Workload) -> list[SmoothingGroup]:
    """Every rmsnorm / layernorm whose output only linear layers read, with those linears, in workload order."""
    norms = [s.layer.name for s in workload.shapes if isinstance(s.layer, (RmsNorm, LayerNorm))]
    readers: dict[str, list[str]] = {name: [] for name in norms}
    others: set[str] = set(workload.output_layers) & set(norms)
    for shapes in workload.shapes:
        for position, source in enumerate(shapes.input_names):
            if source in readers:
                if isinstance(shapes.layer, Linear) and position == 0:
                    readers[source].append(shapes.layer.name)
                else:
                    others.add(source)
    return [SmoothingGroup(n, tuple(readers[n])) for n in norms if readers[n] and n not in others]


def smoothing_factors(act_max: np.ndarray, weights: list[np.ndarray], alpha: float) -> np.ndarray:
    """``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` for linear weights ``[out, in]`` sharing the input."""
    w_max = np.max([np.abs(w).max(axis=0) for w in weights], axis=0).astype(np.float64)
    x_max = np.maximum(act_max.astype(np.float64), FLOOR)
    s = x_max**alpha / np.maximum(w_max, FLOOR) ** (1 - alpha)
    return np.maximum(s, FLOOR).astype(np.float32)


def check_alpha(alpha: float, path: str = "--smoothquant") -> float:
    """The migration strength: 0 leaves the activations as they are, 1 moves their whole range into the weights."""
    if not 0.0 <= alpha <= 1.0:  # NaN fails too
        raise AccelsimError(f"alpha {alpha!r} is outside [0, 1]", path=path, allowed="a number from 0 to 1, e.g. 0.5")
    return alpha


def smooth(workload: Workload, hw: HardwareConfig, tensors: WorkloadTensors, alpha: float) -> WorkloadTensors:
    """``tensors`` with every smoothing group's norm scale divided and its linears' weights multiplied by the
    factors measured on the calibration batch (the fp32 network; smoothing leaves the rest of it unchanged, so
    one pass measures every group)."""
    check_alpha(alpha)
    groups = smoothing_groups(workload)
    if not groups:
        return tensors
    act_max = channel_absmax(workload, tensors, lower(workload, hw, "fp32"), {g.norm for g in groups})
    params = dict(tensors.params)
    for group in groups:
        s = smoothing_factors(act_max[group.norm], [params[name].weight for name in group.linears], alpha)
        norm = params[group.norm]
        params[group.norm] = LayerParams(
            (norm.weight / s).astype(np.float32), None if norm.bias is None else (norm.bias / s).astype(np.float32)
        )
        for name in group.linears:
            linear = params[name]
            params[name] = LayerParams((linear.weight * s).astype(np.float32), linear.bias)
    return replace(tensors, params=params)
