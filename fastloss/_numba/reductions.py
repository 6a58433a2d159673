"""Sums and maxima along a contiguous row and across the class rows of a tile.

Without fastmath LLVM keeps a sum's order and so never vectorises it.  Sums
along a contiguous row therefore run on ``LANES`` lane accumulators (element
``j`` goes to lane ``j % LANES``) folded in a fixed tree: vectorised, in an
order set by the row length alone.  Float32 exp sums are the exception
(`add_reassoc`, in `row_exp`): LLVM reorders them itself, in an order set by
the row length and the CPU.  The max needs no lanes: LLVM's ``maximum`` is
order-independent.  Reductions across the class rows of a tile are
elementwise and need no such care.
"""
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .cache import njit
from .vector_math import fmax_reducible, maximum
from .views import four_class_rows

LANES = 64


@intrinsic
def _stack_lanes(typingctx):
    """Pointer to ``LANES`` float64 on the stack.

    LLVM knows a stack buffer aliases nothing, so it keeps the lanes in
    vector registers instead of re-checking overlaps for every chunk.
    """
    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once(builder, ir.ArrayType(ir.DoubleType(), LANES))
        return builder.bitcast(buf, ir.DoubleType().as_pointer())

    return types.CPointer(types.float64)(), codegen


@intrinsic
def _stack_lanes32(typingctx):
    """Pointer to ``LANES`` float32 on the stack (see `_stack_lanes`)."""
    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), LANES))
        return builder.bitcast(buf, ir.FloatType().as_pointer())

    return types.CPointer(types.float32)(), codegen


@njit(cache=True, error_model="numpy", inline="always")
def fold_lanes(lanes):
    """Float64 sum of the ``LANES`` lanes, folded in a fixed tree order (inlined, so the
    lanes stay in registers)."""
    h = LANES // 2
    while h >= 8:
        for k in range(h):
            lanes[k] += lanes[k + h]
        h //= 2
    s = 0.0
    for k in range(8):
        s += lanes[k]
    return s


@njit(cache=True, error_model="numpy")
def row_max(x):
    """Max of a non-empty row (NaN if it holds a NaN)."""
    m = x[0]
    for j in range(x.shape[0]):
        m = maximum(m, x[j])
    return m


@njit(cache=True, error_model="numpy")
def row_sum(v):
    """Float64 sum of a row, in an order set by its length."""
    n = v.shape[0]
    s = 0.0
    if n < LANES:
        for j in range(n):
            s += v[j]
        return s
    # Chunks are slices indexed from 0: a computed index would get numba's
    # negative-index wraparound, which LLVM vectorises as gathers.
    lanes = carray(_stack_lanes(), (LANES,))
    first = v[:LANES]
    for k in range(LANES):
        lanes[k] = first[k]
    nb = n // LANES
    for b in range(1, nb):
        chunk = v[b * LANES:(b + 1) * LANES]
        for k in range(LANES):
            lanes[k] += chunk[k]
    tail = v[nb * LANES:]
    for k in range(tail.shape[0]):
        lanes[k] += tail[k]
    return fold_lanes(lanes)


@njit(cache=True, error_model="numpy")
def row_weighted_sum(w, v, prod):
    """Float64 ``sum_j w_j * v_j`` (products formed in float64 in ``prod``)."""
    for j in range(v.shape[0]):
        prod[j] = np.float64(w[j]) * np.float64(v[j])
    return row_sum(prod[:v.shape[0]])


@njit(cache=True, error_model="numpy")
def fmax(a, b):
    """``b`` if ``b > a`` else ``a``: a plain vector max, not NaN-propagating.

    Used for the max that only shifts the exponentials: a NaN it drops still
    makes its ``exp`` and hence the row's sum NaN.
    """
    return b if b > a else a


def row_max_fast(x):
    """Max of a non-empty row, NaN ignored (see `fmax`); order set by its length."""
    raise NotImplementedError


@overload(row_max_fast)
def _row_max_fast(x):
    if x.dtype == types.float32:
        return lambda x: _row_max_fast32(x)
    return lambda x: row_max(x)


@njit(cache=True, error_model="numpy")
def _row_max_fast32(x):
    n = x.shape[0]
    m = x[0]
    if n < LANES:
        for j in range(n):
            m = fmax(m, x[j])
        return m
    lanes = carray(_stack_lanes32(), (LANES,))
    first = x[:LANES]
    for k in range(LANES):
        lanes[k] = first[k]
    nb = n // LANES
    for b in range(1, nb):
        chunk = x[b * LANES:(b + 1) * LANES]
        for k in range(LANES):
            lanes[k] = fmax(lanes[k], chunk[k])
    tail = x[nb * LANES:]
    for k in range(tail.shape[0]):  # as in tile_max_fast: no masked store
        lanes[k] = fmax_reducible(lanes[k], tail[k])
    h = LANES // 2
    while h >= 1:
        for k in range(h):
            lanes[k] = fmax(lanes[k], lanes[k + h])
        h //= 2
    return lanes[0]


@njit(cache=True, error_model="numpy")
def tile_max(x, o, i0, n, m):
    """``m[:n] = max_c x[o, c, i0:i0+n]`` (C >= 1)."""
    x0 = x[o, 0, i0:i0 + n]
    for i in range(n):
        m[i] = x0[i]
    for c in range(1, x.shape[1]):
        xc = x[o, c, i0:i0 + n]
        for i in range(n):
            m[i] = maximum(m[i], xc[i])


@njit(cache=True, error_model="numpy")
def tile_max_fast(x, o, i0, n, m):
    """``m[:n] = max_c x[o, c, i0:i0+n]`` ignoring NaN (see `fmax`), C >= 1.

    Four class rows per sweep: four memory streams in flight and a quarter of
    the loads and stores of ``m``.
    """
    C = x.shape[1]
    x0 = x[o, 0, i0:i0 + n]
    for i in range(n):
        m[i] = x0[i]
    c = 1
    # fmax_reducible: a plain vector max (what a NaN gives is left to the
    # hardware, and a NaN reaches the exp-sum anyway).  `fmax`'s select of the
    # loaded m[i] would become a masked store, slow on some CPUs (AMD's).
    while c + 4 <= C:
        xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
        for i in range(n):
            m[i] = fmax_reducible(fmax_reducible(m[i], fmax_reducible(xa[i], xb[i])),
                                  fmax_reducible(xc[i], xd[i]))
        c += 4
    for c in range(c, C):
        xc = x[o, c, i0:i0 + n]
        for i in range(n):
            m[i] = fmax_reducible(m[i], xc[i])
