/* Every instruction-set-specific piece of the Cython kernels, each behind an
 * #if with a portable default.
 *
 * Guard: the machine paths are compiled where __AVX__ is defined on x86,
 * that is in the x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512) builds of
 * setup.py (and a FASTLOSS_NATIVE=1 build on such a CPU); the AVX-512 pieces
 * need __AVX512F__ besides.  The baseline x86-64 build, the portable build
 * that FASTLOSS_PORTABLE=1 selects, defines no __AVX__: it compiles the
 * portable defaults only (plain stores, no fence, the inline exps
 * fl_expf_normal / fl_expf_neg of _vector_math.h, no gradient in pieces) and
 * does not include <immintrin.h>; so does any non-x86 build.
 *
 * The interface the loops call (_loops.h, the .pxd files):
 *   FL_STREAMS                     1 where results may be streamed
 *   fl_stream_fence()              order a thread's streaming stores
 *   fl_stream_float/_double(dst, src, n), fl_stream_shift_float(...)
 *                                  store a range, streamed on whole lines
 *   fl_store_line(dst, line)       store one aligned line of FL_LINE_FLOATS
 *   fl_row_grad_begin / _finish    a class row's gradient (in pieces on AVX-512)
 *   fl_exp_store_sum_normal, fl_exp_sum_range_normal, fl_exp_store_sum_range
 *                                  exp over a range of a row whose exps are normal
 *   fl_tile_exp_first_rows         exp over a few class rows of a tile
 */
#ifndef FASTLOSS_MACHINE_H
#define FASTLOSS_MACHINE_H

#include <stddef.h>
#include <stdint.h>

#include "_vector_math.h"

#if defined(__AVX__) && (defined(__x86_64__) || defined(__i386__))
#define FL_STREAMS 1
#include <immintrin.h>
#else
#define FL_STREAMS 0
#endif

/* ---- streaming stores --------------------------------------------------
 * A normal store first reads the destination line into cache; a streaming
 * (non-temporal) store writes the whole line without reading it, halving the
 * memory traffic of writing a large result.  The widest store the build's
 * instruction set has is used on dst's 64-byte-aligned part; the ends get
 * plain stores.  Streaming stores are weakly ordered: a block that used them
 * calls fl_stream_fence() before its thread joins the others.  Without
 * FL_STREAMS the callers never ask for streaming (see stream_into); these
 * then store plainly. */
#define FL_LINE_FLOATS 16

#if FL_STREAMS
static inline void fl_stream_fence(void) { _mm_sfence(); }

/* The widest vectors: ps (float) or pd (double) as `sfx` says. */
#if defined(__AVX512F__)
#define FL_STREAM_VECTORS(sfx, type)                                                  \
    for (; j + 64 / (ptrdiff_t)sizeof(type) <= n; j += 64 / (ptrdiff_t)sizeof(type)) \
        _mm512_stream_##sfx(dst + j, _mm512_loadu_##sfx(src + j));
#else
#define FL_STREAM_VECTORS(sfx, type)                                                  \
    for (; j + 32 / (ptrdiff_t)sizeof(type) <= n; j += 32 / (ptrdiff_t)sizeof(type)) \
        _mm256_stream_##sfx(dst + j, _mm256_loadu_##sfx(src + j));
#endif

#define FL_STREAM_COPY(name, type, sfx)                                               \
static inline void name(type* dst, const type* src, ptrdiff_t n) {                   \
    ptrdiff_t j = 0, head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(type));      \
    if (head > n) head = n;                                                           \
    for (; j < head; j++) dst[j] = src[j];                                            \
    FL_STREAM_VECTORS(sfx, type)                                                      \
    for (; j < n; j++) dst[j] = src[j];                                               \
}
FL_STREAM_COPY(fl_stream_float, float, ps)
FL_STREAM_COPY(fl_stream_double, double, pd)

/* dst[:n] = (src[:n] - m) - r, streamed as fl_stream_float (dst may be src). */
static inline void fl_stream_shift_float(float* dst, const float* src, float m, float r,
                                         ptrdiff_t n) {
    ptrdiff_t j = 0, head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(float));
    if (head > n) head = n;
    for (; j < head; j++) dst[j] = (src[j] - m) - r;
#if defined(__AVX512F__)
    const __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r);
    for (; j + 16 <= n; j += 16)
        _mm512_stream_ps(dst + j, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(src + j), vm), vr));
