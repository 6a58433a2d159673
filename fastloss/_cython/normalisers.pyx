"""Softmax, log-softmax and their backward passes over (outer, C, inner) views.

Rows (inner == 1) are shared out to threads in blocks of rows_per_block; a
float32 log_softmax block takes each row's max in the previous row's exp
pass and streams a large result.  Tiles (inner > 1),
(outer, T positions) pairs, are read from memory by the first pass and from
cache by the later ones (softmax keeps its exps in packed per-thread
scratch).  No sum crosses a row or a tile, so every thread count gives the
same bits.  Each pass reads what it needs of a row or tile before writing
it, so `out` may alias an input.  Tiles of a large result are built in
scratch a class row at a time and written with streaming stores.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport log

from fastloss._cython._arguments cimport check_shape
from fastloss._cython._blocking cimport (
    check_scratch, free_scratch, n_chunks, rows_per_block, thread_scratch, tile_width,
)
from fastloss._cython._constants cimport BLOCK_ELEMS
from fastloss._cython._machine cimport (
    fl_stream_fence, fl_stream_shift_float, stream_into, stream_result,
)
from fastloss._cython._row_loops cimport (
    exp_shift, fl_exp_sum_next_max_f32, lane_sum, row_dot, row_max,
)
from fastloss._cython._tile_loops cimport tile_exp_sum, tile_max, tile_scale
from fastloss._cython._vector_math cimport fexp, flog

cdef enum Mode:
    SOFTMAX
    LOG_SOFTMAX
    SOFTMAX_BACKWARD
    LOG_SOFTMAX_BACKWARD


def softmax(const floating[:, :, ::1] x, floating[:, :, ::1] out):
    """out = exp(x - max) / sum_c exp(x - max) over the class axis."""
    _run(x, x, out, SOFTMAX)


def log_softmax(const floating[:, :, ::1] x, floating[:, :, ::1] out):
    """out = x - max - log(sum_c exp(x - max)) over the class axis."""
    _run(x, x, out, LOG_SOFTMAX)


def softmax_backward(const floating[:, :, ::1] grad_output,
                     const floating[:, :, ::1] output, floating[:, :, ::1] out):
    """out = output * (grad_output - sum_c(grad_output * output))."""
    _run(grad_output, output, out, SOFTMAX_BACKWARD)


def log_softmax_backward(const floating[:, :, ::1] grad_output,
                         const floating[:, :, ::1] output, floating[:, :, ::1] out):
    """out = grad_output - exp(output) * sum_c(grad_output)."""
    _run(grad_output, output, out, LOG_SOFTMAX_BACKWARD)


cdef int _run(const floating[:, :, ::1] a, const floating[:, :, ::1] b,
              floating[:, :, ::1] out, Mode mode) except -1:
    """Forward modes read `a` (b is a); backward modes read grad_output `a` and output `b`."""
    cdef Py_ssize_t outer = a.shape[0], C = a.shape[1], inner = a.shape[2]
    cdef Py_ssize_t t, o, i0, T, n_tiles, plane = C * inner
    # NULL-initialised: Cython makes them firstprivate.
    cdef floating* rowbuf = NULL
    cdef floating* m = NULL
    cdef floating* d = NULL
    cdef floating* f = NULL
    cdef floating* e = NULL
    cdef double* s = NULL
    cdef char failed = 0
    check_shape("output", b.shape, a.shape, 3, False)
    check_shape("out", out.shape, a.shape, 3, False)
    if outer * plane == 0:
        return 0
    cdef const floating* ap = &a[0, 0, 0]
    cdef const floating* bp = &b[0, 0, 0]
    cdef floating* op = &out[0, 0, 0]
    cdef bint threaded = outer * plane > BLOCK_ELEMS
    cdef bint stream = stream_result(outer * plane * sizeof(floating))

    cdef Py_ssize_t bs = rows_per_block(C)
    if inner == 1:
        with nogil, parallel(use_threads_if=threaded):
            rowbuf = <floating*>thread_scratch(C * sizeof(floating), &failed)
            for t in prange(n_chunks(outer, bs), schedule="static"):
                if rowbuf != NULL:
                    _rows(ap, bp, op, C, t * bs, min(outer, t * bs + bs), mode, stream, rowbuf)
            if stream:
                fl_stream_fence()
            free_scratch(rowbuf)
    else:
        T = tile_width(C, inner, sizeof(floating))
        n_tiles = n_chunks(inner, T)
        with nogil, parallel(use_threads_if=threaded):
            s = <double*>thread_scratch(
                T * sizeof(double) + (4 + (C if mode == SOFTMAX else 0)) * T * sizeof(floating),
                &failed)
            m = <floating*>(s + T)  # max over the classes
            d = m + T       # the term of the result: 1 / s, log(s) or the backward sum
            f = d + T       # float32 exp partial sums
            e = f + T       # softmax: C rows of exps; else one row of results to stream
            for t in prange(outer * n_tiles, schedule="static"):
                if s != NULL:
                    o = t // n_tiles
                    i0 = (t % n_tiles) * T
                    _tile(ap + o * plane + i0, bp + o * plane + i0, op + o * plane + i0,
                          inner, C, min(T, inner - i0), mode, stream, s, m, d, f, e)
            if stream:
                fl_stream_fence()
            free_scratch(s)
    return check_scratch(failed)


cdef void _rows(const floating* a, const floating* b, floating* out, Py_ssize_t C,
                Py_ssize_t r0, Py_ssize_t r1, Mode mode, bint stream, floating* e) noexcept nogil:
    """Rows [r0, r1); e is a row of scratch."""
    cdef Py_ssize_t r
    if floating is float:
        if mode == LOG_SOFTMAX:
            _log_softmax_rows(a, out, C, r0, r1, stream)
            return
    for r in range(r0, r1):
        _row(a + r * C, b + r * C, out + r * C, C, mode, e)


cdef void _log_softmax_rows(const float* x, float* out, Py_ssize_t C, Py_ssize_t r0,
                            Py_ssize_t r1, bint stream) noexcept nogil:
    """float32 log_softmax of rows [r0, r1).

    A row's max is taken in the previous row's exp pass: those loads from
    memory then overlap the exp work instead of stalling a max pass of
    their own.  A large result is streamed (_machine.h).
    """
    cdef int normal, normal_next
    cdef float m = row_max(x + r0 * C, C, &normal), m_next
    cdef float r
    cdef Py_ssize_t i, j
    for i in range(r0, r1):
        r = <float>log(fl_exp_sum_next_max_f32(x + i * C, m, C, normal,
                                               x + (i + 1 if i + 1 < r1 else i) * C, &m_next,
                                               &normal_next))
        if stream:
            fl_stream_shift_float(out + i * C, x + i * C, m, r, C)
        else:
            for j in range(C):
                out[i * C + j] = (x[i * C + j] - m) - r
        m = m_next
        normal = normal_next


cdef void _row(const floating* a, const floating* b, floating* out, Py_ssize_t C,
               Mode mode, floating* e) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating m, r
    cdef int normal
    if mode == SOFTMAX:
        m = row_max(a, C, &normal)
        r = <floating>(1.0 / exp_shift(a, m, out, C, normal))
        for j in range(C):
            out[j] = out[j] * r
    elif mode == LOG_SOFTMAX:
        m = row_max(a, C, &normal)
        # exp goes to scratch: out may be x, still needed below.
        r = <floating>log(exp_shift(a, m, e, C, normal))
        for j in range(C):
            out[j] = (a[j] - m) - r
    elif mode == SOFTMAX_BACKWARD:
        r = <floating>row_dot(a, b, C)
        for j in range(C):
            out[j] = b[j] * (a[j] - r)
    else:
        r = <floating>lane_sum(a, C)
        for j in range(C):
            out[j] = a[j] - fexp(b[j]) * r


cdef void _tile(const floating* a, const floating* b, floating* out, Py_ssize_t inner,
                Py_ssize_t C, Py_ssize_t T, Mode mode, bint stream, double* s, floating* m,
                floating* d, floating* f, floating* e) noexcept nogil:
    """The T positions from a, b and out; e is the (C, T) exp block for softmax,
    else a row of scratch for a result that is streamed out.

    The sums read four class rows per loop, after the C % 4 first.
    """
    cdef Py_ssize_t c, c0 = C % 4, k, i2 = 2 * inner, i3 = 3 * inner
    cdef const floating* ac
    cdef const floating* bc
    cdef floating* oc
    if mode == SOFTMAX or mode == LOG_SOFTMAX:
        tile_max(a, inner, C, T, m)
        tile_exp_sum(a, inner, C, T, m, e if mode == SOFTMAX else NULL, f, s)
        if mode == SOFTMAX:
            for k in range(T):
                d[k] = <floating>(1.0 / s[k])
            if not stream:
                tile_scale(e, C, T, d, out, inner)
                return
            for c in range(C):
                oc = e + c * T
                for k in range(T):
                    oc[k] = oc[k] * d[k]
                stream_into(out + c * inner, oc, T, True)
            return
        for k in range(T):
            d[k] = flog(<floating>s[k])  # s in [1, C]: as in cross_entropy's tiles
    else:
        # Class by class, as for a row; four rows per loop keep that order.
        for k in range(T):
            s[k] = 0
        for c in range(c0):
            ac = a + c * inner
            bc = b + c * inner
            if mode == SOFTMAX_BACKWARD:
                for k in range(T):
                    s[k] += <double>ac[k] * bc[k]
            else:
                for k in range(T):
                    s[k] += ac[k]
        for c in range(c0, C, 4):
            ac = a + c * inner
            bc = b + c * inner
            if mode == SOFTMAX_BACKWARD:
                for k in range(T):
                    s[k] = (((s[k] + <double>ac[k] * bc[k]) + <double>ac[inner + k] * bc[inner + k])
                            + <double>ac[i2 + k] * bc[i2 + k]) + <double>ac[i3 + k] * bc[i3 + k]
            else:
                for k in range(T):
                    s[k] = (((s[k] + ac[k]) + ac[inner + k]) + ac[i2 + k]) + ac[i3 + k]
        for k in range(T):
            d[k] = <floating>s[k]

    # One row per loop, as in tile_scale; each element is read before it is
    # written, so out may alias a or b.
    for c in range(C):
        ac = a + c * inner
        bc = b + c * inner
        oc = e if stream else out + c * inner
        if mode == LOG_SOFTMAX:
            for k in range(T):
                oc[k] = (ac[k] - m[k]) - d[k]
        elif mode == SOFTMAX_BACKWARD:
            for k in range(T):
                oc[k] = bc[k] * (ac[k] - d[k])
        else:
            for k in range(T):
                oc[k] = ac[k] - fexp(bc[k]) * d[k]
        if stream:
            stream_into(out + c * inner, e, T, True)
