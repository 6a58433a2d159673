"""Fused log-softmax + NLL (cross-entropy) with optional gradient.

Kernels
-------
cross_entropy_class(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out) -> float
    Class-index targets, ``eps = label_smoothing``:
    ``l_i = (1 - eps) w_t (lse_i - x_t) + eps / C * sum_j w_j (lse_i - x_j) + z_loss w_t lse_i**2``
    (no smoothing term at all when ``eps == 0``), 0 where ``t == ignore_index``.
cross_entropy_prob(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out) -> float
    Probability targets ``y`` (``(outer, C, inner)``), smoothed to
    ``y' = (1 - eps) y + eps / C``: ``l_i = sum_j w_j y'_j (lse_i - x_j) + z_loss lse_i**2``.

Each kernel reads a row (inner == 1) or tile (inner > 1) of logits from memory
once, keeps ``exp(x - max)`` in scratch and writes the gradient from it, so
``grad_out`` may be ``x``.  Sums over classes are float64 and formed from
non-negative terms (``lse - x_j = log(sum) + (max - x_j)``).
"""
import math

import numpy as np
from numba import prange

from .._constants import STREAM_BYTES, STREAM_ROW_BYTES
from .blocking import BLOCK_GROUPS, block_range, row_blocking, sum_partials, tile_blocking
from .cache import njit
from .formulas import (class_target_position, ignored_gradient, prob_target_class, prob_target_gradient,
                       prob_target_loss, prob_target_scale, prob_target_weight)
from .reductions import row_max, row_sum, tile_max, tile_max_fast
from .row_exp import row_exp, row_exp_sum, row_exp_sum_first, row_max_normal, scale_in_place, scale_into
from .streaming import stream_affine, stream_fence, stream_into
from .tile_exp import tile_exp, tile_exp_fast, tile_exp_first
from .vector_math import vlog
from .views import as_rows, borrowed


@njit(cache=True, error_model="numpy")
def _total_weight(weight, C):
    if weight.size == 0:
        return np.float64(C)
    W = 0.0
    for c in range(C):
        W += weight[c]
    return W


@njit(cache=True, error_model="numpy")
def _smoothed_gradient(v, a, b, weight, smooth):
    """``v = a v - b w`` in place (``w = 1`` without weights; ``a v`` alone unless ``smooth``)."""
    if not smooth:
        scale_in_place(v, a)
    elif weight.size != 0:
        for j in range(v.shape[0]):
            v[j] = a * v[j] - b * weight[j]
    else:
        for j in range(v.shape[0]):
            v[j] = a * v[j] - b


@njit(cache=True, error_model="numpy")
def _class_rows(x2, target, weight, ignore_index, eps, z, W, grad_scale, grad_output, loss_out,
                g2, r0, r1):
    C = x2.shape[1]
    dt = x2.dtype.type
    has_w = weight.size != 0
    # The exps go straight into the gradient row, and are scaled there: its
    # first write from memory then overlaps the exp work instead of being a
    # memory-bound last pass.  A gradient written over x takes them in scratch.
    direct = g2.size != 0 and g2.ctypes.data != x2.ctypes.data
    scratch = np.empty(0 if direct else C, x2.dtype)
    prod = np.empty(C if eps != 0.0 else 0)
    part = 0.0
    for r in range(r0, r1):
        t = target[r, 0]
        l = 0.0
        if t == ignore_index:
            if g2.size != 0:
                fill = ignored_gradient(row_max(x2[r]), dt)
                gr = g2[r]
                for j in range(C):
                    gr[j] = fill
        else:
            xr = x2[r]
            e = g2[r] if direct else scratch
            sm = 0.0
            if eps == 0.0:
                s, m = row_exp_sum_first(xr, e)
            else:
                # NaN-dropping max: a NaN, +inf or all -inf row still has a NaN sum.
                m, normal = row_max_normal(xr)
                s = row_exp_sum(xr, m, e, normal)
                for j in range(C):
                    prod[j] = (np.float64(m) - np.float64(xr[j])) * (weight[j] if has_w else 1.0)
                sm = row_sum(prod)
            wt = np.float64(weight[t]) if has_w else 1.0
            g = grad_scale * grad_output[r, 0] if grad_output.size != 0 else grad_scale
            ls = math.log(s)
            l, a, b, bt = class_target_position(ls, 1.0 / s, np.float64(xr[t]) - np.float64(m),
                                                sm, wt, W, eps, C, g, z, np.float64(m) + ls)
            gt = a * np.float64(e[t]) - b * wt - bt  # read before e (maybe gr) is scaled
            if g2.size != 0:
                gr = g2[r]
                if direct:
                    _smoothed_gradient(gr, dt(a), dt(b), weight, eps != 0.0)
                else:
                    # gr is x: scale out of scratch, then smooth in place.  (One helper
                    # taking a source and a destination, passed gr twice in the direct
                    # case, stays scalar there: LLVM's overlap check fails.)
                    scale_into(e, dt(a), gr)
                    if eps != 0.0:
                        _smoothed_gradient(gr, dt(1.0), dt(b), weight, eps != 0.0)  # a bool, not a literal: one compile
                gr[t] = gt
        part += l
        if loss_out.size != 0:
            loss_out[r, 0] = l
    return part


