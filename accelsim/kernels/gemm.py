"""Exact integer GEMM of the systolic array: ``acc[m, n] = bias[n] + sum_k (a[m, k] - z_a) * (b[k, n] - z_b[n])``.

Accumulator semantics (what the modelled hardware does): the accumulator of output (m, n) is
loaded with ``bias[n]``, then adds one product per step in ascending k. It is ``acc_bits`` wide
and either wraps (two's complement) or saturates at every step; an output counts as one overflow
if any of its additions (or the bias load) left the range. With wrap the final value is
order-independent (``wrap(exact sum)``); with saturate it depends on the order, hence the fixed one.

Three paths give identical bits:
- ``vnni`` (default where the CPU has AVX512-VNNI): :mod:`accelsim.kernels.vnni`, the exact sum
  modulo 2**32, zero-point and bias corrections in wrapping int32.
The weight zero point ``z_b`` (scalar or per column) is the mirror of the input's: ``sum_k (a - z_a)
(b - z_b) = sum_k (a - z_a) b - z_b[n] * rowsum_k(a - z_a)``, a rank-1 correction from A's row sums.
uint8 B runs as the int8 operand ``b - 128`` with ``z_b - 128`` (same differences, so the same
products at every step).
- ``blas``: int8/uint8 products summed in float32 are exact while every partial sum stays below
  2**24, so K is cut into chunks with ``chunk * max|a| * max|b| < 2**24`` and each chunk runs as a
  float32 BLAS GEMM, converted and summed exactly in float64.
- ``numba``: the step-by-step accumulation for every output.
For ``vnni`` and ``blas`` an O(M*N) bound proves which outputs can never leave the accumulator
range (then the wrapped/exact value is the answer); only the others (none for int32 and
K < 65794) are replayed step by step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numba import njit

from accelsim.kernels import threads, vnni
from accelsim.kernels.requant import LanePlan, Requantized, requant_rows

FLOAT32_EXACT_LIMIT = 1 << 24


class Overflow(StrEnum):
    """What the accumulator does when a step leaves its range (DESIGN.md section 3, ``accumulator.overflow``)."""

    WRAP = "wrap"  # two's complement
    SATURATE = "saturate"  # clamp at every step


OVERFLOW_MODES = tuple(Overflow)


GEMM_METHODS = ("auto", "vnni", "blas", "numba")


@dataclass(frozen=True)
class AccumulatorResult:
    """Accumulator contents (int32 if ``acc_bits <= 32`` else int64) and how many outputs overflowed."""

    values: np.ndarray
    overflows: int


@dataclass(frozen=True)
class PackedWeights:
    """A GEMM's ``[K, N]`` int8 or uint8 weight operand prepared once, as ORT and fbgemm prepack a model's
    weights: the contiguous int8 operand (uint8 codes less ``shift`` = 128), its column sums
    (zero-point corrections) and the VNNI panels."""

    matrix: np.ndarray  # int8 [K, N]: the codes, less ``shift``
    col_sums: np.ndarray  # int64 [N]
    vnni_panels: np.ndarray | None  # None where the host has no AVX512-VNNI
    shift: int = 0  # 128 for uint8 codes
    _offsets: dict[tuple[int, str, bytes | None], np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, b: np.ndarray) -> PackedWeights:
        if b.ndim != 2 or b.dtype not in (np.int8, np.uint8):
            raise ValueError(f"packed weights are int8 or uint8 [K, N], got {b.dtype} {b.shape}")
        b8, shift = int8_operand(np.ascontiguousarray(b))
        return cls(b8, b8.sum(axis=0, dtype=np.int64), vnni.pack_b(b8) if vnni.AVAILABLE else None, shift)

    def offset_row(self, a_zero_point: int, a_dtype: np.dtype, bias: np.ndarray | None) -> np.ndarray:
        """The VNNI tiles' start row (int32 ``bias``, A's zero point and the int8-A correction), derived once
        per A zero point, dtype and bias: a prepared model's are fixed."""
        key = (a_zero_point, a_dtype.str, None if bias is None else bias.tobytes())
        row = self._offsets.get(key)
        if row is None:
            start = np.zeros(self.col_sums.shape, np.int64) if bias is None else bias.astype(np.int64)
            row = self._offsets[key] = vnni.offset_row(
                self.col_sums.shape[0], a_dtype, self.col_sums, start - a_zero_point * self.col_sums
            )
        return row


