"""The float32 row exp of AVX-512 hosts, written as explicit 16-lane LLVM IR.

Imported by `machine` alone, which calls `exp_vectors_first32` only where its
``TABLE_EXP`` guard holds, so this IR is emitted on AVX-512 targets only.

Cython's rows take a table-driven exp on AVX-512 (`fl_exp16_normal` in
``_cython/_machine.h``): ``2^(j/32)`` read from a 32-entry table held in two
registers, then a degree-3 polynomial.  It needs fewer multiply-adds than the
degree-6 polynomial of `vexp_normal`, and those set the pace of the row loop.
LLVM's vectoriser cannot produce its two-register permute from scalar code, so
`exp_vectors_first32` emits the whole loop as vector IR, the same operations
in the same order as Cython's (so the same bits, within 1.01 ulp of exp).

The loop is an internal function that is never inlined: inlined into the row
loops, it lost its constants to register pressure and reloaded them every
iteration.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_EXP2_32NDS = [float(np.float32(2.0 ** (j / 32))) for j in range(32)]
_FUNCTION = "fastloss_exp_vectors_first32"


@intrinsic
def exp_vectors_first32(typingctx, x, e, j0, j1, c, mx, mn, sx):
    """``e[j] = exp(x[j] - c)`` for j in [j0, j1), a multiple of 16 values (float32,
    AVX-512 targets only), with the float32 sum of those exps, and the running max,
    min and sum of x[j0:j1] carried on from ``mx, mn, sx`` (as `machine.exp_sum_first32`
    returns them; the max and min drop a NaN, which reaches the sum)."""
    if not (_float32_row(x) and _float32_row(e) and e.mutable and c == mx == mn == sx == types.float32):
        return None
    f32 = ir.FloatType()

    def codegen(context, builder, sig, args):
        xp = context.make_array(sig.args[0])(context, builder, args[0]).data
        ep = context.make_array(sig.args[1])(context, builder, args[1]).data
        fn = builder.module.globals.get(_FUNCTION)
        if fn is None:
            fnty = ir.FunctionType(ir.LiteralStructType([f32] * 4),
                                   [xp.type, ep.type, args[2].type, args[3].type] + [f32] * 4)
            fn = ir.Function(builder.module, fnty, name=_FUNCTION)
            fn.linkage = "internal"
            fn.attributes.add("noinline")
            _define(fn)
        out = builder.call(fn, [xp, ep, *args[2:]])
        values = [builder.extract_value(out, i) for i in range(4)]
        return context.make_tuple(builder, sig.return_type, values)

    return types.UniTuple(types.float32, 4)(x, e, j0, j1, c, mx, mn, sx), codegen


def _float32_row(a):
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 and a.layout == "C"


def _define(fn):
    f32 = ir.FloatType()
    i32 = ir.IntType(32)
    v16 = ir.VectorType(f32, 16)
    i16 = ir.VectorType(i32, 16)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    xp, ep, j0, j1, c, mx0, mn0, sx0 = fn.args

    def declare(name, *args):
        return cgutils.get_or_insert_function(fn.module, ir.FunctionType(v16, list(args)), name)

    fma = declare("llvm.fma.v16f32", v16, v16, v16)
    permute = declare("llvm.x86.avx512.vpermi2var.ps.512", v16, i16, v16)
    vmax = declare("llvm.x86.avx512.max.ps.512", v16, v16, i32)
    vmin = declare("llvm.x86.avx512.min.ps.512", v16, v16, i32)

    def const(v):
        return ir.Constant(v16, [float(np.float32(v))] * 16)

    def ints(v):
        return ir.Constant(i16, [v] * 16)

    def splat(v):
        one = builder.insert_element(ir.Constant(v16, ir.Undefined), v, i32(0))
        return builder.shuffle_vector(one, ir.Constant(v16, ir.Undefined), ints(0))

    magic = const(12582912.0)
    table = ir.Constant(v16, _EXP2_32NDS[:16]), ir.Constant(v16, _EXP2_32NDS[16:])
    shift = splat(c)
    acc, sx, mx, mn = (cgutils.alloca_once_value(builder, v)
                       for v in (const(0), const(0), splat(mx0), splat(mn0)))
    with cgutils.for_range_slice(builder, j0, j1, ir.Constant(j0.type, 16)) as (j, _):
        xv = builder.load(builder.bitcast(builder.gep(xp, [j]), v16.as_pointer()), align=4)
        d = builder.fsub(xv, shift)
        # n = round(d 32 / ln2) in k's low bits; r = d - n ln2 / 32 in Cephes' two parts.
        k = builder.call(fma, [d, const(46.166241308446828), magic])
        n = builder.fsub(k, magic)
        r = builder.call(fma, [n, const(-0.693359375 / 32), d])
        r = builder.call(fma, [n, const(2.12194440e-4 / 32), r])
        q = builder.call(fma, [const(1.0 / 6), r, const(0.5)])
        q = builder.fmul(builder.call(fma, [q, r, const(1.0)]), r)  # exp(r) - 1
        bits = builder.bitcast(k, i16)
        t = builder.call(permute, [table[0], bits, table[1]])
        scale = builder.shl(builder.ashr(builder.sub(bits, ints(0x4B400000)), ints(5)), ints(23))
        y = builder.bitcast(builder.add(builder.bitcast(builder.call(fma, [t, q, t]), i16), scale), v16)
        builder.store(y, builder.bitcast(builder.gep(ep, [j]), v16.as_pointer()), align=4)
        builder.store(builder.fadd(builder.load(acc), y), acc)
        builder.store(builder.fadd(builder.load(sx), xv), sx)
        # vmaxps / vminps keep their second operand on a NaN, as Cython's loop.
        builder.store(builder.call(vmax, [xv, builder.load(mx), i32(4)]), mx)
        builder.store(builder.call(vmin, [xv, builder.load(mn), i32(4)]), mn)

    def lane_sum(v):
        width = 16
        while width > 1:
            half = width // 2
            lanes = ir.VectorType(i32, half)
            low = builder.shuffle_vector(v, v, ir.Constant(lanes, list(range(half))))
            high = builder.shuffle_vector(v, v, ir.Constant(lanes, list(range(half, width))))
            v = builder.fadd(low, high)
            width = half
        return builder.extract_element(v, i32(0))

    def lane_pick(v, op):
        best = builder.extract_element(v, i32(0))
        for i in range(1, 16):
            lane = builder.extract_element(v, i32(i))
            best = builder.select(builder.fcmp_ordered(op, lane, best), lane, best)
        return best

    result = ir.Constant(fn.function_type.return_type, ir.Undefined)
    values = [lane_sum(builder.load(acc)), lane_pick(builder.load(mx), ">"),
              lane_pick(builder.load(mn), "<"), builder.fadd(sx0, lane_sum(builder.load(sx)))]
    for i, v in enumerate(values):
        result = builder.insert_value(result, v, i)
    builder.ret(result)