@njit(cache=True, error_model="numpy")
def _streamed_class_rows(x2, target, weight, ignore_index, z, W, grad_scale, grad_output, loss_out,
                         g2, r0, r1, scratch):
    """`_class_rows` without smoothing, for a gradient that is streamed: a row's
    exps stay in scratch (C items, in L1) and its gradient leaves from there in
    one pass (`stream_affine`), the target's term included.  Rows are borrowed
    views and the helpers are inlined (see `streaming`)."""
    C = x2.shape[1]
    dt = x2.dtype.type
    e = borrowed(scratch, 0, C)
    part = 0.0
    for r in range(r0, r1):
        t = target[r, 0]
        xr = borrowed(x2, r * C, C)
        gr = borrowed(g2, r * C, C)
        l = 0.0
        if t == ignore_index:
            fill = ignored_gradient(row_max(xr), dt)
            for j in range(C):
                gr[j] = fill
        else:
            s, m = row_exp_sum_first(xr, e)
            wt = np.float64(weight[t]) if weight.size != 0 else 1.0
            g = grad_scale * grad_output[r, 0] if grad_output.size != 0 else grad_scale
            ls = math.log(s)
            l, a, _, bt = class_target_position(ls, 1.0 / s, np.float64(xr[t]) - np.float64(m),
                                                0.0, wt, W, 0.0, C, g, z, np.float64(m) + ls)
            stream_affine(e, dt(0), dt(a), dt(0), gr, t, dt(a * np.float64(e[t]) - bt))
        part += l
        if loss_out.size != 0:
            loss_out[r, 0] = l
    stream_fence(True)
    return part