def int8_operand(b: np.ndarray) -> tuple[np.ndarray, int]:
    """``(b - shift, shift)``: uint8 codes as the int8 operand ``b - 128`` (a sign-bit flip, exact); other
    dtypes unchanged with shift 0."""
    if b.dtype == np.uint8:
        return (b ^ np.uint8(0x80)).view(np.int8), 128
    return b, 0


def column_zero_points(b_zero_point: int | np.ndarray, shift: int, n_dim: int) -> np.ndarray | None:
    """The weight zero point of the (shifted) operand per column, int64 ``[N]``; None when it is 0 (no
    correction: the symmetric path is unchanged)."""
    if shift == 0 and _is_scalar(b_zero_point) and int(b_zero_point) == 0:
        return None
    zb = np.asarray(b_zero_point, dtype=np.int64).reshape(-1) - shift
    if zb.size not in (1, n_dim):
        raise ValueError(f"weight zero point must be a scalar or one per column ({n_dim}), got {zb.size}")
    zb = np.broadcast_to(zb, (n_dim,))
    return None if not zb.any() else np.ascontiguousarray(zb)


def accumulator_range(acc_bits: int) -> tuple[int, int]:
    """Smallest and largest value of a two's complement accumulator of ``acc_bits`` bits."""
    if not 2 <= acc_bits <= 64:
        raise ValueError(f"acc_bits must be in [2, 64], got {acc_bits}")
    return -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1


@dataclass(frozen=True, kw_only=True)
class Accumulator:
    """The PE accumulator a layer runs into: ``bits`` wide (32 in every shipped design), wrapping or
    saturating on overflow (the hardware config's ``array.accumulator``)."""

    bits: int = 32
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        accumulator_range(self.bits)  # 2..64
        object.__setattr__(self, "overflow", Overflow(self.overflow))  # "wrap" from a config becomes its member


#: every shipped design's accumulator
INT32_WRAP = Accumulator()


@njit(cache=True, nogil=True)
def _accumulate_step(value, term, lo, hi, saturate):
    """One accumulator addition: returns (new value, overflowed)."""
    s = value + term
    if s > hi or s < lo:
        if saturate:
            return (hi if s > hi else lo), True
        span = hi - lo + 1
        return ((s - lo) % span) + lo, True
    return s, False


@njit(cache=True, nogil=True)
def _sequential_gemm(a, b, a_zero_point, b_zero_point, bias, lo, hi, saturate):
    """Every output accumulated step by step in ascending k (the hardware order), each step adding
    ``(a - z_a) * (b - z_b[n])``."""
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    out = np.empty((m_dim, n_dim), dtype=np.int64)
    flags = np.zeros((m_dim, n_dim), dtype=np.bool_)
    row = np.empty(n_dim, dtype=np.int64)
    for i in range(m_dim):
        for j in range(n_dim):
            row[j], flags[i, j] = _accumulate_step(0, np.int64(bias[j]), lo, hi, saturate)
        for k in range(k_dim):
            av = np.int64(a[i, k]) - a_zero_point
            if av == 0:
                continue
            for j in range(n_dim):
                row[j], ovf = _accumulate_step(row[j], av * (np.int64(b[k, j]) - b_zero_point[j]), lo, hi, saturate)
                if ovf:
                    flags[i, j] = True
        out[i, :] = row
    return out, flags


