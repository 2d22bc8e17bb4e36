"""Workloads: an input shape, a batch, a seed and a graph of layers whose shapes are inferred at load.

Shapes are per sample (no batch dimension): ``[C, H, W]`` for images, ``[tokens, features]`` for
sequences, ``[features]`` for vectors. Every layer reads the previous layer unless it names its
``inputs``; the name ``input`` is the workload input.
"""

# No `from __future__ import annotations` here: pydantic would compile each field's annotation from its text
# on every start (the models are built at import).
import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from accelsim.config.ranges import LABEL_CHECK, PLAIN_NAME_CHECK, number, whole, whole_number
from accelsim.config.ranges import pair as pair_of
from accelsim.config.validation import FieldError, StrictModel, WithLaterFields, describe, first_problem

# The field types many layer fields share are named type aliases (TypeAliasType): pydantic builds each one's
# schema once per validator that uses it (a layer type's own, the workload's) and refers to it from every field,
# instead of building it again per field (2% of `accelsim validate resnet50` when the workload's validator held
# every layer type's schema; same errors, tests/test_config_errors.py).
#: what a conv2d, linear, add, elementwise or scale_shift applies to its output; relu and relu6 fuse into the
#: requant clamp under static int8, the others run on the vector unit (docs/workloads.md)
Activation = TypeAliasType(
    "Activation", Literal["none", "relu", "relu6", "gelu", "sigmoid", "tanh", "hard_swish", "silu"]
)
# Plausible ranges (docs/workloads.md gives the reason for each bound).
#: tensor extents, channels, features, groups: a 1M-token context or a 256k vocabulary still fits
MAX_DIM = 2**20
#: elements of one tensor of one sample: its int32 partial sums alone take 4 GiB
MAX_TENSOR_ELEMENTS = 2**30
#: weights of one layer: the largest weight matrices published (LLM embeddings) have ~10^9
MAX_LAYER_PARAMS = 2**32
MAX_LAYERS = 10_000
Dim = TypeAliasType("Dim", Annotated[int, whole(1, MAX_DIM)])
Window = int | list[int]
Pair = TypeAliasType("Pair", Annotated[Window, pair_of(1, 1024)])


def _sides_check(value: object) -> object:
    """Padding: an int, ``[height, width]`` or ``[top, left, bottom, right]`` (ONNX's asymmetric pads,
    TF's SAME with an odd total), each 0..1024."""
    if not isinstance(value, list):
        return whole_number(value, 0, 1024)
    if len(value) not in (2, 4):
        raise FieldError(
            (),
            f"a list of {len(value)} values",
            "a whole number from 0 to 1,024, or a list of two [height, width] or four [top, left, bottom, right]",
        )
    for i, item in enumerate(value):
        try:
            whole_number(item, 0, 1024)
        except FieldError as exc:
            raise FieldError((i,), exc.message, exc.allowed) from None
    return value


Padding = TypeAliasType("Padding", Annotated[Window, BeforeValidator(_sides_check)])
Label = TypeAliasType("Label", Annotated[str, LABEL_CHECK])
TensorShape = Annotated[list[Dim], Field(min_length=1, max_length=4)]
INPUT = "input"
Shape = tuple[int, ...]


