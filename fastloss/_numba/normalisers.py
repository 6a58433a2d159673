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
float32 input, of float32 partial sums: of at most ``TILE_EXP_GROUP`` classes
in a tile, ``ROW_EXP_GROUP`` in a row); elementwise arithmetic is in the input
dtype.
"""
import math

import numpy as np
from numba import prange

from .._constants import STREAM_BYTES
from .blocking import BLOCK_GROUPS, block_range, row_blocking, tile_blocking
from .cache import njit
from .reductions import row_max_fast, row_sum, row_weighted_sum, tile_max_fast
from .row_exp import row_exp_sum, row_exp_sum_next_max, row_max_normal, scale_in_place, scale_into
from .streaming import copy_into, stream_fence, stream_into, stream_shifted
from .tile_exp import tile_exp_fast
from .vector_math import vexp, vlog
from .views import borrowed


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
def _forward_tile(x, out, o, i0, n, log, stream, shift, norm, exp_sum, exp_sum32, exps):
    """One tile.  Scratch of at least n items: ``shift`` (each position's max),
    ``norm`` (``log(sum)``, or ``1 / sum``), ``exp_sum`` (float64), ``exp_sum32``;
    ``exps``: flat ``(C * n)``."""
    dt = x.dtype.type
    C = x.shape[1]
    # NaN-dropping max, as for rows.
    tile_max_fast(x, o, i0, n, shift)
    tile_exp_fast(x, o, i0, n, shift, exps, exp_sum, exp_sum32, not log)
    if log:
        for i in range(n):
            norm[i] = vlog(dt(exp_sum[i]))  # exp_sum in [1, C]: as in cross-entropy's tiles
    else:
        for i in range(n):
            norm[i] = dt(1.0 / exp_sum[i])
    for c in range(C):
        ec = borrowed(exps, c * n, n)
        at = (o * C + c) * x.shape[2] + i0
        if log:
            xc = borrowed(x, at, n)
            for i in range(n):
                ec[i] = (xc[i] - shift[i]) - norm[i]
        else:
            for i in range(n):
                ec[i] = ec[i] * norm[i]
        stream_into(ec, borrowed(out, at, n), stream)


@njit(cache=True, error_model="numpy")
def _forward_tiles(x, out, T, tiles, b0, b1, log, stream):
    """Blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    per_position = np.empty((3, T), x.dtype)  # shift, norm, exp_sum32
    exp_sum = np.empty(T)
    exps = np.empty(x.shape[1] * T, x.dtype)
    for b in range(b0, b1):
        i0, i1 = block_range(b % tiles, T, x.shape[2])
        _forward_tile(x, out, b // tiles, i0, i1 - i0, log, stream, per_position[0], per_position[1], exp_sum,
                      per_position[2], exps)
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
def _softmax_row_blocks(x, out):
    """softmax on rows (``inner == 1``)."""
    outer, C, _ = x.shape
    rows, nb = row_blocking(outer, C)
    x2 = x.reshape((outer, C))
    out2 = out.reshape((outer, C))
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        _softmax_rows(x2, out2, r0, r1)


@njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_row_blocks(x, out):
    """log_softmax on rows (``inner == 1``)."""
    outer, C, _ = x.shape
    rows, nb = row_blocking(outer, C)
    x2 = x.reshape((outer, C))
    out2 = out.reshape((outer, C))
    stream = out.size * out.itemsize >= STREAM_BYTES
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        _log_softmax_rows(x2, out2, r0, r1, stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _forward_tile_blocks(x, out, log):
    """softmax (``log`` False) and log_softmax on tiles (``inner > 1``)."""
    outer, C, inner = x.shape
    stream = out.size * out.itemsize >= STREAM_BYTES
    T, tiles, nb = tile_blocking(outer, C, inner)
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _forward_tiles(x, out, T, tiles, k * nb // ns, (k + 1) * nb // ns, log, stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _backward_row_blocks(gy, y, out, log):
    """softmax_backward (``log`` False) and log_softmax_backward on rows (``inner == 1``)."""
    outer, C, _ = gy.shape
    rows, nb = row_blocking(outer, C)
    gy2 = gy.reshape((outer, C))
    y2 = y.reshape((outer, C))
    out2 = out.reshape((outer, C))
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        _backward_rows(gy2, y2, out2, r0, r1, log)


@njit(parallel=True, cache=True, error_model="numpy")
def _backward_tile_blocks(gy, y, out, log):
    """softmax_backward (``log`` False) and log_softmax_backward on tiles (``inner > 1``)."""
    outer, C, inner = gy.shape
    stream = out.size * out.itemsize >= STREAM_BYTES
    T, tiles, nb = tile_blocking(outer, C, inner)
    for b in prange(nb):
        i0, i1 = block_range(b % tiles, T, inner)
        _backward_tile(gy, y, out, b // tiles, i0, i1 - i0, log, stream)


# Each kernel below picks the path of its call, a kernel of its own: a call
# compiles only the path it takes.

def _is_empty(x):
    outer, C, inner = x.shape
    return C == 0 or outer * inner == 0


def softmax(x, out):
    """``out = exp(x - max) / sum_c exp(x - max)`` over the class axis."""
    if _is_empty(x):
        return
    if x.shape[2] == 1:
        _softmax_row_blocks(x, out)
    else:
        _forward_tile_blocks(x, out, False)


def log_softmax(x, out):
    """``out = x - max - log(sum_c exp(x - max))`` over the class axis."""
    if _is_empty(x):
        return
    if x.shape[2] == 1:
        _log_softmax_row_blocks(x, out)
    else:
        _forward_tile_blocks(x, out, True)


def _backward(gy, y, out, log):
    """softmax_backward (``log`` False) or log_softmax_backward, by path."""
    if _is_empty(gy):
        return
    kernel = _backward_row_blocks if gy.shape[2] == 1 else _backward_tile_blocks
    kernel(gy, y, out, log)


def softmax_backward(grad_output, output, out):
    """``out = output * (grad_output - sum_c(grad_output * output))``."""
    _backward(grad_output, output, out, False)


def log_softmax_backward(grad_output, output, out):
    """``out = grad_output - exp(output) * sum_c(grad_output)``."""
    _backward(grad_output, output, out, True)
