"""uint8 x int8 GEMM on AVX512-VNNI (``vpdpbusd``), the instruction ONNX Runtime's MLAS uses.

Numba cannot express SIMD types, so the register-blocked micro-kernel is emitted as LLVM IR by a
Numba ``@intrinsic``: MR x NR = 6 x 64 int32 accumulators live in 24 zmm registers while K runs in
steps of 4 bytes. B is packed (per 64-column panel, 4 consecutive k bytes per column in one int32
word); A is read in place from its rows (4 consecutive k bytes are already the word ``vpdpbusd``
broadcasts), after one linear copy that flips int8 to uint8 and pads; then panels run in parallel.

Exactness: each ``vpdpbusd`` adds four u8*s8 products (|p| <= 32640) to an int32 lane with
two's complement wrap, so the result is the exact product modulo 2**32: exact whenever the true
value fits int32, and otherwise its two's complement wrap (the caller's bound decides which). Work
is split over :mod:`accelsim.kernels.threads` (the kernels release the GIL). Hosts without
AVX512-VNNI, or run with ``ACCELSIM_VNNI=0``, use the float32-BLAS path (``AVAILABLE`` is False).
Where the CPU has AMX-INT8 the same panels and rows feed :mod:`accelsim.kernels.amx`'s tiles instead
(:func:`row_block`), with the same bits.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from accelsim.kernels import amx
from accelsim.kernels.requant import requant_region
from accelsim.kernels.threads import aside, for_gemm, in_parallel

MR = 6
NR = 64
_LANES = 16
_NV = NR // _LANES
KC4 = 64  # K block of 256 bytes
MC_PANELS = 64  # row panels (384 rows) per block
_features = llvm_binding.get_host_cpu_features()
#: the environment variable that turns the VNNI path off on a host that has it (``ACCELSIM_VNNI=0``), so
#: the float32-BLAS path runs end to end there too (the test suite runs the kernel tests both ways)
ENV_VAR = "ACCELSIM_VNNI"
AVAILABLE = (
    bool(_features.get("avx512vnni", False) and _features.get("avx512bw", False))
    and os.environ.get(ENV_VAR, "").strip() != "0"
)


@intrinsic
def _micro_kernel(
    typingctx,
    a_words,
    a_off,
    a_ld,
    b_pack,
    b_off,
    k4,
    c_in,
    c_in_off,
    c_in_ld,
    c_out,
    c_out_off,
    c_out_ld,
    row_terms,
    rt_off,
    col_factors,
    cf_off,
):
    """C_out[MR, NR] = C_in (+ row_terms[r] * col_factors[n]) + sum over k4 steps of vpdpbusd(broadcast(A word), B vector).

    A is read as int32 words (4 k bytes each) from MR rows ``a_ld`` words apart; C_in and C_out are
    int32 arrays addressed by element offset and row stride; they may coincide, and C_in's stride
    may be 0 (every row starts from the same offsets). ``row_terms`` / ``col_factors`` (int32, from
    ``rt_off`` / ``cf_off``) add the rank-1 weight-zero-point correction to the start values (one
    ``vpmulld`` per register); passed as None, the code is the plain kernel's.
    """
    sig = types.void(
        a_words,
        a_off,
        a_ld,
        b_pack,
        b_off,
        k4,
        c_in,
        c_in_off,
        c_in_ld,
        c_out,
        c_out_off,
        c_out_ld,
        row_terms,
        rt_off,
        col_factors,
        cf_off,
    )
    rank_one = not isinstance(row_terms, types.NoneType)

    def codegen(context, builder, signature, args):
        a_arr, a_start, a_row, b_arr, b_start, steps, cin_arr, cin_start, cin_ld, cout_arr, cout_start, cout_ld = args[
            :12
        ]
        a_ty, _, _, b_ty, _, _, cin_ty = signature.args[:7]
        cout_ty = signature.args[9]
        i32 = ir.IntType(32)
        vec = ir.VectorType(i32, _LANES)
        intp = context.get_value_type(types.intp)
        a_base = builder.gep(context.make_array(a_ty)(context, builder, a_arr).data, [a_start])
        b_base = builder.gep(context.make_array(b_ty)(context, builder, b_arr).data, [b_start])
        cin_base = builder.gep(context.make_array(cin_ty)(context, builder, cin_arr).data, [cin_start])
        cout_base = builder.gep(context.make_array(cout_ty)(context, builder, cout_arr).data, [cout_start])
        dpbusd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.x86.avx512.vpdpbusd.512"
        )
        splat_mask = ir.Constant(ir.VectorType(i32, _LANES), None)

        def tile_pointers(base, ld):
            return [
                builder.bitcast(
                    builder.gep(
                        base, [builder.add(builder.mul(ir.Constant(intp, r), ld), ir.Constant(intp, v * _LANES))]
                    ),
                    vec.as_pointer(),
                )
                for r in range(MR)
                for v in range(_NV)
            ]

        inits = [builder.load(ptr, align=4) for ptr in tile_pointers(cin_base, cin_ld)]
        if rank_one:  # start values + row_terms[r] * col_factors[n], wrapping int32 like the products
            rt_arr, rt_start, cf_arr, cf_start = args[12:]
            rt_base = builder.gep(context.make_array(signature.args[12])(context, builder, rt_arr).data, [rt_start])
            cf_base = builder.gep(context.make_array(signature.args[14])(context, builder, cf_arr).data, [cf_start])
            factors = [
                builder.load(
                    builder.bitcast(builder.gep(cf_base, [ir.Constant(intp, v * _LANES)]), vec.as_pointer()), align=4
                )
                for v in range(_NV)
            ]
            for r in range(MR):
                term = builder.load(builder.gep(rt_base, [ir.Constant(intp, r)]), align=4)
                splat = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(vec, ir.Undefined), term, ir.Constant(i32, 0)),
                    ir.Constant(vec, ir.Undefined),
                    ir.Constant(ir.VectorType(i32, _LANES), None),
                )
                for v in range(_NV):
                    inits[r * _NV + v] = builder.add(inits[r * _NV + v], builder.mul(splat, factors[v]))
        entry = builder.block
        loop = builder.append_basic_block("vnni.loop")
        done = builder.append_basic_block("vnni.done")
        builder.cbranch(builder.icmp_signed("<=", steps, ir.Constant(intp, 0)), done, loop)

        builder.position_at_end(loop)
        idx = builder.phi(intp)
        idx.add_incoming(ir.Constant(intp, 0), entry)
        accs = [builder.phi(vec) for _ in range(MR * _NV)]
        for acc, init in zip(accs, inits):
            acc.add_incoming(init, entry)
        b_row = builder.gep(b_base, [builder.mul(idx, ir.Constant(intp, NR))])
        b_vecs = [
            builder.load(
                builder.bitcast(builder.gep(b_row, [ir.Constant(intp, v * _LANES)]), vec.as_pointer()), align=4
            )
            for v in range(_NV)
        ]
        a_col = builder.gep(a_base, [idx])
        new = []
        for r in range(MR):
            word = builder.load(builder.gep(a_col, [builder.mul(a_row, ir.Constant(intp, r))]), align=4)
            splat = builder.shuffle_vector(
                builder.insert_element(ir.Constant(vec, ir.Undefined), word, ir.Constant(i32, 0)),
                ir.Constant(vec, ir.Undefined),
                splat_mask,
            )
            new.extend(builder.call(dpbusd, [accs[r * _NV + v], splat, b_vecs[v]]) for v in range(_NV))
        nxt = builder.add(idx, ir.Constant(intp, 1))
        loop_end = builder.block
        idx.add_incoming(nxt, loop_end)
        for acc, value in zip(accs, new):
            acc.add_incoming(value, loop_end)
        builder.cbranch(builder.icmp_signed("<", nxt, steps), loop, done)

        builder.position_at_end(done)
        results = []
        for value, init in zip(new, inits):
            results.append(builder.phi(vec))
            results[-1].add_incoming(init, entry)
            results[-1].add_incoming(value, loop_end)
        for result, ptr in zip(results, tile_pointers(cout_base, cout_ld)):
            builder.store(result, ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _interleave_rows(typingctx, src, offset, stride, dst, dst_offset):
    """dst words[j] (j < 64) = bytes src[offset + t * stride + j], t = 0..3: a 4 x 64 byte transpose.

    Two shuffles interleave bytes (rows 0/1 and 2/3), a third interleaves the resulting 16-bit pairs.
    """
    sig = types.void(src, offset, stride, dst, dst_offset)

    def codegen(context, builder, signature, args):
        s_arr, start, row_stride, d_arr, d_start = args
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        intp = context.get_value_type(types.intp)
        v64 = ir.VectorType(i8, NR)
        src_ptr = context.make_array(signature.args[0])(context, builder, s_arr).data
        dst_ptr = context.make_array(signature.args[3])(context, builder, d_arr).data
        rows = [
            builder.load(
                builder.bitcast(
                    builder.gep(src_ptr, [builder.add(start, builder.mul(row_stride, ir.Constant(intp, t)))]),
                    v64.as_pointer(),
                ),
                align=1,
            )
            for t in range(4)
        ]
        mask = ir.Constant(ir.VectorType(i32, 2 * NR), [j // 2 + (j % 2) * NR for j in range(2 * NR)])
        pairs01 = builder.bitcast(builder.shuffle_vector(rows[0], rows[1], mask), ir.VectorType(i16, NR))
        pairs23 = builder.bitcast(builder.shuffle_vector(rows[2], rows[3], mask), ir.VectorType(i16, NR))
        words = builder.shuffle_vector(pairs01, pairs23, mask)
        builder.store(
            words, builder.bitcast(builder.gep(dst_ptr, [d_start]), ir.VectorType(i16, 2 * NR).as_pointer()), align=4
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _pack_b_panels(b, k4, packed, words, first, last):
    """Panels [first, last) of [K, N] int8: per 64-column panel, per 4-k step, 64 words of 4 k bytes.
    ``words`` is ``packed`` viewed as int32 (views are taken outside the kernels: ``.view`` compiles
    numba's error formatting in every first run).

    Every byte of a panel is written (zero padding included): the buffer is reused, not zeroed.
    """
    k_dim, n_dim = b.shape
    flat = b.reshape(-1)
    for p in range(first, last):
        c0 = p * NR
        width = min(NR, n_dim - c0)
        for kk in range(k4):
            base = (p * k4 + kk) * NR
            k0 = kk * 4
            if width == NR and k0 + 4 <= k_dim:
                _interleave_rows(flat, k0 * n_dim + c0, n_dim, words, base)
            else:
                packed[base * 4 : (base + NR) * 4] = 0
                for t in range(min(4, k_dim - k0)):
                    for j in range(width):
                        packed[(base + j) * 4 + t] = b[k0 + t, c0 + j]


@njit(cache=True, nogil=True)
def _prepare_a_rows(src, flip, dest):
    """A ``[M, K]`` (1-byte codes, as uint8) as the rows the micro-kernel reads: ``dest``, the bytes of
    int32 words (:func:`a_rows`: rows and K padded to whole blocks), every byte xor ``flip`` (0x80 turns int8 into
    the uint8 ``a + 128``), zero beyond A. A plain row copy that vectorizes; tiles read it in place (no
    panel packing). One compilation for int8 and uint8 A: the caller passes both as uint8."""
    m_dim, k_dim = src.shape
    for i in range(m_dim):
        for k in range(k_dim):
            dest[i, k] = src[i, k] ^ flip
        dest[i, k_dim:] = 0
    dest[m_dim:] = 0


@njit(cache=True, nogil=True)
def _run_tiles(a_words, b_packed, k4, row_offset, row_terms, col_factors, out, p0, p1, q0, q1):
    """Output tiles of column panels [p0, p1) x row panels [q0, q1), each starting from ``row_offset``
    (int32, one entry per padded column: read with row stride 0, so the offset costs no pass) plus
    ``row_terms[m] * col_factors[n]`` unless they are None (:func:`zero_point_terms`).

    A block of MC_PANELS row panels (384 rows of A, <= 1 MiB for K <= 2730, stays in L2)
    meets each column panel in turn. K runs in blocks of KC4 steps (the B block, 16 KiB, stays in
    L1); partial sums live in a contiguous C block (96 KiB, no power-of-two row stride to alias in
    the caches) and the last K block stores full tiles straight into ``out``; only edge tiles are
    copied out of the block.
    """
    m_dim, n_dim = out.shape
    flat = out.reshape(-1)
    block = np.empty(MC_PANELS * MR * NR, dtype=np.int32)
    for qb in range(q0, q1, MC_PANELS):
        q_end = min(qb + MC_PANELS, q1)
        for p in range(p0, p1):
            c0 = p * NR
            cols = min(NR, n_dim - c0)
            for k_start in range(0, k4, KC4):
                steps = min(KC4, k4 - k_start)
                last = k_start + KC4 >= k4
                b_off = (p * k4 + k_start) * NR
                for q in range(qb, q_end):
                    a_off = q * MR * k4 + k_start
                    b_pos = (q - qb) * MR * NR
                    c_out, c_out_off, c_out_ld = (
                        (flat, q * MR * n_dim + c0, n_dim)
                        if last and cols == NR and m_dim - q * MR >= MR
                        else (block, b_pos, NR)
                    )
                    if k_start == 0:
                        _micro_kernel(
                            a_words,
                            a_off,
                            k4,
                            b_packed,
                            b_off,
                            steps,
                            row_offset,
                            c0,
                            0,
                            c_out,
                            c_out_off,
                            c_out_ld,
                            row_terms,
                            q * MR,
                            col_factors,
                            c0,
                        )
                    else:
                        _micro_kernel(
                            a_words,
                            a_off,
                            k4,
                            b_packed,
                            b_off,
                            steps,
                            block,
                            b_pos,
                            NR,
                            c_out,
                            c_out_off,
                            c_out_ld,
                            None,
                            0,
                            None,
                            0,
                        )
            for q in range(qb, q_end):
                rows = min(MR, m_dim - q * MR)
                if rows < MR or cols < NR:
                    for r in range(rows):
                        src = ((q - qb) * MR + r) * NR
                        for j in range(cols):
                            out[q * MR + r, c0 + j] = block[src + j]


@njit(cache=True, nogil=True)
def _tiles(a_words, b_packed, k4, row_offset, row_terms, col_factors, out, p0, p1, q0, q1, block):
    """Output tiles of column panels [p0, p1) x row blocks [q0, q1) of ``block`` rows: on AMX
    (``block`` = :data:`~accelsim.kernels.amx.ROWS`, no weight zero point: ``row_terms`` None) or VNNI
    (``block`` = :data:`MR`). A runtime argument, not a global: Numba's cache would keep a global's value."""
    if block == amx.ROWS:
        amx.run_tiles(a_words, b_packed, k4, row_offset, amx.CONFIG, out, p0, p1, q0, q1)
    else:
        _run_tiles(a_words, b_packed, k4, row_offset, row_terms, col_factors, out, p0, p1, q0, q1)


@njit(cache=True, nogil=True)
def _pack_and_run_columns(
    a_words, b, k4, b_packed, b_words, row_offset, row_terms, col_factors, out, block, first, last
):
    """One worker's share when splitting by column panels: pack its B panels (``b_packed``, and as int32
    ``b_words``), then run their tiles."""
    _pack_b_panels(b, k4, b_packed, b_words, first, last)
    _tiles(
        a_words,
        b_words,
        k4,
        row_offset,
        row_terms,
        col_factors,
        out,
        first,
        last,
        first - first,
        (out.shape[0] + block - 1) // block,
        block,
    )


@njit(cache=True, nogil=True)
def _run_columns(a_words, b_packed, k4, row_offset, row_terms, col_factors, out, block, first, last):
    """One worker's share of prepacked B when splitting by column panels."""
    _tiles(
        a_words,
        b_packed,
        k4,
        row_offset,
        row_terms,
        col_factors,
        out,
        first,
        last,
        first - first,
        (out.shape[0] + block - 1) // block,
        block,
    )


