"""Binary cross-entropy on probabilities and on logits.

Kernels
-------
binary_cross_entropy(p, y, weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k ((y - 1) max(log1p(-p), -100) - y max(log(p), -100))`` and
    ``grad = g w_k (p - y) / max((1 - p) p, 1e-12)``, as torch computes them
    (``log1p(-p)`` rather than ``log(1 - p)``, which loses small p).
binary_cross_entropy_with_logits(x, y, weight, pos_weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k ((1 - y) x - (1 + (pw_k - 1) y) log_sigmoid(x))`` with
    ``log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))``, and
    ``grad = g w_k ((pw_k y + 1 - y) sigmoid(x) - pw_k y)`` (``pw_k = 1``
    without pos_weight).

Every element of the ``(outer, K, inner)`` arrays is a position; ``weight``
and ``pos_weight`` broadcast along K.  With inner == 1 a block is a run of
rows of K elements and weights vary along a row; with inner > 1 it is a tile
of one ``(o, k)`` row, whose weights are scalars.  A run's losses are summed
with the lane accumulators of ``row_sum`` (an order set by the shape; a
strictly sequential float64 sum would cost more than the losses).  Results are
formed in scratch and copied out, so outputs may be the same memory as inputs.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._rows import (as_rows, block_range, copy_into, row_blocking, row_sum, sum_partials,
                    tile_blocking)
from ._vmath import vexp_neg, vlog, vlog1p, vlog1p_unit


def _at(v, j):
    """``v[j]`` for an array, ``v`` for a scalar, in jitted code: one segment
    loop then serves per-element weights (inner == 1) and per-row ones."""
    raise NotImplementedError


@overload(_at)
def _at_impl(v, j):
    if isinstance(v, types.Array):
        return lambda v, j: v[j]
    return lambda v, j: v


@njit(cache=True, error_model="numpy")
def _segment(logits, x, y, w, pw, has_pw, go, gs, lb, gb, eb):
    """Losses of one contiguous run into ``lb``, gradients into ``gb`` unless it is empty.

    ``w``, ``pw``: arrays along the run or scalars; ``go``: the run's
    grad_output, or empty; ``eb``: scratch as long as the run.  Arithmetic is
    in x's dtype, ``gs`` included.
    """
    dt = x.dtype.type
    one = dt(1.0)
    zero = dt(0.0)
    g = dt(gs)
    n = x.shape[0]
    has_g = gb.shape[0] != 0
    if logits:
        # exp(-|x|) once for the loss and the gradient.
        for j in range(n):
            eb[j] = vexp_neg(-abs(x[j]))
        for j in range(n):
            xj = x[j]
            yj = y[j]
            lsig = (xj if xj < zero else zero) - vlog1p_unit(eb[j])
            if has_pw:
                lsig = ((_at(pw, j) - one) * yj + one) * lsig
            lb[j] = ((one - yj) * xj - lsig) * _at(w, j)
        if not has_g:
            return
        for j in range(n):
            xj = x[j]
            yj = y[j]
            sig = (one if xj >= zero else eb[j]) / (one + eb[j])
            if has_pw:
                t = _at(pw, j) * yj
                d = (t + one - yj) * sig - t
            else:
                d = sig - yj
            gb[j] = d * (g * go[j] if go.shape[0] != 0 else g) * _at(w, j)
        return
    floor = dt(-100.0)
    for j in range(n):
        pj = x[j]
        yj = y[j]
        # NaN-keeping clamps: a NaN log stays NaN.
        lp = vlog(pj)
        lp = floor if lp < floor else lp
        lq = vlog1p(-pj)
        lq = floor if lq < floor else lq
        lb[j] = ((yj - one) * lq - yj * lp) * _at(w, j)
    if not has_g:
        return
    eps = dt(np.float32(1e-12))  # torch's EPSILON is a float constant
    for j in range(n):
        pj = x[j]
        den = (one - pj) * pj
        den = eps if den < eps else den
        gb[j] = (g * go[j] if go.shape[0] != 0 else g) * (pj - y[j]) / den * _at(w, j)


@njit(cache=True, error_model="numpy")
def _binary_rows(logits, x2, y2, weight, pos_weight, gs, go2, lo2, g2, r0, r1):
    K = x2.shape[1]
    # Mutable copies: one array type whether or not the (maybe read-only) input is given.
    w = np.ones(K, x2.dtype)
    if weight.size != 0:
        w[:] = weight
    pw = np.ones(K, x2.dtype)
    if pos_weight.size != 0:
        pw[:] = pos_weight
    lb = np.empty(K, x2.dtype)
    gb = np.empty(K if g2.size != 0 else 0, x2.dtype)
    eb = np.empty(K, x2.dtype)
    part = 0.0
    for r in range(r0, r1):
        go = go2[r] if go2.size != 0 else go2.reshape(0)
        _segment(logits, x2[r], y2[r], w, pw, pos_weight.size != 0, go, gs, lb, gb, eb)
        part += row_sum(lb)
        if lo2.size != 0:
            copy_into(lb, lo2[r])
        if g2.size != 0:
            copy_into(gb, g2[r])
    return part


# Elements per `_segment` call in a tile: its scratch stays in L1.
SEGMENT = 2048


@njit(cache=True, error_model="numpy")
def _binary_tile(logits, x2, y2, weight, pos_weight, gs, go2, lo2, g2, row, k, i0, n):
    dt = x2.dtype.type
    w = dt(weight[k]) if weight.size != 0 else dt(1.0)
    pw = dt(pos_weight[k]) if pos_weight.size != 0 else dt(1.0)
    size = min(n, SEGMENT)
    lb = np.empty(size, x2.dtype)
    gb = np.empty(size if g2.size != 0 else 0, x2.dtype)
    eb = np.empty(size, x2.dtype)
    part = 0.0
    for j0 in range(i0, i0 + n, SEGMENT):
        j1 = min(j0 + SEGMENT, i0 + n)
        m = j1 - j0
        go = go2[row, j0:j1] if go2.size != 0 else go2.reshape(0)
        _segment(logits, x2[row, j0:j1], y2[row, j0:j1], w, pw, pos_weight.size != 0, go, gs, lb[:m],
                 gb[:m], eb[:m])
        if lo2.size != 0:
            copy_into(lb[:m], lo2[row, j0:j1])
        if g2.size != 0:
            copy_into(gb[:m], g2[row, j0:j1])
        part += row_sum(lb[:m])
    return part


@njit(parallel=True, cache=True, error_model="numpy")
def _binary(logits, x, y, weight, pos_weight, grad_scale, grad_output, loss_out, grad_out):
    """Parallel driver of both kernels; ``logits`` picks the formula."""
    outer, K, inner = x.shape
    if x.size == 0:
        return 0.0
    if inner == 1:
        rows, nb = row_blocking(outer, K)
        x2, y2 = x.reshape((outer, K)), y.reshape((outer, K))
        go2, lo2 = as_rows(grad_output, outer, K), as_rows(loss_out, outer, K)
        g2 = as_rows(grad_out, outer, K)
        partials = np.empty(nb)
        for b in prange(nb):
            r0, r1 = block_range(b, rows, outer)
            partials[b] = _binary_rows(logits, x2, y2, weight, pos_weight, grad_scale, go2, lo2, g2, r0, r1)
    else:
        T, tiles, nb = tile_blocking(outer * K, 1, inner)
        x2, y2 = x.reshape((outer * K, inner)), y.reshape((outer * K, inner))
        go2, lo2 = as_rows(grad_output, outer * K, inner), as_rows(loss_out, outer * K, inner)
        g2 = as_rows(grad_out, outer * K, inner)
        partials = np.empty(nb)
        for b in prange(nb):
            i0, i1 = block_range(b % tiles, T, inner)
            row = b // tiles
            partials[b] = _binary_tile(logits, x2, y2, weight, pos_weight, grad_scale, go2, lo2, g2,
                                       row, row % K, i0, i1 - i0)
    return sum_partials(partials)


@njit(cache=True, error_model="numpy")
def binary_cross_entropy(p, y, weight, grad_scale, grad_output, loss_out, grad_out):
    """Sum of the elementwise BCE of probabilities ``p``; see the module docstring."""
    return _binary(False, p, y, weight, weight[:0], grad_scale, grad_output, loss_out, grad_out)


@njit(cache=True, error_model="numpy")
def binary_cross_entropy_with_logits(x, y, weight, pos_weight, grad_scale, grad_output, loss_out,
                                     grad_out):
    """Sum of the elementwise BCE of logits ``x``; see the module docstring."""
    return _binary(True, x, y, weight, pos_weight, grad_scale, grad_output, loss_out, grad_out)