#else
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
    for (; j + 8 <= n; j += 8)
        _mm256_stream_ps(dst + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(src + j), vm), vr));
#endif
    for (; j < n; j++) dst[j] = (src[j] - m) - r;
}
#else
static inline void fl_stream_fence(void) {}

static inline void fl_stream_float(float* dst, const float* src, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) dst[j] = src[j];
}

static inline void fl_stream_double(double* dst, const double* src, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) dst[j] = src[j];
}

static inline void fl_stream_shift_float(float* dst, const float* src, float m, float r,
                                         ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) dst[j] = (src[j] - m) - r;
}
#endif

/* dst[:FL_LINE_FLOATS] = line, dst 64-byte aligned. */
static inline void fl_store_line(float* dst, const float* line) {
    fl_stream_float(dst, line, FL_LINE_FLOATS);
}

/* ---- a class row's gradient, leaving in pieces -------------------------
 * A class-target row's gradient from its exps e: dst[:n] = e[:n] a, but
 * dst[t] = vt.  With FL_STREAMS it is streamed on dst's whole lines: the
 * target's line is patched before it is streamed (a plain store into a
 * streamed line would read it back), in a register on AVX-512.  It leaves in
 * pieces: fl_row_grad_begin stores the plain head, each fl_row_grad_lines
 * call streams a few lines (on AVX-512, while the next row's exps are taken:
 * see fl_exp_track16) and fl_row_grad_finish sends the rest.
 *
 * The lines go round the row from a starting line chosen so that they lie
 * about 2 KiB away, modulo 4 KiB, from the loads that run alongside (from
 * `loads` on, a line per line streamed).  A load whose address matches a
 * pending store's in its low 12 bits waits for that store; with x and the
 * gradient at the same offset in their pages, as two large arrays are, that
 * wait cost the pieces their gain.  The portable default stores the row
 * plainly, whole, in fl_row_grad_finish. */
#if FL_STREAMS
typedef struct {
    float* dst;
    const float* e;
    float a, vt;
    ptrdiff_t t, n, head, body_end, j, left;
} fl_row_grad;

static inline fl_row_grad fl_row_grad_begin(float* dst, const float* e, float a, ptrdiff_t t,
                                            float vt, ptrdiff_t n, const float* loads) {
    ptrdiff_t head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(float));
    if (head > n) head = n;
    for (ptrdiff_t j = 0; j < head; j++) dst[j] = e[j] * a;
    ptrdiff_t lines = (n - head) / FL_LINE_FLOATS, first = 0;
    if (loads != NULL) {
        first = (ptrdiff_t)((((uintptr_t)loads + 2048 - (uintptr_t)(dst + head)) & 4095) / 64);
        if (first >= lines) first = 0;
    }
    fl_row_grad p = {dst, e, a, vt, t, n, head, head + lines * FL_LINE_FLOATS,
                     head + first * FL_LINE_FLOATS, lines};
    return p;
}

static inline void fl_row_grad_lines(fl_row_grad* p, ptrdiff_t lines) {
    ptrdiff_t j = p->j, t = p->t;
    if (lines > p->left) lines = p->left;
    p->left -= lines;
#if defined(__AVX512F__)
    const __m512 va = _mm512_set1_ps(p->a), vvt = _mm512_set1_ps(p->vt);
#endif
    for (; lines > 0; lines--) {
#if defined(__AVX512F__)
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(p->e + j), va);
        if ((size_t)(t - j) < 16) v = _mm512_mask_mov_ps(v, (__mmask16)(1u << (t - j)), vvt);
        _mm512_stream_ps(p->dst + j, v);
#else
        FL_ALIGN64 float line[FL_LINE_FLOATS];
        for (ptrdiff_t k = 0; k < FL_LINE_FLOATS; k++) line[k] = p->e[j + k] * p->a;
        if ((size_t)(t - j) < FL_LINE_FLOATS) line[t - j] = p->vt;
        fl_store_line(p->dst + j, line);
#endif
        j += FL_LINE_FLOATS;
        if (j == p->body_end) j = p->head;
    }
    p->j = j;
}

static inline void fl_row_grad_finish(fl_row_grad* p) {
    fl_row_grad_lines(p, p->left);
    for (ptrdiff_t j = p->body_end; j < p->n; j++) p->dst[j] = p->e[j] * p->a;
    if (p->t < p->head || p->t >= p->body_end) p->dst[p->t] = p->vt;
}
#else
typedef struct {
    float* dst;
    const float* e;
    float a, vt;
    ptrdiff_t t, n;
} fl_row_grad;

