"""uint8 x int8 GEMM tiles on Intel AMX (``tdpbusd``), the unit ONNX Runtime's MLAS uses where the CPU has it.

One ``tdpbusd`` multiplies a 16 x 64-byte A tile by a 16 x 64-byte B tile (16 k4 steps x 16 columns, 4 k
bytes per column in one int32 word: the VNNI panels' layout, read with their 256-byte row stride) into a
16 x 16 int32 accumulator tile: 16,384 products, where ``vpdpbusd`` does 64. The micro-kernel keeps 2 x 2
accumulator tiles (32 rows x 32 columns) in tmm0-3 while K runs in steps of 64 bytes. Numba cannot name
tile registers, so each step is inline assembly (:func:`_step`); the tiles stay in their registers between
the steps because no other code of the process touches them.

Exactness: like ``vpdpbusd``, each ``tdpbusd`` adds its u8 * s8 products to int32 lanes with two's
complement wrap (no saturation), so a tile holds the exact product modulo 2**32, the same bits as the
VNNI kernel. A and B must be zero-padded to whole tiles: A's rows to :data:`ROWS`, K to :data:`K4_ALIGN`
words (``accelsim.kernels.vnni`` lays them out so when :data:`AVAILABLE`).

Linux hands AMX's tile state to a process only on request (``arch_prctl(ARCH_REQ_XCOMP_PERM)``), made at
import; ``AVAILABLE`` is True only if the CPU has AMX-INT8, the kernel granted it and ``ACCELSIM_AMX`` is not
``0`` (then the VNNI kernel runs, so both stay tested on an AMX host). The tiles run only inside the VNNI
path (:mod:`accelsim.kernels.vnni`), so ``ACCELSIM_VNNI=0`` turns both off.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: rows of a micro-kernel tile (two 16-row A tiles); A's rows are padded to a multiple of it
ROWS = 32
#: columns of a micro-kernel tile (two 16-column B tiles)
COLS = 32
#: K is padded to a multiple of 16 int32 words (one tile's 64 bytes)
K4_ALIGN = 16
#: from this many K words on (K >= 128) the tiles beat the VNNI kernel; below, storing each 32 x 32 tile costs
#: more than its one or two K steps save (measured: 1024 x 64 x 256 0.10 ms on tiles, 0.07 ms on VNNI)
MIN_K4 = 32
#: the environment variable that turns the AMX path off on a host that has it (``ACCELSIM_AMX=0``)
ENV_VAR = "ACCELSIM_AMX"
_ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA, _SYS_ARCH_PRCTL = 0x1023, 18, 158


def _granted() -> bool:
    """Ask Linux for the tile data state (once per process; without it the first tile instruction faults)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def _available() -> bool:
    features = llvm_binding.get_host_cpu_features()
    wanted = features.get("amx-int8", False) and features.get("amx-tile", False)
    return bool(wanted) and os.environ.get(ENV_VAR, "").strip() != "0" and _granted()


AVAILABLE = _available()
llvm_binding.initialize_native_asmparser()  # inline assembly needs the target's parser (numba initializes no parser)

_I64 = ir.IntType(64)