def pair(value: int | list[int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``, ``[3, 1]`` -> ``(3, 1)``: height first, as in PyTorch."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def sides(padding: int | list[int]) -> tuple[int, int, int, int]:
    """Padding as ``(top, left, bottom, right)``: an int or ``[h, w]`` pads both sides of an axis alike."""
    if isinstance(padding, list) and len(padding) == 4:
        return padding[0], padding[1], padding[2], padding[3]
    h, w = pair(padding)
    return h, w, h, w


class LayerBase(StrictModel):
    name: Label
    inputs: list[Label] | None = Field(None, min_length=1)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name == INPUT:
            raise ValueError(f"'{INPUT}' names the workload input and cannot name a layer")
        return name

    #: how many inputs the layer takes (at least this many when ``variadic``)
    arity: ClassVar[int] = 1
    variadic: ClassVar[bool] = False
    type: str

    def infer(self, in_shapes: list[Shape]) -> Shape:
        """Output shape for these input shapes; raises FieldError when they do not fit."""
        raise NotImplementedError

    def weight_params(self, in_shapes: list[Shape]) -> int:
        """Learned parameters (weights and biases) for these input shapes."""
        return 0

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        """Multiply-accumulates per sample that run on the MAC array."""
        return 0


def _image_input(kind: str, in_shapes: list[Shape], in_channels: int | None, groups: int, out_channels: int) -> Shape:
    """A convolution's [C, H, W] input, checked against its declared channels and groups."""
    (shape,) = in_shapes
    if len(shape) != 3:
        raise FieldError(("inputs",), f"{kind} needs a [C, H, W] input, got {list(shape)}")
    c = shape[0]
    if in_channels is not None and in_channels != c:
        raise FieldError(("in_channels",), f"is {in_channels} but the input has {c} channels")
    if c % groups or out_channels % groups:
        raise FieldError(("groups",), f"{groups} does not divide in_channels {c} and out_channels {out_channels}")
    return shape


def _grouped_weight_params(out_channels: int, in_channels: int, groups: int, kernel: Pair, bias: bool) -> int:
    """Weights ``[out_channels, in_channels / groups, kh, kw]`` (conv2d's and conv_transpose2d's layout) and
    a bias per output channel."""
    kh, kw = pair(kernel)
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


class Conv2d(LayerBase):
    type: Literal["conv2d"]
    out_channels: Dim
    kernel: Pair
    stride: Pair = 1
    padding: Padding = 0
    dilation: Pair = 1
    groups: Dim = 1
    bias: bool = True
    activation: Activation = "none"
    in_channels: Dim | None = None

    def infer(self, in_shapes: list[Shape]) -> Shape:
        _, h, w = _image_input("conv2d", in_shapes, self.in_channels, self.groups, self.out_channels)
        return (self.out_channels, *spatial_out((h, w), self.kernel, self.stride, self.padding, self.dilation))

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return _grouped_weight_params(self.out_channels, in_shapes[0][0], self.groups, self.kernel, self.bias)

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        kh, kw = pair(self.kernel)
        return math.prod(out_shape) * (in_shapes[0][0] // self.groups) * kh * kw


class ConvTranspose2d(LayerBase):
    """Transposed 2-D convolution (ONNX ConvTranspose, PyTorch ConvTranspose2d): each input pixel scatters
    its kernel-sized patch, ``Ho = (H - 1)*sh - top - bottom + dh*(kh-1) + output_padding_h + 1``. Weights
    ``[out_channels, C/groups, kh, kw]`` as conv2d's (so per-channel parameters index axis 0 for both);
    lowered to a GEMM and a col2im scatter (docs/lowering.md)."""

    type: Literal["conv_transpose2d"]
    out_channels: Dim
    kernel: Pair
    stride: Pair = 1
    padding: Padding = 0
    output_padding: Annotated[Window, pair_of(0, 1023)] = 0
    dilation: Pair = 1
    groups: Dim = 1
    bias: bool = True
    activation: Activation = "none"
    in_channels: Dim | None = None

    def infer(self, in_shapes: list[Shape]) -> Shape:
        _, h, w = _image_input("conv_transpose2d", in_shapes, self.in_channels, self.groups, self.out_channels)
        for i, (op, s, d) in enumerate(zip(pair(self.output_padding), pair(self.stride), pair(self.dilation))):
            if op >= max(s, d):
                raise FieldError(
                    ("output_padding",), f"{op} is not below the stride {s} or the dilation {d}", "0 .. max(s, d) - 1"
                )
        top, left, bottom, right = sides(self.padding)
        out = []
        for size, k, s, d, lo, hi, op in zip(
            (h, w),
            pair(self.kernel),
            pair(self.stride),
            pair(self.dilation),
            (top, left),
            (bottom, right),
            pair(self.output_padding),
        ):
            extent = (size - 1) * s + d * (k - 1) + 1 + op - lo - hi
            if extent < 1:
                raise FieldError(("padding",), f"{[top, left, bottom, right]} crops the whole {size}-pixel output")
            out.append(extent)
        return (self.out_channels, out[0], out[1])

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return _grouped_weight_params(self.out_channels, in_shapes[0][0], self.groups, self.kernel, self.bias)

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        """Every input pixel times its whole kernel (the GEMM's products, those the padding crops included)."""
        kh, kw = pair(self.kernel)
        c, h, w = in_shapes[0]
        return h * w * c * (self.out_channels // self.groups) * kh * kw


class Linear(LayerBase):
    type: Literal["linear"]
    out_features: Dim
    bias: bool = True
    activation: Activation = "none"
    in_features: Dim | None = None

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if self.in_features is not None and self.in_features != shape[-1]:
            raise FieldError(("in_features",), f"is {self.in_features} but the input has {shape[-1]} features")
        return (*shape[:-1], self.out_features)

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return in_shapes[0][-1] * self.out_features + (self.out_features if self.bias else 0)

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return math.prod(out_shape) * in_shapes[0][-1]


class Matmul(LayerBase, WithLaterFields):
    """Activation x activation product, e.g. attention scores ``Q K^T`` split into heads."""

    #: kv_heads came after results were first stored: left out of dumps while None
    later_fields: ClassVar[dict[str, Any]] = {"kv_heads": None}

    type: Literal["matmul"]
    arity: ClassVar[int] = 2
    transpose_b: bool = False
    heads: Annotated[int, whole(1, 1024, "heads")] = 1
    alpha: Annotated[float, number(-1e6, 1e6)] = 1.0
    merge_heads: bool = False
    kv_heads: Annotated[int, whole(1, 1024, "heads")] | None = None
    """Grouped-query attention: operand b holds this many heads, each shared by ``heads / kv_heads`` heads of
    a (None: as many as ``heads``)."""

    @model_validator(mode="after")
    def _kv_heads_divide(self) -> Self:
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise FieldError(("kv_heads",), f"{self.kv_heads} does not divide heads {self.heads}", "a divisor of heads")
        return self

    def _operand(self, shape: Shape, which: str, heads: int, field: str = "heads") -> Shape:
        if heads == 1:
            if len(shape) < 2:
                raise FieldError(("inputs",), f"operand {which} needs at least 2 dims, got {list(shape)}")
            return shape
        if len(shape) == 2:
            if shape[1] % heads:
                raise FieldError((field,), f"{heads} does not divide operand {which}'s {shape[1]} features")
            return (heads, shape[0], shape[1] // heads)
        if len(shape) == 3 and shape[0] == heads:
            return shape
        raise FieldError(("inputs",), f"operand {which} {list(shape)} is neither [T, D] nor [{heads}, ., .]")

    def operands(self, in_shapes: list[Shape]) -> tuple[Shape, Shape]:
        """Both operands as ``[..., M, K]`` and ``[..., K, N]`` (b transposed if asked; b's grouped-query
        heads repeated to a's)."""
        a = self._operand(in_shapes[0], "a", self.heads)
        b = self._operand(in_shapes[1], "b", self.kv_heads or self.heads, "kv_heads" if self.kv_heads else "heads")
        if self.kv_heads is not None and self.kv_heads != self.heads:
            if len(b) != 3:
                raise FieldError(("kv_heads",), f"needs a [T, D] operand b split into heads, got {list(in_shapes[1])}")
            b = (self.heads, *b[1:])
        if self.transpose_b:
            b = (*b[:-2], b[-1], b[-2])
        return a, b

    def batch_dims(self, in_shapes: list[Shape]) -> Shape:
        """The product's leading dims: both operands' leading dims broadcast as numpy's matmul does (a
        missing or size-1 dim repeats the other operand's)."""
        a, b = self.operands(in_shapes)
        lead_a, lead_b = a[:-2], b[:-2]
        rank = max(len(lead_a), len(lead_b))
        lead_a, lead_b = (1,) * (rank - len(lead_a)) + lead_a, (1,) * (rank - len(lead_b)) + lead_b
        if any(x != y and 1 not in (x, y) for x, y in zip(lead_a, lead_b)):
            raise FieldError(("inputs",), f"leading dims {list(a[:-2])} and {list(b[:-2])} do not broadcast")
        return tuple(max(x, y) for x, y in zip(lead_a, lead_b))

    def infer(self, in_shapes: list[Shape]) -> Shape:
        a, b = self.operands(in_shapes)
        if a[-1] != b[-2]:
            raise FieldError(("inputs",), f"cannot multiply {list(a)} by {list(b)}")
        out = (*self.batch_dims(in_shapes), a[-2], b[-1])
        if self.merge_heads:
            if len(out) != 3:
                raise FieldError(("merge_heads",), f"needs a [heads, M, N] product, got {list(out)}")
            return (out[1], out[0] * out[2])
        return out

    def macs(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        a, b = self.operands(in_shapes)
        return math.prod(self.batch_dims(in_shapes)) * a[-2] * a[-1] * b[-1]


class Pool(LayerBase):
    kernel: Pair | None = None
    stride: Pair | None = None
    padding: Padding = 0
    global_pool: bool = False
    #: output extents round up (ONNX / PyTorch ``ceil_mode``): a last window may run past the padding,
    #: as long as it starts inside the input or its leading padding
    ceil_mode: bool = False

    @model_validator(mode="after")
    def _kernel_or_global(self) -> Self:
        if self.global_pool == (self.kernel is not None):
            raise FieldError(("kernel",), "give a kernel, or global_pool: true without a kernel")
        return self

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(shape) != 3:
            raise FieldError(("inputs",), f"pooling needs a [C, H, W] input, got {list(shape)}")
        c, h, w = shape
        if self.global_pool:
            return (c, 1, 1)
        assert self.kernel is not None  # _kernel_or_global
        kh, kw = pair(self.kernel)
        pads = sides(self.padding)
        if any(2 * p > k for p, k in zip(pads, (kh, kw, kh, kw))):
            raise FieldError(("padding",), f"{list(pads)} is more than half the kernel {[kh, kw]} on a side")
        return (c, *spatial_out((h, w), self.kernel, self.strides, self.padding, 1, ceil_mode=self.ceil_mode))

    @property
    def strides(self) -> tuple[int, int]:
        """The window's step: the kernel unless given."""
        assert self.kernel is not None  # only windowed pools step
        return pair(self.stride if self.stride is not None else self.kernel)

    def overhang(self, hw: tuple[int, int], out: tuple[int, int]) -> tuple[int, int]:
        """Rows and columns ``ceil_mode`` windows read past the bottom / right padding (no value there)."""
        assert self.kernel is not None  # only windowed pools have windows
        top, left, bottom, right = sides(self.padding)
        return tuple(
            max(0, (o - 1) * s + k - (size + lo + hi))
            for size, o, s, k, lo, hi in zip(hw, out, self.strides, pair(self.kernel), (top, left), (bottom, right))
        )


class MaxPool(Pool):
    type: Literal["maxpool"]


class AvgPool(Pool):
    type: Literal["avgpool"]
    #: the padding taps count in the divisor (as zeros); default: only the in-image taps count
    #: (ONNX count_include_pad=0, TFLite, and what accelsim always computed). Taps of a ceil_mode
    #: overhang never count, as in PyTorch and ONNX Runtime.
    count_include_pad: bool = False


class Add(LayerBase):
    """Element-wise sum, e.g. a residual connection; runs on the vector unit."""

    type: Literal["add"]
    arity: ClassVar[int] = 2
    activation: Activation = "none"

    def infer(self, in_shapes: list[Shape]) -> Shape:
        a, b = in_shapes
        if a != b:
            raise FieldError(("inputs",), f"shapes differ: {list(a)} and {list(b)}")
        return a


class Flatten(LayerBase):
    type: Literal["flatten"]

    def infer(self, in_shapes: list[Shape]) -> Shape:
        return (math.prod(in_shapes[0]),)


#: per-sample axes of a layout layer: tensors have at most 8 (ShuffleNet's channel shuffle uses 4)
MAX_RANK = 8
Axis = Annotated[int, whole(-MAX_RANK, MAX_RANK - 1, "(negative counts from the last)")]


def _axis(axis: int, rank: int, field: str = "axis") -> int:
    """``axis`` of a per-sample tensor of ``rank`` dims, negative counting from the end."""
    if not -rank <= axis < rank:
        raise FieldError((field,), f"{axis} is not an axis of a {rank}-dim per-sample tensor", f"{-rank} .. {rank - 1}")
    return axis % rank


class Softmax(LayerBase):
    """Softmax over one per-sample axis: the last by default (attention probabilities), another for an ONNX
    Softmax over the channels of ``[C, H, W]``. Priced per element whatever the axis (the vector unit reads
    each row once for the max, once for the sum)."""

    type: Literal["softmax"]
    axis: Axis = -1
    #: attention's causal mask on ``[..., queries, keys]`` scores: query ``i`` sees keys ``0 .. i + keys - queries``
    #: (aligned to the last key, so a prefill after a cache of ``keys - queries`` rows and a decode step are both
    #: a real decoder's); the masked scores get probability 0
    causal: bool = False

    def infer(self, in_shapes: list[Shape]) -> Shape:
        shape = in_shapes[0]
        axis = _axis(self.axis, len(shape))
        if self.causal and (axis != len(shape) - 1 or len(shape) < 2 or shape[-1] < shape[-2]):
            raise FieldError(
                ("causal",),
                f"needs the softmax over the last axis of [..., queries, keys] scores with keys >= queries; the "
                f"input is {list(shape)} and the axis {self.axis}",
                "causal: false, or axis -1 on attention scores",
            )
        return shape


class ReduceMean(LayerBase):
    """The mean over the last per-sample axis, kept as a dim of 1 (ONNX ReduceMean, keepdims): the mean and
    variance of a written-out LayerNorm a quantized model keeps as steps of their own; vector unit, float32."""

    type: Literal["reduce_mean"]

    def infer(self, in_shapes: list[Shape]) -> Shape:
        return (*in_shapes[0][:-1], 1)


class LayerNorm(LayerBase):
    """Normalization over the last dimension with a learned scale and shift."""

    type: Literal["layernorm"]
    eps: Annotated[float, number(1e-12, 1.0)] = 1e-5

    def infer(self, in_shapes: list[Shape]) -> Shape:
        return in_shapes[0]

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return 2 * in_shapes[0][-1]


class RmsNorm(LayerBase):
    """Root-mean-square normalization over the last dimension with a learned scale (Llama's RMSNorm):
    ``x / sqrt(mean(x^2) + eps) * weight``; no centring, no shift."""

    type: Literal["rmsnorm"]
    eps: Annotated[float, number(1e-12, 1.0)] = 1e-5

    def infer(self, in_shapes: list[Shape]) -> Shape:
        return in_shapes[0]

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return in_shapes[0][-1]


class Rotary(LayerBase):
    """Rotary position embedding (RoFormer; Llama's ``apply_rotary_pos_emb``) on a ``[T, heads*d]`` query or
    key: in each head, element ``i < d/2`` and its partner ``i + d/2`` are rotated by the angle
    ``(position + t) * base^(-2i/d)`` of token ``t``. ``position`` is the first token's (a decode step's
    context length); vector unit."""

    type: Literal["rotary"]
    heads: Annotated[int, whole(1, 1024, "heads")]
    base: Annotated[float, number(1.0, 1e9)] = 10000.0
    position: Annotated[int, whole(0, MAX_DIM)] = 0

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(shape) != 2:
            raise FieldError(("inputs",), f"rotary needs a [tokens, features] input, got {list(shape)}")
        if shape[1] % (2 * self.heads):
            raise FieldError(
                ("heads",), f"{shape[1]} features do not split into {self.heads} heads of an even size", "a divisor"
            )
        return shape


#: how a KV cache stores its keys or values: the activations' dtype, or int8 with one float32 scale per head per token
KvDtype = Literal["activation", "int8"]
#: bytes of one int8 KV cache scale (float32, per head per token)
KV_SCALE_BYTES = 4


def kv_int8_bytes(elements: int, head_dim: int) -> int:
    """Bytes of ``elements`` of an int8 KV cache: the codes and a float32 scale per head per token (per
    ``head_dim`` elements)."""
    return elements + -(-elements // head_dim) * KV_SCALE_BYTES


class KvCache(LayerBase):
    """A KV cache: the DRAM-resident keys or values of ``context`` earlier tokens, to which this step's
    ``[T, kv_heads*d]`` rows are appended; the output is the whole cache ``[context + T, kv_heads*d]``, read in full
    by the attention matmul it feeds (operand b). A prefill has ``context: 0``; a decode step one new token
    and the context length so far."""

    type: Literal["kv_cache"]
    heads: Annotated[int, whole(1, 1024, "heads")]
    context: Annotated[int, whole(0, MAX_DIM, "tokens")] = 0
    dtype: KvDtype = "activation"

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(shape) != 2:
            raise FieldError(("inputs",), f"kv_cache needs a [tokens, features] input, got {list(shape)}")
        if shape[1] % self.heads:
            raise FieldError(("heads",), f"{self.heads} does not divide the input's {shape[1]} features")
        return (self.context + shape[0], shape[1])


#: workload-level fields the layers take when they set none of their own: field -> {layer type: layer field}.
#: A decode step's context length is one number, though the rotary and kv_cache layers each use it.
WORKLOAD_DEFAULTS: dict[str, dict[str, str]] = {
    "context": {"rotary": "position", "kv_cache": "context"},
    "kv_cache_dtype": {"kv_cache": "dtype"},
}


def layers_taking(layers: Any, field: str) -> list[int]:
    """Indices of the layers (as written: mappings) that take the workload's ``field``, having no value of their own."""
    takes = WORKLOAD_DEFAULTS[field]
    if not isinstance(layers, list):
        return []
    return [i for i, layer in enumerate(layers) if _own_field(layer, takes) not in (None, *layer)]


def _own_field(layer: Any, takes: dict[str, str]) -> str | None:
    """The field of ``layer`` (as written) that a workload default fills, None for other layers or malformed ones."""
    kind = layer.get("type") if isinstance(layer, dict) else None
    return takes.get(kind) if isinstance(kind, str) else None


def _some_layer_has(layers: list[Any], takes: dict[str, str], value: Any) -> bool:
    """Whether a layer of the types that take a workload default already holds ``value`` (a dumped workload:
    its layers hold the value they took, so it validates again)."""
    return any((own := _own_field(layer, takes)) is not None and layer.get(own) == value for layer in layers)


def _passes_own_check(field: str, value: Any) -> bool:
    """Whether a workload-level default is a value its layers' field accepts (else its own check reports it)."""
    if field == "kv_cache_dtype":
        return value in get_args(KvDtype)
    try:
        whole_number(value, 0, MAX_DIM)
    except FieldError:
        return False
    return True


class Concat(LayerBase):
    """Tensors joined along one per-sample axis (SqueezeNet's fire modules, Inception's branches); the
    other dims must agree. Moves bytes only: the vector unit's load/store streams (docs/workloads.md)."""

    type: Literal["concat"]
    arity: ClassVar[int] = 2
    variadic: ClassVar[bool] = True
    axis: Axis = 0

    def infer(self, in_shapes: list[Shape]) -> Shape:
        first = in_shapes[0]
        axis = _axis(self.axis, len(first))
        for shape in in_shapes[1:]:
            if len(shape) != len(first) or any(x != y for i, (x, y) in enumerate(zip(shape, first)) if i != axis):
                raise FieldError(("inputs",), f"{list(shape)} and {list(first)} differ outside axis {axis}")
        return (*first[:axis], sum(s[axis] for s in in_shapes), *first[axis + 1 :])


class Transpose(LayerBase):
    """Per-sample dims permuted (``perm[i]`` is the input axis output axis ``i`` reads; the batch stays
    first). Moves bytes only."""

    type: Literal["transpose"]
    perm: Annotated[list[Annotated[int, whole(0, MAX_RANK - 1)]], Field(min_length=1, max_length=MAX_RANK)]

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if sorted(self.perm) != list(range(len(shape))):
            raise FieldError(("perm",), f"{self.perm} is not a permutation of the {len(shape)} axes of {list(shape)}")
        return tuple(shape[i] for i in self.perm)


class Reshape(LayerBase):
    """The same elements under another per-sample shape (Squeeze, Unsqueeze, Flatten at any axis,
    ShuffleNet's channel shuffle); one ``-1`` takes what is left. Free: no data moves."""

    type: Literal["reshape"]
    shape: Annotated[
        list[Annotated[int, whole(-1, MAX_DIM, "(-1: what is left)")]], Field(min_length=1, max_length=MAX_RANK)
    ]

    def infer(self, in_shapes: list[Shape]) -> Shape:
        elements = math.prod(in_shapes[0])
        if self.shape.count(-1) > 1 or 0 in self.shape:
            raise FieldError(("shape",), f"{self.shape} has more than one -1 or a 0", "extents, and at most one -1")
        known = math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape and elements % known == 0:
            return tuple(elements // known if d == -1 else d for d in self.shape)
        if known != elements:
            raise FieldError(
                ("shape",), f"{self.shape} does not hold the {elements:,} elements of {list(in_shapes[0])}"
            )
        return tuple(self.shape)


class Slice(LayerBase):
    """Elements ``start, start + step, ...`` below ``end`` of one per-sample axis (ONNX Slice on an
    activation: attention's q / k / v split). Moves bytes only: a strided DMA fetches the kept elements."""

    type: Literal["slice"]
    axis: Axis = 0
    start: Annotated[int, whole(0, MAX_DIM - 1)] = 0
    end: Annotated[int, whole(1, MAX_DIM)]
    step: Annotated[int, whole(1, MAX_DIM)] = 1

    def infer(self, in_shapes: list[Shape]) -> Shape:
        shape = in_shapes[0]
        axis = _axis(self.axis, len(shape))
        extent = shape[axis]
        if self.end > extent:
            raise FieldError(("end",), f"{self.end} is past the {extent} elements of axis {axis}", f"1 .. {extent}")
        if self.start >= self.end:
            raise FieldError(("start",), f"{self.start} is not below end {self.end}", f"0 .. {self.end - 1}")
        return (*shape[:axis], -(-(self.end - self.start) // self.step), *shape[axis + 1 :])


#: how a resize maps an output index to an input coordinate (ONNX Resize's coordinate_transformation_mode)
CoordinateMode = Literal["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
#: how nearest resizing rounds that coordinate (ONNX Resize's nearest_mode)
NearestMode = Literal["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
ResizeScale = Annotated[float, number(1 / 1024, 1024.0)]


class Resize(LayerBase):
    """Height and width of a ``[C, H, W]`` input resized by ``scale`` or to ``size``, as ONNX Resize on the
    last two axes: nearest or (bi)linear, ONNX's coordinate transformations; vector unit (docs/workloads.md)."""

    type: Literal["resize"]
    mode: Literal["nearest", "linear"] = "nearest"
    scale: Annotated[list[ResizeScale], Field(min_length=2, max_length=2)] | None = None
    size: Annotated[list[Dim], Field(min_length=2, max_length=2)] | None = None
    coordinate_transformation: CoordinateMode = "half_pixel"
    nearest_mode: NearestMode | None = None

    @model_validator(mode="after")
    def _scale_or_size(self) -> Self:
        if (self.scale is None) == (self.size is None):
            raise FieldError(("scale",), "give a scale or a size (one of them)", "scale: [h, w] or size: [Ho, Wo]")
        if self.nearest_mode is not None and self.mode != "nearest":
            raise FieldError(("nearest_mode",), f"is not a field of {self.mode} resizing", "nearest_mode with nearest")
        return self

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(shape) != 3:
            raise FieldError(("inputs",), f"resize needs a [C, H, W] input, got {list(shape)}")
        c, h, w = shape
        out = self.extents((h, w))
        if min(out) < 1 or max(out) > MAX_DIM:
            raise FieldError(("scale",), f"{self.scale} makes {[h, w]} into {list(out)}", f"extents 1 .. {MAX_DIM:,}")
        return (c, *out)

    def extents(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Output height and width: the size, else ``floor(extent * scale)`` (ONNX Resize)."""
        if self.size is not None:
            return self.size[0], self.size[1]
        assert self.scale is not None  # _scale_or_size
        return math.floor(hw[0] * self.scale[0]), math.floor(hw[1] * self.scale[1])

    def scales(self, hw: tuple[int, int], out: tuple[int, int]) -> tuple[float, float]:
        """The scale each axis's coordinate transformation divides by: the given scale, else out / in (ONNX)."""
        if self.scale is not None:
            return self.scale[0], self.scale[1]
        return out[0] / hw[0], out[1] / hw[1]


class Lrn(LayerBase):
    """Local response normalization across channels (AlexNet, ZFNet, GoogLeNet), ONNX's definition:
    ``y = x / (bias + alpha / size * sum of x^2 over the size channels around c) ** beta``; vector unit, fp32."""

    type: Literal["lrn"]
    size: Annotated[int, whole(1, 1024, "channels")]
    alpha: Annotated[float, number(0.0, 1e6)] = 1e-4
    beta: Annotated[float, number(0.0, 100.0)] = 0.75
    bias: Annotated[float, number(1e-12, 1e6)] = 1.0

    def infer(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(shape) < 2:
            raise FieldError(("inputs",), f"lrn needs a [C, ...] input with spatial dims, got {list(shape)}")
        return shape


#: standalone activation functions and the parameters each takes, with ONNX's defaults (None: no default)
ACTIVATION_PARAMETERS: dict[str, dict[str, float | None]] = {
    "relu": {},
    "relu6": {},
    "clip": {"min": None, "max": None},
    "leaky_relu": {"alpha": 0.01},
    "sigmoid": {},
    "tanh": {},
    "hard_sigmoid": {"alpha": 0.2, "beta": 0.5},
    "hard_swish": {},
    "gelu": {},
    "erf": {},
    "silu": {},
    "square": {},
    "sqrt": {},
}
ActivationFunction = Literal[
    "relu",
    "relu6",
    "clip",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "hard_swish",
    "gelu",
    "erf",
    "silu",
    "square",
    "sqrt",
]
Coefficient = Annotated[float, number(-1e6, 1e6)]


class ActivationLayer(LayerBase):
    """An activation function on its own (no layer before it to fuse into); vector unit, shape kept."""

    type: Literal["activation"]
    function: ActivationFunction
    alpha: Coefficient | None = None
    beta: Coefficient | None = None
    min: Coefficient | None = None
    max: Coefficient | None = None

    @model_validator(mode="after")
    def _parameters_fit(self) -> Self:
        takes = ACTIVATION_PARAMETERS[self.function]
        for key in ("alpha", "beta", "min", "max"):
            if getattr(self, key) is not None and key not in takes:
                allowed = ", ".join(takes) or "none"
                raise FieldError((key,), f"is not a parameter of {self.function}", f"{self.function} takes: {allowed}")
        if self.function == "clip":
            if self.min is None and self.max is None:
                raise FieldError(("min",), "clip needs a min, a max or both")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise FieldError(("max",), f"{self.max:g} is below min {self.min:g}")
        return self

    @property
    def parameters(self) -> dict[str, float | None]:
        """The function's parameters, defaults filled in (clip: None for an open side)."""
        defaults = ACTIVATION_PARAMETERS[self.function]
        return {key: default if getattr(self, key) is None else getattr(self, key) for key, default in defaults.items()}

    def infer(self, in_shapes: list[Shape]) -> Shape:
        return in_shapes[0]


def broadcast(a: Shape, b: Shape) -> Shape | None:
    """numpy's broadcast of two per-sample shapes (aligned on the right), None when they do not fit."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x, y = (s[-i] if i <= len(s) else 1 for s in (a, b))
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


class Elementwise(LayerBase):
    """add / sub / mul / div of two activations, or of one and a constant (``<layer>.weight``, shape
    ``constant``), with numpy broadcasting of the per-sample shapes; vector unit.

    Two activations of one shape summed are the ``add`` layer (its static form adds in the integer
    domain): ``op: add`` here takes a constant or a broadcast."""

    type: Literal["elementwise"]
    arity: ClassVar[int] = 1  # one input and a constant, or two inputs: infer checks which
    variadic: ClassVar[bool] = True
    op: Literal["add", "sub", "mul", "div"]
    constant: TensorShape | None = None
    constant_first: bool = False
    activation: Activation = "none"

    @model_validator(mode="after")
    def _constant_first_needs_constant(self) -> Self:
        if self.constant_first and self.constant is None:
            raise FieldError(("constant_first",), "needs a constant operand (the constant field)")
        return self

    def operand_shapes(self, in_shapes: list[Shape]) -> tuple[Shape, Shape]:
        """The two operands' per-sample shapes, left first."""
        if self.constant is None:
            return in_shapes[0], in_shapes[1]
        x, c = in_shapes[0], tuple(self.constant)
        return (c, x) if self.constant_first else (x, c)

    def infer(self, in_shapes: list[Shape]) -> Shape:
        want = 1 if self.constant is not None else 2
        if len(in_shapes) != want:
            reads = "one input and its constant" if want == 1 else "two inputs (or one and a constant)"
            raise FieldError(("inputs",), f"elementwise reads {reads}, got {len(in_shapes)} inputs")
        a, b = self.operand_shapes(in_shapes)
        if self.constant is None and self.op == "add" and a == b:
            raise FieldError(("op",), f"adds two activations of one shape {list(a)}: that is the add layer")
        out = broadcast(a, b)
        if out is None or len(out) > 4:
            raise FieldError(
                ("constant" if self.constant is not None else "inputs",),
                f"shapes {list(a)} and {list(b)} do not broadcast to 1..4 dims",
            )
        return out

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return math.prod(self.constant) if self.constant is not None else 0


class ScaleShift(LayerBase):
    """Per-channel ``x * scale[c] + shift[c]`` on a ``[C, ...]`` tensor (``<layer>.weight`` / ``.bias``): a
    BatchNormalization with no conv before it to fold into (DenseNet); vector unit."""

    type: Literal["scale_shift"]
    activation: Activation = "none"

    def infer(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes[0]) < 2:
            raise FieldError(("inputs",), f"needs a [C, ...] input with a channel axis, got {list(in_shapes[0])}")
        return in_shapes[0]

    def weight_params(self, in_shapes: list[Shape]) -> int:
        return 2 * in_shapes[0][0]


#: every layer type, in the order an unknown ``type``'s message lists them
LAYER_TYPES: tuple[type[LayerBase], ...] = (
    Conv2d,
    Linear,
    Matmul,
    MaxPool,
    AvgPool,
    Add,
    Flatten,
    Softmax,
    LayerNorm,
    ReduceMean,
    RmsNorm,
    Rotary,
    KvCache,
    Concat,
    Transpose,
    Reshape,
    Lrn,
    Slice,
    Resize,
    ConvTranspose2d,
    ActivationLayer,
    Elementwise,
    ScaleShift,
)
_BY_TYPE: dict[str, type[LayerBase]] = {get_args(cls.model_fields["type"].annotation)[0]: cls for cls in LAYER_TYPES}


def _layer(value: Any) -> LayerBase:
    """A layer, validated by the model its ``type`` names. Not a discriminated union of the layer models: the
    workload's validator would then hold all of their schemas, built in every process that loads a workload
    (~18% of `accelsim validate resnet50`); each type's own validator is built when a workload first uses it."""
    if isinstance(value, LayerBase):
        return value
    if not isinstance(value, dict):
        raise FieldError(
            (),
            f"input should be a valid dictionary or object to extract fields from, got {describe(value)}",
            "a mapping",
        )
    if "type" not in value:
        raise FieldError(("type",), "required field is missing")
    kind = value["type"]
    model = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise FieldError(("type",), f"unknown type {describe(str(kind))}", ", ".join(_BY_TYPE))
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise first_problem(model, exc) from None


#: a layer of any type (:func:`_layer`); dumped by its own model's serializer
Layer = Annotated[SerializeAsAny[LayerBase], PlainValidator(_layer)]
#: layer types that run on the MAC array (lowered to GEMMs); the others run on the vector unit
GEMM_LAYERS = (Conv2d, ConvTranspose2d, Linear, Matmul)


def spatial_out(
    hw: tuple[int, int],
    kernel: int | list[int],
    stride: int | list[int] | tuple[int, int],
    padding: int | list[int],
    dilation: int | list[int],
    *,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """Output height and width of a sliding window, as PyTorch computes them (floor; with ``ceil_mode``
    rounded up, dropping a last window that would start past the input and its leading padding)."""
    out = []
    top, left, bottom, right = sides(padding)
    strides = stride if isinstance(stride, tuple) else pair(stride)
    for size, k, s, lo, hi, d in zip(hw, pair(kernel), strides, (top, left), (bottom, right), pair(dilation)):
        span, padded = d * (k - 1) + 1, size + lo + hi
        if padded < span:
            raise FieldError(("kernel",), f"window {span} is larger than the padded input {padded}")
        extent = -(-(padded - span) // s) + 1 if ceil_mode else (padded - span) // s + 1
        if ceil_mode and (extent - 1) * s >= size + lo:
            extent -= 1
        out.append(extent)
    return out[0], out[1]


@dataclass(frozen=True)
class LayerShapes:
    """What shape inference knows about one layer (per sample, batch excluded)."""

    layer: LayerBase
    input_names: tuple[str, ...]
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    macs: int
    params: int


@dataclass(frozen=True)
class WeightsBytes:
    """A workload's ``weights_file`` as read, once: its bytes (parsed into the layers' weights) and their
    sha256 (a sweep point's id, a results folder's configuration), so both describe the same bytes even
    if the file is replaced while a run goes on."""

    path: Path
    data: bytes = dataclass_field(repr=False)
    sha256: str


#: most identical blocks one workload repeats (the deepest LLMs have ~100 to 130 decoder layers)
MAX_REPEAT = 1024


class Quantized(StrictModel):
    """A quantized model's own arithmetic (``accelsim import onnx MODEL_int8.onnx`` writes it): the weights
    file holds its weight codes, scales, zero points, int32 biases and activation parameters
    (accelsim.onnx.quantized_file), which every run uses instead of quantizing or calibrating."""

    scheme: Literal["static", "dynamic"]
    """The scheme the model is: static (activation parameters given) or dynamic (computed at run time)."""
    weights: Literal["symmetric", "asymmetric", "asymmetric_int8"]
    """The format of its weight codes (checked against the codes): an int8 format; int4 group-wise models
    (ORT MatMulNBits) are not imported."""
    requant: Literal["float_half_even"]
    """ONNX Runtime's requant arithmetic, the only one its models run with."""
    float_layers: list[Label] = Field(default=[])
    """Layers ONNX Runtime computes in float32 between DequantizeLinear and QuantizeLinear (its unfused QDQ
    groups): the static run computes them so too, on the dequantized codes and weights."""


class Workload(WithLaterFields):
    """A network to run: loaded from ``workloads/*.yaml``, shapes inferred and checked at load."""

    #: top-level fields added after workloads' results were first stored (left out of dumps at their default)
    later_fields: ClassVar[dict[str, Any]] = {
        "outputs": [],
        "quantized": None,
        "repeat": 1,
        "final_layers": [],
        "context": None,
        "kv_cache_dtype": None,
    }

    schema_version: Literal[1]
    name: Annotated[str, PLAIN_NAME_CHECK]
    description: str = ""
    source: str = ""
    weights_file: str = ""
    """An ``.npz`` of the layers' weights (``<layer>.weight`` / ``<layer>.bias``) beside this file, as
    ``accelsim import onnx`` writes it; empty: seeded random weights (accelsim.model_file reads it)."""
    batch: Annotated[int, whole(1, 4096, "samples")] = 1
    seed: Annotated[int, whole(0, 2**64 - 1)] = 0
    input_shape: TensorShape
    extra_inputs: dict[Label, TensorShape] = Field(default={})
    """More source tensors by name, for graphs with several inputs (e.g. imported independent layers)."""
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]
    quantized: Quantized | None = None
    """A quantized model's own quantization, in ``weights_file`` (None: the schemes quantize the weights)."""
    repeat: Annotated[int, whole(1, MAX_REPEAT, "blocks")] = 1
    """The layers are one block run this many times in a row, each block reading the previous one's output (a
    decoder's identical layers): lowered once, timed once, the total counted ``repeat`` times."""
    final_layers: Annotated[list[Layer], Field(max_length=MAX_LAYERS)] = Field(default=[])
    """Layers run once after the (repeated) block, reading its last output by default: a decoder's final norm and
    LM head, so one workload is a whole step. Their layer rows follow the block's and count once in the total."""
    outputs: Annotated[list[Label], Field(max_length=MAX_LAYERS)] = Field(default=[])
    """The layers whose values leave the accelerator (an ONNX model's graph outputs): each is converted back
    to float and written out; empty: the last layer."""
    context: Annotated[int, whole(0, MAX_DIM, "tokens")] | None = None
    """Tokens already in the KV cache before this step (a decode step's context length, 0 for a prefill): the
    ``position`` of every rotary layer and the ``context`` of every kv_cache layer that sets none, so one field
    (``--set-workload context=N``, a sweep's ``workload.context`` axis) moves them together."""
    kv_cache_dtype: KvDtype | None = None
    """The ``dtype`` of every kv_cache layer that sets none."""
    # Empty defaults (here and above) as values, not default_factory=list: pydantic copies a default per
    # instance, but reads a default_factory's signature (a builtin's, such as list's, parsed from its text:
    # tokenize's regexes compiled in each process) when it builds the validator and on every instance
    _shapes: list[LayerShapes] = PrivateAttr(default=[])
    _weights_path: Path | None = PrivateAttr(default=None)
    #: the weights file's bytes and digest, read once (config.loader.read_weights)
    _weights_bytes: WeightsBytes | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _layers_take_workload_defaults(cls, data: Any) -> Any:
        """Fill the unset ``position`` / ``context`` / ``dtype`` of rotary and kv_cache layers from the workload's
        ``context`` and ``kv_cache_dtype`` (a copy: the document is left as written). A value that no layer takes
        or already holds is an error: it would change nothing."""
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, list):
            return data
        written = layers
        for field, takes in WORKLOAD_DEFAULTS.items():
            value = data.get(field)
            if value is None or not _passes_own_check(field, value):
                continue
            taking = layers_taking(layers, field)
            if not taking and not _some_layer_has(layers, takes, value):
                fields = " / ".join(f"a {kind} layer without {own}" for kind, own in takes.items())
                raise FieldError((field,), f"no layer takes it (it is the default of {fields})", f"no {field}")
            layers = [
                {**layer, takes[layer["type"]]: value} if i in taking else layer for i, layer in enumerate(layers)
            ]
        return data if layers is written else {**data, "layers": layers}

    @model_validator(mode="after")
    def _infer_shapes(self) -> Self:
        self._shapes = infer_shapes(self)
        self._check_repeat()
        if self.quantized is not None and not self.weights_file:
            raise FieldError(("quantized",), "needs a weights_file holding the model's codes", "a weights_file")
        if self.quantized is not None:
            names = {s.layer.name: i for i, s in enumerate(self._shapes)}
            _check_layer_list(("quantized", "float_layers"), self.quantized.float_layers, names)
        return self

    def _check_repeat(self) -> None:
        """A repeated block reads only the input and ends in one layer of the input's shape: the next block's
        input."""
        if self.repeat == 1:
            return
        last = self._shapes[len(self.layers) - 1]
        if self.extra_inputs or self.outputs or last.output_shape != tuple(self.input_shape):
            raise FieldError(
                ("repeat",),
                f"{self.repeat} repeats a block whose output {list(last.output_shape)} (layer {last.layer.name!r}) "
                f"is not its next input{' (or that reads extra_inputs / lists outputs)' if self.extra_inputs or self.outputs else ''}",
                f"1, or a block ending in the input's shape {list(self.input_shape)}, without extra_inputs or outputs",
            )

    @property
    def output_layers(self) -> list[str]:
        """The names of the layers whose values leave the accelerator (``outputs``; the last layer by default)."""
        return list(self.outputs) or [self.shapes[-1].layer.name]

    @property
    def block_shapes(self) -> list[LayerShapes]:
        """The repeated block's layers (``layers``), without the ``final_layers`` run once after it."""
        return self._shapes[: len(self.layers)]

    @property
    def weights_path(self) -> Path | None:
        """``weights_file`` resolved against the workload file by config.loader.load_workload (None: not
        loaded from a file, or no weights file): what a run without given weights reads."""
        return self._weights_path

    @property
    def shapes(self) -> list[LayerShapes]:
        """Per-layer inferred shapes, MACs and parameters, in layer order: the block's, then the final layers'."""
        return self._shapes

    def _counted(self, per_layer: Callable[[LayerShapes], int]) -> int:
        """A per-layer count over every repeat of the block and the final layers once."""
        block = len(self.layers)
        return self.repeat * sum(map(per_layer, self._shapes[:block])) + sum(map(per_layer, self._shapes[block:]))

    @property
    def macs(self) -> int:
        """MACs of the whole batch, every repeat of the block and the final layers."""
        return self.batch * self._counted(lambda s: s.macs)

    @property
    def params(self) -> int:
        """Weights and biases of every repeat of the block (each block has its own) and of the final layers."""
        return self._counted(lambda s: s.params)


def _find_cycle(layers: list[LayerBase], start: int, names: dict[str, int]) -> list[str] | None:
    """A dependency cycle through layer ``start``, if the inputs form one."""
    path = [start]

    def deps(i: int) -> list[int]:
        ins = layers[i].inputs or ([INPUT] if i == 0 else [layers[i - 1].name])
        return [names[n] for n in ins if n in names]

    def walk(i: int, seen: set[int]) -> list[str] | None:
        for j in deps(i):
            if j == start:
                return [layers[k].name for k in path] + [layers[start].name]
            if j not in seen:
                seen.add(j)
                path.append(j)
                found = walk(j, seen)
                if found:
                    return found
                path.pop()
        return None

    return walk(start, {start})


def _bounded(shape: Shape, where: tuple[str | int, ...], what: str) -> Shape:
    """``shape``, if one sample's tensor of it has at most MAX_TENSOR_ELEMENTS elements."""
    elements = math.prod(shape)
    if elements > MAX_TENSOR_ELEMENTS:
        raise FieldError(
            where, f"{what} {list(shape)} has {elements:,} elements per sample", f"at most {MAX_TENSOR_ELEMENTS:,}"
        )
    return shape


def infer_shapes(workload: Workload) -> list[LayerShapes]:
    """Walk the graph in order (the block's layers, then the final layers), checking every reference and shape;
    errors name the layer and its place (``layers[i]`` or ``final_layers[i]``)."""
    layers = [*workload.layers, *workload.final_layers]
    block = len(workload.layers)

    def place(i: int) -> tuple[str, int]:
        return ("layers", i) if i < block else ("final_layers", i - block)

    names: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.name in names:
            raise FieldError((*place(i), "name"), f"duplicate layer name {layer.name!r}")
        names[layer.name] = i
    shapes: dict[str, Shape] = {INPUT: _bounded(tuple(workload.input_shape), ("input_shape",), "the input")}
    for name, shape in workload.extra_inputs.items():
        if name in names or name == INPUT:
            raise FieldError(("extra_inputs", name), f"{name!r} is already the name of a layer or the input")
        shapes[name] = _bounded(tuple(shape), ("extra_inputs", name), f"input {name!r}")
    out: list[LayerShapes] = []
    previous = INPUT
    for i, layer in enumerate(layers):
        where: tuple[str | int, ...] = place(i)
        ins = tuple(layer.inputs) if layer.inputs is not None else (previous,)
        if len(ins) < layer.arity if layer.variadic else len(ins) != layer.arity:
            takes = f"at least {layer.arity}" if layer.variadic else layer.arity
            raise FieldError(
                (*where, "inputs"), f"layer {layer.name!r} ({layer.type}) takes {takes} input(s), got {len(ins)}"
            )
        for name in ins:
            if name in shapes:
                continue
            if name in names:
                cycle = _find_cycle(list(layers), i, names)
                message = (
                    f"cycle: {' -> '.join(cycle)}"
                    if cycle
                    else f"{name!r} is defined later; list each layer after its inputs"
                )
                raise FieldError((*where, "inputs"), f"layer {layer.name!r}: {message}")
            raise FieldError(
                (*where, "inputs"), f"layer {layer.name!r}: unknown input {name!r}", allowed=list(shapes)[:12]
            )
        in_shapes = [shapes[n] for n in ins]
        try:
            output = layer.infer(in_shapes)
        except FieldError as exc:
            raise FieldError((*where, *exc.loc), f"layer {layer.name!r}: {exc.message}", exc.allowed) from None
        shapes[layer.name] = _bounded(output, where, f"layer {layer.name!r}: output")
        params = layer.weight_params(in_shapes)
        if params > MAX_LAYER_PARAMS:
            raise FieldError(
                where,
                f"layer {layer.name!r} has {params:,} weights and biases",
                f"at most {MAX_LAYER_PARAMS:,} per layer",
            )
        out.append(LayerShapes(layer, ins, tuple(in_shapes), output, layer.macs(in_shapes, output), params))
        previous = layer.name
    _check_layer_list(("outputs",), workload.outputs, names)
    return out


def _check_layer_list(path: tuple[str, ...], listed: list[str], names: dict[str, int]) -> None:
    """Every name in the list at ``path`` (``outputs``, ``quantized.float_layers``) is a layer, named once."""
    seen: set[str] = set()
    for i, name in enumerate(listed):
        if name not in names:
            known = list(names)
            shown = ", ".join(known[:12]) + (f", ... ({len(known)} layers)" if len(known) > 12 else "")
            raise FieldError((*path, i), f"{name!r} is not a layer of this workload", allowed=shown)
        if name in seen:
            raise FieldError((*path, i), f"{name!r} is listed twice", allowed="each layer once")
        seen.add(name)
