"""Every machine-specific piece of the Numba kernels, each behind a guard with a portable default.

The loops reach the machine through this interface alone:

``stream_line(dst, j, src, i, m, a, c)``, ``stream_line_at(dst, j, src, i, m, a, c, t, v)``
    One 64-byte line ``dst[j:j+L] = (src[i:i+L] - m) a - c`` (``v`` at ``dst[t]``):
    a non-temporal store where ``STREAMING``, else a plain store of the same values.
``store_fence()``
    ``sfence`` where ``STREAMING`` (streaming stores bypass the usual store
    order), else nothing.
``exp_sum_first32(x, c, e, g0, g1, mx, mn, sx)``
    The float32 exps of ``x[g0:g1] - c`` with their sum and the running range
    of x: the AVX-512 table exp of `machine_table_exp` for whole 16-value
    vectors where ``TABLE_EXP``, else the portable polynomial `vexp_normal`.

Guards
------
Numba's on-disk cache tells compiled code apart by signature, bytecode and
``codegen.magic_tuple()`` (triple, CPU name, CPU features), not by module
globals.  So the guards are read from that tuple, the target the code is
compiled for, and cached code never holds the paths of another setting:

``STREAMING``
    An x86-64 target other than the generic CPU.
``TABLE_EXP``
    ``STREAMING`` and AVX-512F among the target's features.

Portable mode
-------------
With ``FASTLOSS_PORTABLE`` set, the package's ``__init__`` makes Numba
compile for the generic CPU of the architecture before any kernel is defined:
every guard is then off, and the cache key differs from that of the default
build, so neither run loads the other's machine code.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.registry import cpu_target
from numba.extending import intrinsic

from .cache import njit
from .vector_math import add_reassoc, fmax_reducible, fmin_reducible, vexp_normal

TRIPLE, CPU_NAME, CPU_FEATURES = cpu_target.target_context.codegen().magic_tuple()
STREAMING = TRIPLE.startswith("x86_64") and CPU_NAME != "generic"
TABLE_EXP = STREAMING and "+avx512f" in CPU_FEATURES.split(",")

if TABLE_EXP:
    from .machine_table_exp import exp_vectors_first32


def _line_codegen(context, builder, sig, args):
    """``dst[j:j+L] = (src[i:i+L] - m) * a - c`` (args ``dst, j, src, i, m, a, c``,
    then optionally ``t, v``: v goes to the lane of ``dst[t]``, t in the line) for
    one 64-byte line of ``dst`` (which starts at ``dst[j]`` on a line boundary),
    with a non-temporal store where ``STREAMING``."""
    dty, _, sty = sig.args[:3]
    dp = cgutils.get_item_pointer(context, builder, dty, context.make_array(dty)(context, builder, args[0]),
                                  [args[1]], wraparound=False)
    sp = cgutils.get_item_pointer(context, builder, sty, context.make_array(sty)(context, builder, args[2]),
                                  [args[3]], wraparound=False)
    fty = context.get_value_type(dty.dtype)
    size = fty.get_abi_size(context.target_data)
    n = 64 // size
    vty = ir.VectorType(fty, n)

    def splat(v):
        one = builder.insert_element(ir.Constant(vty, ir.Undefined), v, ir.IntType(32)(0))
        return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))

    line = builder.load(builder.bitcast(sp, vty.as_pointer()), align=size)
    line = builder.fsub(builder.fmul(builder.fsub(line, splat(args[4])), splat(args[5])), splat(args[6]))
    if len(args) > 7:
        # A select by lane, not an insert at a variable index (a stack round trip).
        lanes = ir.VectorType(ir.IntType(32), n)
        at = builder.trunc(builder.sub(args[7], args[1]), ir.IntType(32))
        at = builder.shuffle_vector(builder.insert_element(ir.Constant(lanes, ir.Undefined), at, ir.IntType(32)(0)),
                                    ir.Constant(lanes, ir.Undefined), ir.Constant(lanes, [0] * n))
        hit = builder.icmp_signed("==", ir.Constant(lanes, list(range(n))), at)
        line = builder.select(hit, splat(args[8]), line)
    store = builder.store(line, builder.bitcast(dp, vty.as_pointer()), align=64)
    if STREAMING:
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
    return context.get_dummy_value()


def _line_operands(dst, src, *values):
    return dst == src and dst.dtype in (types.float32, types.float64) and all(v == dst.dtype for v in values)


@intrinsic
def stream_line(typingctx, dst, j, src, i, m, a, c):
    """One line of a streamed result (see `_line_codegen`)."""
    if not _line_operands(dst, src, m, a, c):
        return None
    return types.void(dst, j, src, i, m, a, c), _line_codegen


@intrinsic
def stream_line_at(typingctx, dst, j, src, i, m, a, c, t, v):
    """`stream_line` with ``v`` at ``dst[t]``, t in the line."""
    if not _line_operands(dst, src, m, a, c, v):
        return None
    return types.void(dst, j, src, i, m, a, c, t, v), _line_codegen


@intrinsic
def store_fence(typingctx):
    """Order the streaming stores before any later store (they bypass the usual
    ordering); nothing where not ``STREAMING``."""
    def codegen(context, builder, sig, args):
        if STREAMING:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, error_model="numpy", inline="always")
def _exp_group_first32(x, c, e, mx, mn, sx):
    """``e = exp(x - c)`` by `vexp_normal` and the float32 sum of e, with the running
    max, min and sum of x carried on from ``mx, mn, sx``: the exps hold only if
    that range says every one is normal.  The portable default of `exp_sum_first32`."""
    s = np.float32(0)
    for j in range(x.shape[0]):
        v = vexp_normal(x[j] - c)
        e[j] = v
        s = add_reassoc(s, v)
        mx = fmax_reducible(mx, x[j])
        mn = fmin_reducible(mn, x[j])
        sx = add_reassoc(sx, x[j])
    return s, mx, mn, sx


if TABLE_EXP:
    @njit(cache=True, error_model="numpy", inline="always")
    def exp_sum_first32(x, c, e, g0, g1, mx, mn, sx):
        """`_exp_group_first32` on x[g0:g1], its whole 16-value vectors by the table exp."""
        g16 = g0 + (g1 - g0) // 16 * 16
        s, mx, mn, sx = exp_vectors_first32(x, e, g0, g16, c, mx, mn, sx)
        if g16 < g1:
            rest, mx, mn, sx = _exp_group_first32(x[g16:g1], c, e[g16:g1], mx, mn, sx)
            s += rest
        return s, mx, mn, sx
else:
    @njit(cache=True, error_model="numpy", inline="always")
    def exp_sum_first32(x, c, e, g0, g1, mx, mn, sx):
        """`_exp_group_first32` on x[g0:g1]."""
        return _exp_group_first32(x[g0:g1], c, e[g0:g1], mx, mn, sx)
