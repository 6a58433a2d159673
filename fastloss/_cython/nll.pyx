"""Negative log-likelihood of class targets: loss, per-position losses and gradient.

Each block (a run of rows, or one tile of positions) reads logp[target] for
all its positions before it writes its part of grad_out, which may be logp.
Block bounds depend on the shape only; block losses are added in block order.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from fastloss._cython._arguments cimport advance, cadvance, check_shape, n_items
from fastloss._cython._blocking cimport block_size, n_chunks, sum_in_order
from fastloss._cython._constants cimport BLOCK_ELEMS


def ignored_targets(const int64_t[:, ::1] target, int64_t classes, int64_t ignore_index):
    """The number of class targets equal to ignore_index, or -1 if a target lies outside
    [0, classes) without being ignore_index (the front layer then names it)."""
    cdef Py_ssize_t k, n = target.shape[0] * target.shape[1]
    cdef const int64_t* tg = &target[0, 0] if n else NULL
    cdef int64_t ignored = 0
    cdef bint bad = False
    with nogil:
        for k in range(n):  # branch-free: the loop vectorises
            ignored += tg[k] == ignore_index
            bad |= (<uint64_t>tg[k] >= <uint64_t>classes) & (tg[k] != ignore_index)
    return -1 if bad else ignored


def nll_loss(const floating[:, :, ::1] logp, const int64_t[:, ::1] target,
             const floating[::1] weight, int64_t ignore_index, double grad_scale,
             const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
             floating[:, :, ::1] grad_out):
    """l_i = -w[t] logp[t]; grad is -g_i w[t] at the target class, 0 elsewhere."""
    cdef Py_ssize_t outer = logp.shape[0], C = logp.shape[1], inner = logp.shape[2]
    cdef Py_ssize_t pos_shape[2]
    pos_shape[0] = outer
    pos_shape[1] = inner
    check_shape("target", target.shape, pos_shape, 2, False)
    check_shape("weight", weight.shape, &logp.shape[1], 1, True)
    check_shape("grad_output", grad_output.shape, pos_shape, 2, True)
    check_shape("loss_out", loss_out.shape, pos_shape, 2, True)
    check_shape("grad_out", grad_out.shape, logp.shape, 3, True)
    if outer * inner == 0:
        return 0.0

    cdef const floating* xp = &logp[0, 0, 0]
    cdef const int64_t* tg = &target[0, 0]
    cdef const floating* w = &weight[0] if weight.shape[0] else NULL
    cdef const floating* go = &grad_output[0, 0] if n_items(grad_output.shape, 2) else NULL
    cdef floating* lo = &loss_out[0, 0] if n_items(loss_out.shape, 2) else NULL
    cdef floating* gr = &grad_out[0, 0, 0] if n_items(grad_out.shape, 3) else NULL

    cdef Py_ssize_t b, o, i0, r0, plane = C * inner
    cdef Py_ssize_t bs = block_size(C, inner), n_tiles = n_chunks(inner, bs)
    cdef Py_ssize_t n_blocks = n_chunks(outer, bs) if inner == 1 else outer * n_tiles
    cdef double[::1] partials = np.empty(n_blocks)
    cdef double* part = &partials[0]
    cdef bint threaded = n_blocks > 1 and outer * max(plane, inner) > BLOCK_ELEMS

    with nogil, parallel(use_threads_if=threaded):
        for b in prange(n_blocks, schedule="static"):
            if inner == 1:
                r0 = b * bs
                part[b] = _block(xp + r0 * C, tg + r0, w, ignore_index, grad_scale,
                                 cadvance(go, r0), advance(lo, r0), advance(gr, r0 * C),
                                 1, C, min(outer, r0 + bs) - r0, C)
            else:
                o = b // n_tiles
                i0 = (b % n_tiles) * bs
                part[b] = _block(xp + o * plane + i0, tg + o * inner + i0, w, ignore_index,
                                 grad_scale, cadvance(go, o * inner + i0),
                                 advance(lo, o * inner + i0), advance(gr, o * plane + i0),
                                 inner, 1, min(bs, inner - i0), C)
    return sum_in_order(part, n_blocks)


cdef double _block(const floating* x, const int64_t* tg, const floating* w, int64_t ignore,
                   double gscale, const floating* go, floating* lo, floating* gr,
                   Py_ssize_t class_stride, Py_ssize_t pos_stride, Py_ssize_t n,
                   Py_ssize_t C) noexcept nogil:
    """Positions k < n of a row run (pos_stride C) or a tile (class_stride inner).

    Element (class c, position k) is at c * class_stride + k * pos_stride.
    """
    cdef double total = 0, loss
    cdef Py_ssize_t c, k
    cdef int64_t t
    for k in range(n):
        t = tg[k]
        loss = 0
        if t != ignore:
            loss = -(w[t] if w != NULL else 1.0) * x[t * class_stride + k * pos_stride]
        if lo != NULL:
            lo[k] = <floating>loss
        total += loss
    if gr == NULL:
        return total
    if pos_stride == 1:
        for c in range(C):
            memset(gr + c * class_stride, 0, n * sizeof(floating))
    else:
        memset(gr, 0, n * C * sizeof(floating))
    for k in range(n):
        t = tg[k]
        if t != ignore:
            gr[t * class_stride + k * pos_stride] = <floating>(
                -(gscale * go[k] if go != NULL else gscale) * (w[t] if w != NULL else 1.0))
    return total
