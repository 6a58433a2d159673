# distutils: libraries = m
# distutils: depends = fastloss/_cython/_simd_math.h fastloss/_cython/_stream.h
"""Inline loops, block sizes and scratch helpers shared by the Cython kernels.

Row loops (inner == 1) reduce a contiguous row into LANES independent
accumulators merged in a fixed order: gcc vectorises them without
-ffast-math, and the order of the additions is fixed by the source, whatever
the thread count or instruction set.  The float32 exp-sum of a row is the
exception (fl_exp_shift_f32): its order follows the build's vector width.
Tile loops (inner > 1) keep one accumulator per position, so they are
element-wise and vectorise as written.  The exp/log wrappers pick
the float or double libm function; _simd_math.h lets gcc call their libmvec
vector variants, and holds the inline float32 exp behind fexp_neg.
"""
from cython cimport floating
from libc.math cimport INFINITY, exp, expf, log, log1p, log1pf, logf
from libc.stdint cimport int32_t

cdef extern from "_stream.h" nogil:
    void fl_stream_fence()
    void fl_stream_float(float* dst, const float* src, Py_ssize_t n)
    void fl_stream_double(double* dst, const double* src, Py_ssize_t n)
    void fl_stream_shift_float(float* dst, const float* src, float m, float r, Py_ssize_t n)
    void fl_class_grad_float(float* dst, const float* e, const float* a, const float* d, float wc,
                             const float* b, const int32_t* t, int32_t c, Py_ssize_t n,
                             bint stream)
    ctypedef struct fl_row_grad:
        pass
    fl_row_grad fl_row_grad_begin(float* dst, const float* e, float a, Py_ssize_t t, float vt,
                                  Py_ssize_t n, const float* loads)
    void fl_row_grad_finish(fl_row_grad* p)

cdef extern from "_simd_math.h" nogil:
    float fl_expf_neg(float)
    float fl_row_max_f32(const float* x, Py_ssize_t n, int* normal)
    double fl_exp_shift_f32(const float* x, float m, float* e, Py_ssize_t n, int normal)
    double fl_exp_first_f32(const float* x, float* e, Py_ssize_t n, int* ok, fl_row_grad* pending)
    bint fl_tile_exp_first_f32(const float* x, Py_ssize_t stride, Py_ssize_t C, Py_ssize_t T,
                               Py_ssize_t group, float* e, float* f, double* s)
    double fl_exp_sum_next_max_f32(const float* x, float m, Py_ssize_t n, int normal,
                                   const float* next, float* next_max, int* next_normal)
    void fl_gather_f32(const float* src, const int32_t* t, Py_ssize_t stride, Py_ssize_t step,
                       Py_ssize_t n, double* out)
    void fl_gather_f64(const double* src, const int32_t* t, Py_ssize_t stride, Py_ssize_t step,
                       Py_ssize_t n, double* out)

cdef extern from "<stdlib.h>" nogil:
    void* aligned_alloc(size_t alignment, size_t size)

