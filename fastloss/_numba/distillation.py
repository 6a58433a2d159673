"""Fused knowledge-distillation loss with optional gradient.

Kernel
------
distillation_loss(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out) -> float
    ``student`` and ``teacher``: ``(outer, C, inner)`` logits of one dtype.  With
    ``P = softmax(teacher / T)`` and ``Q = softmax(student / T)`` over the class
    axis (``T = temperature``), every element has the loss
    ``l_j = T**2 P_j (log P_j - log Q_j)`` (torch's ``kl_div(log Q, log P,
    log_target=True)`` times ``T**2``).  Returns ``sum_j l_j`` as a float64,
    writes ``l_j`` into ``loss_out`` (``(outer, C, inner)``) when it is given,
    and into ``grad_out`` the gradient of ``sum_j g_j l_j`` with respect to the
    student, ``g_j = grad_scale * grad_output[j]`` (``grad_scale`` alone when
    ``grad_output``, of x's shape, is absent).

A row (inner == 1) or tile (inner > 1) of both arrays is read from memory once,
into scratch over the temperature; the exps, the losses and the gradient are
formed there, so ``grad_out`` may be either input.  The formulas are
`formulas.distillation_term` and `formulas.distillation_gradient`.
"""
import numpy as np
from numba import prange

from .._constants import STREAM_BYTES
from .blocking import BLOCK_GROUPS, block_range, row_blocking, sum_partials, tile_blocking
from .cache import njit
from .formulas import distillation_gradient, distillation_gradient_scales, distillation_scales, distillation_term
from .reductions import row_sum, row_weighted_sum, tile_max
from .row_exp import row_exp_sum_first
from .streaming import copy_into, stream_fence, stream_into
from .tile_exp import tile_exp
from .views import as_rows, borrowed


@njit(cache=True, error_model="numpy")
def _padded(C):
    """A scratch row's length: whole 64-byte lines, so the four rows of a block start
    aligned alike, and the same logits give the same exps in either."""
    return (C + 15) // 16 * 16


@njit(cache=True, error_model="numpy")
def _over_temperature(student, teacher, temperature, s, t):
    """``s = student / T``, ``t = teacher / T`` (torch divides, too)."""
    for j in range(s.shape[0]):
        s[j] = student[j] / temperature
        t[j] = teacher[j] / temperature


@njit(cache=True, error_model="numpy")
def _exp_sum(x, e):
    """`row_exp_sum_first` of a row, not inlined: inlined twice into one function, it made
    Numba warn of a variable out of scope."""
    return row_exp_sum_first(x, e)


@njit(cache=True, error_model="numpy")
def _class_losses(s, t, et, ms, mt, c, log_ratio):
    """``s_j = distillation_term(...)`` in place: a row's losses over its scaled logits."""
    for j in range(s.shape[0]):
        s[j] = distillation_term(et[j], t[j] - mt, s[j] - ms, c, log_ratio)


@njit(cache=True, error_model="numpy")
def _gradient(es, a, b, upstream, et):
    """``es_j = distillation_gradient(a, es_j, b, g_j, et_j)`` in place, ``g_j = upstream[j]``,
    or 1 where ``upstream`` is empty (a gradient the same for every class, in ``b``)."""
    each = upstream.shape[0] != 0
    one = es.dtype.type(1)
    for j in range(es.shape[0]):
        es[j] = distillation_gradient(a, es[j], b, upstream[j] if each else one, et[j])


@njit(cache=True, error_model="numpy")
def _rows(s2, t2, temperature, grad_scale, go2, lo2, g2, r0, r1, scratch, products, stream):
    """Rows ``r0:r1``; returns the float64 sum of their losses.  ``scratch`` holds four rows
    of x's dtype, ``products`` a float64 row when ``go2`` is given."""
    C = s2.shape[1]
    row = _padded(C)
    dt = s2.dtype.type
    s = borrowed(scratch, 0, C)         # student / T, then the losses
    t = borrowed(scratch, row, C)       # teacher / T
    et = borrowed(scratch, 2 * row, C)  # exp(t - mt)
    es = borrowed(scratch, 3 * row, C)  # exp(s - ms), then the gradient
    uniform = scratch[:0]
    part = 0.0
    for r in range(r0, r1):
        _over_temperature(borrowed(s2, r * C, C), borrowed(t2, r * C, C), dt(temperature), s, t)
        St, mt = _exp_sum(t, et)
        Ss, ms = _exp_sum(s, es)
        c, log_ratio = distillation_scales(temperature, St, Ss)
        _class_losses(s, t, et, ms, mt, dt(c), dt(log_ratio))
        part += row_sum(s)
        if lo2.size != 0:
            copy_into(s, borrowed(lo2, r * C, C))
        if g2.size != 0:
            each = go2.size != 0
            upstream = borrowed(go2, r * C, C) if each else uniform
            G = grad_scale * row_weighted_sum(upstream, et, products) / St if each else grad_scale
            a, b = distillation_gradient_scales(temperature, G, St, Ss)
            _gradient(es, dt(a), dt(b * grad_scale), upstream, et)
            stream_into(es, borrowed(g2, r * C, C), stream)
    stream_fence(stream)
    return part


