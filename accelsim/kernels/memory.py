"""Bulk copies inside kernels: LLVM's memcpy, because numba's slice assignment checks the two arrays
for overlap and then copies element by element (8-11x slower on the runs of C bytes im2col moves)."""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def copy_elements(typingctx, dst, dst_at, src, src_at, count):
    """``dst[dst_at : dst_at + count] = src[src_at : src_at + count]`` for contiguous arrays of one dtype
    that do not overlap there (offsets and count in elements of the flat arrays)."""
    if not isinstance(dst, types.Array) or not isinstance(src, types.Array) or dst.dtype != src.dtype:
        return None
    sig = types.void(dst, dst_at, src, src_at, count)

    def codegen(context, builder, signature, args):
        d_arr, d_at, s_arr, s_at, n = args
        d_ptr = builder.gep(context.make_array(signature.args[0])(context, builder, d_arr).data, [d_at])
        s_ptr = builder.gep(context.make_array(signature.args[2])(context, builder, s_arr).data, [s_at])
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        cgutils.raw_memcpy(builder, d_ptr, s_ptr, n, itemsize)
        return context.get_dummy_value()

    return sig, codegen