@njit(cache=True, error_model="numpy")
def _class_tile(x, target, weight, ignore_index, eps, z, W, grad_scale, grad_output, loss_out,
                grad_out, stream, o, i0, n, exps, shift, exp_sum, exp_sum32, target_logit, grad_a, grad_b,
                grad_bt, target32, smooth_sum, target_weight, losses):
    """One tile.  Scratch: ``exps`` of at least ``C * n`` items, the rest of at least n:
    per position its exp ``shift``, ``exp_sum`` (float64) and ``exp_sum32``, the
    logit at its target (``target_logit``) and the target as int32
    (``target32``), its gradient coefficients ``grad_a``, ``grad_b``, ``grad_bt``
    (see `class_target_position`), ``smooth_sum`` (float64), ``target_weight``
    (float64) and ``losses`` (float64)."""
    C = x.shape[1]
    dt = x.dtype.type
    has_w = weight.size != 0
    has_g = grad_out.size != 0
    tgt = target[o, i0:i0 + n]
    # A fully ignored tile needs no exp at all.
    live = 0
    for i in range(n):
        live += tgt[i] != ignore_index
    if live == 0:
        if loss_out.size != 0:
            for i in range(n):
                loss_out[o, i0 + i] = 0
        if has_g:
            tile_max(x, o, i0, n, shift)
            for i in range(n):
                shift[i] = ignored_gradient(shift[i], dt)
            for c in range(C):
                gc = grad_out[o, c, i0:i0 + n]
                for i in range(n):
                    gc[i] = shift[i]
        return 0.0
    # Shifted by each position's first class when that serves (one pass), as
    # rows are by their first value; by the max otherwise.
    if eps == 0.0 and tile_exp_first(x, o, i0, n, exps, exp_sum, exp_sum32, has_g):
        x0 = x[o, 0, i0:i0 + n]
        for i in range(n):
            shift[i] = x0[i]
    else:
        # The max drops NaN: a NaN (or +inf, or an all -inf position) still makes
        # the position's sum s NaN, and so its loss and gradient.
        tile_max_fast(x, o, i0, n, shift)
        tile_exp_fast(x, o, i0, n, shift, exps, exp_sum, exp_sum32, has_g)
    # Targets as int32, -1 where ignored (matching no class); their logits are
    # gathered here, per position, to keep the class loops select-free.
    # One result per loop (as the log loop below: faster than one loop doing
    # all); an ignored position reads class 0 and has its value selected away.
    for i in range(n):
        t = tgt[i]
        target32[i] = np.int32(t) if t != ignore_index else np.int32(-1)
    xo = x[o].reshape(C * x.shape[2])[i0:]
    stride = x.shape[2]
    for i in range(n):
        # An unsigned index: no wraparound branch for a negative one.
        xv = xo[np.uint64(max(target32[i], 0) * stride + i)]
        target_logit[i] = xv if target32[i] >= 0 else dt(0)
    for i in range(n):
        smooth_sum[i] = 0.0
    if eps != 0.0:
        for c in range(C):
            xc = x[o, c, i0:i0 + n]
            wc = np.float64(weight[c]) if has_w else 1.0
            for i in range(n):
                smooth_sum[i] += (np.float64(shift[i]) - np.float64(xc[i])) * wc
    for i in range(n):
        target_weight[i] = 1.0 if target32[i] >= 0 else 0.0
    if has_w:
        for i in range(n):
            if target32[i] >= 0:
                target_weight[i] = weight[target32[i]]
    # log(s) in x's dtype (s lies in [1, C], or is NaN: a float32 log is much
    # less work than a float64 one), in a loop of its own, which LLVM vectorises
    # at x's width rather than at the float64 width of the loop below.
    log_sum = exp_sum32  # the float32 exp sums are spent: their scratch takes the logs
    for i in range(n):
        log_sum[i] = vlog(dt(exp_sum[i]))
    # Branch-free, so it vectorises; ignored positions are masked out.
    has_go = grad_output.size != 0
    for i in range(n):
        g = grad_scale * grad_output[o, i0 + i] if has_go else grad_scale
        dxt = np.float64(target_logit[i]) - np.float64(shift[i])
        ls = np.float64(log_sum[i])
        l, ai, bi, bti = class_target_position(ls, 1.0 / exp_sum[i], dxt, smooth_sum[i],
                                               target_weight[i], W, eps, C, g, z, np.float64(shift[i]) + ls)
        on = target32[i] >= 0
        losses[i] = l if on else 0.0
        # An ignored position's gradient is torch's 0 - softmax * 0: a e with
        # a = 0 / s, so NaN where s is (the softmax is NaN there).
        grad_a[i] = dt(ai) if on else dt(0.0 / exp_sum[i])
        grad_b[i] = dt(bi) if on else dt(0.0)
        grad_bt[i] = dt(bti)
    part = row_sum(losses[:n])  # lanes: a plain running sum is a chain of dependent adds
    if loss_out.size != 0:
        lo = loss_out[o, i0:i0 + n]
        for i in range(n):
            lo[i] = losses[i]
    if has_g:
        # A class row of the gradient is built over its exps in scratch (grad_out
        # may be x), less grad_bt at the target, and streamed out while in L1.
        zero = dt(0.0)
        for c in range(C):
            ec = borrowed(exps, c * n, n)
            c32 = np.int32(c)  # an int64 compare would halve the vector width
            if eps == 0.0:
                for i in range(n):
                    ec[i] = grad_a[i] * ec[i] - (grad_bt[i] if target32[i] == c32 else zero)
            else:
                wc = weight[c] if has_w else dt(1.0)
                for i in range(n):
                    ec[i] = (grad_a[i] * ec[i] - grad_b[i] * wc) - (grad_bt[i] if target32[i] == c32 else zero)
            stream_into(ec, borrowed(grad_out, (o * C + c) * x.shape[2] + i0, n), stream)
        stream_fence(stream)
    return part


