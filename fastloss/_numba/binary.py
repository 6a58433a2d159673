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

from ._rows import (STREAM_BYTES, as_rows, block_range, borrowed, row_blocking, row_sum,
                    stream_fence, stream_into, sum_partials, tile_blocking)
from ._vmath import vexp_neg, vlog, vlog1p, vlog1p_unit


# Elements per `_segment` call: its scratch stays in L1.
SEGMENT = 1024


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
def _tile_weights(v, K, f, out):
    """``out[j] = v[(f + j) % K]``: a row-path piece's per-element weights, copied row by row."""
    j = 0
    k = f % K
    while j < out.shape[0]:
        n = min(K - k, out.shape[0] - j)
        out[j:j + n] = v[k:k + n]
        j += n
        k = 0


@njit(cache=True, error_model="numpy")
def _binary_rows(logits, xf, yf, weight, pos_weight, gs, gof, lof, gf, K, f0, f1, stream):
    """Elements ``f0:f1`` of the flat ``(rows * K)`` arrays, in `SEGMENT` pieces that cross
    rows: short rows would otherwise leave most elements to the scalar loop tails."""
    dt = xf.dtype.type
    has_w, has_pw = weight.size != 0, pos_weight.size != 0
    size = min(f1 - f0, SEGMENT)
    lb = np.empty(size, xf.dtype)
    gb = np.empty(size if gf.size != 0 else 0, xf.dtype)
    eb = np.empty(size, xf.dtype)
    wb = np.ones(size if has_w or has_pw else 0, xf.dtype)
    pwb = np.ones(size if has_pw else 0, xf.dtype)
    part = 0.0
    for j0 in range(f0, f1, SEGMENT):
        m = min(SEGMENT, f1 - j0)
        go = borrowed(gof, j0, m) if gof.size != 0 else gof
        xm, ym, em = borrowed(xf, j0, m), borrowed(yf, j0, m), borrowed(eb, 0, m)
        lm = borrowed(lb, 0, m)
        gm = borrowed(gb, 0, m) if gf.size != 0 else gb
        if has_w or has_pw:
            wm = borrowed(wb, 0, m)
            pwm = borrowed(pwb, 0, m) if has_pw else wm
            if has_w:
                _tile_weights(weight, K, j0, wm)
            if has_pw:
                _tile_weights(pos_weight, K, j0, pwm)
            _segment(logits, xm, ym, wm, pwm, has_pw, go, gs, lm, gm, em)
        else:
            _segment(logits, xm, ym, dt(1.0), dt(1.0), False, go, gs, lm, gm, em)
        if lof.size != 0:
            stream_into(lm, borrowed(lof, j0, m), stream)
        if gf.size != 0:
            stream_into(gm, borrowed(gf, j0, m), stream)
        part += row_sum(lm)
    stream_fence(stream)
    return part


@njit(cache=True, error_model="numpy")
def _binary_tile(logits, x2, y2, weight, pos_weight, gs, go2, lo2, g2, row, k, i0, n, stream):
    dt = x2.dtype.type
    w = dt(weight[k]) if weight.size != 0 else dt(1.0)
    pw = dt(pos_weight[k]) if pos_weight.size != 0 else dt(1.0)
    size = min(n, SEGMENT)
    lb = np.empty(size, x2.dtype)
    gb = np.empty(size if g2.size != 0 else 0, x2.dtype)
    eb = np.empty(size, x2.dtype)
    part = 0.0
    f0 = row * x2.shape[1]
    for j0 in range(i0, i0 + n, SEGMENT):
        m = min(SEGMENT, i0 + n - j0)
        f = f0 + j0
        go = borrowed(go2, f, m) if go2.size != 0 else go2.reshape(0)
        lm = borrowed(lb, 0, m)
        gm = borrowed(gb, 0, m) if g2.size != 0 else gb
        _segment(logits, borrowed(x2, f, m), borrowed(y2, f, m), w, pw, pos_weight.size != 0, go, gs, lm,
                 gm, borrowed(eb, 0, m))
        if lo2.size != 0:
            stream_into(lm, borrowed(lo2, f, m), stream)
        if g2.size != 0:
            stream_into(gm, borrowed(g2, f, m), stream)
        part += row_sum(lm)
    stream_fence(stream)
    return part


@njit(parallel=True, cache=True, error_model="numpy")
def _binary(logits, x, y, weight, pos_weight, grad_scale, grad_output, loss_out, grad_out):
    """Parallel driver of both kernels; ``logits`` picks the formula."""
    outer, K, inner = x.shape
    if x.size == 0:
        return 0.0
    stream = x.size * x.itemsize >= STREAM_BYTES
    if inner == 1:
        rows, nb = row_blocking(outer, K)
        n = x.size
        xf, yf, gf = x.reshape(n), y.reshape(n), grad_out.reshape(grad_out.size)
        gof, lof = grad_output.reshape(grad_output.size), loss_out.reshape(loss_out.size)
        if nb == 1:  # no thread launch for a single block
            return _binary_rows(logits, xf, yf, weight, pos_weight, grad_scale, gof, lof, gf, K, 0, n, stream)
        partials = np.empty(nb)
        for b in prange(nb):
            r0, r1 = block_range(b, rows, outer)
            partials[b] = _binary_rows(logits, xf, yf, weight, pos_weight, grad_scale, gof, lof, gf, K,
                                       r0 * K, r1 * K, stream)
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
                                       row, row % K, i0, i1 - i0, stream)
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