@njit(cache=True, nogil=True)
def _run_rows(a_words, b_packed, k4, row_offset, row_terms, col_factors, out, block, first, last):
    """One worker's share when splitting by row blocks (few column panels). (``first - first``, not a
    literal 0, here and in the other callers: numba compiles a callee again for a literal argument.)"""
    _tiles(
        a_words,
        b_packed,
        k4,
        row_offset,
        row_terms,
        col_factors,
        out,
        first - first,
        (out.shape[1] + NR - 1) // NR,
        first,
        last,
        block,
    )


_LOCAL = threading.local()


def _workspace(name: str, size: int, dtype: type) -> np.ndarray:
    """A per-thread, grow-only scratch buffer: packing buffers are reused, not re-faulted, per call."""
    buffers = _LOCAL.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.size < size * np.dtype(dtype).itemsize:
        buf = buffers[name] = np.empty(size * np.dtype(dtype).itemsize, np.uint8)
    return buf[: size * np.dtype(dtype).itemsize].view(dtype)


def pack_b(b: np.ndarray) -> np.ndarray:
    """B's panels packed once (an int8 [K, N] weight kept between calls, as ORT and fbgemm prepack):
    :func:`vnni_product` then packs only A."""
    k_dim, n_dim = b.shape
    k4, n_panels = words_per_row(k_dim), -(-n_dim // NR)
    packed = np.empty(n_panels * k4 * NR * 4, np.int8)
    _pack_b_panels(np.ascontiguousarray(b), k4, packed, packed.view(np.int32), 0, n_panels)
    return packed.view(np.int32)


def vnni_product(
    a: np.ndarray,
    b: np.ndarray,
    *,
    b_packed: np.ndarray | None = None,
    b_col_sums: np.ndarray | None = None,
    row_offset: np.ndarray | None = None,
    a_zero_point: int = 0,
    b_zero_point: np.ndarray | None = None,
) -> np.ndarray:
    """``a @ b`` (a: uint8 or int8 [M, K], b: int8 [K, N]) as int32 with two's complement wrap.

    The result is the exact product modulo 2**32: exact whenever it fits int32, and the right
    ``wrap`` value otherwise (the caller decides from its bound which case holds). ``b_packed``
    (from :func:`pack_b`) and ``b_col_sums`` (int64 column sums) are ``b``'s, kept by the caller.
    ``row_offset`` (int64 [N]) is added to every row, modulo 2**32 like the products, in the same pass
    as the int8-A correction. ``b_zero_point`` (int64 [N] or None) subtracts
    ``b_zero_point[n] * sum_k (a[m, k] - a_zero_point)`` in the tiles' start values (:func:`zero_point_terms`).
    """
    m_dim, k_dim = a.shape
    n_dim = b.shape[1]
    out = np.empty((m_dim, n_dim), dtype=np.int32)
    a_words = prepare_a(a)
    row_terms, col_factors = zero_point_terms(a_words, m_dim, k_dim, a_zero_point, a.dtype, b_zero_point)
    block = row_block(row_terms, a_words.shape[1])
    n_panels, m_panels = -(-n_dim // NR), -(-m_dim // block)
    k4 = a_words.shape[1]
    a_words = a_words.reshape(-1)
    if b_col_sums is None and a.dtype == np.int8:
        b_col_sums = b.sum(axis=0, dtype=np.int64)
    offset32 = offset_row(n_dim, a.dtype, b_col_sums, row_offset)
    macs = m_dim * n_dim * k_dim
    threads = for_gemm(macs)
    if b_packed is None and n_panels >= threads:  # each worker packs its own B panels
        b_bytes = _workspace("b", n_panels * k4 * NR * 4, np.int8)
        in_parallel(
            _pack_and_run_columns,
            n_panels,
            threads,
            a_words,
            np.ascontiguousarray(b),
            k4,
            b_bytes,
            b_bytes.view(np.int32),
            offset32,
            row_terms,
            col_factors,
            out,
            block,
            macs=macs,
        )
    else:
        if b_packed is None:
            b_bytes = _workspace("b", n_panels * k4 * NR * 4, np.int8)
            b_packed = b_bytes.view(np.int32)
            _pack_b_panels(np.ascontiguousarray(b), k4, b_bytes, b_packed, 0, n_panels)
        fn, parts = (_run_columns, n_panels) if n_panels >= threads else (_run_rows, m_panels)
        in_parallel(fn, parts, threads, a_words, b_packed, k4, offset32, row_terms, col_factors, out, block, macs=macs)
    return out


@njit(cache=True, nogil=True)
def _row_sums(rows, m_dim, k_dim, a_offset):
    """``sum_k rows[m, k] - K * a_offset`` per row of the bytes the micro-kernel reads (uint8 [padded M,
    4 * K/4]), int64, zero for the padding rows."""
    sums = np.zeros(rows.shape[0], np.int64)
    for i in range(m_dim):
        s = np.int64(0)
        for k in range(k_dim):
            s += rows[i, k]
        sums[i] = s - k_dim * a_offset
    return sums


def zero_point_terms(
    a_words: np.ndarray,
    m_dim: int,
    k_dim: int,
    a_zero_point: int,
    a_dtype: np.dtype,
    b_zero_point: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The weight-zero-point correction ``-z_b[n] * sum_k (a[m, k] - z_a)`` as the rank-1 pair the tiles'
    start values take: (row sums of A centred, int32 per padded row; ``-z_b``, int32 per padded column),
    each kept to its low 32 bits (their product wraps like the accumulators). A's row sums are read
    from its prepared rows (``a + 128`` for int8 A). (None, None) when there is no zero point."""
    if b_zero_point is None:
        return None, None
    a_offset = a_zero_point + (128 if a_dtype == np.int8 else 0)
    row_terms = _row_sums(word_bytes(a_words), m_dim, k_dim, np.int64(a_offset)).astype(np.int32)
    n_dim = b_zero_point.shape[0]
    col_factors = np.zeros(-(-n_dim // NR) * NR, np.int64)
    col_factors[:n_dim] = -b_zero_point
    return row_terms, col_factors.astype(np.int32)


def words_per_row(k_dim: int) -> int:
    """int32 words (4 k bytes each) per row of A and per k4 step count of B's panels: K/4 rounded up, to
    whole AMX tiles (:data:`~accelsim.kernels.amx.K4_ALIGN`) where AMX runs (the VNNI kernel adds the zero
    words' nothing)."""
    k4 = -(-k_dim // 4)
    return -(-k4 // amx.K4_ALIGN) * amx.K4_ALIGN if amx.AVAILABLE else k4


def row_block(row_terms: np.ndarray | None, k4: int) -> int:
    """Rows of A per block of the tiles: AMX's :data:`~accelsim.kernels.amx.ROWS` where it runs and pays
    (``k4`` of at least :data:`~accelsim.kernels.amx.MIN_K4` words; not with a weight zero point's
    ``row_terms``, which only the VNNI kernel adds), else the VNNI kernel's :data:`MR`."""
    return amx.ROWS if amx.AVAILABLE and row_terms is None and k4 >= amx.MIN_K4 else MR


def a_rows(m_dim: int, k_dim: int) -> np.ndarray:
    """This thread's buffer for A's rows as the micro-kernel reads them: int32 ``[M rounded up to whole
    row blocks of either kernel, :func:`words_per_row`]`` (4 k bytes per word)."""
    rows = max(-(-m_dim // MR) * MR, -(-m_dim // amx.ROWS) * amx.ROWS if amx.AVAILABLE else 0)
    k4 = words_per_row(k_dim)
    return _workspace("a", rows * k4, np.int32).reshape(rows, k4)


def word_bytes(words: np.ndarray) -> np.ndarray:
    """The bytes of 2-D int32 ``words`` as uint8 ``[rows, 4 * columns]`` (a view)."""
    return words.view(np.uint8).reshape(words.shape[0], words.shape[1] * 4)


def prepare_a(a: np.ndarray) -> np.ndarray:
    """A's rows as the micro-kernel reads them (:func:`_prepare_a_rows`, in :func:`a_rows`)."""
    words = a_rows(*a.shape)
    flip = np.uint8(0x80 if a.dtype == np.int8 else 0)
    aside(_prepare_a_rows, np.ascontiguousarray(a).view(np.uint8), flip, word_bytes(words), elements=a.size)
    return words


def offset_row(
    n_dim: int, a_dtype: np.dtype, b_col_sums: np.ndarray | None, row_offset: np.ndarray | None
) -> np.ndarray:
    """The int32 row every tile's accumulators start from: ``row_offset`` less ``128 * colsum(B)`` for
    int8 A (run as ``a + 128``), each kept to its low 32 bits (accumulating from it wraps like the
    products), zero-padded to whole column panels."""
    offset = np.zeros(-(-n_dim // NR) * NR, np.int64)
    if row_offset is not None:
        offset[:n_dim] = row_offset
    if a_dtype == np.int8:
        if b_col_sums is None:
            raise ValueError("int8 A needs B's column sums (its +128 correction)")
        offset[:n_dim] -= 128 * b_col_sums
    return offset.astype(np.int32)


SCRATCH_BYTES = 1 << 19  # accumulator rows kept in cache per worker while they go through the requant unit


@njit(cache=True, nogil=True)
def _run_requant(
    a_words,
    b_packed,
    k4,
    offset32,
    row_terms,
    col_factors,
    m_dim,
    n_dim,
    chunk,
    multiplier,
    shift,
    table,
    scalars,
    codes,
    block,
    p0,
    p1,
    q0,
    q1,
):
    """One worker's tiles (column panels [p0, p1) x row blocks [q0, q1) of ``block`` rows, :func:`_tiles`)
    in chunks of ``chunk`` row blocks: a chunk's int32 accumulators are written to a scratch that stays in
    cache and go straight through the requant unit into ``codes`` (flat, 1-byte). Returns (saturations,
    acc min, acc max)."""
    scratch = np.empty(chunk * block * n_dim, np.int32)
    c0, c1 = p0 * NR, min(p1 * NR, n_dim)
    sats, lo, hi = 0, np.int64(2**31 - 1), np.int64(-(2**31))
    for qs in range(q0, q1, chunk):
        qe = min(qs + chunk, q1)
        rows = min(qe * block, m_dim) - qs * block
        acc = scratch[: rows * n_dim].reshape(rows, n_dim)
        if row_terms is None:
            _tiles(a_words[qs * block * k4 :], b_packed, k4, offset32, None, None, acc, p0, p1, q0 - q0, qe - qs, block)
        else:
            _tiles(
                a_words[qs * block * k4 :],
                b_packed,
                k4,
                offset32,
                row_terms[qs * block :],
                col_factors,
                acc,
                p0,
                p1,
                q0 - q0,
                qe - qs,
                block,
            )
        s, l, h = requant_region(
            scratch, n_dim, codes[qs * block * n_dim :], n_dim, rows, c0, c1, multiplier, shift, table, scalars
        )
        sats, lo, hi = sats + s, min(lo, l), max(hi, h)
    return sats, lo, hi


def requant_product(
    a_words: np.ndarray,
    m_dim: int,
    b_packed: np.ndarray,
    offset32: np.ndarray,
    n_dim: int,
    plan: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    out_dtype: type,
    zero_point_terms: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> tuple[np.ndarray, int, int, int]:
    """``A @ B`` from :func:`offset_row` ``offset32`` through the requant unit without the int32 result in
    memory, as the array hands its accumulators to the requant unit: (1-byte codes ``[M, N]``,
    saturations, accumulator min, max). ``a_words``: A's ``m_dim`` rows from :func:`prepare_a` (or
    written in place into :func:`a_rows`). Same bits as :func:`vnni_product` then the requant unit's
    :func:`~accelsim.kernels.requant.requant_region` (the caller proves no accumulator wraps).
    ``plan``: the layer's (M0, shift, lane table, scalars) from :func:`~accelsim.kernels.requant.lane_plan`;
    ``zero_point_terms``: the weight zero point's rank-1 correction (:func:`zero_point_terms`)."""
    k4 = a_words.shape[1]
    block = row_block(zero_point_terms[0], k4)
    n_panels, m_panels = -(-n_dim // NR), -(-m_dim // block)
    a_words, k_dim = a_words.reshape(-1), 4 * k4
    codes: np.ndarray = np.empty((m_dim, n_dim), out_dtype)
    chunk = max(1, SCRATCH_BYTES // (block * n_dim * 4))
    macs = m_dim * n_dim * k_dim
    threads = for_gemm(macs)
    common = (a_words, b_packed, k4, offset32, *zero_point_terms, m_dim, n_dim, chunk, *plan, codes.reshape(-1), block)
    if n_panels >= threads:  # workers split the column panels (each requantizes its own channels)
        parts = in_parallel(lambda lo, hi: _run_requant(*common, lo, hi, 0, m_panels), n_panels, threads, macs=macs)
    else:
        parts = in_parallel(lambda lo, hi: _run_requant(*common, 0, n_panels, lo, hi), m_panels, threads, macs=macs)
    return codes, sum(p[0] for p in parts), min(p[1] for p in parts), max(p[2] for p in parts)
