"""A quantized ONNX model's own quantization in a workload's weights file, so ``accelsim import onnx
MODEL_int8.onnx -o W.yaml`` writes a workload whose runs give the bits and cycles of ``accelsim run
MODEL_int8.onnx``: nothing recalibrated, nothing quantized again.

The workload's ``quantized`` section says what the model is (``scheme``, the ``weights`` format of its codes,
the ``requant`` mode of its runtime); its ``weights_file`` holds, beside the float twin's ``<layer>.weight``
and ``<layer>.bias`` (the dequantized values the fp32 and woq runs use), the model's parameters under keys
named after the layer or tensor they belong to (:data:`WEIGHT_KEYS`, :data:`ACTIVATION_KEYS`; docs/onnx.md
gives the table). Reading checks every array against the workload (a missing partner, a dtype, a shape, a
scale that is not finite and positive, a name that is no layer) and refuses it in one line naming the file
and the key.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from accelsim.config.loader import read_weights
from accelsim.config.workload import INPUT, Workload
from accelsim.errors import AccelsimError
from accelsim.onnx import OnnxImport
from accelsim.onnx.quantized_workload import QuantizedImport, weight_format
from accelsim.quant import QParams, QuantizedWeight
from accelsim.schemes import SchemeName
from accelsim.values.runner import PRE_ACTIVATION
from accelsim.values.user_data import parse_arrays

#: a layer's weight codes (int8 / uint8, the layout of ``<layer>.weight``), their scales (float32, one or one
#: per output channel, axis 0), zero points (the codes' dtype, one per scale) and the int32 bias a static
#: layer adds to its accumulators
WEIGHT_KEYS = ("weight_codes", "weight_scale", "weight_zero_point", "int_bias")
#: the parameters of a tensor's codes: a workload source, a layer's output or ``<layer>:pre_activation``
#: (the requant target before a vector-unit activation); one float32 scale and one int8 / uint8 zero point
ACTIVATION_KEYS = ("act_scale", "act_zero_point")
CODE_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def quantized_arrays(quantized: QuantizedImport) -> dict[str, np.ndarray]:
    """The arrays :func:`read_quantized` reads back: the given weight codes of every layer that has weights,
    and the parameters of every tensor a static run quantizes that the model gives."""
    workload, floats = quantized.imported.workload, quantized.imported.weights
    arrays: dict[str, np.ndarray] = {}
    for layer, (weight, bias) in quantized.given.items():
        if f"{layer}.weight" not in floats:
            continue  # a node name that holds no layer's weight: no run reads it
        arrays[f"{layer}.weight_codes"] = weight.codes
        arrays[f"{layer}.weight_scale"] = weight.qparams.scale
        arrays[f"{layer}.weight_zero_point"] = weight.qparams.zero_point.astype(weight.codes.dtype)
        if bias is not None:
            arrays[f"{layer}.int_bias"] = np.asarray(bias, np.int32)
    names = _activation_names(workload)
    for name, qp in quantized.qparams.items():
        if name in names:
            arrays[f"{name}.act_scale"] = qp.scale
            arrays[f"{name}.act_zero_point"] = qp.zero_point.astype(qp.numpy_dtype)
    return arrays


def _activation_names(workload: Workload) -> set[str]:
    """The tensors a static run may take parameters for (values.runner's names)."""
    layers = [s.layer.name for s in workload.shapes]
    return {INPUT, *workload.extra_inputs, *layers, *(name + PRE_ACTIVATION for name in layers)}


def read_quantized(workload: Workload) -> QuantizedImport:
    """The quantized model a loaded workload with a ``quantized`` section stands for: its weight codes,
    int32 biases and activation parameters from its ``weights_file`` (the bytes read once,
    :func:`accelsim.config.loader.read_weights`), each checked against the workload."""
    spec = workload.quantized
    kept = read_weights(workload)
    assert spec is not None and kept is not None  # the workload's validation requires both
    file = str(kept.path)
    arrays = parse_arrays(kept.data, file, "weights_file", keep_integers=True)
    reader = _Reader(arrays, file)
    weight_layers = {s.layer.name: s.layer.type for s in workload.shapes if f"{s.layer.name}.weight" in arrays}
    given = {}
    for key in arrays:
        layer, _, suffix = key.rpartition(".")
        if suffix == "weight_codes":
            if layer not in weight_layers:
                raise AccelsimError(
                    "weight codes for a layer with no weight in this file",
                    file=file,
                    path=key,
                    allowed="layers with weights",
                )
            given[layer] = reader.weight(layer, exact_shape=weight_layers[layer] in ("conv2d", "linear"))
        elif suffix in WEIGHT_KEYS:
            reader.partner(key, f"{layer}.weight_codes")
    names = _activation_names(workload)
    qparams = {}
    for key in arrays:
        name, _, suffix = key.rpartition(".")
        if suffix not in ACTIVATION_KEYS:
            continue
        if name not in names:
            shown = ", ".join(sorted(names)[:8])
            raise AccelsimError(
                f"{name!r} is not an input or layer of the workload", file=file, path=key, allowed=f"{shown}, ..."
            )
        if suffix == "act_scale":
            qparams[name] = reader.activation(name)
        else:
            reader.partner(key, f"{name}.act_scale")
    gemm = [(w.codes, w.qparams.zero_point) for layer, (w, _) in given.items() if weight_layers[layer] != "elementwise"]
    if weight_format(gemm) != spec.weights:
        raise AccelsimError(
            f"quantized.weights is {spec.weights}, but the layers' weight codes are {weight_format(gemm)}",
            file=file,
            path="weights_file",
            allowed="the format the codes have (int8 with zero points 0: symmetric; uint8: asymmetric; int8 with "
            "zero points: asymmetric_int8)",
        )
    imported = OnnxImport(workload, {}, {}, {})
    return QuantizedImport(
        imported, SchemeName(spec.scheme), spec.weights, given, qparams, frozenset(spec.float_layers)
    )


class _Reader:
    """Checked reads of one weights file's quantization arrays; errors name the file and the key."""

    def __init__(self, arrays: Mapping[str, np.ndarray], file: str) -> None:
        self.arrays, self.file = arrays, file

    def get(self, key: str, dtypes: tuple[np.dtype, ...], what: str) -> np.ndarray:
        if key not in self.arrays:
            raise AccelsimError("missing", file=self.file, path=key, allowed=what)
        array = self.arrays[key]
        if array.dtype not in dtypes:
            raise AccelsimError(f"dtype {array.dtype}", file=self.file, path=key, allowed=what)
        return array

    def partner(self, key: str, needed: str) -> None:
        if needed not in self.arrays:
            raise AccelsimError(f"has no {needed} beside it", file=self.file, path=key, allowed="both, or neither")

    def scale(self, key: str, sizes: tuple[int, ...]) -> np.ndarray:
        s = self.get(key, (np.dtype(np.float32),), "float32 scales")
        bad = s.ndim != 1 or s.size not in sizes or not (np.all(np.isfinite(s)) and np.all(s > 0))
        if bad:
            values = s.reshape(-1)[:4].tolist()
            allowed = f"{' or '.join(map(str, sorted(set(sizes))))} finite float32 scale(s) > 0, 1-D"
            raise AccelsimError(f"shape {list(s.shape)}, values {values}", file=self.file, path=key, allowed=allowed)
        return s

    def weight(self, layer: str, exact_shape: bool) -> tuple[QuantizedWeight, np.ndarray | None]:
        codes = self.get(f"{layer}.weight_codes", CODE_DTYPES, "int8 or uint8 codes")
        weight = self.arrays[f"{layer}.weight"]
        if (codes.shape != weight.shape) if exact_shape else (codes.size != weight.size):
            raise AccelsimError(
                f"shape {list(codes.shape)}, the layer's weight is {list(weight.shape)}",
                file=self.file,
                path=f"{layer}.weight_codes",
            )
        channels = codes.shape[0] if codes.ndim else 1
        scale = self.scale(f"{layer}.weight_scale", (1, channels))
        zero = self.get(f"{layer}.weight_zero_point", (codes.dtype,), f"{codes.dtype} zero points, as the codes")
        if zero.shape != scale.shape:
            raise AccelsimError(
                f"shape {list(zero.shape)} for {scale.size} scale(s)", file=self.file, path=f"{layer}.weight_zero_point"
            )
        qp = QParams(scale, zero.astype(np.int32), codes.dtype.name, axis=0 if scale.size > 1 else None)
        bias = None
        if f"{layer}.int_bias" in self.arrays:
            bias = self.get(f"{layer}.int_bias", (np.dtype(np.int32),), "an int32 bias")
            if bias.shape != (channels,):
                raise AccelsimError(
                    f"shape {list(bias.shape)}, the layer has {channels} output channels",
                    file=self.file,
                    path=f"{layer}.int_bias",
                )
        return QuantizedWeight(np.ascontiguousarray(codes), qp), bias

    def activation(self, name: str) -> QParams:
        scale = self.scale(f"{name}.act_scale", (1,))
        zero = self.get(f"{name}.act_zero_point", CODE_DTYPES, "one int8 or uint8 zero point")
        if zero.shape != (1,):
            raise AccelsimError(
                f"shape {list(zero.shape)}", file=self.file, path=f"{name}.act_zero_point", allowed="[1]"
            )
        return QParams(scale, zero.astype(np.int32), zero.dtype.name)
