"""A workload's tensors: weights, biases, the input batch and the calibration batch, from one seed.

Every tensor draws from its own stream, keyed by the workload seed, a purpose and the layer (or
input) name, so adding, removing or reordering layers leaves every other tensor's bits unchanged.
Distributions are those of a trained-looking network at initialization (docs/values.md):
Kaiming-normal weights scaled by fan-in (gain 2 before a ReLU-like activation, 1 otherwise),
small normal biases, LayerNorm gamma ~ 1 and beta ~ 0, standard-normal inputs.
Weights may instead come from an ``.npz`` with keys ``<layer>.weight`` / ``<layer>.bias``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.config.loader import read_weights
from accelsim.config.workload import (
    INPUT,
    Conv2d,
    ConvTranspose2d,
    Elementwise,
    KvCache,
    LayerBase,
    LayerNorm,
    LayerShapes,
    Linear,
    RmsNorm,
    ScaleShift,
    Workload,
    pair,
)
from accelsim.errors import AccelsimError
from accelsim.quant import QuantizedWeight, quantize_weight
from accelsim.quant.int4 import GroupWeights, quantize_groups
from accelsim.schemes import WeightFormatName, get_weight_format

BIAS_STD = 0.02
LAYERNORM_STD = 0.02
#: activations after which a layer's weights get the Kaiming gain of 2 (they zero about half the outputs)
RECTIFYING = ("relu", "relu6", "gelu")


@dataclass(frozen=True)
class LayerParams:
    """A layer's learned tensors: conv ``[O, C/g, kh, kw]``, linear ``[out, in]``, LayerNorm gamma; bias / beta."""

    weight: np.ndarray
    bias: np.ndarray | None
    _quantized: dict[tuple[str, str, str], QuantizedWeight] = field(default_factory=dict, compare=False, repr=False)
    _groups: dict[str, GroupWeights] = field(default_factory=dict, compare=False, repr=False)

    def quantized_weight(
        self, kind: str, granularity: str = "per_channel", weights: str = WeightFormatName.SYMMETRIC
    ) -> QuantizedWeight:
        """The weight's codes and parameters in format ``weights`` (and packed GEMM operands), derived once
        and kept, as a deployed model keeps them: every scheme and run that shares these tensors skips
        re-quantizing."""
        key = (kind, granularity, weights)
        if key not in self._quantized:
            self._quantized[key] = quantize_weight(kind, self.weight, granularity, weights)
        return self._quantized[key]

    def group_weights(self, weights: str) -> GroupWeights:
        """A linear layer's weight (``[out, in]``, the transpose of the GEMM's ``[K, N]``) as int4 group-wise
        codes in format ``weights`` (``accelsim.schemes.WEIGHT_FORMATS`` with a group), derived once and kept
        like :meth:`quantized_weight`."""
        if weights not in self._groups:
            fmt = get_weight_format(weights)
            if fmt.group is None:
                raise ValueError(f"weight format {weights!r} is not group-wise")
            self._groups[weights] = quantize_groups(self.weight.T, fmt.group, symmetric=fmt.symmetric)
        return self._groups[weights]

    def static_bias(self) -> np.ndarray | None:
        """The bias a static layer adds: float here (the array quantizes it to int32); a quantized model's
        own int32 codes where it gives them (``accelsim.onnx.quantized_workload.GivenWeights``)."""
        return self.bias

    def constant_codes(self) -> QuantizedWeight | None:
        """An elementwise layer's constant as codes, where a quantized model gives them (ONNX Runtime's
        QLinearMul / QLinearAdd read the constant's own codes); None here: the constant is a float."""
        return None


@dataclass(frozen=True)
class WorkloadTensors:
    """Everything a values run reads: parameters per layer and batch-leading source tensors."""

    params: dict[str, LayerParams]
    inputs: dict[str, np.ndarray]  # the run batch: "input" and every extra input
    calibration: dict[str, np.ndarray]  # the static calibration batch, same keys, a different draw
    #: layers a quantized model's runtime computes in float32 between dequantize and quantize (ONNX Runtime's
    #: unfused QDQ groups): the static run dequantizes their inputs, runs them as fp32 and quantizes the
    #: output where the model gives its parameters (else it stays float for the next float layer)
    float_layers: frozenset[str] = frozenset()