cdef enum:
    # 32 lanes: gcc completely unrolls constant loops of up to 16 trips and
    # then fails to vectorise the scalar copies; past that the lane loop is
    # vectorised as a loop and its accumulators stay in registers.
    LANES = 32
    # Work per block, in elements.
    BLOCK_ELEMS = 32768
    # A tile's packed scratch and its logits stay in the 1 MiB L2 between the
    # passes; each class row of a tile is a separate memory stream, whose
    # prefetch ramp-up is paid per row, so tiles are as long as that allows
    # (1 << 19 was 4-6 % slower on cross-entropy of (16, 21, 256, 256)).
    TILE_BYTES = 1 << 18
    TILE_MIN = 16
    TILE_MAX = 8192
    # A tile's float32 exps are summed in float32 over this many classes, then
    # into float64.
    EXP_GROUP = 8
    ALIGN = 64


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
    """log1p(z) for 0 <= z <= 1 (or NaN); float32 inline, about half of log1pf's work.

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


# ---- streaming stores -------------------------------------------------------

cdef enum:
    # Results of at least this many bytes are written with streaming stores.
    STREAM_BYTES = 8 << 20
    # A row's gradient is streamed from a scratch row of its exps only if the
    # row fits in L1 (C = 1000 gained; C = 32000, from L2, lost).
    STREAM_ROW_BYTES = 16 << 10


cdef inline void stream_into(floating* dst, const floating* src, Py_ssize_t n,
                             bint stream) noexcept nogil:
    """dst[:n] = src[:n]; with streaming stores (see _stream.h) if stream."""
    cdef Py_ssize_t j
    if not stream:
        for j in range(n):
            dst[j] = src[j]
    elif floating is float:
        fl_stream_float(dst, src, n)
    else:
        fl_stream_double(dst, src, n)


# ---- block partition: a function of the shape only -------------------------

cdef inline Py_ssize_t rows_per_block(Py_ssize_t C) noexcept nogil:
    return max(1, BLOCK_ELEMS // max(C, 1))


cdef inline Py_ssize_t n_chunks(Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    return (n + size - 1) // size


cdef inline Py_ssize_t tile_width(Py_ssize_t C, Py_ssize_t inner,
                                  Py_ssize_t elem_bytes) noexcept nogil:
    """Positions per packed tile, elem_bytes of scratch per (class, position).

    A multiple of 16 (aligned scratch rows) unless inner is smaller; inner is
    cut into tiles of equal width, so no thread gets a short leftover tile.
    """
    cdef Py_ssize_t T = TILE_BYTES // (max(C, 1) * elem_bytes)
    T = min(TILE_MAX, max(TILE_MIN, T - T % 16))
    if T >= inner:
        return inner
    T = n_chunks(inner, n_chunks(inner, T))
    return T + (-T) % 16


cdef inline Py_ssize_t block_size(Py_ssize_t C, Py_ssize_t inner) noexcept nogil:
    """Rows per block (inner == 1), else positions per unpacked tile (nll)."""
    cdef Py_ssize_t n = rows_per_block(C)
    return n if inner == 1 else min(inner, min(1024, max(TILE_MIN, n - n % 16)))


cdef inline double sum_in_order(const double* part, Py_ssize_t n) noexcept nogil:
    cdef double total = 0
    cdef Py_ssize_t b
    for b in range(n):
        total += part[b]
    return total


# ---- arguments: shape checks, optional arrays (NULL when absent) -----------

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


# ---- per-thread scratch -----------------------------------------------------

cdef inline void* thread_scratch(size_t nbytes, char* failed) noexcept nogil:
    """Scratch for one thread of a parallel region, or NULL with failed[0] set.

    Aligned, so vector-loop peeling (and so rounding) never depends on which
    thread runs a block.  A parallel region cannot raise: check_scratch does,
    after it.
    """
    cdef void* p = aligned_alloc(ALIGN, (nbytes + ALIGN) & ~(<size_t>ALIGN - 1))
    if p == NULL:
        failed[0] = 1
    return p


cdef inline int check_scratch(char failed) except -1:
    if failed:
        raise MemoryError("fastloss: could not allocate per-thread scratch")
    return 0


# ---- rows: inner == 1 -------------------------------------------------------

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
    cdef double acc[LANES]
    cdef double tail = 0
    cdef Py_ssize_t j, jb, k, nv = n - n % LANES
    for k in range(LANES):
        acc[k] = 0
    for jb in range(nv // LANES):
        j = jb * LANES
        for k in range(LANES):
            acc[k] += v[j + k]
    for j in range(nv, n):
        tail += v[j]
    return merge_lanes(acc) + tail


cdef inline double row_dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    cdef double acc[LANES]
    cdef double tail = 0
    cdef Py_ssize_t j, jb, k, nv = n - n % LANES
    for k in range(LANES):
        acc[k] = 0
    for jb in range(nv // LANES):
        j = jb * LANES
        for k in range(LANES):
            acc[k] += <double>a[j + k] * b[j + k]
    for j in range(nv, n):
        tail += <double>a[j] * b[j]
    return merge_lanes(acc) + tail


cdef inline double shifted_dot(const floating* x, double m, const floating* w,
                               Py_ssize_t n) noexcept nogil:
    """sum_j w_j * (x_j - m), w = 1 when NULL; relative to the max, so no cancellation."""
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

    float32: fl_exp_shift_f32 (_simd_math.h).  float64: LANES lanes in a fixed order.
    """
    if floating is float:
        return fl_exp_shift_f32(x, m, e, n, normal)
    else:
        return exp_shift_lanes(x, m, e, n)


cdef inline double exp_shift_first(const floating* x, floating* e, Py_ssize_t n,
                                   floating* m, fl_row_grad* pending) noexcept nogil:
    """e = exp(x - m) (e not x) and its sum, for a shift m chosen here: x[0] when
    that serves (float32: fl_exp_first_f32, one pass), else the row's max (two).
    A pending float32 row's gradient (or NULL) leaves in part meanwhile; the
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


# ---- tiles: inner > 1 -------------------------------------------------------
# A tile's class rows lie `inner` elements apart, each a separate memory
# stream.  The passes read them in place (the max pass from memory, the later
# ones from cache); only exps that a later pass needs go to a packed (C, T)
# scratch block, which stays in L2 even when the class rows alias to the same
# cache sets (inner a multiple of a large power of two).  tile_max and
# tile_scale take four class rows per loop: four concurrent memory streams,
# and a quarter of the loads and stores of the per-position arrays.  Other
# loops store one row each: gcc would not vectorise them with four (too many
# run-time alias checks between their rows and the inputs).

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
    """out[k] = src[max(t[k], 0) * stride + k * step]: see fl_gather_f32."""
    if floating is float:
        fl_gather_f32(src, t, stride, step, n, out)
    else:
        fl_gather_f64(src, t, stride, step, n, out)


cdef inline void tile_exp_sum(const floating* x, Py_ssize_t stride, Py_ssize_t C,
                              Py_ssize_t T, const floating* m, floating* e, floating* f,
                              double* s) noexcept nogil:
    """s = sum_c exp(x[c * stride :][:T] - m), the exps also packed in e unless it is NULL.

    float32 exps are summed in float32 (f) over groups of EXP_GROUP classes,
    so the class loop stays at float32 vector width, and each group sum is
    then added to the float64 s.  float64 exps go straight to s.
    """
    cdef Py_ssize_t gi, g, c, k, n_group = EXP_GROUP if floating is float else C
    cdef const floating* xc
    cdef floating* ec
    cdef floating v
    for k in range(T):
        s[k] = 0
    for gi in range(n_chunks(C, n_group)):
        g = gi * n_group
        if floating is float:
            for k in range(T):
                f[k] = 0
        for c in range(g, min(C, g + n_group)):
            xc = x + c * stride
            ec = e + c * T if e != NULL else NULL
            if floating is double:
                if e != NULL:
                    for k in range(T):
                        v = fexp_neg(xc[k] - m[k])
                        ec[k] = v
                        s[k] += v
                else:
                    for k in range(T):
                        s[k] += fexp_neg(xc[k] - m[k])
            else:
                if e != NULL:
                    for k in range(T):
                        v = fexp_neg(xc[k] - m[k])
                        ec[k] = v
                        f[k] += v
                else:
                    for k in range(T):
                        f[k] += fexp_neg(xc[k] - m[k])
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