static inline fl_row_grad fl_row_grad_begin(float* dst, const float* e, float a, ptrdiff_t t,
                                            float vt, ptrdiff_t n, const float* loads) {
    (void)loads;
    fl_row_grad p = {dst, e, a, vt, t, n};
    return p;
}

static inline void fl_row_grad_finish(fl_row_grad* p) {
    for (ptrdiff_t j = 0; j < p->n; j++) p->dst[j] = p->e[j] * p->a;
    p->dst[p->t] = p->vt;
}
#endif

/* ---- exp over a range of a row whose exps are normal -------------------
 * fl_exp_store_sum_normal(x, m, e, g, end): e[g:end] = exp(x[g:end] - m),
 *     returning their float32 sum;
 * fl_exp_sum_range_normal(x, m, g, end, next, max, min, sum): that sum only,
 *     with the running max, min and sum of next[g:end];
 * fl_exp_store_sum_range(x, c, e, g, end, max, min, sum, pending): the exps
 *     stored and their sum, for a shift c not known to keep them normal, with
 *     the max, min and sum of x[g:end] (as fl_exp_sum_range takes them of its
 *     next row), which say whether it did; a pending row's gradient may leave
 *     in part meanwhile.
 * Portable: fl_expf_normal in the generic loops of _vector_math.h, the
 * pending row left whole to its fl_row_grad_finish. */
#if defined(__AVX512F__)
/* exp(x) for 16 values whose exps are all normal floats (x in
 * [FL_NORMAL_EXP_MIN, 88]), in less work than fl_expf_normal:
 * n = round(x 32 / ln2), exp(x) = 2^(n / 32) exp(r) with |r| <= ln2 / 64,
 * 2^((n mod 32) / 32) read from a 32-entry table held in two registers
 * (vpermt2ps), exp(r) by its degree-3 Taylor polynomial (error below 2^-30),
 * and floor(n / 32) added to the exponent bits.  Within 1.01 ulp on 20M
 * points of [FL_NORMAL_EXP_MIN, FL_FIRST_SHIFT_ABOVE] (fl_expf_normal: 0.92). */
static FL_ALIGN64 const float fl_exp2_32nds[32] = {
    0x1p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f, 0x1.172b84p+0f, 0x1.1d4874p+0f,
    0x1.2387a6p+0f, 0x1.29e9ep+0f, 0x1.306fep+0f, 0x1.371a74p+0f, 0x1.3dea64p+0f, 0x1.44e086p+0f,
    0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f, 0x1.6247ecp+0f, 0x1.6a09e6p+0f, 0x1.71f75ep+0f,
    0x1.7a1148p+0f, 0x1.82589ap+0f, 0x1.8ace54p+0f, 0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f,
    0x1.ae89fap+0f, 0x1.b7f77p+0f, 0x1.c199bep+0f, 0x1.cb720ep+0f, 0x1.d5818ep+0f, 0x1.dfc974p+0f,
    0x1.ea4afap+0f, 0x1.f50766p+0f,
};

static inline __m512 fl_exp16_normal(__m512 x)
{
    const __m512 magic = _mm512_set1_ps(FL_EXP_MAGIC);
    __m512 k = _mm512_fmadd_ps(x, _mm512_set1_ps(46.166241308446828f), magic);
    __m512 n = _mm512_sub_ps(k, magic);
    /* ln2 / 32 in Cephes' two parts (each exact times n), scaled by 2^-5. */
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f / 32), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f / 32), r);
    /* q = exp(r) - 1, so that t exp(r) = t + t q rounds once. */
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 6), r, _mm512_set1_ps(0.5f));
    q = _mm512_mul_ps(_mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f)), r);
    __m512i bits = _mm512_castps_si512(k);
    __m512 t = _mm512_permutex2var_ps(_mm512_load_ps(fl_exp2_32nds), bits,
                                      _mm512_load_ps(fl_exp2_32nds + 16));
    __m512i scale = _mm512_slli_epi32(
        _mm512_srai_epi32(_mm512_sub_epi32(bits, _mm512_set1_epi32(0x4b400000)), 5), 23);
    return _mm512_castsi512_ps(
        _mm512_add_epi32(_mm512_castps_si512(_mm512_fmadd_ps(t, q, t)), scale));
}

