"""Reductions and exps over a contiguous row (inner == 1), or any contiguous run.

Row loops reduce a contiguous row into LANES independent accumulators
merged in a fixed order: gcc vectorises them without -ffast-math, and the
order of the additions is fixed by the source, whatever the thread count or
instruction set.  The float32 exp-sum of a row is the exception
(fl_exp_shift_f32 of _loops.h): its order follows the build's vector width.
"""
from cython cimport floating
from libc.math cimport INFINITY

from fastloss._cython._machine cimport fl_row_grad
from fastloss._cython._vector_math cimport fexp_neg, fl_row_max_f32

cdef extern from "_loops.h" nogil:
    double fl_exp_shift_f32(const float* x, float m, float* e, Py_ssize_t n, int normal)
    double fl_exp_first_f32(const float* x, float* e, Py_ssize_t n, int* ok, fl_row_grad* pending)
    double fl_exp_sum_next_max_f32(const float* x, float m, Py_ssize_t n, int normal,
                                   const float* next, float* next_max, int* next_normal)

cdef enum:
    # 32 lanes: gcc completely unrolls constant loops of up to 16 trips and
    # then fails to vectorise the scalar copies; past that the lane loop is
    # vectorised as a loop and its accumulators stay in registers.
    LANES = 32


cdef inline double merge_lanes(double* acc) noexcept nogil:
    cdef int k, width = LANES // 2
    while width:
        for k in range(width):
            acc[k] += acc[k + width]
        width //= 2
    return acc[0]


cdef inline floating row_max(const floating* x, Py_ssize_t n, int* normal) noexcept nogil:
    """max(x[:n]), and in normal whether exp_shift may take its fast float32 exp.

    A NaN may be skipped here but reaches every result through the exp-sum.
    """
    if floating is float:
        return fl_row_max_f32(x, n, normal)
    else:
        normal[0] = 0
        return row_max_lanes(x, n)


cdef inline floating row_max_lanes(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef floating acc[LANES]
    cdef floating v, m = -INFINITY
    cdef Py_ssize_t j, jb, k, nv = n - n % LANES
    for k in range(LANES):
        acc[k] = -INFINITY
    for jb in range(nv // LANES):
        j = jb * LANES
        for k in range(LANES):
            v = x[j + k]
            acc[k] = v if v > acc[k] else acc[k]
    for k in range(LANES):
        m = acc[k] if acc[k] > m else m
    for j in range(nv, n):
        m = x[j] if x[j] > m else m
    return m


cdef inline double lane_sum(const floating* v, Py_ssize_t n) noexcept nogil:
    """sum(v[:n]) (x - 0 folds to x once inlined)."""
    return shifted_dot(v, 0, <const floating*>NULL, n)


cdef inline double row_dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """sum_j a_j b_j, each product in float64."""
    return shifted_dot(b, 0, a, n)


cdef inline double shifted_dot(const floating* x, double m, const floating* w,
                               Py_ssize_t n) noexcept nogil:
    """sum_j w_j * (x_j - m), w = 1 when NULL, in float64: relative to the max, so no
    cancellation; with m = 0, a plain sum or dot product."""
    cdef double acc[LANES]
    cdef double tail = 0
    cdef Py_ssize_t j, jb, k, nv = n - n % LANES
    for k in range(LANES):
        acc[k] = 0
    if w == NULL:
        for jb in range(nv // LANES):
            j = jb * LANES
            for k in range(LANES):
                acc[k] += x[j + k] - m
        for j in range(nv, n):
            tail += x[j] - m
    else:
        for jb in range(nv // LANES):
            j = jb * LANES
            for k in range(LANES):
                acc[k] += w[j + k] * (x[j + k] - m)
        for j in range(nv, n):
            tail += w[j] * (x[j] - m)
    return merge_lanes(acc) + tail


cdef inline double exp_shift(const floating* x, floating m, floating* e, Py_ssize_t n,
                             int normal) noexcept nogil:
    """e = exp(x - m) (e may be x) with m and normal from row_max; returns sum(e).

    float32: fl_exp_shift_f32 (_loops.h).  float64: LANES lanes in a fixed order.
    """
    if floating is float:
        return fl_exp_shift_f32(x, m, e, n, normal)
    else:
        return exp_shift_lanes(x, m, e, n)


cdef inline double exp_shift_first(const floating* x, floating* e, Py_ssize_t n,
                                   floating* m, fl_row_grad* pending) noexcept nogil:
    """e = exp(x - m) (e not x) and its sum, for a shift m chosen here: x[0] when
    that serves (float32: fl_exp_first_f32, one pass), else the row's max (two).
    A pending float32 row's gradient (or NULL) may leave in part meanwhile; the
    caller finishes it."""
    cdef int ok = 0, normal
    cdef double s
    if floating is float:
        s = fl_exp_first_f32(x, e, n, &ok, pending)
        if ok:
            m[0] = x[0]
            return s
    m[0] = row_max(x, n, &normal)
    return exp_shift(x, m[0], e, n, normal)


cdef inline double exp_shift_lanes(const floating* x, floating m, floating* e,
                                   Py_ssize_t n) noexcept nogil:
    cdef double acc[LANES]
    cdef double tail = 0
    cdef floating v
    cdef Py_ssize_t j, jb, k, nb = n // LANES
    for k in range(LANES):
        acc[k] = 0
    for jb in range(nb):
        j = jb * LANES
        for k in range(LANES):
            v = fexp_neg(x[j + k] - m)
            e[j + k] = v
            acc[k] += v
    for j in range(nb * LANES, n):
        v = fexp_neg(x[j] - m)
        e[j] = v
        tail += v
    return merge_lanes(acc) + tail
