"""Hostile quantized workloads (``accelsim import onnx MODEL_int8.onnx`` writes them): a YAML whose
``quantized`` section is wrong, or a weights file whose quantization arrays are missing a partner, have the
wrong dtype or shape, a scale that is not finite and positive, name no layer or input, or disagree with the
section's weight format. Each must end in one line naming the file and the key (exit 2) and write nothing.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from .case import Case

YAML = """\
schema_version: 1
name: q
input_shape: [2, 6, 6]
weights_file: q.npz
quantized: {scheme: static, weights: symmetric, requant: float_half_even}
layers:
  - {name: conv, type: conv2d, out_channels: 3, kernel: 3, padding: 1}
"""
#: a one-conv static model's arrays: the float twin, the weight codes and parameters, the int32 bias, and the
#: parameters of the input's and the conv's codes
GOOD: dict[str, np.ndarray] = {
    "conv.weight": np.full((3, 2, 3, 3), 0.125, np.float32),
    "conv.bias": np.zeros(3, np.float32),
    "conv.weight_codes": np.ones((3, 2, 3, 3), np.int8),
    "conv.weight_scale": np.float32([0.125]),
    "conv.weight_zero_point": np.int8([0]),
    "conv.int_bias": np.zeros(3, np.int32),
    "input.act_scale": np.float32([0.25]),
    "input.act_zero_point": np.uint8([128]),
    "conv.act_scale": np.float32([0.0625]),
    "conv.act_zero_point": np.uint8([100]),
}
RUN = ("run", "{tmp}/q.yaml", "--scheme", "static", "--out", "{tmp}/out")


def _npz(**changes: Any) -> bytes:
    """GOOD with ``changes`` (None: the key left out)."""
    arrays = {k: v for k, v in (GOOD | changes).items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


BAD_ARRAYS: dict[str, tuple[dict[str, Any], str]] = {
    "no-zero-point": ({"conv.weight_zero_point": None}, r"conv\.weight_zero_point: missing"),
    "no-codes": ({"conv.weight_codes": None}, r"conv\.weight_scale: has no conv\.weight_codes beside it"),
    "zero-scale": ({"conv.weight_scale": np.float32([0.0])}, r"conv\.weight_scale: shape \[1\], values \[0\.0\]"),
    "nan-scale": ({"input.act_scale": np.float32([np.nan])}, r"weights_file\[input\.act_scale\]: non-finite value nan"),
    "negative-scale": ({"conv.act_scale": np.float32([-1.0])}, r"conv\.act_scale: "),
    "int-scale": ({"conv.weight_scale": np.int32([1])}, r"conv\.weight_scale: dtype int32"),
    "scale-size": ({"conv.weight_scale": np.float32([0.1, 0.2])}, r"conv\.weight_scale: shape \[2\]"),
    "float-codes": ({"conv.weight_codes": np.ones((3, 2, 3, 3), np.float32)}, r"conv\.weight_codes: dtype float32"),
    "codes-shape": ({"conv.weight_codes": np.ones((3, 2, 9), np.int8)}, r"conv\.weight_codes: shape \[3, 2, 9\]"),
    "codes-of-no-layer": ({"ghost.weight_codes": np.ones(3, np.int8)}, r"ghost\.weight_codes: weight codes for a"),
    "zero-point-dtype": ({"conv.weight_zero_point": np.uint8([0])}, r"conv\.weight_zero_point: dtype uint8"),
    "zero-point-size": ({"conv.weight_zero_point": np.int8([0, 0])}, r"conv\.weight_zero_point: shape \[2\]"),
    "bias-float": ({"conv.int_bias": np.zeros(3, np.float32)}, r"conv\.int_bias: dtype float32"),
    "bias-shape": ({"conv.int_bias": np.zeros(4, np.int32)}, r"conv\.int_bias: shape \[4\]"),
    "act-no-zero-point": ({"conv.act_zero_point": None}, r"conv\.act_zero_point: missing"),
    "act-no-scale": ({"input.act_scale": None}, r"input\.act_zero_point: has no input\.act_scale beside it"),
    "act-unknown": ({"ghost.act_scale": np.float32([1.0])}, r"ghost\.act_scale: 'ghost' is not an input or layer"),
    "act-zero-point-int32": ({"conv.act_zero_point": np.int32([100])}, r"conv\.act_zero_point: dtype int32"),
    "act-per-channel": ({"conv.act_scale": np.float32([0.1, 0.1])}, r"conv\.act_scale: shape \[2\]"),
    "format-mismatch": (
        {"conv.weight_zero_point": np.int8([3])},
        r"weights_file: quantized\.weights is symmetric, but .* asymmetric_int8",
    ),
}
BAD_YAML: dict[str, tuple[str, str, str]] = {
    "no-weights-file": ("weights_file: q.npz\n", "", r"quantized: needs a weights_file"),
    "requant": ("requant: float_half_even", "requant: tflite", r"quantized\.requant: "),
    "scheme": ("scheme: static", "scheme: woq", r"quantized\.scheme: "),
    "weights": ("weights: symmetric", "weights: int4", r"quantized\.weights: "),
    "weights-int4-format": (
        "weights: symmetric",
        "weights: int4_g32",
        r"quantized\.weights: 'int4_g32' is not allowed \(allowed: symmetric, asymmetric, asymmetric_int8\)",
    ),
    "extra-key": ("requant: float_half_even}", "requant: float_half_even, bits: 4}", r"quantized\.bits: "),
    "not-a-mapping": ("{scheme: static, weights: symmetric, requant: float_half_even}", "static", r"quantized: "),
    "float-layer-unknown": (
        "requant: float_half_even}",
        "requant: float_half_even, float_layers: [conv, ghost]}",
        r"quantized\.float_layers\[1\]: 'ghost' is not a layer of this workload",
    ),
    "float-layer-twice": (
        "requant: float_half_even}",
        "requant: float_half_even, float_layers: [conv, conv]}",
        r"quantized\.float_layers\[1\]: 'conv' is listed twice",
    ),
    "float-layers-not-a-list": (
        "requant: float_half_even}",
        "requant: float_half_even, float_layers: {conv: 1}}",
        r"quantized\.float_layers: ",
    ),
}


def _cases() -> list[Case]:
    cases = [
        Case(f"quantized-workload-{name}", RUN, {"q.yaml": YAML, "q.npz": _npz(**changes)}, match=rf"q\.npz: {m}")
        for name, (changes, m) in BAD_ARRAYS.items()
    ]
    for name, (old, new, m) in BAD_YAML.items():
        assert old in YAML
        files = {"q.yaml": YAML.replace(old, new, 1), "q.npz": _npz()}
        cases.append(Case(f"quantized-workload-yaml-{name}", RUN, files, match=rf"q\.yaml: {m}"))
    good = {"q.yaml": YAML, "q.npz": _npz()}
    # the same files in a sweep: checked when the spec loads, one line naming the .npz (or the spec's entry for
    # a weights axis, which a model's own codes leave nothing to vary), before any point runs
    sweep = ("sweep", "{tmp}/spec.yaml", "--workers", "1")
    spec = "schema_version: 1\nbase: default\naxes: {array.rows: [4, 8]%s}\nworkloads: [q.yaml]\noutput: out\n"
    for name in ("no-zero-point", "nan-scale", "format-mismatch"):
        changes, m = BAD_ARRAYS[name]
        files = {"q.yaml": YAML, "q.npz": _npz(**changes), "spec.yaml": spec % ""}
        cases.append(Case(f"quantized-workload-sweep-{name}", sweep, files, match=rf"q\.npz: {m}"))
    axis = {**good, "spec.yaml": spec % ", weights: [symmetric, asymmetric]"}
    cases.append(
        Case("quantized-workload-sweep-weights-axis", sweep, axis, match=r"spec\.yaml: workloads\[0\]: .*weights axis")
    )
    cases.append(Case("quantized-workload-sweep-good", sweep, {**good, "spec.yaml": spec % ""}, "ok", writes=True))
    return [*cases, Case("quantized-workload-good", RUN, good, "ok", writes=True)]


CASES: list[Case] = _cases()
