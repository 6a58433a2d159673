"""How a kernel's work is cut into blocks (a function of the shape only), their
results added in block order, and each thread's scratch for them."""
from fastloss._cython._constants cimport BLOCK_ELEMS, TILE_ELEMS, TILE_MIN

cdef extern from *:
    """
    #include <stdlib.h>
    /* Aligned memory from every C runtime: C11's aligned_alloc is absent from
       MSVC's, which has _aligned_malloc (freed by _aligned_free) instead. */
    #if defined(_WIN32)
    #include <malloc.h>
    static void* fl_aligned_malloc(size_t alignment, size_t size) { return _aligned_malloc(size, alignment); }
    static void fl_aligned_free(void* p) { _aligned_free(p); }
    #else
    static void* fl_aligned_malloc(size_t alignment, size_t size) {
        void* p;
        return posix_memalign(&p, alignment, size) ? NULL : p;
    }
    static void fl_aligned_free(void* p) { free(p); }
    #endif
    """
    void* fl_aligned_malloc(size_t alignment, size_t size) nogil
    void fl_aligned_free(void* p) nogil

cdef enum:
    # The most positions in a tile.
    TILE_MAX = 8192
    # The most positions in an unpacked tile (nll).
    UNPACKED_TILE_MAX = 1024
    ALIGN = 64


cdef inline Py_ssize_t rows_per_block(Py_ssize_t C) noexcept nogil:
    return max(1, BLOCK_ELEMS // max(C, 1))


cdef inline Py_ssize_t n_chunks(Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    return (n + size - 1) // size


cdef inline Py_ssize_t tile_width(Py_ssize_t C, Py_ssize_t inner,
                                  Py_ssize_t elem_bytes) noexcept nogil:
    """Positions per packed tile, elem_bytes of scratch per (class, position).

    A tile's scratch holds as many bytes as TILE_ELEMS float32 values.  A
    multiple of 16 (aligned scratch rows) unless inner is smaller; inner is
    cut into tiles of equal width, so no thread gets a short leftover tile.
    """
    cdef Py_ssize_t T = <Py_ssize_t>(TILE_ELEMS * sizeof(float)) // (max(C, 1) * elem_bytes)
    T = min(TILE_MAX, max(TILE_MIN, T - T % 16))
    if T >= inner:
        return inner
    T = n_chunks(inner, n_chunks(inner, T))
    return T + (-T) % 16


cdef inline Py_ssize_t block_size(Py_ssize_t C, Py_ssize_t inner) noexcept nogil:
    """Rows per block (inner == 1), else positions per unpacked tile (nll)."""
    cdef Py_ssize_t n = rows_per_block(C)
    return n if inner == 1 else min(inner, min(UNPACKED_TILE_MAX, max(TILE_MIN, n - n % 16)))


cdef inline double sum_in_order(const double* part, Py_ssize_t n) noexcept nogil:
    cdef double total = 0
    cdef Py_ssize_t b
    for b in range(n):
        total += part[b]
    return total


cdef inline void* thread_scratch(size_t nbytes, char* failed) noexcept nogil:
    """Scratch for one thread of a parallel region, or NULL with failed[0] set.

    Aligned, so vector-loop peeling (and so rounding) never depends on which
    thread runs a block.  A parallel region cannot raise: check_scratch does,
    after it.
    """
    cdef void* p = fl_aligned_malloc(ALIGN, (nbytes + ALIGN) & ~(<size_t>ALIGN - 1))
    if p == NULL:
        failed[0] = 1
    return p


cdef inline void free_scratch(void* p) noexcept nogil:
    """Give back what thread_scratch allocated."""
    fl_aligned_free(p)


cdef inline int check_scratch(char failed) except -1:
    if failed:
        raise MemoryError("fastloss: could not allocate per-thread scratch")
    return 0
