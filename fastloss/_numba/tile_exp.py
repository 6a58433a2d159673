"""Exps of the class rows of a tile (``inner > 1``) and their float64 sums per position.

For float32, exps are summed in float32 over groups of ``TILE_EXP_GROUP``
classes and the group sums in float64.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .._constants import FIRST_SHIFT_ABOVE, NORMAL_EXP_MIN, TILE_EXP_GROUP
from .cache import njit
from .vector_math import add_reassoc, fmax_reducible, fmin_reducible, vexp_neg, vexp_normal
from .views import four_class_rows, four_packed_rows

_FIRST_SHIFT_ABOVE32 = np.float32(FIRST_SHIFT_ABOVE)
_NORMAL_EXP_MIN32 = np.float32(NORMAL_EXP_MIN)


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


@njit(cache=True, error_model="numpy")
def tile_exp_fast(x, o, i0, n, m, e, s, s32, keep):
    """As `tile_exp` with ``e`` flat ``(C * T)`` scratch, written only if ``keep``
    (a loss or log_softmax needs the sums alone); float32 sums over groups of
    ``TILE_EXP_GROUP`` classes are folded into the float64 ``s``.

    Four class rows per sweep, as in `tile_max_fast`.
    """
    C = x.shape[1]
    for i in range(n):
        s[i] = 0.0
    c0 = 0
    while c0 < C:
        c1 = min(c0 + TILE_EXP_GROUP, C)
        for i in range(n):
            s32[i] = 0
        c = c0
        while c + 4 <= c1:
            xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
            if keep:
                ea, eb, ec, ed = four_packed_rows(e, c, n)
                for i in range(n):
                    mi = m[i]
                    va = vexp_neg(xa[i] - mi)
                    vb = vexp_neg(xb[i] - mi)
                    vc = vexp_neg(xc[i] - mi)
                    vd = vexp_neg(xd[i] - mi)
                    ea[i] = va
                    eb[i] = vb
                    ec[i] = vc
                    ed[i] = vd
                    s32[i] += (va + vb) + (vc + vd)
            else:
                for i in range(n):
                    mi = m[i]
                    s32[i] += ((vexp_neg(xa[i] - mi) + vexp_neg(xb[i] - mi))
                               + (vexp_neg(xc[i] - mi) + vexp_neg(xd[i] - mi)))
            c += 4
        for c in range(c, c1):
            xc = x[o, c, i0:i0 + n]
            if keep:
                ec = e[c * n:(c + 1) * n]
                for i in range(n):
                    v = vexp_neg(xc[i] - m[i])
                    ec[i] = v
                    s32[i] += v
            else:
                for i in range(n):
                    s32[i] += vexp_neg(xc[i] - m[i])
        for i in range(n):
            s[i] += s32[i]
        c0 = c1


def tile_exp_first(x, o, i0, n, e, s, s32, keep):
    """`tile_exp_fast` shifted by each position's first class, ``x[o, 0, tile]``,
    in one pass that also takes the range of the shifted values over the tile.
    Returns whether that shift served, on the terms of `row_exp_sum_first`
    (float32 only: float64 returns False at once); otherwise the caller redoes
    the tile by its max.
    """
    raise NotImplementedError


@overload(tile_exp_first)
def _tile_exp_first(x, o, i0, n, e, s, s32, keep):
    if x.dtype != types.float32:
        return lambda x, o, i0, n, e, s, s32, keep: False
    return lambda x, o, i0, n, e, s, s32, keep: _tile_exp_first32(x, o, i0, n, e, s, s32, keep)


@njit(cache=True, error_model="numpy", inline="always")
def _exp_four_first(xa, xb, xc, xd, x0, ea, eb, ec, ed, s32, n, store, hi, lo, sd):
    """Four class rows of `_tile_exp_first32`: their exps added to ``s32`` (and stored
    if ``store``, a constant at each call: a store under a run-time test becomes a
    masked vector store, which some CPUs (AMD's) run far slower); returns the
    range and sum of the shifted values, carried on from ``hi``, ``lo``, ``sd``."""
    for i in range(n):
        da = xa[i] - x0[i]
        db = xb[i] - x0[i]
        dc = xc[i] - x0[i]
        dd = xd[i] - x0[i]
        va = vexp_normal(da)
        vb = vexp_normal(db)
        vc = vexp_normal(dc)
        vd = vexp_normal(dd)
        if store:
            ea[i] = va
            eb[i] = vb
            ec[i] = vc
            ed[i] = vd
        s32[i] += (va + vb) + (vc + vd)
        hi = fmax_reducible(hi, fmax_reducible(fmax_reducible(da, db), fmax_reducible(dc, dd)))
        lo = fmin_reducible(lo, fmin_reducible(fmin_reducible(da, db), fmin_reducible(dc, dd)))
        sd = add_reassoc(sd, (da + db) + (dc + dd))
    return hi, lo, sd


@njit(cache=True, error_model="numpy", inline="always")
def _exp_one_first(xc, x0, ec, s32, n, store, hi, lo, sd):
    """`_exp_four_first` for one class row."""
    for i in range(n):
        d = xc[i] - x0[i]
        v = vexp_normal(d)
        if store:
            ec[i] = v
        s32[i] += v
        hi = fmax_reducible(hi, d)
        lo = fmin_reducible(lo, d)
        sd = add_reassoc(sd, d)
    return hi, lo, sd


@njit(cache=True, error_model="numpy")
def _tile_exp_first32(x, o, i0, n, e, s, s32, keep):
    C = x.shape[1]
    x0 = x[o, 0, i0:i0 + n]
    hi = lo = sd = np.float32(0)
    for i in range(n):
        s[i] = 0.0
    for c0 in range(0, C, TILE_EXP_GROUP):
        c1 = min(c0 + TILE_EXP_GROUP, C)
        for i in range(n):
            s32[i] = 0
        c = c0
        while c + 4 <= c1:
            xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
            ea, eb, ec, ed = four_packed_rows(e, c, n)
            if keep:
                hi, lo, sd = _exp_four_first(xa, xb, xc, xd, x0, ea, eb, ec, ed, s32, n, True, hi, lo, sd)
            else:
                hi, lo, sd = _exp_four_first(xa, xb, xc, xd, x0, ea, eb, ec, ed, s32, n, False, hi, lo, sd)
            c += 4
        for c in range(c, c1):
            xc = x[o, c, i0:i0 + n]
            ec = e[c * n:(c + 1) * n]
            if keep:
                hi, lo, sd = _exp_one_first(xc, x0, ec, s32, n, True, hi, lo, sd)
            else:
                hi, lo, sd = _exp_one_first(xc, x0, ec, s32, n, False, hi, lo, sd)
        for i in range(n):
            s[i] += s32[i]
    return sd == sd and hi <= _FIRST_SHIFT_ABOVE32 and lo >= _NORMAL_EXP_MIN32
