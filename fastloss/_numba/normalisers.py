"""Softmax and log-softmax over the class axis, and their backward kernels.

Kernels
-------
softmax(x, out), log_softmax(x, out)
    Normalise ``x`` (``(outer, C, inner)``) over C into ``out``.
softmax_backward(grad_output, output, out)
    ``out = output * (grad_output - sum_c(grad_output * output))``.
log_softmax_backward(grad_output, output, out)
    ``out = grad_output - exp(output) * sum_c(grad_output)``.

``out`` may be the same memory as any input.  Class-axis sums are float64 (for
float32 input, of float32 partial sums: of at most eight classes in a tile,
``GROUP32`` in a row); elementwise arithmetic is in the input dtype.
"""
import math

import numpy as np
from numba import njit, prange

from ._rows import (STREAM_BYTES, SUPER, block_range, borrowed, copy_into, row_blocking, row_exp_sum,
                    row_exp_sum_next_max, row_max_fast, row_max_normal, stream_shifted,
                    row_sum, row_weighted_sum, scale_in_place, scale_into, stream_fence, stream_into,
                    tile_blocking, tile_exp_fast, tile_max_fast)
from ._vmath import vexp, vlog


@njit(cache=True, error_model="numpy")
def _log_softmax_rows(x2, out2, r0, r1, stream):
    """Rows r0:r1 of log_softmax, each row's max taken in the previous row's exp
    pass (`row_exp_sum_next_max`); a large result is streamed out of scratch."""
    C = x2.shape[1]
    dt = x2.dtype.type
    e = np.empty(C, x2.dtype)
    # A row is read before it is written (streamed, or through scratch: a
    # loop reading x and writing out, the same memory, would stay scalar).
    m = row_max_fast(x2[r0])
    for r in range(r0, r1):
        # Views that hold no reference: no locked reference-count update per
        # row, which would wait for the streamed lines in flight.
        xr = borrowed(x2, r * C, C)
        s, m_next = row_exp_sum_next_max(xr, m, e, borrowed(x2, min(r + 1, r1 - 1) * C, C))
        ls = dt(math.log(s))
        if stream:
            stream_shifted(xr, m, ls, borrowed(out2, r * C, C))
        else:
            for j in range(C):
                e[j] = (xr[j] - m) - ls
            copy_into(e, out2[r])
        m = m_next
    stream_fence(stream)


@njit(cache=True, error_model="numpy")
def _softmax_rows(x2, out2, r0, r1):
    C = x2.shape[1]
    dt = x2.dtype.type
    e = np.empty(C, x2.dtype)
    # out is x itself, disjoint from it, or (never from the front layer)
    # overlapping otherwise: then the result goes through scratch.
    xa = x2.ctypes.data
    oa = out2.ctypes.data
    nbytes = x2.size * x2.itemsize
    apart = oa + nbytes <= xa or xa + nbytes <= oa
    for r in range(r0, r1):
        xr = x2[r]
        # NaN-dropping max: a NaN, +inf or all -inf row still has a NaN sum.
        m, normal = row_max_normal(xr)
        if apart:
            # The exps go straight into out, as in cross-entropy's rows.
            orow = out2[r]
            scale_in_place(orow, dt(1.0 / row_exp_sum(xr, m, orow, normal)))
        else:
            s = row_exp_sum(xr, m, e, normal)
            scale_into(e, dt(1.0 / s), out2[r])


@njit(cache=True, error_model="numpy")
def _forward_tile(x, out, o, i0, n, log, stream, m, a, s, s32, e):
    """One tile; ``m`` ... ``e`` are scratch of at least ``n`` / ``C * n`` items."""
    dt = x.dtype.type
    C = x.shape[1]
    # NaN-dropping max, as for rows.
    tile_max_fast(x, o, i0, n, m)
    tile_exp_fast(x, o, i0, n, m, e, s, s32, not log)
    if log:
        for i in range(n):
            a[i] = vlog(dt(s[i]))  # s in [1, C]: as in cross-entropy's tiles
    else:
        for i in range(n):
            a[i] = dt(1.0 / s[i])
    for c in range(C):
        ec = borrowed(e, c * n, n)
        at = (o * C + c) * x.shape[2] + i0
        if log:
            xc = borrowed(x, at, n)
            for i in range(n):
                ec[i] = (xc[i] - m[i]) - a[i]
        else:
            for i in range(n):
                ec[i] = ec[i] * a[i]
        stream_into(ec, borrowed(out, at, n), stream)