/* e[g:end] = exp(x[g:end] - m) by fl_exp16_normal, the last partial vector
 * masked; returns their sum. */
static inline float fl_exp16_store_sum(const float* x, float m, float* e, ptrdiff_t g,
                                       ptrdiff_t end)
{
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    ptrdiff_t j = g;
    for (; j + 16 <= end; j += 16) {
        __m512 v = fl_exp16_normal(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        _mm512_storeu_ps(e + j, v);
        acc = _mm512_add_ps(acc, v);
    }
    if (j < end) {
        __mmask16 tail = (__mmask16)((1u << (end - j)) - 1);
        __m512 v = fl_exp16_normal(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), vm));
        _mm512_mask_storeu_ps(e + j, tail, v);
        acc = _mm512_mask_add_ps(acc, tail, acc, v);
    }
    return _mm512_reduce_add_ps(acc);
}

#define FL_EXP_PER_LINES 8

/* One vector of fl_exp_track16's loop, its accumulators in registers once inlined. */
static inline void fl_exp_track_vector(const float* x, __m512 vm, float* e, const float* track,
                                       ptrdiff_t j, __m512* acc, __m512* mx, __m512* mn,
                                       __m512* sx)
{
    __m512 tv = _mm512_loadu_ps(track + j);
    __m512 v = fl_exp16_normal(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
    if (e != NULL) _mm512_storeu_ps(e + j, v);
    *acc = _mm512_add_ps(*acc, v);
    *mx = _mm512_max_ps(tv, *mx);
    *mn = _mm512_min_ps(tv, *mn);
    *sx = _mm512_add_ps(*sx, tv);
}

/* sum(exp(x[g:end] - m)) by fl_exp16_normal, the exps also stored in e unless
 * it is NULL, and the running max, min and sum of track[g:end] (the next row,
 * or x itself).  max / min keep their operand on a NaN (vmaxps returns its
 * second operand then), dropping a NaN as the generic loops do.  A pending
 * row's gradient (if not NULL) streams out FL_EXP_PER_LINES lines after every
 * FL_EXP_PER_LINES vectors: the streaming stores drain while the exps are
 * computed rather than in one burst after them. */
static inline float fl_exp_track16(const float* x, float m, float* e, ptrdiff_t g, ptrdiff_t end,
                                   const float* track, float* max, float* min, float* sum,
                                   fl_row_grad* pending)
{
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps(), sx = _mm512_setzero_ps();
    __m512 mx = _mm512_set1_ps(*max), mn = _mm512_set1_ps(*min);
    ptrdiff_t j = g;
    if (pending == NULL) {
        for (; j + 16 <= end; j += 16)
            fl_exp_track_vector(x, vm, e, track, j, &acc, &mx, &mn, &sx);
    }
    while (j + 16 <= end) {
        ptrdiff_t stop = end - j < 16 * FL_EXP_PER_LINES ? end - (end - j) % 16
                                                         : j + 16 * FL_EXP_PER_LINES;
        for (; j < stop; j += 16)
            fl_exp_track_vector(x, vm, e, track, j, &acc, &mx, &mn, &sx);
        fl_row_grad_lines(pending, FL_EXP_PER_LINES);
    }
    if (j < end) {
        __mmask16 tail = (__mmask16)((1u << (end - j)) - 1);
        __m512 tv = _mm512_maskz_loadu_ps(tail, track + j);
        __m512 v = fl_exp16_normal(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), vm));
        if (e != NULL) _mm512_mask_storeu_ps(e + j, tail, v);
        acc = _mm512_mask_add_ps(acc, tail, acc, v);
        mx = _mm512_mask_max_ps(mx, tail, tv, mx);
        mn = _mm512_mask_min_ps(mn, tail, tv, mn);
        sx = _mm512_mask_add_ps(sx, tail, sx, tv);
    }
    *max = _mm512_reduce_max_ps(mx);
    *min = _mm512_reduce_min_ps(mn);
    *sum += _mm512_reduce_add_ps(sx);
    return _mm512_reduce_add_ps(acc);
}

#endif

static inline float fl_exp_store_sum_normal(const float* x, float m, float* e, ptrdiff_t g,
                                            ptrdiff_t end)
{
#if defined(__AVX512F__)
    return fl_exp16_store_sum(x, m, e, g, end);
#else
    return fl_exp_store_sum(x, m, e, g, end, fl_expf_normal);
#endif
}

