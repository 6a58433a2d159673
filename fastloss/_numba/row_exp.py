"""Exps of a contiguous row (``inner == 1``), their float64 sum, and the row's scaling.

A row is shifted by its max, or by its first value where that serves
(`row_exp_sum_first`); float32 exps are summed in float32 over groups of
``ROW_EXP_GROUP`` values and the group sums in float64.
"""
import numpy as np
from numba import types
from numba.extending import overload

from .._constants import FIRST_SHIFT_ABOVE, NORMAL_EXP_MIN, ROW_EXP_GROUP
from .cache import njit
from .machine import exp_sum_first32
from .reductions import row_max_fast, row_sum
from .vector_math import add_reassoc, fmax_reducible, fmin_reducible, vexp_neg, vexp_normal

_FIRST_SHIFT_ABOVE32 = np.float32(FIRST_SHIFT_ABOVE)
_NORMAL_EXP_MIN32 = np.float32(NORMAL_EXP_MIN)


@njit(cache=True, error_model="numpy")
def row_exp(x, m, e):
    """``e = exp(x - m)`` along a row with ``m = max(x)``."""
    for j in range(x.shape[0]):
        e[j] = vexp_neg(x[j] - m)


@njit(cache=True, error_model="numpy")
def scale_into(e, a, out):
    """``out = a * e``, a in e's dtype."""
    for j in range(e.shape[0]):
        out[j] = a * e[j]


@njit(cache=True, error_model="numpy")
def scale_in_place(v, a):
    """``v *= a``; one array in the loop, so no overlap check keeps it scalar."""
    for j in range(v.shape[0]):
        v[j] = a * v[j]


def row_max_normal(x):
    """``(max(x), normal)`` of a non-empty row: normal when every ``exp(x - max)`` is a
    normal float32, so `row_exp_sum` may take `vexp_normal`; False for float64.

    As in `row_max_fast`, a NaN may be dropped from the max.
    """
    raise NotImplementedError


@overload(row_max_normal)
def _row_max_normal(x):
    if x.dtype == types.float32:
        return lambda x: _row_range32(x)
    return lambda x: (row_max_fast(x), False)


@njit(cache=True, error_model="numpy")
def _row_range32(x):
    mx = x[0]
    mn = x[0]
    s = np.float32(0)
    for j in range(x.shape[0]):
        mx = fmax_reducible(mx, x[j])
        mn = fmin_reducible(mn, x[j])
        s = add_reassoc(s, x[j])
    return mx, _normal_exps(mx, mn, s)


@njit(cache=True, error_model="numpy")
def _normal_exps(mx, mn, s):
    # No NaN (the sum s of the row would be NaN), and the lowest x - max in
    # vexp_normal's range (false with an infinity too).
    return s == s and mn - mx >= _NORMAL_EXP_MIN32


def row_exp_sum(x, m, e, normal):
    """``e = exp(x - m)`` (as `row_exp`) and the float64 sum of e, with m and normal
    from `row_max_normal`.

    float32: float32 sums over groups of ``ROW_EXP_GROUP`` (`_exp_group_sum32`)
    added in float64; float64: `row_sum`.
    """
    raise NotImplementedError


@overload(row_exp_sum)
def _row_exp_sum(x, m, e, normal):
    if x.dtype == types.float32:
        def impl32(x, m, e, normal):
            n = x.shape[0]
            s = 0.0
            for g0 in range(0, n, ROW_EXP_GROUP):
                g1 = min(n, g0 + ROW_EXP_GROUP)
                s += _exp_group_sum32(x[g0:g1], m, e[g0:g1], normal)
            return s
        return impl32

    def impl(x, m, e, normal):
        row_exp(x, m, e)
        return row_sum(e[:x.shape[0]])

    return impl


def row_exp_sum_first(x, e):
    """``(sum(e), m)`` with ``e = exp(x - m)`` for a shift m chosen here.

    float32 shifts by ``x[0]`` in one pass that also takes the row's range, when
    that range shows every exp normal (``NORMAL_EXP_MIN <= x - x[0] <=
    FIRST_SHIFT_ABOVE``, no NaN); otherwise, and for float64, by the row's max
    (`row_max_normal`, then `row_exp_sum`).  The loss and the gradient, formed
    from ``log(sum) + (m - x_t)`` and ``e / sum``, do not depend on the shift.
    """
    raise NotImplementedError


@njit(cache=True, error_model="numpy")
def _exp_sum_by_max(x, e):
    m, normal = row_max_normal(x)
    return row_exp_sum(x, m, e, normal), m


@overload(row_exp_sum_first, inline="always")
def _row_exp_sum_first(x, e):
    if x.dtype != types.float32:
        return lambda x, e: _exp_sum_by_max(x, e)

    def impl32(x, e):
        n = x.shape[0]
        c = x[0]
        s = 0.0
        mx = mn = c
        sx = np.float32(0)
        for g0 in range(0, n, ROW_EXP_GROUP):
            g1 = min(n, g0 + ROW_EXP_GROUP)
            gs, mx, mn, sx = exp_sum_first32(x, c, e, g0, g1, mx, mn, sx)
            s += gs
        if sx == sx and mx - c <= _FIRST_SHIFT_ABOVE32 and mn - c >= _NORMAL_EXP_MIN32:
            return s, c
        return _exp_sum_by_max(x, e)

    return impl32


@njit(cache=True, error_model="numpy")
def _exp_group_sum32(x, m, e, normal):
    # add_reassoc: LLVM sums in its own lanes, in registers (explicit stack
    # lanes stayed in memory here), in an order set by the length and the CPU.
    # LLVM unswitches the loop on `normal`: one exp per loop version.
    s = np.float32(0)
    for j in range(x.shape[0]):
        v = vexp_normal(x[j] - m) if normal else vexp_neg(x[j] - m)
        e[j] = v
        s = add_reassoc(s, v)
    return s


def row_exp_sum_next_max(x, m, e, following):
    """``(sum(exp(x - m)), max(following))``, the sum as in `row_exp_sum` (with the
    exact exp), the max as in `row_max_fast`.  e is scratch of x's length.

    The next row's max pass runs in this row's exp loop: its loads from
    memory overlap the exp work instead of stalling a loop of their own.
    float32 keeps no exps.  (Also tracking what `row_max_normal` needs, for
    the fast exp, made this loop slower.)
    """
    raise NotImplementedError


@overload(row_exp_sum_next_max, inline="always")
def _row_exp_sum_next_max(x, m, e, following):
    if x.dtype == types.float32:
        def impl32(x, m, e, following):
            n = x.shape[0]
            s = 0.0
            mx = following[0]
            for g0 in range(0, n, ROW_EXP_GROUP):
                g1 = min(n, g0 + ROW_EXP_GROUP)
                part, mx = _exp_group_sum_max32(x[g0:g1], m, following[g0:g1], mx)
                s += part
            return s, mx
        return impl32

    def impl(x, m, e, following):
        mx = following[0]
        for j in range(x.shape[0]):
            e[j] = vexp_neg(x[j] - m)
            mx = fmax_reducible(mx, following[j])
        return row_sum(e[:x.shape[0]]), mx

    return impl


@njit(cache=True, error_model="numpy", inline="always")
def _exp_group_sum_max32(x, m, following, mx):
    s = np.float32(0)
    for j in range(x.shape[0]):
        s = add_reassoc(s, vexp_neg(x[j] - m))
        mx = fmax_reducible(mx, following[j])
    return s, mx
