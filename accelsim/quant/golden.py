"""Golden vectors for an RTL testbench: one layer's inputs, int8 weights, parameters, accumulators, outputs.

With weight zero points (asymmetric weights) the file also holds ``input_row_sums`` (``sum_k (x_q - z_x)``
per GEMM row) and ``weight_zero_point_correction`` (``-z_w[c] * row sum``, shaped like ``acc``), so a
testbench can check the row-sum unit and the accumulator's start value separately; ``weight_q_zero_point``
holds the zero points themselves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from accelsim.atomic_file import write_atomic
from accelsim.kernels.col2im import ConvTransposeGeometry
from accelsim.quant.layer import LayerResult, input_row_sums, zero_point_correction

GOLDEN_FORMAT_VERSION = 1


def golden_arrays(result: LayerResult) -> dict[str, np.ndarray]:
    """Every tensor (``<name>``) with its parameters (``<name>_scale`` ...) and the requant unit's registers."""
    arrays: dict[str, np.ndarray] = {}
    for name, rec in result.tensors.items():
        arrays[name] = np.ascontiguousarray(rec.values)
        if rec.qparams is not None:
            arrays |= rec.qparams.as_arrays(name)
    arrays["output"] = np.ascontiguousarray(result.output)  # static: the dequantized codes
    if (
        "weight_q" in result.tensors
        and "input_q" in result.tensors
        and not result.tensors["weight_q"].codes_qparams.symmetric
    ):
        arrays["input_row_sums"] = input_row_sums(result)
        correction = zero_point_correction(result)
        if correction is not None:  # asymmetric weights always have one
            arrays["weight_zero_point_correction"] = correction
    if result.requant is not None:
        arrays |= result.requant.as_arrays()
    meta = {
        "format_version": GOLDEN_FORMAT_VERSION,
        "kind": result.kind,
        "scheme": result.scheme,
        "variant": result.variant,
        "dtypes": {"output": "float32"}
        | {name: rec.dtype for name, rec in result.tensors.items()}
        | ({"input_row_sums": "int64", "weight_zero_point_correction": "int64"} if "input_row_sums" in arrays else {}),
        "geometry": None
        if result.geometry is None
        else {
            "stride": result.geometry.stride,
            "padding_top_left_bottom_right": result.geometry.padding,
            "dilation": result.geometry.dilation,
            "groups": result.geometry.groups,
            **(
                {"output_padding": result.geometry.output_padding}
                if isinstance(result.geometry, ConvTransposeGeometry)
                else {}
            ),
        },
        "settings": {k: v for k, v in result.settings.items()},
        "accumulator_overflows": result.accumulator_overflows,
        "requant_saturations": result.requant_saturations,
        "input_saturations": result.input_saturations,
        "bias_saturations": result.bias_saturations,
        "layouts": {
            "conv2d": "activations NCHW, weights [O, C/groups, kh, kw]",
            "conv_transpose2d": "activations NCHW, weights [O, C/groups, kh, kw] (col2im of each pixel's patch)",
            "linear": "x[..., in], weights [out, in]",
            "matmul": "x[..., K] @ weight[K, N]",
        }[result.kind],
    }
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True, default=list))
    return arrays


def write_golden(result: LayerResult, path: str | Path) -> Path:
    """Write :func:`golden_arrays` to an ``.npz`` atomically (temp file + rename); returns the path."""
    buf = io.BytesIO()
    np.savez(buf, **golden_arrays(result))  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
    return write_atomic(path, buf.getvalue())
