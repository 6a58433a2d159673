"""Kernel arguments: shape checks, and optional arrays as pointers (NULL when absent)."""
from cython cimport floating


cdef inline Py_ssize_t n_items(const Py_ssize_t* shape, int ndim) noexcept nogil:
    cdef Py_ssize_t n = 1
    cdef int i
    for i in range(ndim):
        n *= shape[i]
    return n


cdef inline int check_shape(str name, const Py_ssize_t* got, const Py_ssize_t* want,
                            int ndim, bint optional) except -1:
    """Kernels trust their views; this catches a caller bug before it corrupts memory.

    A size-0 array passes when it is optional (absent) or nothing is expected.
    """
    cdef int i
    if n_items(got, ndim) == 0 and (optional or n_items(want, ndim) == 0):
        return 0
    for i in range(ndim):
        if got[i] != want[i]:
            raise ValueError(f"{name} has shape {tuple([got[j] for j in range(ndim)])}, "
                             f"expected {tuple([want[j] for j in range(ndim)])}")
    return 0


cdef inline floating* advance(floating* p, Py_ssize_t n) noexcept nogil:
    return p + n if p != NULL else NULL


cdef inline const floating* cadvance(const floating* p, Py_ssize_t n) noexcept nogil:
    return p + n if p != NULL else NULL