static inline float fl_exp_sum_range_normal(const float* x, float m, ptrdiff_t g, ptrdiff_t end,
                                            const float* next, float* max, float* min,
                                            float* sum)
{
#if defined(__AVX512F__)
    return fl_exp_track16(x, m, NULL, g, end, next, max, min, sum, NULL);
#else
    return fl_exp_sum_range(x, m, NULL, 0, g, end, fl_expf_normal, next, max, min, sum);
#endif
}

static inline float fl_exp_store_sum_range(const float* x, float c, float* e, ptrdiff_t g,
                                           ptrdiff_t end, float* max, float* min, float* sum,
                                           fl_row_grad* pending)
{
#if defined(__AVX512F__)
    return fl_exp_track16(x, c, e, g, end, x, max, min, sum, pending);
#else
    (void)pending;
    return fl_exp_sum_range(x, c, e, 1, g, end, fl_expf_normal, x, max, min, sum);
#endif
}

#if !defined(__AVX512F__)
/* The portable fl_tile_exp_first_rows of one class row xr: er[k] = exp(xr[k] -
 * x0[k]) if `store` (a constant at each call, as fl_exp_sum_range's), added
 * to f[k] (or setting it), the differences' range and sum tracked. */
static inline void fl_tile_exp_row(const float* xr, const float* x0, float* er, int store,
                                   float* f, int set, ptrdiff_t T, float* dmax, float* dmin,
                                   float* dsum)
{
    float hi = *dmax, lo = *dmin, sd = 0;
#pragma omp simd reduction(max:hi) reduction(min:lo) reduction(+:sd)
    for (ptrdiff_t k = 0; k < T; k++) {
        float d = xr[k] - x0[k];
        float v = fl_expf_normal(d);
        if (store) er[k] = v;
        f[k] = set ? v : f[k] + v;
        hi = d > hi ? d : hi;
        lo = d < lo ? d : lo;
        sd += d;
    }
    *dmax = hi;
    *dmin = lo;
    *dsum += sd;
}

#endif

/* ---- exp over a few class rows of a tile -------------------------------
 * fl_tile_exp_first_f32's work (_loops.h) on `rows` (1 to FL_TILE_ROWS) class
 * rows of a tile, `stride` apart, shifted by the tile's first class x0:
 * e[r T + k] = exp(x[r stride + k] - x0[k]) unless e is NULL, their sums
 * added to f[k] (set by them if first), and the max, min and sum of the
 * differences tracked in *dmax, *dmin, *dsum.  On AVX-512 the rows are read
 * at once, several memory streams in flight, with fl_exp16_normal. */
static inline void fl_tile_exp_first_rows(const float* x, ptrdiff_t stride, int rows,
                                          const float* x0, float* e, ptrdiff_t T, float* f,
                                          int first, float* dmax, float* dmin, float* dsum)
{
#if defined(__AVX512F__)
    __m512 hi = _mm512_set1_ps(*dmax), lo = _mm512_set1_ps(*dmin), sd = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < T; k += 16) {
        __mmask16 live = T - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (T - k)) - 1);
        __m512 c0 = _mm512_maskz_loadu_ps(live, x0 + k);
        __m512 acc = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(live, f + k);
        for (int r = 0; r < rows; r++) {
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(live, x + r * stride + k), c0);
            __m512 v = fl_exp16_normal(d);
            if (e != NULL) _mm512_mask_storeu_ps(e + r * T + k, live, v);
            acc = _mm512_add_ps(acc, v);
            hi = _mm512_max_ps(d, hi);
            lo = _mm512_min_ps(d, lo);
            sd = _mm512_add_ps(sd, d);
        }
        _mm512_mask_storeu_ps(f + k, live, acc);
    }
    *dmax = _mm512_reduce_max_ps(hi);
    *dmin = _mm512_reduce_min_ps(lo);
    *dsum += _mm512_reduce_add_ps(sd);
#else
    for (int r = 0; r < rows; r++) {
        if (e != NULL)
            fl_tile_exp_row(x + r * stride, x0, e + r * T, 1, f, first && r == 0, T, dmax,
                            dmin, dsum);
        else
            fl_tile_exp_row(x + r * stride, x0, NULL, 0, f, first && r == 0, T, dmax, dmin,
                            dsum);
    }
#endif
}

#endif
