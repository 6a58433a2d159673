"""exp/log of either float type, and the portable vector math of _vector_math.h.

The wrappers pick the float or double libm function; _vector_math.h lets gcc
call their libmvec vector variants, and holds the inline float32 exp behind
fexp_neg.
"""
from cython cimport floating
from libc.math cimport exp, expf, log, log1p, log1pf, logf
from libc.stdint cimport int32_t

cdef extern from "_vector_math.h" nogil:
    float fl_expf_neg(float)
    float fl_row_max_f32(const float* x, Py_ssize_t n, int* normal)
    void fl_gather_f32(const float* src, const int32_t* t, Py_ssize_t stride, Py_ssize_t step,
                       Py_ssize_t n, double* out)
    void fl_gather_f64(const double* src, const int32_t* t, Py_ssize_t stride, Py_ssize_t step,
                       Py_ssize_t n, double* out)


cdef inline floating fexp(floating v) noexcept nogil:
    if floating is float:
        return expf(v)
    else:
        return exp(v)


cdef inline floating fexp_neg(floating v) noexcept nogil:
    """exp(v) for v <= 0 or NaN (as exp(x - max) and exp(-|x|) are): float32 inline."""
    if floating is float:
        return fl_expf_neg(v)
    else:
        return exp(v)


cdef inline floating flog(floating v) noexcept nogil:
    if floating is float:
        return logf(v)
    else:
        return log(v)


cdef inline floating flog1p(floating v) noexcept nogil:
    if floating is float:
        return log1pf(v)
    else:
        return log1p(v)


cdef inline floating flog1p_unit(floating z) noexcept nogil:
    """log1p(z) for 0 <= z <= 1 (or NaN); float32 inline, less work than log1pf.

    log1p(z) = k ln2 + log(1 + f): f = z itself (exact, so no rounding
    correction) up to sqrt(2) - 1, above it f = (1 + z) / 2 - 1 and k = 1;
    either way f is in Cephes logf's polynomial range.  Both candidates are
    computed and then selected, which gcc vectorises.
    """
    if floating is double:
        return log1p(z)
    cdef bint big = z > <float>0.41421356237309503
    cdef float h = z * <float>0.5 - <float>0.5
    cdef float f = h if big else z
    cdef float k = <float>1 if big else <float>0
    cdef float zz = f * f
    cdef float p = <float>7.0376836292e-2
    p = p * f + <float>-1.1514610310e-1
    p = p * f + <float>1.1676998740e-1
    p = p * f + <float>-1.2420140846e-1
    p = p * f + <float>1.4249322787e-1
    p = p * f + <float>-1.6668057665e-1
    p = p * f + <float>2.0000714765e-1
    p = p * f + <float>-2.4999993993e-1
    p = p * f + <float>3.3333331174e-1
    cdef float y = <float>-2.12194440e-4 * k + p * f * zz
    y = <float>-0.5 * zz + y
    return <float>0.693359375 * k + (f + y)
