"""The memory-bandwidth limit of a fused loss, as a kernel to time beside the losses.

A fused loss must read its inputs once and write its result (the gradient)
once.  ``limit_pass`` does exactly that and nothing else: ``out = sum_k
inputs[k]`` element by element, over the threads of the calling thread's
OpenMP count, written with streaming (non-temporal) stores where the CPU has
them (SSE2 on x86-64) and plain stores elsewhere.  ``python -m
fastloss.bench`` reports each loss's time over this pass's time on arrays of
the same sizes.
"""
from cython.parallel cimport prange

cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* out[j] = a[j] + b[j] (b may be NULL) for j in [lo, hi), streamed on out's aligned part. */
    static void fl_limit_range(const float* a, const float* b, float* out, ptrdiff_t lo,
                               ptrdiff_t hi) {
        ptrdiff_t j = lo;
    #if defined(__SSE2__)
        while (j < hi && ((size_t)(out + j) & 15)) { out[j] = b ? a[j] + b[j] : a[j]; j++; }
        if (b) {
            for (; j + 4 <= hi; j += 4)
                _mm_stream_ps(out + j, _mm_add_ps(_mm_loadu_ps(a + j), _mm_loadu_ps(b + j)));
        } else {
            for (; j + 4 <= hi; j += 4) _mm_stream_ps(out + j, _mm_loadu_ps(a + j));
        }
    #endif
        for (; j < hi; j++) out[j] = b ? a[j] + b[j] : a[j];
    }
    static void fl_limit_fence(void) {
    #if defined(__SSE2__)
        _mm_sfence();
    #endif
    }
    """
    void fl_limit_range(const float* a, const float* b, float* out, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil
    void fl_limit_fence() noexcept nogil

cdef enum:
    BLOCK = 1 << 16


def limit_pass(const float[::1] a, const float[::1] b, float[::1] out, const char[::1] extra):
    """``out = a + b`` (``out = a`` if ``b`` is empty), and ``extra``'s bytes read once.

    ``extra`` stands for the inputs that are not of the result's size (class
    targets); returns the sum of its bytes so that the read is not optimised away.
    """
    cdef Py_ssize_t n = a.shape[0], blocks = (a.shape[0] + BLOCK - 1) // BLOCK, k, i
    cdef long total = 0
    if out.shape[0] != n or (b.shape[0] != 0 and b.shape[0] != n):
        raise ValueError("limit_pass: a, b (if given) and out must have the same length")
    cdef const float* bp = &b[0] if b.shape[0] else NULL
    if n == 0:
        return 0
    for k in prange(blocks, nogil=True, schedule="static"):
        fl_limit_range(&a[0], bp, &out[0], k * BLOCK, min(n, (k + 1) * BLOCK))
        fl_limit_fence()
    for i in prange(extra.shape[0], nogil=True, schedule="static"):
        total += extra[i]
    return total