def _rng(seed: int, purpose: str, name: str) -> np.random.Generator:
    """A stream that depends only on (seed, purpose, name), never on the other layers."""
    key = (zlib.crc32(purpose.encode()), zlib.crc32(name.encode()))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _weight_shape(shapes: LayerShapes) -> tuple[int, ...] | None:
    layer = shapes.layer
    if isinstance(layer, (Conv2d, ConvTranspose2d)):  # both [out, in/groups, kh, kw]
        kh, kw = pair(layer.kernel)
        return (layer.out_channels, shapes.input_shapes[0][0] // layer.groups, kh, kw)
    if isinstance(layer, Linear):
        return (layer.out_features, shapes.input_shapes[0][-1])
    if isinstance(layer, (LayerNorm, RmsNorm)):
        return (shapes.input_shapes[0][-1],)
    if isinstance(layer, ScaleShift):
        return (shapes.input_shapes[0][0],)
    if isinstance(layer, Elementwise) and layer.constant is not None:
        return tuple(layer.constant)
    if isinstance(layer, KvCache) and layer.context:  # the keys or values of the earlier tokens
        return (layer.context, shapes.output_shape[1])
    return None


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
    """float32 draws (float32 sampling: half the time and memory of float64 on ResNet-50's 25M weights)."""
    return (np.float32(mean) + np.float32(std) * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def _random_params(layer: LayerBase, shape: tuple[int, ...], seed: int) -> LayerParams:
    rng = _rng(seed, "params", layer.name)
    if isinstance(layer, (LayerNorm, ScaleShift)):
        return LayerParams(_normal(rng, shape, LAYERNORM_STD, 1.0), _normal(rng, shape, LAYERNORM_STD))
    if isinstance(layer, RmsNorm):  # a scale near 1, no shift
        return LayerParams(_normal(rng, shape, LAYERNORM_STD, 1.0), None)
    if isinstance(layer, KvCache):  # earlier tokens' keys or values: activations, drawn as the inputs are
        return LayerParams(_normal(rng, shape, 1.0), None)
    if isinstance(layer, Elementwise):  # a constant near the op's identity: 1 for mul and div, 0 for add and sub
        return LayerParams(_normal(rng, shape, LAYERNORM_STD, float(layer.op in ("mul", "div"))), None)
    fan_in = int(np.prod(shape[1:]))
    if isinstance(layer, ConvTranspose2d):  # an output sums the taps of the input pixels that reach it
        fan_in = shape[1] * max(1, shape[2] * shape[3] // int(np.prod(pair(layer.stride))))
    gain = 2.0 if getattr(layer, "activation", "none") in RECTIFYING else 1.0
    weight = _normal(rng, shape, np.sqrt(gain / fan_in))
    bias = _normal(rng, shape[:1], BIAS_STD) if getattr(layer, "bias", True) else None
    return LayerParams(weight, bias)


def _npz_params(
    name: str, expected: tuple[int, ...], stored: Mapping[str, np.ndarray], file: str
) -> LayerParams | None:
    """The layer's parameters from the file, checked against the inferred shape; None if absent."""
    if f"{name}.weight" not in stored:
        return None
    weight = np.asarray(stored[f"{name}.weight"], dtype=np.float32)
    if weight.shape != expected:
        raise AccelsimError(
            f"shape {list(weight.shape)}, the workload needs {list(expected)}", file=file, path=f"{name}.weight"
        )
    bias = stored.get(f"{name}.bias")
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float32)
        if bias.shape != (expected[0],):
            raise AccelsimError(
                f"shape {list(bias.shape)}, the workload needs {[expected[0]]}", file=file, path=f"{name}.bias"
            )
    return LayerParams(weight, bias)


def _sources(workload: Workload, seed: int, purpose: str, batches: int) -> dict[str, np.ndarray]:
    shapes = {INPUT: tuple(workload.input_shape)} | {k: tuple(v) for k, v in workload.extra_inputs.items()}
    return {
        name: _normal(_rng(seed, purpose, name), (batches * workload.batch, *shape), 1.0)
        for name, shape in shapes.items()
    }


def materialize(
    workload: Workload,
    *,
    seed: int | None = None,
    weights: str | Path | Mapping[str, np.ndarray] | None = None,
    calibration_batches: int = 1,
    inputs: Mapping[str, np.ndarray] | None = None,
    calibration: Mapping[str, np.ndarray] | None = None,
) -> WorkloadTensors:
    """Weights, input batch and calibration batch (``calibration_batches`` batches) of ``workload``.

    ``seed`` overrides ``workload.seed``; ``weights`` (default: a loaded workload's ``weights_file``, the
    bytes :func:`accelsim.config.loader.read_weights` read once; an
    ``.npz`` path, read with the checks of
    :mod:`accelsim.values.user_data`, or its arrays) replaces the random parameters of the layers it covers
    (LayerNorm: ``weight`` is gamma, ``bias`` beta). ``inputs`` / ``calibration`` (source name ->
    batch-first array, as :func:`accelsim.values.user_data.load_batch` gives them) replace the drawn run and
    calibration batches: a user's own data drives the calibration and the error metrics.
    """
    seed = workload.seed if seed is None else seed
    file = "" if weights is None or isinstance(weights, Mapping) else str(weights)
    stored: Mapping[str, np.ndarray] = {}
    if isinstance(weights, Mapping):
        stored = weights
    elif weights is not None:
        from accelsim.values.user_data import load_arrays

        stored = load_arrays(weights, field="weights_file")
    elif (kept := read_weights(workload)) is not None:  # a loaded workload's weights_file, the bytes read once
        from accelsim.values.user_data import parse_arrays

        file = str(kept.path)
        stored = parse_arrays(kept.data, file, "weights_file")
    params: dict[str, LayerParams] = {}
    for shapes in workload.shapes:
        shape = _weight_shape(shapes)
        if shape is None:
            continue
        name = shapes.layer.name
        loaded = _npz_params(name, shape, stored, file) if stored else None
        params[name] = loaded if loaded is not None else _random_params(shapes.layer, shape, seed)
    drawn_inputs = dict(inputs) if inputs is not None else _sources(workload, seed, "input", 1)
    drawn_calibration = (
        dict(calibration) if calibration is not None else _sources(workload, seed, "calibration", calibration_batches)
    )
    return WorkloadTensors(params, drawn_inputs, drawn_calibration)