@njit(cache=True, error_model="numpy")
def _forward_tiles(x, out, T, tiles, b0, b1, log, stream):
    """Blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    d = np.empty((3, T), x.dtype)
    s = np.empty(T)
    e = np.empty(x.shape[1] * T, x.dtype)
    for b in range(b0, b1):
        i0, i1 = block_range(b % tiles, T, x.shape[2])
        _forward_tile(x, out, b // tiles, i0, i1 - i0, log, stream, d[0], d[1], s, d[2], e)
    stream_fence(stream)


@njit(cache=True, error_model="numpy")
def _backward_rows(gy2, y2, out2, r0, r1, log):
    C = gy2.shape[1]
    dt = gy2.dtype.type
    t = np.empty(C, gy2.dtype)
    prod = np.empty(C)
    for r in range(r0, r1):
        gr = gy2[r]
        yr = y2[r]
        if log:
            a = dt(row_sum(gr))
            for j in range(C):
                t[j] = gr[j] - vexp(yr[j]) * a
        else:
            a = dt(row_weighted_sum(gr, yr, prod))
            for j in range(C):
                t[j] = yr[j] * (gr[j] - a)
        copy_into(t, out2[r])


@njit(cache=True, error_model="numpy")
def _backward_tile(gy, y, out, o, i0, n, log, stream):
    dt = gy.dtype.type
    C = gy.shape[1]
    s = np.zeros(n)
    a = np.empty(n, gy.dtype)
    t = np.empty(n, gy.dtype)
    for c in range(C):
        gc = gy[o, c, i0:i0 + n]
        if log:
            for i in range(n):
                s[i] += gc[i]
        else:
            yc = y[o, c, i0:i0 + n]
            for i in range(n):
                s[i] += np.float64(gc[i]) * np.float64(yc[i])
    for i in range(n):
        a[i] = dt(s[i])
    for c in range(C):
        gc = gy[o, c, i0:i0 + n]
        yc = y[o, c, i0:i0 + n]
        if log:
            for i in range(n):
                t[i] = gc[i] - vexp(yc[i]) * a[i]
        else:
            for i in range(n):
                t[i] = yc[i] * (gc[i] - a[i])
        stream_into(t, out[o, c, i0:i0 + n], stream)
    stream_fence(stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _forward(x, out, log):
    """Parallel driver of softmax (``log`` False) and log_softmax."""
    outer, C, inner = x.shape
    if C == 0 or outer * inner == 0:
        return
    stream = out.size * out.itemsize >= STREAM_BYTES
    if inner == 1:
        rows, nb = row_blocking(outer, C)
        x2 = x.reshape((outer, C))
        out2 = out.reshape((outer, C))
        for b in prange(nb):
            r0, r1 = block_range(b, rows, outer)
            if log:
                _log_softmax_rows(x2, out2, r0, r1, stream)
            else:
                _softmax_rows(x2, out2, r0, r1)
    else:
        T, tiles, nb = tile_blocking(outer, C, inner)
        ns = min(nb, SUPER)
        for k in prange(ns):
            _forward_tiles(x, out, T, tiles, k * nb // ns, (k + 1) * nb // ns, log, stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _backward(gy, y, out, log):
    """Parallel driver of softmax_backward (``log`` False) and log_softmax_backward."""
    outer, C, inner = gy.shape
    if C == 0 or outer * inner == 0:
        return
    stream = out.size * out.itemsize >= STREAM_BYTES
    if inner == 1:
        rows, nb = row_blocking(outer, C)
        gy2 = gy.reshape((outer, C))
        y2 = y.reshape((outer, C))
        out2 = out.reshape((outer, C))
        for b in prange(nb):
            r0, r1 = block_range(b, rows, outer)
            _backward_rows(gy2, y2, out2, r0, r1, log)
    else:
        T, tiles, nb = tile_blocking(outer, C, inner)
        for b in prange(nb):
            i0, i1 = block_range(b % tiles, T, inner)
            _backward_tile(gy, y, out, b // tiles, i0, i1 - i0, log, stream)


@njit(cache=True, error_model="numpy")
def softmax(x, out):
    """``out = exp(x - max) / sum_c exp(x - max)`` over the class axis."""
    _forward(x, out, False)


@njit(cache=True, error_model="numpy")
def log_softmax(x, out):
    """``out = x - max - log(sum_c exp(x - max))`` over the class axis."""
    _forward(x, out, True)


@njit(cache=True, error_model="numpy")
def softmax_backward(grad_output, output, out):
    """``out = output * (grad_output - sum_c(grad_output * output))``."""
    _backward(grad_output, output, out, False)


@njit(cache=True, error_model="numpy")
def log_softmax_backward(grad_output, output, out):
    """``out = grad_output - exp(output) * sum_c(grad_output)``."""
    _backward(grad_output, output, out, True)