@njit(cache=True, error_model="numpy")
def _row_group(s2, t2, temperature, grad_scale, go2, lo2, g2, stream, rows, b0, b1, partials):
    """Blocks ``b0:b1`` of the row path, sharing one set of scratch."""
    C = s2.shape[1]
    scratch = np.empty(4 * _padded(C), s2.dtype)
    products = np.empty(C if go2.size != 0 else 0)
    for b in range(b0, b1):
        r0, r1 = block_range(b, rows, s2.shape[0])
        partials[b] = _rows(s2, t2, temperature, grad_scale, go2, lo2, g2, r0, r1, scratch, products,
                            stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _row_blocks(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out):
    """`distillation_loss` on rows (``inner == 1``)."""
    outer, C, _ = student.shape
    rows, nb = row_blocking(outer, C)
    stream = grad_out.nbytes >= STREAM_BYTES
    s2 = student.reshape((outer, C))
    t2 = teacher.reshape((outer, C))
    go2 = as_rows(grad_output, outer, C)
    lo2 = as_rows(loss_out, outer, C)
    g2 = as_rows(grad_out, outer, C)
    partials = np.empty(nb)
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _row_group(s2, t2, temperature, grad_scale, go2, lo2, g2, stream, rows, k * nb // ns,
                   (k + 1) * nb // ns, partials)
    return sum_partials(partials)


@njit(cache=True, error_model="numpy")
def _tile(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out, stream, o, i0, n,
          packed, per_position, sums):
    """One tile of n positions; returns the float64 sum of its losses.  ``packed`` holds four
    ``(C, n)`` blocks of x's dtype, ``per_position`` six rows of at least n of x's dtype,
    ``sums`` four float64 rows of at least n."""
    C, inner = student.shape[1], student.shape[2]
    dt = student.dtype.type
    block = C * n
    s = packed[:block].reshape((1, C, n))               # student / T, then the losses
    t = packed[block:2 * block].reshape((1, C, n))      # teacher / T
    et = packed[2 * block:3 * block].reshape((C, n))    # exp(t - mt)
    es = packed[3 * block:4 * block].reshape((C, n))    # exp(s - ms), then the gradient
    ms, mt, c, log_ratio, a, b = (per_position[0, :n], per_position[1, :n], per_position[2, :n],
                                  per_position[3, :n], per_position[4, :n], per_position[5, :n])
    Ss, St, losses, G = sums[0, :n], sums[1, :n], sums[2, :n], sums[3, :n]
    for k in range(C):
        _over_temperature(student[o, k, i0:i0 + n], teacher[o, k, i0:i0 + n], dt(temperature), s[0, k],
                          t[0, k])
    tile_max(s, 0, 0, n, ms)
    tile_exp(s, 0, 0, n, ms, es, Ss)
    tile_max(t, 0, 0, n, mt)
    tile_exp(t, 0, 0, n, mt, et, St)
    for i in range(n):
        ci, ri = distillation_scales(temperature, St[i], Ss[i])
        c[i] = dt(ci)
        log_ratio[i] = dt(ri)
        losses[i] = 0.0
    for k in range(C):
        sk, tk, ek = s[0, k], t[0, k], et[k]
        for i in range(n):
            v = distillation_term(ek[i], tk[i] - mt[i], sk[i] - ms[i], c[i], log_ratio[i])
            sk[i] = v
            losses[i] += v
        if loss_out.size != 0:
            copy_into(sk, loss_out[o, k, i0:i0 + n])
    part = row_sum(losses)
    if grad_out.size == 0:
        return part
    each = grad_output.size != 0
    if each:
        for i in range(n):
            G[i] = 0.0
        for k in range(C):
            upstream, ek = grad_output[o, k, i0:i0 + n], et[k]
            for i in range(n):
                G[i] += np.float64(upstream[i]) * np.float64(ek[i])
        for i in range(n):
            G[i] = grad_scale * G[i] / St[i]
    else:
        for i in range(n):
            G[i] = grad_scale
    for i in range(n):
        ai, bi = distillation_gradient_scales(temperature, G[i], St[i], Ss[i])
        a[i] = dt(ai)
        b[i] = dt(bi * grad_scale)
    one = dt(1)
    for k in range(C):
        ek = borrowed(et, k * n, n)
        gk = borrowed(es, k * n, n)
        if each:
            upstream = borrowed(grad_output, (o * C + k) * inner + i0, n)
            for i in range(n):
                gk[i] = distillation_gradient(a[i], gk[i], b[i], upstream[i], ek[i])
        else:
            for i in range(n):
                gk[i] = distillation_gradient(a[i], gk[i], b[i], one, ek[i])
        stream_into(gk, borrowed(grad_out, (o * C + k) * inner + i0, n), stream)
    stream_fence(stream)
    return part


@njit(cache=True, error_model="numpy")
def _tile_group(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out, stream, T, tiles,
                b0, b1, partials):
    """Blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    C, inner = student.shape[1], student.shape[2]
    packed = np.empty(4 * C * T, student.dtype)
    per_position = np.empty((6, T), student.dtype)
    sums = np.empty((4, T))
    for b in range(b0, b1):
        i0, i1 = block_range(b % tiles, T, inner)
        partials[b] = _tile(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out,
                            stream, b // tiles, i0, i1 - i0, packed, per_position, sums)


@njit(parallel=True, cache=True, error_model="numpy")
def _tile_blocks(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out):
    """`distillation_loss` on tiles (``inner > 1``)."""
    outer, C, inner = student.shape
    # Four packed (C, T) blocks of scratch: tiles sized as for 4 C classes.
    T, tiles, nb = tile_blocking(outer, 4 * C, inner)
    stream = grad_out.nbytes >= STREAM_BYTES
    partials = np.empty(nb)
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _tile_group(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out, stream, T,
                    tiles, k * nb // ns, (k + 1) * nb // ns, partials)
    return sum_partials(partials)


def distillation_loss(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out):
    """Sum of the distillation losses of every element; see the module docstring.

    Each path is a kernel of its own, picked here: a call compiles only the path it takes.
    """
    if student.size == 0:
        return 0.0
    kernel = _row_blocks if student.shape[2] == 1 else _tile_blocks
    return kernel(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out)
