"""A whole workload's numbers under one scheme, layer by layer, and their error against fp32.

The values compute the lowered program (:class:`accelsim.lowering.program.Program`) the engine
plays: its layers in its order, each array layer through its GEMM view (kind, groups, im2col window,
samples x heads), so a layer the timing does not know cannot be computed, and the reverse. Array
layers (conv2d, linear, matmul) run through :func:`accelsim.quant.run_layer` or, for the static
product of two activations, through the same kernels directly; every other layer is the vector
unit's float32 op. Under ``static`` every tensor between layers is int8 (uint8 for the
ONNX/fbgemm requant modes) with per-tensor parameters calibrated on the calibration batch; the
vector unit dequantizes, computes in float32 and quantizes again, except maxpool (on the codes),
flatten, reshape and transpose (the codes move exactly) and concat (inputs in the output's parameters
copied, others requantized to them). Under ``fp32``, ``woq`` and ``dynamic`` activations stay float32 between layers.
docs/values.md states every choice and the error formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from accelsim.config.hardware import HardwareConfig
from accelsim.config.workload import (
    GEMM_LAYERS,
    INPUT,
    ActivationLayer,
    Add,
    AvgPool,
    Concat,
    ConvTranspose2d,
    Elementwise,
    Flatten,
    KvCache,
    LayerBase,
    LayerNorm,
    LayerShapes,
    Lrn,
    Matmul,
    MaxPool,
    Pool,
    ReduceMean,
    Reshape,
    Resize,
    RmsNorm,
    Rotary,
    ScaleShift,
    Slice,
    Softmax,
    Transpose,
    Workload,
    pair,
    sides,
    spatial_out,
)
from accelsim.dynamic_flavours import FlavourName, get_flavour
from accelsim.errors import AccelsimError
from accelsim.kernels import threads
from accelsim.kernels.gemm import int_gemm
from accelsim.kernels.pool import max_pool2d
from accelsim.kernels.quantize import fma_float32
from accelsim.lowering.gemm_view import GemmView
from accelsim.lowering.program import CLAMP_ACTIVATIONS, Program, lower, lowering_options
from accelsim.quant import (
    DYNAMIC_FLAVOURS,
    OBSERVERS,
    Accumulator,
    ConvGeometry,
    ConvTransposeGeometry,
    LayerResult,
    Prepared,
    QParams,
    Quantization,
    QuantizedWeight,
    TensorRecord,
    dequantize_tensor,
    int4,
    make_requant_params,
    ort_vector,
    quantize_tensor,
    requantize,
    run_layer,
    run_static_codes,
)
from accelsim.quant.dynamic import dynamic_qparams
from accelsim.quant.layer import dtype_name
from accelsim.quant.observers import Observer
from accelsim.quant.options import WEIGHT_GRANULARITIES, WeightGranularity
from accelsim.quant.rules import ADD_CLAMPS, add_tensors
from accelsim.quantize_rules import QuantizeRule
from accelsim.requant_modes import RequantModeName, get_mode
from accelsim.schemes import SCHEMES, WEIGHT_FORMATS, SchemeName, WeightFormatName
from accelsim.values.footprint import refuse_repeated
from accelsim.values.tensors import LayerParams, WorkloadTensors, materialize

#: suffix of the calibrated tensor a GEMM layer writes before a vector-unit activation (its requant target)
PRE_ACTIVATION = ":pre_activation"
#: key of the network output's metrics in :meth:`NetworkValues.compare_to`
OUTPUT = "__output__"
#: activations the requant unit fuses as a clamp; GELU runs on the vector unit
FUSED_ACTIVATIONS = ("relu", "relu6")


@njit(cache=True, nogil=True)
def _gelu_flat(x, out):  # pragma: no cover - compiled
    for i in range(x.size):  # the expressions the ufuncs had, on a float32 element (numba's typing: same bits)
        v = x[i]
        out[i] = np.float32(0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as BERT uses it, in float64, rounded once to float32."""
    return ort_vector.elementwise_float32(_gelu_flat, x)


# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class LayerValues:
    """One layer's output under a scheme and what the array / requant / vector units counted doing it."""

    name: str
    type: str
    stored: np.ndarray  # batch first, what the layer writes to memory: float32, or static int8/uint8 codes
    qparams: QParams | None = None  # static: the parameters of the codes
    results: tuple[LayerResult, ...] = ()  # every GEMM's intermediates, if kept (one per sample and head for matmul)
    accumulator_overflows: int = 0  # outputs whose accumulator left its range (any step)
    requant_saturations: int = 0  # outputs the requant unit clamped to the dtype range
    input_saturations: int = 0  # inputs clamped when quantized for the array
    vector_saturations: int = 0  # static: outputs clamped when the vector unit quantized its float result
    accumulator_min: int | None = None  # smallest / largest accumulator value actually held (int schemes)
    accumulator_max: int | None = None

    @property
    def codes(self) -> np.ndarray | None:
        """Static: the int8/uint8 codes stored to memory."""
        return self.stored if self.qparams is not None else None

    @cached_property
    def output(self) -> np.ndarray:
        """float32 output; static: the codes dequantized on first use (only errors and reports read it)."""
        return self.stored if self.qparams is None else dequantize_tensor(self.stored, self.qparams)


@dataclass(frozen=True)
class ErrorMetrics:
    """Error of one tensor against the fp32 run on the same input (formulas in docs/values.md)."""

    sqnr_db: float
    max_abs_error: float
    top1_agreement: float | None = None  # classifier outputs [batch, classes] only


@dataclass(frozen=True)
class NetworkValues:
    """Every layer's values under one scheme, in layer order; the last layer is the network output."""

    workload: str
    scheme: str
    variant: str | None  # requant mode (static) or dynamic flavour
    layers: dict[str, LayerValues]
    qparams: dict[str, QParams] = field(default_factory=dict)  # static: calibrated, per tensor
    source_saturations: dict[str, int] = field(default_factory=dict)  # static: clamps quantizing the inputs
    weights: str = WeightFormatName.SYMMETRIC  # the weight format (accelsim.schemes.WEIGHT_FORMATS)
    #: the layers whose values leave the accelerator (``Workload.output_layers``); empty: the last layer
    outputs: tuple[str, ...] = ()

    @property
    def output_name(self) -> str:
        return next(reversed(self.layers))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The network's outputs: the workload's ``outputs``, else the last layer."""
        return self.outputs or (self.output_name,)

    @property
    def output(self) -> np.ndarray:
        return self.layers[self.output_name].output

    def compare_to(self, reference: NetworkValues) -> dict[str, ErrorMetrics]:
        """Error against ``reference`` (the fp32 run) per layer name, and under :data:`OUTPUT` at the network's
        outputs taken together: the SQNR of all of them as one signal (every output's signal energy over every
        output's noise energy, so each element weighs the same whatever output holds it), the largest absolute
        error of any, and top-1 agreement over the outputs that are a classifier's ``[batch, classes]`` (every
        sample of each counts once)."""
        out = {name: error_metrics(reference.layers[name].output, lv.output) for name, lv in self.layers.items()}
        names = self.output_names
        refs = [reference.layers[name].output for name in names]
        whole = error_metrics(
            np.concatenate([r.reshape(-1) for r in refs]),
            np.concatenate([self.layers[name].output.reshape(-1) for name in names]),
        )
        hits = [r.argmax(axis=1) == self.layers[n].output.argmax(axis=1) for n, r in zip(names, refs) if r.ndim == 2]
        agree = float(np.mean(np.concatenate(hits))) if hits else None
        out[OUTPUT] = ErrorMetrics(whole.sqnr_db, whole.max_abs_error, agree)
        return out


def error_metrics(reference: np.ndarray, values: np.ndarray) -> ErrorMetrics:
    """SQNR in dB (+inf when exact) and max abs error, accumulated in float64."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(values, np.float64)
    noise = float(np.sum(err * err))
    signal = float(np.sum(ref * ref))
    if noise == 0.0:
        sqnr = math.inf
    elif signal == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal / noise)
    return ErrorMetrics(sqnr, float(np.max(np.abs(err), initial=0.0)))


# ---------------------------------------------------------------------------------------------------
# the vector unit's float32 ops, shared by every scheme