def _address(context, builder, array_type, array, offset):
    """The address of ``array[offset]`` (an element offset) as an int64."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.ptrtoint(builder.gep(data, [offset]), _I64)


def _asm(builder, text: str, constraints: str, operands: list) -> None:
    builder.asm(ir.FunctionType(ir.VoidType(), [_I64] * len(operands)), text, constraints, operands, side_effect=True)


@intrinsic
def _configure(typingctx, config):
    """``ldtilecfg``: every tile 16 rows x 64 bytes (:data:`CONFIG`), for this thread."""

    def codegen(context, builder, signature, args):
        _asm(
            builder, "ldtilecfg ($0)", "r,~{memory}", [_address(context, builder, signature.args[0], args[0], _I64(0))]
        )
        return context.get_dummy_value()

    return types.void(config), codegen


@intrinsic
def _release(typingctx):
    """``tilerelease``: the tile state back to its initial (cheap to save) state."""

    def codegen(context, builder, signature, args):
        _asm(builder, "tilerelease", "~{memory}", [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _load_c(typingctx, c, offset, stride, second):
    """tmm0..3 = the 2 x 2 accumulator tiles at int32 ``c[offset]``: rows ``stride`` bytes apart (0: every
    row the same), the second row tile ``second`` bytes on, the second column tile 64 bytes on."""

    def codegen(context, builder, signature, args):
        start = _address(context, builder, signature.args[0], args[0], args[1])
        _asm(
            builder,
            "tileloadd ($0,$1,1), %tmm0\n\tleaq 64($0), %r10\n\ttileloadd (%r10,$1,1), %tmm1\n\t"
            "leaq ($0,$2), %r10\n\ttileloadd (%r10,$1,1), %tmm2\n\tleaq 64(%r10), %r10\n\ttileloadd (%r10,$1,1), %tmm3",
            "r,r,r,~{r10},~{memory}",
            [start, args[2], args[3]],
        )
        return context.get_dummy_value()

    return types.void(c, offset, stride, second), codegen


@intrinsic
def _store_c(typingctx, c, offset, stride):
    """The 2 x 2 accumulator tiles to int32 ``c[offset]``, rows ``stride`` bytes apart."""

    def codegen(context, builder, signature, args):
        start = _address(context, builder, signature.args[0], args[0], args[1])
        _asm(
            builder,
            "tilestored %tmm0, ($0,$1,1)\n\tleaq 64($0), %r10\n\ttilestored %tmm1, (%r10,$1,1)\n\t"
            "movq $1, %r11\n\tshlq $$4, %r11\n\taddq $0, %r11\n\ttilestored %tmm2, (%r11,$1,1)\n\t"
            "leaq 64(%r11), %r11\n\ttilestored %tmm3, (%r11,$1,1)",
            "r,r,~{r10},~{r11},~{memory}",
            [start, args[2]],
        )
        return context.get_dummy_value()

    return types.void(c, offset, stride), codegen


@intrinsic
def _step(typingctx, a, a_offset, a_stride, b, b_offset):
    """One 64-byte K step: A tiles at int32 ``a[a_offset]`` (rows 0-15 and 16-31, ``a_stride`` bytes apart),
    B tiles at int32 ``b[b_offset]`` (columns 0-15, and 16-31 64 bytes on; k4 rows 256 bytes apart: a VNNI
    panel's), and the four ``tdpbusd`` into tmm0..3."""

    def codegen(context, builder, signature, args):
        a_start = _address(context, builder, signature.args[0], args[0], args[1])
        b_start = _address(context, builder, signature.args[3], args[3], args[4])
        _asm(
            builder,
            "tileloadd ($0,$1,1), %tmm4\n\tmovq $1, %r10\n\tshlq $$4, %r10\n\taddq $0, %r10\n\t"
            "tileloadd (%r10,$1,1), %tmm5\n\tmovq $$256, %r11\n\ttileloadd ($2,%r11,1), %tmm6\n\t"
            "leaq 64($2), %r10\n\ttileloadd (%r10,%r11,1), %tmm7\n\t"
            "tdpbusd %tmm6, %tmm4, %tmm0\n\ttdpbusd %tmm7, %tmm4, %tmm1\n\t"
            "tdpbusd %tmm6, %tmm5, %tmm2\n\ttdpbusd %tmm7, %tmm5, %tmm3",
            "r,r,r,~{r10},~{r11},~{memory}",
            [a_start, args[2], b_start],
        )
        return context.get_dummy_value()

    return types.void(a, a_offset, a_stride, b, b_offset), codegen


def _config() -> np.ndarray:
    """The 64-byte tile configuration: palette 1, tiles 0-7 of 16 rows x 64 bytes."""
    config = np.zeros(64, np.uint8)
    config[0] = 1
    config[16:32].view(np.uint16)[:8] = 64
    config[48:56] = 16
    return config


CONFIG = _config()


@njit(cache=True, nogil=True)
def run_tiles(a_words, b_packed, k4, row_offset, config, out, p0, p1, q0, q1):  # pragma: no cover - compiled
    """``out`` = A @ B from ``row_offset`` for column panels [p0, p1) (64 columns each) x row blocks [q0, q1)
    (:data:`ROWS` rows each) of int32 ``out`` [M, N]: the VNNI kernel's ``_run_tiles`` contract, on tiles.

    ``a_words``: A's rows (int32, ``k4`` words each, padded to whole row blocks); ``b_packed``: the VNNI
    panels (``k4`` a multiple of :data:`K4_ALIGN`); ``row_offset``: int32 per padded column, every row's start.
    Each 32 x 32 output tile runs K through once in the tile registers; tiles across ``out``'s edge go
    through a small block. A row block's A (<= 32 * K bytes) stays in L1/L2 while it meets a panel's columns."""
    m_dim, n_dim = out.shape
    flat = out.reshape(-1)
    edge = np.empty(ROWS * COLS, np.int32)
    a_stride, steps = 4 * k4, k4 // K4_ALIGN
    _configure(config)
    for p in range(p0, p1):
        for half in range(2):
            c0 = p * 64 + half * COLS
            if c0 >= n_dim:
                break
            cols = min(COLS, n_dim - c0)
            for q in range(q0, q1):
                r0 = q * ROWS
                _load_c(row_offset, c0, 0, 0)
                for s in range(steps):
                    _step(
                        a_words, r0 * k4 + s * K4_ALIGN, a_stride, b_packed, (p * k4 + s * K4_ALIGN) * 64 + half * COLS
                    )
                rows = min(ROWS, m_dim - r0)
                if rows == ROWS and cols == COLS:
                    _store_c(flat, r0 * n_dim + c0, 4 * n_dim)
                else:
                    _store_c(edge, 0, 4 * COLS)
                    for r in range(rows):
                        for j in range(cols):
                            out[r0 + r, c0 + j] = edge[r * COLS + j]
    _release()