@njit(cache=True, nogil=True)
def _sequential_entries(a, b, a_zero_point, b_zero_point, bias, rows, cols, lo, hi, saturate):
    """Step-by-step accumulation of the listed outputs only (those the bound could not clear)."""
    n = rows.shape[0]
    out = np.empty(n, dtype=np.int64)
    flags = np.zeros(n, dtype=np.bool_)
    for e in range(n):
        i = rows[e]
        j = cols[e]
        v, f = _accumulate_step(0, np.int64(bias[j]), lo, hi, saturate)
        zb = b_zero_point[j]
        for k in range(a.shape[1]):
            v, ovf = _accumulate_step(
                v, (np.int64(a[i, k]) - a_zero_point) * (np.int64(b[k, j]) - zb), lo, hi, saturate
            )
            f = f or ovf
        out[e] = v
        flags[e] = f
    return out, flags


def exact_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of small integers, exact, as int64, through float32 BLAS on K chunks."""
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    max_a = int(np.abs(a.astype(np.int32)).max(initial=0))
    max_b = int(np.abs(b.astype(np.int32)).max(initial=0))
    if max_a == 0 or max_b == 0 or k_dim == 0:
        return np.zeros((m_dim, n_dim), dtype=np.int64)
    chunk = max(1, (FLOAT32_EXACT_LIMIT - 1) // (max_a * max_b))
    af = a.astype(np.float32)
    bf = b.astype(np.float32)
    if chunk >= k_dim:
        return np.matmul(af, bf).astype(np.int64)
    total = np.zeros((m_dim, n_dim), dtype=np.float64)
    part = np.empty((m_dim, n_dim), dtype=np.float32)
    for start in range(0, k_dim, chunk):
        stop = min(start + chunk, k_dim)
        np.matmul(af[:, start:stop], bf[start:stop, :], out=part)
        total += part
    return total.astype(np.int64)


def float_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 GEMM ``[M, K] x [K, N]`` on the float datapath (fp32 and weight-only schemes): BLAS.

    The one float entry point, as :func:`int_gemm` is the integer one: every float product of the
    values runs here, so a test can see each GEMM the kernels execute. (BLAS releases the GIL: beside
    the engine, :func:`~accelsim.kernels.threads.call` runs it on the pool.)"""
    return threads.call(np.matmul, a, b, macs=a.size * b.shape[-1])


def never_overflows(
    a_dtype: np.dtype,
    a_zero_point: int,
    b_dtype: np.dtype,
    k_dim: int,
    max_bias: int,
    hi: int,
    b_zero_point: int | np.ndarray = 0,
) -> bool:
    """True when no partial sum of any output can leave ``[-hi-1, hi]`` whatever the operands' values
    and the order of the K steps: ``|bias| + K * max|a - z_a| * max|b - z_b|`` over the dtypes' extremes
    (``z_b`` scalar or per column: its smallest and largest value bound every column)."""
    (a_min, a_max), (b_min, b_max) = _limits(a_dtype), _limits(b_dtype)
    max_a = max(abs(a_min - a_zero_point), abs(a_max - a_zero_point))
    if _is_scalar(b_zero_point):
        zb_lo = zb_hi = int(b_zero_point)
    else:
        zb_lo, zb_hi = int(np.min(b_zero_point)), int(np.max(b_zero_point))
    return max_bias + k_dim * max_a * max(b_max - zb_lo, zb_hi - b_min) <= hi


def _is_scalar(v: int | np.ndarray) -> bool:
    """``np.ndim(v) == 0`` for the ints and arrays a zero point is, without its generic dispatch (read
    for every layer of every run)."""
    return not isinstance(v, np.ndarray) or v.ndim == 0