@njit(cache=True, error_model="numpy")
def _class_tiles(x, target, weight, ignore_index, eps, z, W, grad_scale, grad_output, loss_out,
                 grad_out, stream, T, tiles, b0, b1, partials):
    """Blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    C = x.shape[1]
    e = np.empty(C * T, x.dtype)
    d = np.empty((6, T), x.dtype)
    s = np.empty(T)
    f = np.empty((3, T))
    tg = np.empty(T, np.int32)
    inner = x.shape[2]
    for b in range(b0, b1):
        i0, i1 = block_range(b % tiles, T, inner)
        partials[b] = _class_tile(x, target, weight, ignore_index, eps, z, W, grad_scale, grad_output,
                                  loss_out, grad_out, stream, b // tiles, i0, i1 - i0, e, d[0], s, d[1],
                                  d[2], d[3], d[4], d[5], tg, f[0], f[1], f[2])


@njit(parallel=True, cache=True, error_model="numpy")
def _class_row_blocks(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad_output,
                      loss_out, grad_out):
    """`cross_entropy_class` on rows (``inner == 1``), the gradient not streamed."""
    outer, C, _ = x.shape
    rows, nb = row_blocking(outer, C)
    x2 = x.reshape((outer, C))
    g2 = as_rows(grad_out, outer, C)
    W = _total_weight(weight, C)
    partials = np.empty(nb)
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        partials[b] = _class_rows(x2, target, weight, ignore_index, label_smoothing, z_loss, W, grad_scale,
                                  grad_output, loss_out, g2, r0, r1)
    return sum_partials(partials)


@njit(parallel=True, cache=True, error_model="numpy")
def _streamed_class_row_blocks(x, target, weight, ignore_index, z_loss, grad_scale, grad_output, loss_out,
                               grad_out):
    """`cross_entropy_class` on rows (``inner == 1``) without smoothing, the gradient streamed."""
    outer, C, _ = x.shape
    rows, nb = row_blocking(outer, C)
    x2 = x.reshape((outer, C))
    g2 = grad_out.reshape((outer, C))
    W = _total_weight(weight, C)
    partials = np.empty(nb)
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        partials[b] = _streamed_class_rows(x2, target, weight, ignore_index, z_loss, W, grad_scale, grad_output,
                                           loss_out, g2, r0, r1, np.empty(C, x.dtype))
    return sum_partials(partials)


@njit(parallel=True, cache=True, error_model="numpy")
def _class_tile_blocks(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad_output,
                       loss_out, grad_out):
    """`cross_entropy_class` on tiles (``inner > 1``)."""
    outer, C, inner = x.shape
    T, tiles, nb = tile_blocking(outer, C, inner)
    stream = grad_out.size * grad_out.itemsize >= STREAM_BYTES
    W = _total_weight(weight, C)
    partials = np.empty(nb)
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _class_tiles(x, target, weight, ignore_index, label_smoothing, z_loss, W, grad_scale, grad_output,
                     loss_out, grad_out, stream, T, tiles, k * nb // ns, (k + 1) * nb // ns, partials)
    return sum_partials(partials)


def cross_entropy_class(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad_output,
                        loss_out, grad_out):
    """Sum of the per-position class-target cross-entropy; see the module docstring.

    Each path is a kernel of its own, picked here: a call compiles only the path it takes.
    """
    outer, C, inner = x.shape
    if outer * inner == 0:
        return 0.0
    if inner > 1:
        return _class_tile_blocks(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale,
                                  grad_output, loss_out, grad_out)
    # Streamed rows fit in L1 (STREAM_ROW_BYTES); smoothing keeps the plain path.
    if (grad_out.nbytes >= STREAM_BYTES and C * x.itemsize <= STREAM_ROW_BYTES
            and label_smoothing == 0.0):
        return _streamed_class_row_blocks(x, target, weight, ignore_index, z_loss, grad_scale, grad_output,
                                          loss_out, grad_out)
    return _class_row_blocks(x, target, weight, ignore_index, label_smoothing, z_loss, grad_scale, grad_output,
                             loss_out, grad_out)


@njit(cache=True, error_model="numpy")
def _prob_rows(x2, y2, weight, eps, z, grad_scale, grad_output, loss_out, g2, r0, r1):
    C = x2.shape[1]
    dt = x2.dtype.type
    has_w = weight.size != 0
    e = np.empty(C, x2.dtype)
    wy = np.empty(C)
    prod = np.empty(C)
    part = 0.0
    for r in range(r0, r1):
        xr = x2[r]
        yr = y2[r]
        m = row_max(xr)
        row_exp(xr, m, e)
        s = row_sum(e)
        for j in range(C):
            wy[j], prod[j] = prob_target_class(yr[j], weight[j] if has_w else 1.0, eps, C,
                                               np.float64(m) - np.float64(xr[j]))
        swy = row_sum(wy)
        ls = math.log(s)
        lse = np.float64(m) + ls
        l = prob_target_loss(ls, swy, row_sum(prod), z, lse)
        part += l
        if loss_out.size != 0:
            loss_out[r, 0] = l
        if g2.size != 0:
            g = grad_scale * grad_output[r, 0] if grad_output.size != 0 else grad_scale
            a = prob_target_scale(s, swy, g, z, lse)
            gr = g2[r]
            for j in range(C):
                gr[j] = dt(prob_target_gradient(a, e[j], g, wy[j]))
    return part


@njit(cache=True, error_model="numpy")
def _prob_tile(x, y, weight, eps, z, grad_scale, grad_output, loss_out, grad_out, o, i0, n):
    C = x.shape[1]
    dt = x.dtype.type
    has_w = weight.size != 0
    m = np.empty(n, x.dtype)
    s = np.empty(n)
    e = np.empty((C, n), x.dtype)
    tile_max(x, o, i0, n, m)
    tile_exp(x, o, i0, n, m, e, s)
    swy = np.zeros(n)
    sd = np.zeros(n)
    for c in range(C):
        xc = x[o, c, i0:i0 + n]
        yc = y[o, c, i0:i0 + n]
        wc = np.float64(weight[c]) if has_w else 1.0
        for i in range(n):
            wy, wyd = prob_target_class(yc[i], wc, eps, C, np.float64(m[i]) - np.float64(xc[i]))
            swy[i] += wy
            sd[i] += wyd
    part = 0.0
    ls = np.empty(n)
    for i in range(n):
        ls[i] = vlog(s[i])
        l = prob_target_loss(ls[i], swy[i], sd[i], z, np.float64(m[i]) + ls[i])
        part += l
        if loss_out.size != 0:
            loss_out[o, i0 + i] = l
    if grad_out.size != 0:
        g = np.empty(n)
        a = np.empty(n)
        for i in range(n):
            g[i] = grad_scale * grad_output[o, i0 + i] if grad_output.size != 0 else grad_scale
            a[i] = prob_target_scale(s[i], swy[i], g[i], z, np.float64(m[i]) + ls[i])
        for c in range(C):
            ec = e[c]
            yc = y[o, c, i0:i0 + n]
            gc = grad_out[o, c, i0:i0 + n]
            wc = np.float64(weight[c]) if has_w else 1.0
            for i in range(n):
                gc[i] = dt(prob_target_gradient(a[i], ec[i], g[i], prob_target_weight(yc[i], wc, eps, C)))
    return part


@njit(parallel=True, cache=True, error_model="numpy")
def _prob_row_blocks(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out):
    """`cross_entropy_prob` on rows (``inner == 1``)."""
    outer, C, _ = x.shape
    rows, nb = row_blocking(outer, C)
    x2 = x.reshape((outer, C))
    y2 = target.reshape((outer, C))
    g2 = as_rows(grad_out, outer, C)
    partials = np.empty(nb)
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        partials[b] = _prob_rows(x2, y2, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, g2,
                                 r0, r1)
    return sum_partials(partials)


@njit(parallel=True, cache=True, error_model="numpy")
def _prob_tile_blocks(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out):
    """`cross_entropy_prob` on tiles (``inner > 1``)."""
    outer, C, inner = x.shape
    T, tiles, nb = tile_blocking(outer, C, inner)
    partials = np.empty(nb)
    for b in prange(nb):
        i0, i1 = block_range(b % tiles, T, inner)
        partials[b] = _prob_tile(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out,
                                 grad_out, b // tiles, i0, i1 - i0)
    return sum_partials(partials)


def cross_entropy_prob(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out):
    """Sum of the per-position probability-target cross-entropy; see the module docstring."""
    outer, C, inner = x.shape
    if outer * inner == 0:
        return 0.0
    if C == 0:
        if loss_out.size != 0:
            loss_out[:] = 0
        return 0.0
    kernel = _prob_row_blocks if inner == 1 else _prob_tile_blocks
    return kernel(x, target, weight, label_smoothing, z_loss, grad_scale, grad_output, loss_out, grad_out)
