"""Golden vectors for an RTL testbench: one layer's inputs, int8 weights, parameters, accumulators, outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from accelsim.atomic_file import write_atomic
from accelsim.quant.layer import LayerResult

GOLDEN_FORMAT_VERSION = 1


def golden_arrays(result: LayerResult) -> dict[str, np.ndarray]:
    """Every tensor (``<name>``) with its parameters (``<name>_scale`` ...) and the requant unit's registers."""
    arrays: dict[str, np.ndarray] = {}
    for name, rec in result.tensors.items():
        arrays[name] = np.ascontiguousarray(rec.values)
        if rec.qparams is not None:
            arrays |= rec.qparams.as_arrays(name)
    arrays["output"] = np.ascontiguousarray(result.output)  # static: the dequantized codes
    if result.requant is not None:
        arrays |= result.requant.as_arrays()
    meta = {
        "format_version": GOLDEN_FORMAT_VERSION,
        "kind": result.kind,
        "scheme": result.scheme,
        "variant": result.variant,
        "dtypes": {"output": "float32"} | {name: rec.dtype for name, rec in result.tensors.items()},
        "geometry": None if result.geometry is None else {
            "stride": result.geometry.stride,
            "padding_top_left_bottom_right": result.geometry.padding,
            "dilation": result.geometry.dilation,
            "groups": result.geometry.groups,
        },
        "settings": {k: v for k, v in result.settings.items()},
        "accumulator_overflows": result.accumulator_overflows,
        "requant_saturations": result.requant_saturations,
        "input_saturations": result.input_saturations,
        "bias_saturations": result.bias_saturations,
        "layouts": {"conv2d": "activations NCHW, weights [O, C/groups, kh, kw]", "linear": "x[..., in], weights [out, in]",
                    "matmul": "x[..., K] @ weight[K, N]"}[result.kind],
    }
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True, default=list))
    return arrays


def write_golden(result: LayerResult, path: str | Path) -> Path:
    """Write :func:`golden_arrays` to an ``.npz`` atomically (temp file + rename); returns the path."""
    buf = io.BytesIO()
    np.savez(buf, **golden_arrays(result))
    return write_atomic(path, buf.getvalue())