@functools.cache
def _limits(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _overflow_candidates(
    a: np.ndarray, a_zero_point: int, b: np.ndarray, b_zero_point: np.ndarray | None, bias: np.ndarray, hi: int
) -> np.ndarray | None:
    """Mask of outputs whose partial sums might leave ``[-hi-1, hi]``; None when none can.

    First ``|bias| + K * max|a - z_a| * max|b - z_b|`` with the dtypes' extremes (O(1); enough for
    int32 and K < 65794 with symmetric int8 weights, K < 33025 with any weight zero point), then with
    the data's extremes, then per output ``|bias| + min(L1(row) * max|col|, max|row| * L1(col))``
    (Hoelder) on the centred operands.
    """
    if a.size == 0 or b.size == 0:
        return None
    max_bias = int(np.abs(bias).max(initial=0))
    zb = 0 if b_zero_point is None else b_zero_point
    if never_overflows(a.dtype, a_zero_point, b.dtype, a.shape[1], max_bias, hi, zb):  # no pass over the data
        return None
    max_a = max(abs(int(a.min()) - a_zero_point), abs(int(a.max()) - a_zero_point))
    zb_lo, zb_hi = (0, 0) if b_zero_point is None else (int(b_zero_point.min()), int(b_zero_point.max()))
    if max_bias + a.shape[1] * max_a * max(int(b.max()) - zb_lo, zb_hi - int(b.min())) <= hi:
        return None
    abs_a = np.abs(a.astype(np.int64) - a_zero_point)
    abs_b = np.abs(b.astype(np.int64) - (0 if b_zero_point is None else b_zero_point[None, :]))
    row_l1, row_max = abs_a.sum(axis=1), abs_a.max(axis=1)
    col_l1, col_max = abs_b.sum(axis=0), abs_b.max(axis=0)
    bound = np.abs(bias)[None, :] + np.minimum(np.outer(row_l1, col_max), np.outer(row_max, col_l1))
    mask = bound > hi
    return mask if mask.any() else None


def int_gemm(
    a: np.ndarray,
    b: np.ndarray | PackedWeights,
    *,
    a_zero_point: int = 0,
    b_zero_point: int | np.ndarray = 0,
    bias: np.ndarray | None = None,
    acc_bits: int = 32,
    overflow: str = "wrap",
    method: str = "auto",
) -> AccumulatorResult:
    """Integer GEMM ``[M, K] x [K, N]`` (int8 or uint8 by int8 or uint8) with the accumulator semantics above.

    ``b_zero_point``: the weights' zero point, scalar or one per column (ONNX MatMulInteger's
    ``b_zero_point``). ``b`` may be :class:`PackedWeights` (a prepared model's weights): same bits, no
    per-call packing."""
    packed = b if isinstance(b, PackedWeights) else None
    if packed is not None:
        b, shift = packed.matrix, packed.shift
    else:
        b, shift = int8_operand(np.asarray(b))
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    if method not in GEMM_METHODS:
        raise ValueError(f"method must be one of {GEMM_METHODS}, got {method!r}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"GEMM shapes do not chain: {a.shape} x {b.shape}")
    lo, hi = accumulator_range(acc_bits)
    n_dim = b.shape[1]
    zb = column_zero_points(b_zero_point, shift, n_dim)
    bias64 = np.zeros(n_dim, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(n_dim)
    saturate = overflow == "saturate"
    out_dtype = np.int32 if acc_bits <= 32 else np.int64
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    zb_steps = np.zeros(n_dim, np.int64) if zb is None else zb  # the step-by-step paths subtract it per product
    if method == "numba":
        values, flags = _sequential_gemm(a, b, np.int64(a_zero_point), zb_steps, bias64, lo, hi, saturate)
        return AccumulatorResult(values.astype(out_dtype), int(flags.sum()))
    use_vnni = vnni.AVAILABLE and acc_bits <= 32 and a.dtype in (np.uint8, np.int8) and b.dtype == np.int8
    if method == "vnni" and not use_vnni:
        raise ValueError("method 'vnni' needs AVX512-VNNI, uint8/int8 x int8/uint8 operands and acc_bits <= 32")
    col_sums = (
        packed.col_sums
        if packed is not None
        else (b.sum(axis=0, dtype=np.int64) if a_zero_point or a.dtype == np.int8 else None)
    )
    corrections = bias64 if col_sums is None or not a_zero_point else bias64 - np.int64(a_zero_point) * col_sums
    if use_vnni and method != "blas":  # int32 arithmetic wraps: the result is the exact sum modulo 2**32
        values = vnni.vnni_product(
            a,
            b,
            b_packed=packed.vnni_panels if packed is not None else None,
            b_col_sums=col_sums,
            row_offset=corrections,
            a_zero_point=int(a_zero_point),
            b_zero_point=zb,
        )
    else:
        values = exact_product(a, b) + corrections[None, :]
        if zb is not None:  # - z_b[n] * rowsum(a - z_a)[m]
            values -= np.outer(a.sum(axis=1, dtype=np.int64) - a.shape[1] * np.int64(a_zero_point), zb)
    overflows = 0
    if acc_bits < 64:
        mask = _overflow_candidates(a, a_zero_point, b, zb, bias64, hi)
        if mask is not None:
            rows, cols = np.nonzero(mask)
            replay, flags = _sequential_entries(
                a, b, np.int64(a_zero_point), zb_steps, bias64, rows, cols, lo, hi, saturate
            )
            values[rows, cols] = replay
            overflows = int(flags.sum())
    return AccumulatorResult(values.astype(out_dtype, copy=False), overflows)


@dataclass(frozen=True, kw_only=True)
class RequantEpilogue:
    """Everything besides A and B that the array's hand-off to the requant unit needs: the operands' zero
    points, the int32 bias loaded into the accumulators, the requant unit's lane plan
    (:data:`~accelsim.kernels.requant.LanePlan`) and the 1-byte output dtype."""

    a_zero_point: int
    b_zero_point: int | np.ndarray
    bias: np.ndarray | None
    plan: LanePlan
    out_dtype: type


def requant_gemm(a: np.ndarray, b: PackedWeights, epilogue: RequantEpilogue) -> Requantized:
    """The array handing its int32 accumulators straight to the requant unit: 1-byte codes of
    ``requant(bias + sum_k (a - z_a)(b - z_b))`` as ``epilogue`` says.

    The caller proves that no accumulator can leave int32 (:func:`never_overflows`): then the order of the
    steps and the overflow mode cannot matter. With AVX512-VNNI the accumulators never reach memory (a
    cache-sized scratch at a time, :func:`~accelsim.kernels.vnni.requant_product`); elsewhere
    :func:`int_gemm` then the same requant unit. Same bits either way."""
    e = epilogue
    if vnni.AVAILABLE:
        return requant_vnni_rows(vnni.prepare_a(a), a.shape[0], a.dtype, b, e)
    acc = int_gemm(a, b, a_zero_point=e.a_zero_point, b_zero_point=e.b_zero_point, bias=e.bias)
    return requant_rows(acc.values, e.plan, e.out_dtype)


def requant_vnni_rows(
    words: np.ndarray, m_dim: int, a_dtype: np.dtype, b: PackedWeights, epilogue: RequantEpilogue
) -> Requantized:
    """:func:`requant_gemm` on a VNNI host with A's ``m_dim`` rows already as the micro-kernel reads them
    (:func:`~accelsim.kernels.vnni.prepare_a`, or written in place by the conv's patch gather)."""
    if b.vnni_panels is None:
        raise ValueError("the weights were packed without VNNI panels (ACCELSIM_VNNI changed after packing?)")
    e, n_dim, k_dim = epilogue, b.col_sums.shape[0], b.matrix.shape[0]
    terms = vnni.zero_point_terms(
        words, m_dim, k_dim, e.a_zero_point, a_dtype, column_zero_points(e.b_zero_point, b.shift, n_dim)
    )
    offsets = b.offset_row(e.a_zero_point, a_dtype, e.bias)
    codes, sats, lo, hi = vnni.requant_product(words, m_dim, b.vnni_panels, offsets, n_dim, e.plan, e.out_dtype, terms)
    return Requantized(codes, sats, lo, hi)
