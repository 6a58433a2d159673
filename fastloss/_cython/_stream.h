/* Streaming (non-temporal) stores for large results.
 *
 * A normal store first reads the destination line into cache; a streaming
 * store writes the whole line without reading it, halving the memory
 * traffic of writing a large result.  The widest store the build's
 * instruction set has is used on dst's 64-byte-aligned part; the ends get
 * plain stores.  Streaming stores are weakly ordered: a block that used them
 * calls fl_stream_fence() before its thread joins the others.
 */
#ifndef FASTLOSS_STREAM_H
#define FASTLOSS_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <immintrin.h>

static inline void fl_stream_fence(void) { _mm_sfence(); }

static inline void fl_stream_float(float* dst, const float* src, ptrdiff_t n) {
    ptrdiff_t j = 0, head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(float));
    if (head > n) head = n;
    for (; j < head; j++) dst[j] = src[j];
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
#elif defined(__AVX__)
    for (; j + 8 <= n; j += 8) _mm256_stream_ps(dst + j, _mm256_loadu_ps(src + j));
#else
    for (; j + 4 <= n; j += 4) _mm_stream_ps(dst + j, _mm_loadu_ps(src + j));
#endif
    for (; j < n; j++) dst[j] = src[j];
}

static inline void fl_stream_double(double* dst, const double* src, ptrdiff_t n) {
    ptrdiff_t j = 0, head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(double));
    if (head > n) head = n;
    for (; j < head; j++) dst[j] = src[j];
#if defined(__AVX512F__)
    for (; j + 8 <= n; j += 8) _mm512_stream_pd(dst + j, _mm512_loadu_pd(src + j));
#elif defined(__AVX__)
    for (; j + 4 <= n; j += 4) _mm256_stream_pd(dst + j, _mm256_loadu_pd(src + j));
#else
    for (; j + 2 <= n; j += 2) _mm_stream_pd(dst + j, _mm_loadu_pd(src + j));
#endif
    for (; j < n; j++) dst[j] = src[j];
}

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
#elif defined(__AVX__)
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
    for (; j + 8 <= n; j += 8)
        _mm256_stream_ps(dst + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(src + j), vm), vr));
#else
    const __m128 vm = _mm_set1_ps(m), vr = _mm_set1_ps(r);
    for (; j + 4 <= n; j += 4)
        _mm_stream_ps(dst + j, _mm_sub_ps(_mm_sub_ps(_mm_loadu_ps(src + j), vm), vr));
#endif
    for (; j < n; j++) dst[j] = (src[j] - m) - r;
}

/* The gradient of class c at n positions of a class-target tile:
 * dst[k] = e[k] a[k] - d[k] wc (no such term if d is NULL), less b[k] where
 * t[k] == c (t is -1 at an ignored position), streamed on dst's whole lines
 * if stream.  One pass for the scaling, the target's term and the copy out
 * of the tile's scratch.  Every value comes from the one expression in
 * fl_class_grad_at, vectorised or not, so it rounds the same (gcc fuses
 * multiply-adds alike in both) wherever dst's lines happen to start. */
static inline float fl_class_grad_at(const float* e, const float* a, const float* d, float wc,
                                     const float* b, const int32_t* t, int32_t c, ptrdiff_t k) {
    float less = t[k] == c ? b[k] : 0.0f;
    return d != NULL ? e[k] * a[k] - d[k] * wc - less : e[k] * a[k] - less;
}

#define FL_LINE_FLOATS 16

static inline void fl_class_grad_float(float* dst, const float* e, const float* a,
                                       const float* d, float wc, const float* b,
                                       const int32_t* t, int32_t c, ptrdiff_t n, int stream) {
    ptrdiff_t j = 0;
    if (stream) {
        float line[FL_LINE_FLOATS] __attribute__((aligned(64)));
        ptrdiff_t head = (ptrdiff_t)((-(uintptr_t)dst & 63) / sizeof(float));
        if (head > n) head = n;
        for (; j < head; j++) dst[j] = fl_class_grad_at(e, a, d, wc, b, t, c, j);
        for (; j + FL_LINE_FLOATS <= n; j += FL_LINE_FLOATS) {
            if (d == NULL) {
#pragma omp simd
                for (ptrdiff_t k = 0; k < FL_LINE_FLOATS; k++)
                    line[k] = fl_class_grad_at(e, a, NULL, 0, b, t, c, j + k);
            } else {
#pragma omp simd
                for (ptrdiff_t k = 0; k < FL_LINE_FLOATS; k++)
                    line[k] = fl_class_grad_at(e, a, d, wc, b, t, c, j + k);
            }
            fl_stream_float(dst + j, line, FL_LINE_FLOATS);
        }
    }
    if (d == NULL) {
#pragma omp simd
        for (ptrdiff_t k = j; k < n; k++) dst[k] = fl_class_grad_at(e, a, NULL, 0, b, t, c, k);
    } else {
#pragma omp simd
        for (ptrdiff_t k = j; k < n; k++) dst[k] = fl_class_grad_at(e, a, d, wc, b, t, c, k);
    }
}

/* A class-target row's gradient from its exps e: dst[:n] = e[:n] a, but
 * dst[t] = vt, streamed on dst's whole lines.  The target's line is patched
 * before it is streamed (a plain store into a streamed line would read it
 * back), in a register on AVX-512.  It leaves in pieces: fl_row_grad_begin
 * stores the plain head, each fl_row_grad_lines call streams a few lines
 * (while the next row's exps are taken, see fl_exp_first_f32) and
 * fl_row_grad_finish sends the rest.
 *
 * The lines go round the row from a starting line chosen so that they lie
 * about 2 KiB away, modulo 4 KiB, from the loads that run alongside (from
 * `loads` on, a line per line streamed).  A load whose address matches a
 * pending store's in its low 12 bits waits for that store; with x and the
 * gradient at the same offset in their pages, as two large arrays are, this
 * cost the pieces their gain (1.27 ms against 1.09 on (8192, 1000)). */
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
        float line[FL_LINE_FLOATS] __attribute__((aligned(64)));
        for (ptrdiff_t k = 0; k < FL_LINE_FLOATS; k++) line[k] = p->e[j + k] * p->a;
        if ((size_t)(t - j) < FL_LINE_FLOATS) line[t - j] = p->vt;
        fl_stream_float(p->dst + j, line, FL_LINE_FLOATS);
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

#endif
