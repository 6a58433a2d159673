"""Streaming stores and a class row's gradient in pieces, from _machine.h.

Where the build has no streaming stores (FL_STREAMS is 0: the portable
baseline build), stream_result is always false, so no kernel takes a
streamed path there.
"""
from cython cimport floating
from libc.stdint cimport int32_t

from fastloss._cython._constants cimport STREAM_BYTES

cdef extern from "_machine.h" nogil:
    enum:
        FL_STREAMS
    void fl_stream_fence()
    void fl_stream_float(float* dst, const float* src, Py_ssize_t n)
    void fl_stream_double(double* dst, const double* src, Py_ssize_t n)
    void fl_stream_shift_float(float* dst, const float* src, float m, float r, Py_ssize_t n)
    ctypedef struct fl_row_grad:
        pass
    fl_row_grad fl_row_grad_begin(float* dst, const float* e, float a, Py_ssize_t t, float vt,
                                  Py_ssize_t n, const float* loads)
    void fl_row_grad_finish(fl_row_grad* p)


cdef inline bint stream_result(size_t nbytes) noexcept nogil:
    """Whether a result of nbytes is streamed: it is large and the build has streaming stores."""
    return FL_STREAMS and nbytes >= STREAM_BYTES


cdef inline void stream_into(floating* dst, const floating* src, Py_ssize_t n,
                             bint stream) noexcept nogil:
    """dst[:n] = src[:n]; with streaming stores (see _machine.h) if stream."""
    cdef Py_ssize_t j
    if not stream:
        for j in range(n):
            dst[j] = src[j]
    elif floating is float:
        fl_stream_float(dst, src, n)
    else:
        fl_stream_double(dst, src, n)