def _pool_pads(layer: Pool, hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The ``(before, after)`` padding of each spatial axis the windows read, a ``ceil_mode`` overhang
    included, and the overhang alone."""
    assert layer.kernel is not None  # global pools never window
    out = spatial_out(hw, layer.kernel, layer.strides, layer.padding, 1, ceil_mode=layer.ceil_mode)
    top, left, bottom, right = sides(layer.padding)
    over_h, over_w = layer.overhang(hw, out)
    return (top, bottom + over_h), (left, right + over_w), (over_h, over_w)


def _pool_windows(x: np.ndarray, layer: Pool, pad_value: float) -> np.ndarray:
    """``[N, C, OH, OW, kh, kw]`` windows of NCHW ``x`` padded with ``pad_value`` (ceil_mode overhang too)."""
    assert layer.kernel is not None  # global pools never window
    pad_h, pad_w, _ = _pool_pads(layer, x.shape[2:4])
    padded = np.pad(x, ((0, 0), (0, 0), pad_h, pad_w), constant_values=pad_value)
    sh, sw = layer.strides
    return sliding_window_view(padded, pair(layer.kernel), axis=(2, 3))[:, :, ::sh, ::sw]


def maxpool(x: np.ndarray, layer: MaxPool, pad_value: float) -> np.ndarray:
    """Max over each window; works on float values and on quantized codes alike (max is monotonic)."""
    if layer.global_pool:
        return x.max(axis=(2, 3), keepdims=True)
    assert layer.kernel is not None  # only global pools have no kernel
    pad_h, pad_w, _ = _pool_pads(layer, x.shape[2:4])
    if pad_h[0] != pad_h[1] or pad_w[0] != pad_w[1]:  # uneven sides: padded here, the kernel pads evenly
        x = np.pad(x, ((0, 0), (0, 0), pad_h, pad_w), constant_values=pad_value)
        pad_h, pad_w = (0, 0), (0, 0)
    return max_pool2d(x, pair(layer.kernel), layer.strides, (pad_h[0], pad_w[0]), pad_value)


@njit(cache=True, nogil=True)
def _row_means(x, out):  # pragma: no cover - compiled
    """Each row's float32 mean in the order MLAS's global average pool sums it: four lanes over the row,
    ``(l0 + l2) + (l1 + l3)``, then the remainder one by one, divided by the row's length."""
    n = x.shape[1]
    full = n - n % 4
    for r in range(x.shape[0]):
        l0 = l1 = l2 = l3 = np.float32(0)
        for i in range(0, full, 4):
            l0 += x[r, i]
            l1 += x[r, i + 1]
            l2 += x[r, i + 2]
            l3 += x[r, i + 3]
        total = (l0 + l2) + (l1 + l3)
        for i in range(full, n):
            total += x[r, i]
        out[r] = total / np.float32(n)


def global_mean(x: np.ndarray) -> np.ndarray:
    """GlobalAveragePool of NCHW ``x`` as ONNX Runtime computes it in float32 (MLAS's summation order, so a
    quantized model's float pool and the codes after it are ORT's bits; numpy's pairwise mean differs from
    ORT's in the last bit of about a third of the channels)."""
    rows = np.ascontiguousarray(x, np.float32).reshape(x.shape[0] * x.shape[1], -1)
    out = np.empty(rows.shape[0], np.float32)
    _row_means(rows, out)
    return out.reshape(x.shape[0], x.shape[1], 1, 1)


@njit(cache=True, nogil=True)
def _eigen_row_means(flat, n, out):  # pragma: no cover - compiled
    """The float32 mean of each length-``n`` row of contiguous ``flat`` in the order Eigen's vectorized
    ``sum()`` adds it (ONNX Runtime's ReduceMean over the last axis, SSE packets of 4): scalars before the
    first 16-byte-aligned element wait; two packets accumulate 8 elements a step, then are added, then one
    more packet if 4 are left; the packet's lanes ``(l0 + l2) + (l1 + l3)``; then the scalars before the
    aligned start and after the last packet, in order. Alignment is counted from the start of ``flat``
    (ORT's buffers are at least 16-byte aligned)."""
    for r in range(out.shape[0]):
        base = r * n
        start = min((4 - base % 4) % 4, n)
        packed = (n - start) // 4 * 4
        if packed == 0:
            total = flat[base]
            for i in range(1, n):
                total += flat[base + i]
            out[r] = total / np.float32(n)
            continue
        at = base + start
        a0, a1, a2, a3 = flat[at], flat[at + 1], flat[at + 2], flat[at + 3]
        if packed > 4:
            b0, b1, b2, b3 = flat[at + 4], flat[at + 5], flat[at + 6], flat[at + 7]
            pairs = packed // 8 * 8
            for i in range(at + 8, at + pairs, 8):
                a0 += flat[i]
                a1 += flat[i + 1]
                a2 += flat[i + 2]
                a3 += flat[i + 3]
                b0 += flat[i + 4]
                b1 += flat[i + 5]
                b2 += flat[i + 6]
                b3 += flat[i + 7]
            a0 += b0
            a1 += b1
            a2 += b2
            a3 += b3
            if packed > pairs:
                a0 += flat[at + pairs]
                a1 += flat[at + pairs + 1]
                a2 += flat[at + pairs + 2]
                a3 += flat[at + pairs + 3]
        total = (a0 + a2) + (a1 + a3)
        for i in range(base, at):
            total += flat[i]
        for i in range(at + packed, base + n):
            total += flat[i]
        out[r] = total / np.float32(n)


def reduce_mean(x: np.ndarray) -> np.ndarray:
    """ONNX ReduceMean over the last axis (dims kept) as ONNX Runtime computes it in float32: Eigen's
    summation order (:func:`_eigen_row_means`); a sequential sum differs from ORT's in the last bit of a
    third to most rows, which can move a code after it."""
    flat = np.ascontiguousarray(x, np.float32).reshape(-1)
    n = x.shape[-1]
    out = np.empty(flat.size // n, np.float32)
    _eigen_row_means(flat, n, out)
    return out.reshape(*x.shape[:-1], 1)


def avgpool(x: np.ndarray, layer: AvgPool) -> np.ndarray:
    """Mean over each window's in-image taps (padding excluded, as TFLite and count_include_pad=False),
    or over its in-image and padding taps with ``count_include_pad`` (a ceil_mode overhang never counts);
    a global pool is :func:`global_mean`.

    Summed in NCHW order whatever the memory layout, so the float32 result does not depend on it."""
    x = np.ascontiguousarray(x)
    if layer.global_pool:
        return global_mean(x)
    sums = _pool_windows(x, layer, 0).sum(axis=(-2, -1), dtype=np.float32)
    counted = np.ones((1, 1, *x.shape[2:]), np.float32)
    if layer.count_include_pad:  # the explicit padding counts; the overhang is cut off again below
        top, left, bottom, right = sides(layer.padding)
        counted = np.pad(counted, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=1)
        no_padding = layer.model_copy(update={"padding": 0})
        taps = _pool_windows(counted, no_padding, 0)
    else:
        taps = _pool_windows(counted, layer, 0)
    out_h, out_w = sums.shape[2:4]
    return (sums / taps[:, :, :out_h, :out_w].sum(axis=(-2, -1), dtype=np.float32)).astype(np.float32)


def lrn(x: np.ndarray, layer: Lrn) -> np.ndarray:
    """ONNX LRN: ``x / (bias + alpha / size * sum(x^2 over channels c - (size-1)//2 .. c + size//2)) ** beta``."""
    square = np.square(x, dtype=np.float32)
    before = (layer.size - 1) // 2
    pads = [(0, 0), (before, layer.size - 1 - before)] + [(0, 0)] * (x.ndim - 2)
    window = sliding_window_view(np.pad(square, pads), layer.size, axis=1).sum(axis=-1, dtype=np.float32)
    base = np.float32(layer.bias) + np.float32(layer.alpha / layer.size) * window
    return (x / base ** np.float32(layer.beta)).astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1, causal: bool = False) -> np.ndarray:
    """Softmax over ``axis`` of ``x`` (batch included), max subtracted first: ONNX Runtime's float32 Softmax bit
    for bit (MLAS's exp and summation order, :func:`accelsim.quant.ort_vector.float_softmax`). ``causal``
    (``axis`` the last, ``x`` ``[..., queries, keys]``): query ``i`` sees keys up to ``i + keys - queries``,
    the same arithmetic over those, and the others weigh exactly 0 (PyTorch's masked softmax)."""
    if not causal:
        return ort_vector.float_softmax(x, axis)
    queries, keys = x.shape[-2:]
    seen = np.minimum(np.arange(queries) + keys - queries + 1, keys)
    return ort_vector.float_softmax(x, -1, np.tile(seen, x.size // (queries * keys)))


def _sample_axis(axis: int, ndim: int) -> int:
    """A layer's per-sample ``axis`` as an axis of its ``ndim``-dim array, the batch first."""
    return axis % (ndim - 1) + 1


#: ONNX Runtime's LayerNormalization (x86 with AVX2) runs MLAS's vector kernel on rows of at least this many
#: features and its scalar Welford loop on shorter ones
MLAS_LAYERNORM_MIN = 8


@njit(cache=True, nogil=True)
def _ort_layernorm_rows(x, gamma, beta, has_bias, eps, out):  # pragma: no cover - compiled
    """Each row of ``x`` normalized as ONNX Runtime 1.32's CPU LayerNormalization computes it in float32.
    Rows of :data:`MLAS_LAYERNORM_MIN` or more, MLAS's AVX2 kernel: the mean from a float64 sum (four lanes,
    ``(l0 + l2) + (l1 + l3)``, the tail in order), the centred squares accumulated by FMA in eight float32
    lanes reduced ``((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))``, then the tail as the compiler emits
    it (four squares rounded and added in order, the last ones by FMA); ``1 / sqrt(var / n + eps)``;
    ``fma((x - mean) * inv, gamma, beta)``. Shorter rows, the scalar fallback: Welford's mean and M2 in
    float32, ``(x - mean) / sqrt(M2 / n + eps) * gamma + beta``."""
    n = x.shape[1]
    nf = np.float32(n)
    lanes = np.zeros(8, np.float32)
    for r in range(x.shape[0]):
        if n < MLAS_LAYERNORM_MIN:
            mean = np.float32(0.0)
            m2 = np.float32(0.0)
            for h in range(n):
                v = x[r, h]
                delta = np.float32(v - mean)
                mean = np.float32(mean + np.float32(delta / np.float32(h + 1)))
                m2 = np.float32(m2 + np.float32(delta * np.float32(v - mean)))
            std = np.float32(np.sqrt(np.float32(np.float32(m2 / nf) + eps)))
            for h in range(n):
                y = np.float32(np.float32(np.float32(x[r, h] - mean) / std) * gamma[h])
                out[r, h] = np.float32(y + beta[h]) if has_bias else y
            continue
        d0 = d1 = d2 = d3 = 0.0
        i = 0
        while i + 4 <= n:
            d0 += np.float64(x[r, i])
            d1 += np.float64(x[r, i + 1])
            d2 += np.float64(x[r, i + 2])
            d3 += np.float64(x[r, i + 3])
            i += 4
        total = (d0 + d2) + (d1 + d3)
        while i < n:
            total += np.float64(x[r, i])
            i += 1
        mean = np.float32(total / np.float64(n))
        lanes[:] = 0
        i = 0
        while i + 8 <= n:
            for j in range(8):
                d = np.float32(x[r, i + j] - mean)
                lanes[j] = fma_float32(d, d, lanes[j])
            i += 8
        low = np.float32(np.float32(lanes[0] + lanes[4]) + np.float32(lanes[2] + lanes[6]))
        high = np.float32(np.float32(lanes[1] + lanes[5]) + np.float32(lanes[3] + lanes[7]))
        var = np.float32(low + high)
        if i + 4 <= n:
            for j in range(4):
                d = np.float32(x[r, i + j] - mean)
                var = np.float32(var + np.float32(d * d))
            i += 4
        while i < n:
            d = np.float32(x[r, i] - mean)
            var = fma_float32(d, d, var)
            i += 1
        inv = np.float32(np.float32(1.0) / np.float32(np.sqrt(np.float32(np.float32(var / nf) + eps))))
        for h in range(n):
            t = np.float32(np.float32(x[r, h] - mean) * inv)
            out[r, h] = fma_float32(t, gamma[h], beta[h]) if has_bias else np.float32(t * gamma[h])


def layernorm(x: np.ndarray, params: LayerParams, eps: float) -> np.ndarray:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the last axis (biased variance), bit for bit as
    ONNX Runtime's CPU LayerNormalization computes it (:func:`_ort_layernorm_rows`), so a quantized model's
    float LayerNorm gives ORT's codes; numpy's pairwise mean and a centred float32 variance differ from ORT in
    the last bit of 20-50% of the outputs."""
    rows = np.ascontiguousarray(x, np.float32).reshape(-1, x.shape[-1])
    gamma = np.ascontiguousarray(params.weight, np.float32).reshape(-1)
    has_bias = params.bias is not None
    beta = np.ascontiguousarray(params.bias if has_bias else gamma, np.float32).reshape(-1)
    out = np.empty_like(rows)
    _ort_layernorm_rows(rows, gamma, beta, has_bias, np.float32(eps), out)
    return out.reshape(x.shape)


def rmsnorm(x: np.ndarray, params: LayerParams, eps: float) -> np.ndarray:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis in float32, as Llama's RMSNorm computes it."""
    mean_square = (x * x).mean(axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(mean_square + np.float32(eps)) * params.weight).astype(np.float32)


def rotary_angles(layer: Rotary, tokens: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The float32 ``cos`` and ``sin`` of every token's angles, ``[tokens, head_dim]`` (the half's frequencies
    twice), as Llama's rotary embedding computes them: frequencies and positions in float32, then their
    products."""
    inv_freq = np.float32(1) / (
        np.float32(layer.base) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))
    )
    positions = np.arange(layer.position, layer.position + tokens, dtype=np.float32)
    angles = np.outer(positions, inv_freq).astype(np.float32)
    both = np.concatenate([angles, angles], axis=-1)
    return np.cos(both).astype(np.float32), np.sin(both).astype(np.float32)


def rotary(layer: Rotary, x: np.ndarray) -> np.ndarray:
    """Each head of batch-first ``[B, T, heads*d]`` ``x`` rotated: ``x * cos + rotate_half(x) * sin`` with
    ``rotate_half(x) = [-x[d/2:], x[:d/2]]`` (HuggingFace's Llama convention)."""
    b, t, features = x.shape
    d = features // layer.heads
    cos, sin = rotary_angles(layer, t, d)
    heads = x.reshape(b, t, layer.heads, d)
    half = d // 2
    rotated = np.concatenate([-heads[..., half:], heads[..., :half]], axis=-1)
    y = heads * cos[None, :, None, :] + rotated * sin[None, :, None, :]
    return y.astype(np.float32).reshape(b, t, features)


def kv_int8(x: np.ndarray, heads: int) -> np.ndarray:
    """Keys or values as an int8 KV cache holds them, read back: per head and token, a float32 scale
    ``max|x| / 127`` and codes ``round_half_even(x / scale)`` (an all-zero head keeps scale 1)."""
    shape = x.shape
    rows = x.reshape(*shape[:-1], heads, shape[-1] // heads)
    scale = np.abs(rows).max(axis=-1, keepdims=True) / np.float32(127)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint(rows / scale), -127, 127)
    return (codes * scale).astype(np.float32).reshape(shape)


def kv_cache(layer: KvCache, x: np.ndarray, params: LayerParams | None) -> np.ndarray:
    """The whole cache after this step: the ``context`` earlier rows (``<layer>.weight``, one cache shared by
    the batch's sequences) and this step's rows, as the cache's dtype stores them."""
    past = [] if params is None else [np.broadcast_to(params.weight, (x.shape[0], *params.weight.shape))]
    cache = np.concatenate([*past, x], axis=1, dtype=np.float32)
    return kv_int8(cache, layer.heads) if layer.dtype == "int8" else cache


def _hard_sigmoid(y: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``max(0, min(1, alpha * y + beta))`` in float32, as ONNX's HardSigmoid."""
    return np.clip(y * np.float32(alpha) + np.float32(beta), np.float32(0), np.float32(1))


def _clip(y: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    y = y if low is None else np.maximum(y, np.float32(low))
    return y if high is None else np.minimum(y, np.float32(high))


#: the float32 activation functions by workload name, each given its parameters (workload.ACTIVATION_PARAMETERS)
ACTIVATIONS: dict[str, Callable[[np.ndarray, dict[str, Any]], np.ndarray]] = {
    "none": lambda y, p: y,
    "relu": lambda y, p: np.maximum(y, np.float32(0)),
    "relu6": lambda y, p: np.clip(y, np.float32(0), np.float32(6)),
    "clip": lambda y, p: _clip(y, p["min"], p["max"]),
    "leaky_relu": lambda y, p: np.where(y >= 0, y, y * np.float32(p["alpha"])),
    "sigmoid": lambda y, p: ort_vector.logistic(y),
    "tanh": lambda y, p: np.tanh(y),
    "hard_sigmoid": lambda y, p: _hard_sigmoid(y, p["alpha"], p["beta"]),
    "hard_swish": lambda y, p: y * _hard_sigmoid(y, 1 / 6, 0.5),  # ONNX HardSwish's alpha and beta
    "gelu": lambda y, p: gelu(y),
    "erf": lambda y, p: ort_vector.erf(y),  # ONNX's Erf: ORT's float32 arithmetic, the reference
    "silu": lambda y, p: y * ort_vector.logistic(y),  # x * sigmoid(x): ORT's float32 sigmoid, a float32 multiply
    "square": lambda y, p: y * y,  # ONNX Pow(x, 2): the product rounded once
    "sqrt": lambda y, p: np.sqrt(y),  # correctly rounded, as std::sqrt
}


def activate(y: np.ndarray, activation: str, parameters: dict[str, Any] | None = None) -> np.ndarray:
    """A float32 activation function by its workload name (``parameters``: a standalone layer's)."""
    return np.asarray(ACTIVATIONS[activation](y, parameters or {}), np.float32)


#: the vector unit's element-wise binary ops
BINARY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


def _with_rank(x: np.ndarray, rank: int) -> np.ndarray:
    """Batch-first ``x`` with unit dims after the batch up to ``rank`` dims, so that per-sample shapes
    broadcast aligned on the right (the batch never meets a per-sample dim)."""
    return x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:])


def elementwise(layer: Elementwise, inputs: list[np.ndarray], params: LayerParams | None) -> np.ndarray:
    """``a op b`` with numpy broadcasting of the per-sample shapes, then the layer's activation; x / 0 is
    inf or nan, as in ONNX Runtime."""
    if layer.constant is None:
        rank = max(t.ndim for t in inputs)
        a, b = (_with_rank(t, rank) for t in inputs)
    else:
        assert params is not None  # materialize gives every constant operand its weight
        x, c = inputs[0], params.weight
        x = _with_rank(x, max(x.ndim, c.ndim + 1))
        a, b = (c, x) if layer.constant_first else (x, c)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = BINARY_OPS[layer.op](a, b, dtype=np.float32)
    return activate(y, layer.activation)


def scale_shift(x: np.ndarray, params: LayerParams, activation: str) -> np.ndarray:
    """``x * scale[c] + shift[c]`` on channel axis 1 of batch-first ``x``, then the activation."""
    per_channel = (-1, *(1,) * (x.ndim - 2))
    y = x * params.weight.reshape(per_channel)
    y = y if params.bias is None else y + params.bias.reshape(per_channel)
    return activate(y.astype(np.float32), activation)


def layout(layer: Reshape | Transpose | Concat | Slice, inputs: list[np.ndarray]) -> np.ndarray:
    """A layout layer on batch-first arrays of any dtype (float values or codes of one set of parameters):
    the per-sample axes of the layer are the array's from 1 on."""
    x = inputs[0]
    if isinstance(layer, Reshape):
        return x.reshape(x.shape[0], *layer.shape)
    if isinstance(layer, Transpose):
        return np.ascontiguousarray(x.transpose(0, *(a + 1 for a in layer.perm)))
    if isinstance(layer, Slice):
        index = [slice(None)] * x.ndim
        index[_sample_axis(layer.axis, x.ndim)] = slice(layer.start, layer.end, layer.step)
        return np.ascontiguousarray(x[tuple(index)])
    return np.concatenate(inputs, axis=layer.axis % (x.ndim - 1) + 1)


def _resize_coordinates(layer: Resize, size: int, out: int, scale: float) -> np.ndarray:
    """The input coordinate (float32, as ONNX Runtime computes it) of every output index along one axis."""
    i = np.arange(out, dtype=np.float32)
    mode, s = layer.coordinate_transformation, np.float32(scale)
    if mode == "asymmetric":
        return i / s
    if mode == "align_corners":
        return np.zeros(out, np.float32) if out == 1 else i * np.float32((size - 1) / (out - 1))
    if mode == "pytorch_half_pixel" and out == 1:
        return np.zeros(out, np.float32)
    return (i + np.float32(0.5)) / s - np.float32(0.5)  # half_pixel, pytorch_half_pixel


#: ONNX Resize's nearest_mode: the input index each rounding takes for a coordinate
NEAREST_ROUNDING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda c: np.ceil(c - np.float32(0.5)),
    "round_prefer_ceil": lambda c: np.floor(c + np.float32(0.5)),
    "floor": np.floor,
    "ceil": np.ceil,
}


def resize_taps(layer: Resize, size: int, out: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis: the two input indices each output reads and the second one's weight (nearest: one
    index twice, weight 0). Coordinates outside the input read its edge, as ONNX Runtime's resize does."""
    coordinate = _resize_coordinates(layer, size, out, scale)
    if layer.mode == "nearest":
        rounding = NEAREST_ROUNDING[layer.nearest_mode or "round_prefer_floor"]
        index = np.clip(rounding(coordinate), 0, size - 1).astype(np.intp)
        return index, index, np.zeros(out, np.float32)
    coordinate = np.clip(coordinate, np.float32(0), np.float32(size - 1))
    low = np.floor(coordinate).astype(np.intp)
    return low, np.minimum(low + 1, size - 1), (coordinate - low).astype(np.float32)


def resize(layer: Resize, x: np.ndarray) -> np.ndarray:
    """Resize the last two axes of batch-first NCHW ``x``: nearest picks an element (codes or floats alike),
    linear weighs the four neighbours in float32, ``(1-dy)((1-dx) x00 + dx x01) + dy((1-dx) x10 + dx x11)``."""
    hw = (x.shape[2], x.shape[3])
    out = layer.extents(hw)
    scales = layer.scales(hw, out)
    (y0, y1, dy), (x0, x1, dx) = (resize_taps(layer, hw[a], out[a], scales[a]) for a in (0, 1))
    if layer.mode == "nearest":
        return np.ascontiguousarray(x[:, :, y0[:, None], x0[None, :]])
    one = np.float32(1)
    top = x[:, :, y0][..., x0] * (one - dx) + x[:, :, y0][..., x1] * dx
    bottom = x[:, :, y1][..., x0] * (one - dx) + x[:, :, y1][..., x1] * dx
    return (top * (one - dy[:, None]) + bottom * dy[:, None]).astype(np.float32)


def _float_add(a: np.ndarray, b: np.ndarray, activation: str) -> np.ndarray:
    """A residual add in float32, then its activation."""
    return activate((a + b).astype(np.float32), activation)


def vector_op(layer: LayerBase, inputs: list[np.ndarray], params: LayerParams | None) -> np.ndarray:
    """A non-array layer on float32 inputs (batch first)."""
    (x, *rest) = inputs
    if isinstance(layer, MaxPool):
        return maxpool(x, layer, -np.inf)
    if isinstance(layer, AvgPool):
        return avgpool(x, layer)
    if isinstance(layer, Add):  # NumPy's loops release the GIL: beside the engine, a large add runs on the pool
        return threads.aside(_float_add, x, rest[0], layer.activation, elements=x.size)
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, (Reshape, Transpose, Concat, Slice)):
        return layout(layer, inputs)
    if isinstance(layer, Resize):
        return resize(layer, x)
    if isinstance(layer, Lrn):
        return lrn(x, layer)
    if isinstance(layer, Softmax):
        return softmax(x, _sample_axis(layer.axis, x.ndim), layer.causal)
    if isinstance(layer, ReduceMean):
        return reduce_mean(x)
    if isinstance(layer, LayerNorm):
        assert params is not None  # materialize gives every LayerNorm its gamma and beta
        return layernorm(x, params, layer.eps)
    if isinstance(layer, RmsNorm):
        assert params is not None  # materialize gives every RMSNorm its weight
        return rmsnorm(x, params, layer.eps)
    if isinstance(layer, Rotary):
        return rotary(layer, x)
    if isinstance(layer, KvCache):
        return kv_cache(layer, x, params)
    if isinstance(layer, ActivationLayer):
        return activate(x, layer.function, layer.parameters)
    if isinstance(layer, Elementwise):
        return elementwise(layer, inputs, params)
    if isinstance(layer, ScaleShift):
        assert params is not None  # materialize gives every scale_shift its scale and shift
        return scale_shift(x, params, layer.activation)
    raise TypeError(f"{layer.type} is not a vector-unit layer")


# ---------------------------------------------------------------------------------------------------
# array layers


@dataclass(frozen=True)
class _Numerics:
    """What the scheme and the hardware fix for every array layer."""

    scheme: SchemeName
    variant: str | None
    acc_bits: int
    overflow: str
    keep: frozenset[str]
    weights: str = WeightFormatName.SYMMETRIC  # weight format: symmetric int8, or asymmetric with zero points
    granularity: WeightGranularity = "per_channel"  # one weight scale per output channel, or per tensor

    @cached_property
    def accumulator(self) -> Accumulator:
        return Accumulator(bits=self.acc_bits, overflow=self.overflow)

    def fp32(self) -> _Numerics:
        """The same hardware's numerics for the fp32 scheme (the layers a quantized run keeps float)."""
        return replace(self, scheme=SchemeName.FP32, variant=None)

    def prepared(self, view: GemmView, params: LayerParams) -> dict[str, object]:
        """The layer's kept weight codes when this scheme quantizes weights (see LayerParams.quantized_weight)."""
        if not SCHEMES[self.scheme].weights.quantized:
            return {}
        return {"prepared": Prepared(weight=self.weight_codes(view, params))}

    @cached_property
    def int4_group(self) -> int | None:
        """The group size of int4 group-wise weights, when this scheme quantizes weights in such a format."""
        return SCHEMES[self.scheme].weight_group(self.weights)

    def weight_codes(self, view: GemmView, params: LayerParams) -> QuantizedWeight:
        """The layer's weight codes in this run's weight format, kept with its parameters."""
        return params.quantized_weight(view.kind, self.granularity, self.weights)

    def run_layer_args(self, scheme: SchemeName | None = None) -> dict[str, object]:
        """run_layer's arguments for a float-activation scheme (static layers run on codes instead)."""
        scheme = scheme or self.scheme
        flavour = {"flavour": self.variant} if SCHEMES[scheme].runtime_activations and self.variant else {}
        return {
            "quantization": Quantization(scheme=scheme, weight_granularity=self.granularity, **flavour),
            "accumulator": self.accumulator,
        }


def _geometry(view: GemmView, layer: LayerBase) -> dict[str, object]:
    """run_layer's geometry from the program's GEMM view: a conv's im2col window, a transposed conv's
    scatter, and one GEMM per group (none for linear)."""
    if isinstance(layer, ConvTranspose2d):
        geometry = ConvTransposeGeometry(
            pair(layer.stride), sides(layer.padding), pair(layer.output_padding), pair(layer.dilation), view.gemms
        )
        return {"geometry": geometry}
    window = view.window
    if window is None:
        return {}
    return {"geometry": ConvGeometry.from_args(window.stride, window.padding, window.dilation, view.gemms)}


def _fused(layer: LayerBase) -> str | None:
    """The activation the requant unit / run_layer applies; GELU is left to the vector unit."""
    activation = getattr(layer, "activation", "none")
    return activation if activation in FUSED_ACTIVATIONS else None


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """Batch-first operand as ``[B, heads, T, D/heads]`` (a per-sample ``[T, D]`` split by columns)."""
    if heads == 1 or x.ndim == 4:
        return x
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)


def _matmul_operands(
    layer: Matmul, view: GemmView, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Both operands as the view's GEMMs (one per sample, head and broadcast batch item): ``[G, M, K]`` and
    ``[G, K, N]``, and the ``[B, ..., M]`` leading shape of the product (before a merge of heads). Leading
    dims broadcast as numpy's matmul, after the batch: a missing or size-1 dim repeats the other's."""
    a, b = _heads(a, layer.heads), _heads(b, layer.kv_heads or layer.heads)
    b = np.swapaxes(b, -1, -2) if layer.transpose_b else b
    if layer.kv_heads is not None and layer.kv_heads != layer.heads:
        # grouped-query: the heads sharing a kv head (consecutive, as torch's enable_gqa) stack into one GEMM's
        # rows, as lowered; the product's rows unstack back into [B, heads, M, N] by a reshape
        m, k, n = view.gemm_shape
        return a.reshape(view.gemms, m, k), b.reshape(view.gemms, k, n), (*a.shape[:-1],)
    rank = max(a.ndim, b.ndim)
    a, b = (x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in (a, b))
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, k, n = view.gemm_shape
    a, b = np.broadcast_to(a, (*lead, m, k)), np.broadcast_to(b, (*lead, k, n))
    return a.reshape(view.gemms, m, k), b.reshape(view.gemms, k, n), (*lead, m)


def _merge(layer: Matmul, y: np.ndarray) -> np.ndarray:
    """``[B, H, M, N]`` -> ``[B, M, H*N]`` when the layer merges heads."""
    if not layer.merge_heads:
        return y
    b, h, m, n = y.shape
    return y.transpose(0, 2, 1, 3).reshape(b, m, h * n)


def _counts(
    name: str,
    type_: str,
    stored: np.ndarray,
    results: list[LayerResult],
    num: _Numerics,
    qparams: QParams | None = None,
    vector_saturations: int = 0,
) -> LayerValues:
    """A layer's record from its GEMMs' results (counts summed, accumulator range over all)."""
    ranges = [rng for rng in (r.accumulator_range for r in results) if rng is not None]
    return LayerValues(
        name,
        type_,
        stored,
        results=tuple(results) if name in num.keep else (),
        accumulator_overflows=sum(r.accumulator_overflows for r in results),
        requant_saturations=sum(r.requant_saturations for r in results),
        input_saturations=sum(r.input_saturations for r in results),
        accumulator_min=min(lo for lo, _ in ranges) if ranges else None,
        accumulator_max=max(hi for _, hi in ranges) if ranges else None,
        qparams=qparams,
        vector_saturations=vector_saturations,
    )


# ---------------------------------------------------------------------------------------------------
# one executor per activation representation


class _FloatRun:
    """fp32 / woq / dynamic: float32 tensors between layers, array layers through run_layer.

    ``observe(name, tensor)`` sees every tensor as it is produced (calibration uses it).
    """

    def __init__(
        self,
        num: _Numerics,
        params: dict[str, LayerParams],
        observe: Callable[[str, np.ndarray], None] | None = None,
        float_layers: frozenset[str] = frozenset(),
    ):
        self.num = num
        self.params = params
        self.observe = observe or (lambda name, x: None)
        #: array layers the model computes in float32 whatever the scheme quantizes (a dynamic model's
        #: MatMuls of two activations, which quantize_dynamic leaves float: attention's Q K^T and P V)
        self.float_layers = float_layers

    def source(self, name: str, x: np.ndarray) -> np.ndarray:
        self.observe(name, x)
        return x

    @cached_property
    def fp32(self) -> _FloatRun:
        """The same run in fp32, for the layers the model keeps float (built once, on the first such layer)."""
        return _FloatRun(self.num.fp32(), self.params, self.observe)

    def layer(
        self, shapes: LayerShapes, view: GemmView | None, inputs: list[np.ndarray]
    ) -> tuple[np.ndarray, LayerValues]:
        layer = shapes.layer
        params = self.params.get(layer.name)
        if view is not None and layer.name in self.float_layers and self.num.scheme != SchemeName.FP32:
            return self.fp32.layer(shapes, view, inputs)
        if view is not None and isinstance(layer, Matmul):
            values = self._matmul(layer, view, *inputs)
            y = values.output
        elif view is not None and self.num.int4_group is not None:
            assert params is not None  # materialize gives every linear its weights
            y = self._int4_linear(layer, inputs[0], params)
            values = LayerValues(layer.name, layer.type, y)
        elif view is not None:
            assert params is not None  # materialize gives every conv / linear its weights
            res = run_layer(
                view.kind,
                inputs[0],
                params.weight,
                params.bias,
                activation=_fused(layer),
                **self.num.run_layer_args(),
                **self.num.prepared(view, params),
                **_geometry(view, layer),
            )
            y = res.output
            activation = getattr(layer, "activation", "none")
            if activation not in CLAMP_ACTIVATIONS:  # on the vector unit, after the requant target
                self.observe(layer.name + PRE_ACTIVATION, y)
                y = activate(y, activation)
            values = _counts(layer.name, layer.type, y, [res], self.num)
        else:
            y = vector_op(layer, inputs, params)
            values = LayerValues(layer.name, layer.type, y)
        self.observe(layer.name, y)
        return y, values

    def _int4_linear(self, layer: LayerBase, x: np.ndarray, params: LayerParams) -> np.ndarray:
        """A linear layer on int4 group-wise weights (weight ``[out, in]`` is ``W.T``): weight-only (woq) in
        float32 on the dequantized weights, or W4A8 (dynamic) with ORT ``accuracy_level`` 4's arithmetic;
        then the float bias and activation on the vector unit (docs/numerics.md, "int4 group-wise weights")."""
        gw = params.group_weights(self.num.weights)
        y = int4.matmul_weight_only(x, gw) if SCHEMES[self.num.scheme].float_gemm else int4.matmul_w4a8(x, gw).output
        if params.bias is not None:
            y = y + params.bias
        return activate(y, getattr(layer, "activation", "none"))

    def _matmul(self, layer: Matmul, view: GemmView, a: np.ndarray, b: np.ndarray) -> LayerValues:
        """One run_layer per GEMM of the view (sample, head): under dynamic both operands are quantized
        at run time, the first with its flavour (a per-tensor range over the whole operand), the second
        as the array's weight port takes it (symmetric int8 per column)."""
        a, b, lead = _matmul_operands(layer, view, a, b)
        plan, flavour = SCHEMES[self.num.scheme], self.num.variant
        args = self.num.run_layer_args(SchemeName.FP32 if plan.float_gemm else None)  # no weights to quantize
        if plan.runtime_activations and flavour and get_flavour(flavour).granularity == "per_tensor":
            args["prepared"] = Prepared(  # one range pass over the whole operand
                input_qparams=dynamic_qparams(a.reshape(-1, a.shape[-1]), flavour)
            )
        results = [run_layer("matmul", a[i], b[i], None, **args) for i in range(view.gemms)]
        y = np.stack([r.output for r in results]).reshape(*lead, b.shape[-1])
        if layer.alpha != 1.0:
            y = (y * np.float32(layer.alpha)).astype(np.float32)
        return _counts(layer.name, layer.type, _merge(layer, y), results, self.num)


#: ONNX Runtime's integer kernels for binary layers of two activations (QLinearAdd, QLinearMul)
ORT_BINARY = {"add": ort_vector.add, "mul": ort_vector.mul}


def _ort_binary(layer: Add | Elementwise, arity: int) -> Callable[..., tuple[np.ndarray, int]] | None:
    """ORT's kernel for an add / mul of two activations whose activation is none or a clamp, else None."""
    op = "add" if isinstance(layer, Add) else layer.op
    if arity != 2 or layer.activation not in ADD_CLAMPS:
        return None
    return ORT_BINARY.get(op)


def _clamp_codes(codes: np.ndarray, activation: str, qp: QParams, rule: QuantizeRule) -> np.ndarray:
    """A relu / relu6 on codes: quantizing is monotonic, so the code of ``clip(v, lo, hi)`` is the code
    clipped to the codes of ``lo`` and ``hi``."""
    low, high = ADD_CLAMPS[activation]
    bounds = [
        quantize_tensor(np.asarray([v], np.float32), qp, rule)[0][0] if np.isfinite(v) else None for v in (low, high)
    ]
    return np.clip(codes, bounds[0], bounds[1]) if bounds != [None, None] else codes


@dataclass(frozen=True)
class _Quantized:
    """A static tensor: codes and their per-tensor parameters."""

    codes: np.ndarray
    qparams: QParams

    def real(self) -> np.ndarray:
        return dequantize_tensor(self.codes, self.qparams)


@dataclass(frozen=True)
class _Float:
    """A float layer's float32 output the model gives no parameters for: a quantized model's runtime keeps it
    float for the next float layer (ResNet's last Sum -> Relu -> AveragePool in ORT)."""

    values: np.ndarray

    def real(self) -> np.ndarray:
        return self.values


class _StaticRun:
    """Full int8: every tensor stored as codes with calibrated parameters (``qparams`` by tensor name)."""

    def __init__(
        self,
        num: _Numerics,
        params: dict[str, LayerParams],
        qparams: dict[str, QParams],
        float_layers: frozenset[str] = frozenset(),
    ):
        self.num = num
        self.params = params
        self.qparams = qparams
        #: layers computed as fp32 between dequantize and quantize (WorkloadTensors.float_layers)
        self.float_layers = float_layers
        self.float_run = _FloatRun(num.fp32(), params)
        assert num.variant is not None, "a static run's variant is its requant mode"
        self.rule = get_mode(num.variant).input_rule  # the framework's QUANTIZE on the vector unit
        #: ONNX Runtime's requant mode: its QLinear* vector kernels' own arithmetic (accelsim.quant.ort_vector)
        self.ort = num.variant == RequantModeName.FLOAT_HALF_EVEN
        self.source_saturations: dict[str, int] = {}

    def _quantize(self, x: np.ndarray, name: str) -> tuple[_Quantized, int]:
        qp = self.qparams[name]
        codes, sats = quantize_tensor(x, qp, self.rule)
        return _Quantized(codes, qp), sats

    def source(self, name: str, x: np.ndarray) -> _Quantized | _Float:
        if name not in self.qparams:  # read by float layers only, and no parameters given: stays float
            return _Float(x)
        q, self.source_saturations[name] = self._quantize(x, name)
        return q

    def layer(
        self, shapes: LayerShapes, view: GemmView | None, tensors: list[_Quantized | _Float]
    ) -> tuple[_Quantized | _Float, LayerValues]:
        layer = shapes.layer
        name = layer.name
        inputs = [t for t in tensors if isinstance(t, _Quantized)]
        if name in self.float_layers or len(inputs) < len(tensors):  # a float input: the runtime's op is float too
            return self._float_layer(shapes, view, tensors)
        params = self.params.get(name)
        vector_sats = 0
        results: list[LayerResult] = []
        if view is not None and isinstance(layer, Matmul):
            out, results = self._matmul(layer, view, *inputs)
        elif view is not None:
            assert params is not None  # materialize gives every conv / linear its weights
            activation = getattr(layer, "activation", "none")
            vector_after = activation not in CLAMP_ACTIVATIONS
            target = self.qparams[name + PRE_ACTIVATION if vector_after else name]
            x = inputs[0]
            res = run_static_codes(
                view.kind,
                x.codes,
                x.qparams,
                self.num.weight_codes(view, params),
                params.static_bias(),
                target,
                requant_mode=self.num.variant,
                activation=_fused(layer),
                accumulator=self.num.accumulator,
                keep_accumulators=name in self.num.keep,
                **_geometry(view, layer),
            )
            results = [res]
            out = _Quantized(res.tensors["output_q"].values, target)
            if vector_after:
                out, vector_sats = self._activation(out, activation, name)
        elif isinstance(layer, MaxPool):
            x = inputs[0]
            out = _Quantized(maxpool(x.codes, layer, x.qparams.qmin), x.qparams)
        elif isinstance(layer, Flatten):
            x = inputs[0]
            out = _Quantized(x.codes.reshape(x.codes.shape[0], -1), x.qparams)
        elif isinstance(layer, (Reshape, Transpose, Slice)):  # the codes move exactly, their parameters with them
            out = _Quantized(layout(layer, [inputs[0].codes]), inputs[0].qparams)
        elif isinstance(layer, Resize) and layer.mode == "nearest":  # each output is an input's code
            out = _Quantized(resize(layer, inputs[0].codes), inputs[0].qparams)
        elif self.ort and (ort := self._ort_vector(layer, inputs, name)) is not None:
            out, vector_sats = ort
        elif isinstance(layer, Concat):
            out, vector_sats = self._concat(layer, inputs)
        elif isinstance(layer, Add) and layer.activation in ADD_CLAMPS:
            (a, b), qp = inputs, self.qparams[name]
            codes, vector_sats = add_tensors(a.codes, a.qparams, b.codes, b.qparams, qp, self.rule, layer.activation)
            out = _Quantized(codes, qp)
        else:
            out, vector_sats = self._quantize(vector_op(layer, [q.real() for q in inputs], params), name)
        values = _counts(
            name, layer.type, out.codes, results, self.num, qparams=out.qparams, vector_saturations=vector_sats
        )
        return out, values

    def _activation(self, x: _Quantized, activation: str, name: str) -> tuple[_Quantized, int]:
        """A GEMM layer's vector-unit activation on its requantized codes: dequantize, the float function,
        quantize; under ORT's mode a sigmoid is QLinearSigmoid's table (what ORT runs after a QLinearConv)."""
        if self.ort and activation == "sigmoid":
            qp = self.qparams[name]
            codes, sats = ort_vector.sigmoid(x.codes, x.qparams, qp)
            return _Quantized(codes, qp), sats
        return self._quantize(activate(x.real(), activation), name)

    def _float_layer(
        self, shapes: LayerShapes, view: GemmView | None, inputs: list[_Quantized | _Float]
    ) -> tuple[_Quantized | _Float, LayerValues]:
        """A layer the model's runtime computes in float32 between dequantize and quantize (ORT's unfused QDQ
        groups): the fp32 run's arithmetic on the dequantized inputs and the layer's float weights (a
        quantized model's are its codes dequantized), quantized to the output's parameters where the model
        has them, else passed on as float32 to the next float layer."""
        name = shapes.layer.name
        y, values = self.float_run.layer(shapes, view, [q.real() for q in inputs])
        if name not in self.qparams:
            return _Float(y), values
        out, sats = self._quantize(y, name)
        return out, replace(values, stored=out.codes, qparams=out.qparams, vector_saturations=sats)

    def _ort_vector(self, layer: LayerBase, inputs: list[_Quantized], name: str) -> tuple[_Quantized, int] | None:
        """The layers ONNX Runtime runs as a QLinear* kernel (QLinearAdd / Mul of two activations,
        QLinearAveragePool, QLinearGlobalAveragePool, QLinearSigmoid, QLinearConcat, QLinearSoftmax), with
        that kernel's arithmetic; None for the others. A relu / relu6 after an add or mul clamps the codes
        (quantizing is monotonic, so ``max(q, q(0))`` is the code of ``max(v, 0)``)."""
        qp, x = self.qparams[name], inputs[0]
        if isinstance(layer, AvgPool) and layer.global_pool:
            codes, sats = ort_vector.global_average_pool(x.codes, x.qparams, qp, (2, 3))
        elif isinstance(layer, AvgPool):
            assert layer.kernel is not None  # only global pools have no kernel
            hw = x.codes.shape[2:4]
            out_hw = spatial_out(hw, layer.kernel, layer.strides, layer.padding, 1, ceil_mode=layer.ceil_mode)
            kernel = pair(layer.kernel)
            pads = sides(layer.padding)
            codes, sats = ort_vector.average_pool(
                x.codes, x.qparams, qp, kernel, layer.strides, pads, out_hw, layer.count_include_pad
            )
        elif isinstance(layer, (Add, Elementwise)) and (binary := _ort_binary(layer, len(inputs))) is not None:
            rank = max(q.codes.ndim for q in inputs)
            a, b = (_with_rank(q.codes, rank) for q in inputs)
            codes, sats = binary(a, inputs[0].qparams, b, inputs[1].qparams, qp)
            codes = _clamp_codes(codes, layer.activation, qp, self.rule)
        elif (
            isinstance(layer, Elementwise)
            and (given := self._constant_codes(layer)) is not None
            and (binary := _ort_binary(layer, 2)) is not None
        ):
            c = given.codes.reshape(self.params[layer.name].weight.shape)  # the layer's per-sample constant
            xc = _with_rank(x.codes, max(x.codes.ndim, c.ndim + 1))
            (a, a_qp), (b, b_qp) = ((c, given.qparams), (xc, x.qparams))[:: 1 if layer.constant_first else -1]
            codes, sats = binary(a, a_qp, b, b_qp, qp)
            codes = _clamp_codes(codes, layer.activation, qp, self.rule)
        elif isinstance(layer, ActivationLayer) and layer.function == "sigmoid":
            codes, sats = ort_vector.sigmoid(x.codes, x.qparams, qp)
        elif isinstance(layer, Concat):
            parts = [(q.codes, q.qparams) for q in inputs]
            codes, sats = ort_vector.concat(parts, qp, _sample_axis(layer.axis, x.codes.ndim))
        elif isinstance(layer, Softmax) and not layer.causal:  # QLinearSoftmax has no mask
            scale, zero = ort_vector.affine(qp)
            axis = _sample_axis(layer.axis, x.codes.ndim)
            codes, sats = ort_vector.softmax(x.codes, ort_vector.affine(x.qparams)[0], scale, zero, axis)
        else:
            return None
        return _Quantized(codes, qp), sats

    def _constant_codes(self, layer: Elementwise) -> QuantizedWeight | None:
        """The codes a quantized model gives an elementwise layer's constant (None: a float constant)."""
        params = self.params.get(layer.name)
        return None if layer.constant is None or params is None else params.constant_codes()

    def _concat(self, layer: Concat, inputs: list[_Quantized]) -> tuple[_Quantized, int]:
        """The inputs' codes joined under the output's calibrated parameters: an input with those
        parameters is copied exactly, any other dequantized and quantized again (ONNX Runtime's
        QLinearConcat does the same, through a 256-entry table of the same values)."""
        qp, parts, saturations = self.qparams[layer.name], [], 0
        for q in inputs:
            same = np.array_equal(q.qparams.scale, qp.scale) and np.array_equal(q.qparams.zero_point, qp.zero_point)
            if same and q.qparams.dtype == qp.dtype:
                parts.append(q.codes)
            else:
                codes, sats = quantize_tensor(q.real(), qp, self.rule)
                parts.append(codes)
                saturations += sats
        return _Quantized(layout(layer, parts), qp), saturations

    def _matmul(
        self, layer: Matmul, view: GemmView, a: _Quantized, b: _Quantized
    ) -> tuple[_Quantized, list[LayerResult]]:
        """Both operands int8 with their calibrated per-tensor parameters; the second one's zero point is
        the array's weight zero point (the row-sum correction); ``alpha`` scales the requant multiplier."""
        a_codes, b_codes, lead = _matmul_operands(layer, view, a.codes, b.codes)
        out_qp = self.qparams[layer.name]
        # alpha * s_a * s_b / s_y == s_a * s_b / (s_y / alpha): the requant unit's multiplier absorbs alpha
        folded = QParams(out_qp.scale / np.float32(layer.alpha), out_qp.zero_point, out_qp.dtype)
        rq = make_requant_params(self.num.variant, float(a.qparams.scale[0]), b.qparams.scale, folded)
        results = []
        for i in range(view.gemms):  # one GEMM per (sample, head), as lowered
            acc = int_gemm(
                a_codes[i],
                b_codes[i],
                a_zero_point=int(a.qparams.zero_point[0]),
                b_zero_point=int(b.qparams.zero_point[0]),
                acc_bits=self.num.acc_bits,
                overflow=self.num.overflow,
            )
            out = requantize(acc.values, rq, axis=-1)
            tensors = {
                "input_q": TensorRecord(a_codes[i], a.qparams.dtype, a.qparams),
                "weight_q": TensorRecord(b_codes[i], b.qparams.dtype, b.qparams),
                "acc": TensorRecord(acc.values, dtype_name(acc.values.dtype)),
                "output_q": TensorRecord(out.codes, out_qp.dtype, out_qp),
            }
            settings = {"alpha": layer.alpha, "acc_bits": self.num.acc_bits, "overflow": self.num.overflow}
            results.append(
                LayerResult(
                    "matmul",
                    self.num.scheme,
                    self.num.variant,
                    tensors,
                    acc.overflows,
                    out.saturations,
                    requant=rq,
                    settings=settings,
                    acc_range=(out.acc_min, out.acc_max),
                )
            )
        codes = np.stack([r.tensors["output_q"].values for r in results]).reshape(*lead, b_codes.shape[-1])
        return _Quantized(_merge(layer, codes), out_qp), results


# ---------------------------------------------------------------------------------------------------
# whole networks


#: one step of the values: a workload layer's shapes and the GEMM view the program lowered it to (None:
#: the vector unit's layer)
Step = tuple[LayerShapes, GemmView | None]
Activation = TypeVar("Activation")


def program_steps(program: Program, workload: Workload) -> list[Step]:
    """The program's layers, in its order, with the workload's shapes they were lowered from.

    Refuses a program that is not this workload's (a layer missing on either side, or out of order)
    and a layer whose kind the program and the workload disagree on (an array layer without a GEMM
    view, a vector layer with one): the values compute exactly what the engine plays."""
    lowered = program.workload_layers
    shapes = workload.shapes
    if program.workload != workload.name or [layer.name for layer in lowered] != [s.layer.name for s in shapes]:
        raise AccelsimError(
            f"the program lowered for {program.workload!r} does not have the layers of workload {workload.name!r}",
            path="program",
        )
    for layer, s in zip(lowered, shapes):
        if (layer.view is not None) != isinstance(s.layer, GEMM_LAYERS):
            raise AccelsimError(
                f"layer {layer.name!r} ({s.layer.type}) is lowered {'with' if layer.view else 'without'} a GEMM view",
                path="program",
            )
    return [(s, layer.view) for layer, s in zip(lowered, shapes)]


class _Run(Protocol[Activation]):
    """How a scheme carries activations between layers: float arrays, or codes with their parameters."""

    def source(self, name: str, x: np.ndarray) -> Activation: ...

    def layer(
        self, shapes: LayerShapes, view: GemmView | None, inputs: list[Activation]
    ) -> tuple[Activation, LayerValues]: ...


def _execute(steps: list[Step], run: _Run[Activation], sources: dict[str, np.ndarray]) -> dict[str, LayerValues]:
    """Play the program's layers in order, each layer reading its inputs by name."""
    store = {name: run.source(name, x) for name, x in sources.items()}
    layers: dict[str, LayerValues] = {}
    for shapes, view in steps:
        store[shapes.layer.name], layers[shapes.layer.name] = run.layer(
            shapes, view, [store[n] for n in shapes.input_names]
        )
    return layers


#: the fp32 numerics calibration and SmoothQuant's statistics run the network with
_CALIBRATION_NUMERICS = _Numerics(SchemeName.FP32, None, 32, "wrap", frozenset())


class Calibration:
    """Observers of the fp32 network's tensors, fed one batch after another (each through the program of
    its batch size), then per-tensor parameters: what a static model is calibrated with."""

    def __init__(self, params: dict[str, LayerParams], observer: str = "minmax") -> None:
        _check(SchemeName.FP32, FlavourName.ONNX, observer)
        self.observer = observer
        self.observers: dict[str, Observer] = {}
        self.run = _FloatRun(_CALIBRATION_NUMERICS, params, self._observe)

    def _observe(self, name: str, x: np.ndarray) -> None:
        self.observers.setdefault(name, OBSERVERS[self.observer]()).observe(x)

    def feed(self, workload: Workload, program: Program, sources: dict[str, np.ndarray]) -> None:
        """One batch of sources (``workload.batch`` samples, the batch ``program`` is lowered for)."""
        _execute(program_steps(program, workload), self.run, sources)

    def qparams(self, dtype: str = "int8") -> dict[str, QParams]:
        return {name: obs.qparams(dtype=dtype) for name, obs in self.observers.items()}


def calibrate(
    workload: Workload, tensors: WorkloadTensors, program: Program, *, dtype: str = "int8", observer: str = "minmax"
) -> dict[str, QParams]:
    """Per-tensor activation parameters from the fp32 network on the calibration batch, one batch at a
    time, computed through ``program``'s layers and GEMM views (the program the static run plays)."""
    calibration = Calibration(tensors.params, observer)
    for batch in _calibration_batches(workload, tensors):
        calibration.feed(workload, program, batch)
    return calibration.qparams(dtype)


def _calibration_batches(workload: Workload, tensors: WorkloadTensors) -> Iterator[dict[str, np.ndarray]]:
    """The calibration sources a batch at a time (``workload.batch`` samples: the batch the program is lowered for)."""
    for k in range(tensors.calibration[INPUT].shape[0] // workload.batch):
        chunk = slice(k * workload.batch, (k + 1) * workload.batch)
        yield {name: x[chunk] for name, x in tensors.calibration.items()}


def channel_absmax(
    workload: Workload, tensors: WorkloadTensors, program: Program, names: set[str]
) -> dict[str, np.ndarray]:
    """Per channel (last axis), the largest ``|x|`` of each named tensor of the fp32 network over the calibration
    batch, one batch at a time through ``program``: SmoothQuant's activation statistic."""
    found: dict[str, np.ndarray] = {}

    def observe(name: str, x: np.ndarray) -> None:
        if name in names:
            peak = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
            found[name] = np.maximum(found[name], peak) if name in found else peak

    run = _FloatRun(_CALIBRATION_NUMERICS, tensors.params, observe)
    steps = program_steps(program, workload)
    for batch in _calibration_batches(workload, tensors):
        _execute(steps, run, batch)
    return found


def _check(scheme: str, flavour: str, observer: str, weights: str = WeightFormatName.SYMMETRIC) -> None:
    for value, allowed, what in (
        (scheme, SCHEMES, "scheme"),
        (flavour, DYNAMIC_FLAVOURS, "flavour"),
        (observer, OBSERVERS, "observer"),
        (weights, WEIGHT_FORMATS, "weights"),
    ):
        if value not in allowed:
            raise AccelsimError(f"unknown {what} {value!r}", path=what, allowed=list(allowed))


def run_values(
    workload: Workload,
    hw: HardwareConfig,
    scheme: str,
    *,
    flavour: str = FlavourName.ONNX,
    seed: int | None = None,
    tensors: WorkloadTensors | None = None,
    observer: str = "minmax",
    keep_results: Collection[str] = (),
    qparams: dict[str, QParams] | None = None,
    weights: str = WeightFormatName.SYMMETRIC,
    program: Program | None = None,
    weight_granularity: WeightGranularity = "per_channel",
) -> NetworkValues:
    """Run ``workload``'s numbers under ``scheme`` (fp32, woq, dynamic, static) on ``hw``'s datapath.

    ``flavour`` is the dynamic flavour; static uses ``hw.requant.rounding`` and calibrates with
    ``observer``. ``tensors`` (from :func:`materialize`) takes precedence over ``seed``; pass the
    same object to every scheme to skip re-drawing. ``keep_results`` names layers whose
    intermediates (every ``LayerResult``) are kept for ``accelsim explain``. ``qparams`` (from
    :func:`calibrate`) skips static calibration, as a deployed model has its parameters already.
    ``weights``: the weight format (``symmetric`` int8; ``asymmetric`` uint8 or ``asymmetric_int8`` with a
    zero point per channel, as ONNX Runtime's quantizer writes them; ``int4_g32`` ... ``int4_g128_zp``: int4
    group-wise, linear layers under woq and dynamic, see :mod:`accelsim.quant.int4`); fp32 has no quantized weights.
    ``program``: the lowered program the values compute (the one the engine plays; :func:`program_steps`);
    lowered here for ``scheme`` when not given, as a prepared model passes the one it compiled.
    ``weight_granularity``: one weight scale per output channel (default) or one per tensor.
    """
    _check(scheme, flavour, observer, weights)
    refuse_repeated(workload)
    if weight_granularity not in WEIGHT_GRANULARITIES:
        raise AccelsimError(
            f"unknown weight granularity {weight_granularity!r}", path="granularity", allowed=list(WEIGHT_GRANULARITIES)
        )
    if program is None:
        program = lower(workload, hw, scheme, **lowering_options(flavour, weights, weight_granularity))
    elif program.scheme != scheme:
        raise AccelsimError(f"the program is lowered for the {program.scheme} scheme, not {scheme}", path="program")
    steps = program_steps(program, workload)
    tensors = tensors if tensors is not None else materialize(workload, seed=seed)
    acc = hw.array.accumulator
    keep = frozenset(keep_results)
    name, plan = SchemeName(scheme), SCHEMES[SchemeName(scheme)]
    if not plan.calibrated:
        variant = flavour if plan.runtime_activations else None
        num = _Numerics(name, variant, acc.bits, acc.overflow, keep, weights, weight_granularity)
        layers = _execute(steps, _FloatRun(num, tensors.params, float_layers=tensors.float_layers), tensors.inputs)
        return NetworkValues(
            workload.name,
            scheme,
            num.variant,
            layers,
            weights=_weights_of(name, weights),
            outputs=tuple(workload.outputs),
        )
    mode = hw.requant.rounding
    if qparams is None or not _static_tensor_names(steps, tensors) <= qparams.keys():
        # a model's own parameters win; tensors it has none for are calibrated, except a float layer's output
        # (a quantized model's runtime keeps it float when the model quantizes it nowhere)
        calibrated = calibrate(workload, tensors, program, dtype=get_mode(mode).activation_dtype, observer=observer)
        floats = tensors.float_layers | _float_sources(steps, tensors)
        kept = {k: v for k, v in calibrated.items() if k not in floats}
        qparams = kept | (qparams or {})
    num = _Numerics(name, mode, acc.bits, acc.overflow, keep, weights, weight_granularity)
    run = _StaticRun(num, tensors.params, qparams, tensors.float_layers)
    layers = _execute(steps, run, tensors.inputs)
    return NetworkValues(
        workload.name, scheme, mode, layers, qparams, run.source_saturations, weights, outputs=tuple(workload.outputs)
    )


#: layers whose codes keep their input's parameters (the codes move or are selected, never recomputed)
CODE_MOVES = (MaxPool, Flatten, Reshape, Transpose)


def _static_tensor_names(steps: list[Step], tensors: WorkloadTensors) -> set[str]:
    """Every tensor a static run needs parameters for: the sources, each layer's output (not those that keep
    their input's, nor a float layer's, quantized only where a model gives parameters) and the requant
    target before a vector-unit activation."""
    names = set(tensors.inputs) - _float_sources(steps, tensors)
    for shapes, view in steps:
        layer = shapes.layer
        if isinstance(layer, CODE_MOVES) or layer.name in tensors.float_layers:
            continue
        names.add(layer.name)
        if view is not None and getattr(layer, "activation", "none") not in CLAMP_ACTIVATIONS:
            names.add(layer.name + PRE_ACTIVATION)
    return names


def _float_sources(steps: list[Step], tensors: WorkloadTensors) -> set[str]:
    """Sources only float layers read (a quantized model's LayerNormalization on the raw graph input): the
    model's runtime never quantizes them, so neither does the static run unless parameters are given."""
    if not tensors.float_layers:
        return set()
    readers: dict[str, set[str]] = {name: set() for name in tensors.inputs}
    for shapes, _ in steps:
        for source in set(shapes.input_names) & readers.keys():
            readers[source].add(shapes.layer.name)
    return {name for name, layers in readers.items() if layers and layers <= tensors.float_layers}


def _weights_of(scheme: SchemeName, weights: str) -> str:
    """The weight format a run used: fp32 keeps float weights, so it is always symmetric (no zero points)."""
    return weights if SCHEMES[scheme].weights.quantized else WeightFormatName.SYMMETRIC
