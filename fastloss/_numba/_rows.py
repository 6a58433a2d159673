"""Blocking and the row / tile loops shared by the kernel families.

Blocking
--------
Work is cut into blocks whose bounds depend on the shape only, so every
per-block partial sum, and their sum in block order, is the same for any
thread count.

* ``inner == 1``: a block is ``rows_per_block`` consecutive rows of C
  contiguous values (`row_blocking`).
* ``inner > 1``: a block is one ``(outer index, tile)`` pair, a tile being up
  to ``T`` consecutive inner positions (`tile_blocking`); a kernel walks the C
  class rows of a tile, each a contiguous slice of length ``n <= T``.

Both aim at ``BLOCK`` elements per block, so a block's data and its scratch
stay in L2 between the passes over it.

Row reductions
--------------
Without fastmath LLVM keeps a sum's order and so never vectorises it.  Sums
along a contiguous row therefore run on ``LANES`` lane accumulators (element
``j`` goes to lane ``j % LANES``) folded in a fixed tree: vectorised, in an
order set by the row length alone.  The max needs no lanes: LLVM's
``maximum`` is order-independent.  Reductions across the class rows of a tile are
elementwise and need no such care.

Aliasing
--------
A loop reading an input and writing an output that is the same memory falls
back to scalar code (LLVM's runtime overlap check fails).  Wherever an output
may alias an input, the last pass reads scratch only, or the result is built
in scratch and copied.
"""
import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._vmath import maximum, vexp_neg

LANES = 64
BLOCK = 32768
MIN_TILE = 16


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


@njit(cache=True, error_model="numpy")
def row_blocking(n_rows, C):
    """``(rows_per_block, n_blocks)`` for ``n_rows`` contiguous rows of C values."""
    rows = max(1, BLOCK // max(C, 1))
    return rows, (n_rows + rows - 1) // rows


@njit(cache=True, error_model="numpy")
def tile_blocking(outer, C, inner):
    """``(T, tiles_per_outer, n_blocks)`` for an ``(outer, C, inner)`` array."""
    # A multiple of 16 elements: tiles of a row meet on 64-byte steps, so
    # threads writing neighbouring tiles of line-aligned rows share no line.
    T = min(inner, max(MIN_TILE, BLOCK // max(C, 1) // 16 * 16))
    tiles = (inner + T - 1) // T
    return T, tiles, outer * tiles


@njit(cache=True, error_model="numpy")
def block_range(b, size, n):
    """Bounds of block ``b`` of ``size`` items out of ``n``."""
    lo = b * size
    return lo, min(lo + size, n)


@njit(cache=True, error_model="numpy")
def as_rows(a, n_rows, C):
    """``(n_rows, C)`` view of an ``(n_rows, C, 1)`` array; ``(0, 0)`` if it is absent."""
    if a.size == 0:
        return a.reshape((0, 0))
    return a.reshape((n_rows, C))


@njit(cache=True, error_model="numpy")
def zero_tile(a, o, i0, n):
    """``a[o, :, i0:i0+n] = 0``."""
    if n == a.shape[2]:
        flat = a[o].reshape(a.shape[1] * n)
        for j in range(flat.shape[0]):
            flat[j] = 0
        return
    for c in range(a.shape[1]):
        ac = a[o, c, i0:i0 + n]
        for i in range(n):
            ac[i] = 0


@njit(cache=True, error_model="numpy")
def sum_partials(partials):
    """Sum of the per-block partials, in block order."""
    total = 0.0
    for b in range(partials.shape[0]):
        total += partials[b]
    return total


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
    h = LANES // 2
    while h >= 8:
        for k in range(h):
            lanes[k] += lanes[k + h]
        h //= 2
    for k in range(8):
        s += lanes[k]
    return s


@njit(cache=True, error_model="numpy")
def row_exp(x, m, e):
    """``e = exp(x - m)`` along a row with ``m = max(x)``."""
    for j in range(x.shape[0]):
        e[j] = vexp_neg(x[j] - m)


@njit(cache=True, error_model="numpy")
def row_weighted_sum(w, v, prod):
    """Float64 ``sum_j w_j * v_j`` (products formed in float64 in ``prod``)."""
    for j in range(v.shape[0]):
        prod[j] = np.float64(w[j]) * np.float64(v[j])
    return row_sum(prod[:v.shape[0]])


@njit(cache=True, error_model="numpy")
def scale_into(e, a, out):
    """``out = a * e``, a in e's dtype."""
    for j in range(e.shape[0]):
        out[j] = a * e[j]


@njit(cache=True, error_model="numpy")
def copy_into(src, out):
    """``out[:] = src``; the loop that lets an aliased result leave scratch."""
    for j in range(src.shape[0]):
        out[j] = src[j]


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
def tile_exp(x, o, i0, n, m, e, s):
    """``e[c, :n] = exp(x[o, c, tile] - m)`` and ``s[:n] = sum_c e`` in float64."""
    for i in range(n):
        s[i] = 0.0
    for c in range(x.shape[1]):
        xc = x[o, c, i0:i0 + n]
        ec = e[c, :n]
        # Two loops: fused with the float64 sum, the exp would run at the
        # float64 vector width (half the float32 lanes).
        for i in range(n):
            ec[i] = vexp_neg(xc[i] - m[i])
        for i in range(n):
            s[i] += ec[i]
