"""16-lane LLVM vector code inside numba intrinsics, for element loops numba cannot vectorize well.

Numba widens every int32 operation to int64 (halving the SIMD width and turning products into slow
64-bit multiplies) and counts with int64 reductions; the requant unit and the vector unit's residual
add write their lanes explicitly instead. :class:`Lanes` wraps one intrinsic's codegen: element loads
and stores at offsets of the numba arrays it was given, splats, constants, min/max and mask counts.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba.core import cgutils

LANES = 16  # one zmm of int32 / float32
I32, I64, F32, F64 = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.DoubleType()
V32, V64, VF32, VF64 = (
    ir.VectorType(I32, LANES),
    ir.VectorType(I64, LANES),
    ir.VectorType(F32, LANES),
    ir.VectorType(F64, LANES),
)


class Lanes:
    """Vector helpers over one intrinsic's arguments (``args[k]`` typed ``signature.args[k]``)."""

    def __init__(self, context: Any, builder: ir.IRBuilder, signature: Any, args: list[Any]) -> None:
        self.context, self.b, self.types, self.args = context, builder, signature.args, args

    def element(self, k: int) -> ir.Type:
        """LLVM type of an element of array argument ``k``."""
        return self.context.get_data_type(self.types[k].dtype)

    def _pointer(self, k: int, at: ir.Value, vector: ir.Type) -> ir.Value:
        data = self.context.make_array(self.types[k])(self.context, self.b, self.args[k]).data
        return self.b.bitcast(self.b.gep(data, [at]), vector.as_pointer())

    def load(self, k: int, at: ir.Value, offset: int = 0) -> ir.Value:
        """LANES elements of array ``k`` from element ``at + offset``."""
        if offset:
            at = self.b.add(at, ir.Constant(at.type, offset))
        return self.b.load(self._pointer(k, at, ir.VectorType(self.element(k), LANES)), align=1)

    def store(self, value: ir.Value, k: int, at: ir.Value, offset: int = 0) -> None:
        """Store ``value`` (converted to array ``k``'s element width) at element ``at + offset``."""
        if offset:
            at = self.b.add(at, ir.Constant(at.type, offset))
        vector = ir.VectorType(self.element(k), LANES)
        if vector != value.type:
            value = self.b.trunc(value, vector)
        self.b.store(value, self._pointer(k, at, vector), align=1)

    def splat(self, scalar: ir.Value, vector: ir.VectorType) -> ir.Value:
        """``scalar`` (an int of any width or a float32) in every lane of ``vector``."""
        elem = vector.element
        if isinstance(elem, ir.IntType) and scalar.type.width != elem.width:
            scalar = self.b.trunc(scalar, elem) if scalar.type.width > elem.width else self.b.sext(scalar, elem)
        one = self.b.insert_element(ir.Constant(vector, ir.Undefined), scalar, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, ir.Constant(vector, ir.Undefined), ir.Constant(V32, None))

    @staticmethod
    def const(value: float, vector: ir.VectorType = V32) -> ir.Constant:
        return ir.Constant(vector, [value] * LANES)

    def smin(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.icmp_signed("<", a, b), a, b)

    def smax(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.icmp_signed(">", a, b), a, b)

    def fmin(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.fcmp_ordered("<", a, b), a, b)

    def fmax(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(self.b.fcmp_ordered(">", a, b), a, b)

    def call(self, name: str, vector: ir.VectorType, *values: ir.Value) -> ir.Value:
        """An LLVM vector intrinsic such as ``llvm.round`` on ``vector`` operands."""
        floats = {F32: "f32", F64: "f64"}
        suffix = f"v{LANES}{floats[vector.element]}" if vector.element in floats else f"v{LANES}i{vector.element.width}"
        fn = cgutils.get_or_insert_function(
            self.b.module, ir.FunctionType(vector, [vector] * len(values)), f"{name}.{suffix}"
        )
        return self.b.call(fn, list(values))

    def count(self, mask: ir.Value) -> ir.Value:
        """Number of true lanes of an ``<LANES x i1>`` mask, as int64."""
        bits = ir.IntType(LANES)
        ctpop = cgutils.get_or_insert_function(self.b.module, ir.FunctionType(bits, [bits]), f"llvm.ctpop.i{LANES}")
        return self.b.zext(self.b.call(ctpop, [self.b.bitcast(mask, bits)]), I64)

    def to_float(self, value: ir.Value, k: int) -> ir.Value:
        """Integer lanes loaded from array ``k`` as float32, signed or not as its dtype."""
        signed = self.types[k].dtype.signed
        return self.b.sitofp(value, VF32) if signed else self.b.uitofp(value, VF32)
