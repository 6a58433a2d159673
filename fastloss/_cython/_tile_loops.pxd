"""Per-position loops over a tile of a spatial map (inner > 1).

A tile's class rows lie `inner` elements apart, each a separate memory
stream.  The passes read them in place (the max pass from memory, the later
ones from cache); only exps that a later pass needs go to a packed (C, T)
scratch block, which stays in L2 even when the class rows alias to the same
cache sets (inner a multiple of a large power of two).  Tile loops keep one
accumulator per position, so they are element-wise and vectorise as
written.  tile_max and tile_scale take four class rows per loop: four
concurrent memory streams, and a quarter of the loads and stores of the
per-position arrays.  Other loops store one row each: gcc would not
vectorise them with four (too many run-time alias checks between their rows
and the inputs).
"""
from cython cimport floating
from libc.math cimport INFINITY
from libc.stdint cimport int32_t

from fastloss._cython._blocking cimport n_chunks
from fastloss._cython._constants cimport TILE_EXP_GROUP
from fastloss._cython._vector_math cimport fexp_neg, fl_gather_f32, fl_gather_f64

cdef extern from "_loops.h" nogil:
    bint fl_tile_exp_first_f32(const float* x, Py_ssize_t stride, Py_ssize_t C, Py_ssize_t T,
                               Py_ssize_t group, float* e, float* f, double* s)
    void fl_class_grad_float(float* dst, const float* e, const float* a, const float* d, float wc,
                             const float* b, const int32_t* t, int32_t c, Py_ssize_t n,
                             bint stream)


cdef inline floating fmax_skip(floating a, floating b) noexcept nogil:
    """a if a > b else b: a NaN a is skipped, a NaN b kept (vectorises to vmaxps)."""
    return a if a > b else b


cdef inline void tile_max(const floating* x, Py_ssize_t stride, Py_ssize_t C,
                          Py_ssize_t T, floating* m) noexcept nogil:
    """m = max over c of x[c * stride :][:T].

    A NaN may be skipped: it reaches every result of its position through the exp-sum.
    """
    cdef Py_ssize_t c, k, c0 = C % 4
    cdef const floating* xa
    for k in range(T):
        m[k] = -INFINITY
    for c in range(c0):
        xa = x + c * stride
        for k in range(T):
            m[k] = fmax_skip(xa[k], m[k])
    for c in range(c0, C, 4):
        xa = x + c * stride
        for k in range(T):
            m[k] = fmax_skip(fmax_skip(fmax_skip(xa[k], xa[stride + k]),
                                       fmax_skip(xa[2 * stride + k], xa[3 * stride + k])), m[k])


cdef inline void tile_gather(const floating* src, const int32_t* t, Py_ssize_t stride,
                             Py_ssize_t step, Py_ssize_t n, double* out) noexcept nogil:
    """out[k] = src[max(t[k], 0) * stride + k * step]: see FL_GATHER in _vector_math.h."""
    if floating is float:
        fl_gather_f32(src, t, stride, step, n, out)
    else:
        fl_gather_f64(src, t, stride, step, n, out)


cdef inline void tile_exp_sum(const floating* x, Py_ssize_t stride, Py_ssize_t C,
                              Py_ssize_t T, const floating* m, floating* e, floating* f,
                              double* s) noexcept nogil:
    """s = sum_c exp(x[c * stride :][:T] - m), the exps also packed in e unless it is NULL.

    float32 exps are summed in float32 (f) over groups of TILE_EXP_GROUP
    classes, so the class loop stays at float32 vector width, and each group
    sum is then added to the float64 s.  float64 exps go straight to s.
    """
    cdef Py_ssize_t gi, g, c, k, n_group = TILE_EXP_GROUP if floating is float else C
    cdef const floating* xc
    cdef floating* ec
    cdef floating v
    cdef floating* acc = f
    if floating is double:
        acc = s
    for k in range(T):
        s[k] = 0
    for gi in range(n_chunks(C, n_group)):
        g = gi * n_group
        if floating is float:
            for k in range(T):
                f[k] = 0
        for c in range(g, min(C, g + n_group)):
            xc = x + c * stride
            if e != NULL:
                ec = e + c * T
                for k in range(T):
                    v = fexp_neg(xc[k] - m[k])
                    ec[k] = v
                    acc[k] += v
            else:
                for k in range(T):
                    acc[k] += fexp_neg(xc[k] - m[k])
        if floating is float:
            for k in range(T):
                s[k] += f[k]


cdef inline void tile_scale(const floating* e, Py_ssize_t C, Py_ssize_t T,
                            const floating* A, floating* out, Py_ssize_t stride) noexcept nogil:
    """out[c * stride :][:T] = e[c, :T] * A."""
    cdef Py_ssize_t c, k, c0 = C % 4
    cdef const floating* ea
    cdef floating* oa
    cdef floating a
    for c in range(c0):
        ea = e + c * T
        oa = out + c * stride
        for k in range(T):
            oa[k] = ea[k] * A[k]
    for c in range(c0, C, 4):
        ea = e + c * T
        oa = out + c * stride
        for k in range(T):
            a = A[k]
            oa[k] = ea[k] * a
            oa[stride + k] = ea[T + k] * a
            oa[2 * stride + k] = ea[2 * T + k] * a
            oa[3 * stride + k] = ea[3 * T + k] * a
