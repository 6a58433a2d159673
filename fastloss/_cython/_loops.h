/* The float32 loops of rows and tiles written in C (for `omp simd`
 * reductions held in registers), on the interface of _machine.h: they hold
 * no instruction-set-specific code themselves. */
#ifndef FASTLOSS_LOOPS_H
#define FASTLOSS_LOOPS_H

#include "_machine.h"

/* e = exp(x - m) for a row with m = max(x) (e may be x); returns sum(e);
 * normal as set by fl_row_max_f32.
 *
 * The float32 sum runs in the vector lanes of an `omp simd` reduction, kept
 * in registers: Cython's explicit lane arrays stay on the stack, every chunk
 * then paying a store and a reload.  So the order of the additions is set by
 * the build's vector width (and the row length), not by the thread count.
 * Groups of FL_ROW_EXP_GROUP terms are added in float64. */
static inline double fl_exp_shift_f32(const float* x, float m, float* e, ptrdiff_t n,
                                      int normal)
{
    double total = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_EXP_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_EXP_GROUP ? n : g + FL_ROW_EXP_GROUP;
        total += normal ? fl_exp_store_sum_normal(x, m, e, g, end)
                        : fl_exp_store_sum(x, m, e, g, end, fl_expf_neg);
    }
    return total;
}

/* e = exp(x - x[0]) over a row of n >= 1 values (e not x), returning sum(e) as
 * fl_exp_shift_f32 does, in one pass: the first value is the shift, and *ok
 * says whether it served, that is no value is NaN, none lies more than
 * FL_FIRST_SHIFT_ABOVE above x[0] (the sum, and with it the gradient's scale,
 * stays within e^FL_FIRST_SHIFT_ABOVE of the max-shifted one) and every exp
 * is normal.  Otherwise the caller shifts by the max in two passes.  A
 * pending row's gradient (or NULL) may leave in part meanwhile (see
 * fl_exp_store_sum_range); the caller then calls fl_row_grad_finish on it. */
static inline double fl_exp_first_f32(const float* x, float* e, ptrdiff_t n, int* ok,
                                      fl_row_grad* pending)
{
    double total = 0;
    float c = x[0], mx = x[0], mn = x[0], sx = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_EXP_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_EXP_GROUP ? n : g + FL_ROW_EXP_GROUP;
        total += fl_exp_store_sum_range(x, c, e, g, end, &mx, &mn, &sx, pending);
    }
    *ok = sx == sx && mx - c <= FL_FIRST_SHIFT_ABOVE && mn - c >= FL_NORMAL_EXP_MIN;
    return total;
}

/* sum(exp(x - m)) over a row, as fl_exp_shift_f32 without storing the exps,
 * and for the next row what fl_row_max_f32 gives: the next row's max pass
 * runs in the same loop, its loads overlapping this row's exps. */
static inline double fl_exp_sum_next_max_f32(const float* x, float m, ptrdiff_t n, int normal,
                                             const float* next, float* next_max,
                                             int* next_normal)
{
    double total = 0;
    float mx = next[0], mn = next[0], sx = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_EXP_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_EXP_GROUP ? n : g + FL_ROW_EXP_GROUP;
        total += normal ? fl_exp_sum_range_normal(x, m, g, end, next, &mx, &mn, &sx)
                        : fl_exp_sum_range(x, m, NULL, 0, g, end, fl_expf_neg, next, &mx, &mn, &sx);
    }
    *next_max = mx;
    *next_normal = fl_normal_exps(mx, mn, sx);
    return total;
}

/* Class rows per fl_tile_exp_first_rows call: on AVX-512, as many memory
 * streams in flight. */
#define FL_TILE_ROWS 4

/* A tile's exp-sum shifted by its first class, in one pass over x: for
 * positions k < T, s[k] = sum_c exp(x[c stride + k] - x[k]), the exps packed
 * in e (C x T) unless it is NULL, in float32 over groups of `group` classes
 * (f holds a group's sums) added to the float64 s, as tile_exp_sum does.
 * Returns whether the first class served as the shift, on the terms of
 * fl_exp_first_f32 (no NaN, no x more than FL_FIRST_SHIFT_ABOVE above its
 * position's first one, every exp normal), tracked over the whole tile in
 * registers; otherwise the caller redoes the tile shifted by its max.
 * group is a multiple of FL_TILE_ROWS. */
static inline int fl_tile_exp_first_f32(const float* x, ptrdiff_t stride, ptrdiff_t C,
                                        ptrdiff_t T, ptrdiff_t group, float* e, float* f,
                                        double* s)
{
    float dmax = 0, dmin = 0, dsum = 0;
    for (ptrdiff_t g = 0; g < C; g += group) {
        ptrdiff_t end = C - g < group ? C : g + group;
        for (ptrdiff_t c = g; c < end; c += FL_TILE_ROWS)
            fl_tile_exp_first_rows(x + c * stride, stride,
                                   end - c < FL_TILE_ROWS ? (int)(end - c) : FL_TILE_ROWS, x,
                                   e != NULL ? e + c * T : NULL, T, f, c == g, &dmax, &dmin,
                                   &dsum);
        if (g == 0) {
            for (ptrdiff_t k = 0; k < T; k++) s[k] = f[k];
        } else {
            for (ptrdiff_t k = 0; k < T; k++) s[k] += f[k];
        }
    }
    return dsum == dsum && dmax <= FL_FIRST_SHIFT_ABOVE && dmin >= FL_NORMAL_EXP_MIN;
}

/* The gradient of class c at n positions of a class-target tile:
 * dst[k] = e[k] a[k] - d[k] wc (no such term if d is NULL), less b[k] where
 * t[k] == c (t is -1 at an ignored position), streamed on dst's whole lines
 * if stream (and FL_STREAMS).  One pass for the scaling, the target's term
 * and the copy out of the tile's scratch.  It is class_grad of _formulas.pxd
 * written in C, for the `omp simd` line loops.  Every value comes from the
 * one expression in fl_class_grad_at, vectorised or not, so it rounds the
 * same (gcc fuses multiply-adds alike in both) wherever dst's lines start. */
static inline float fl_class_grad_at(const float* e, const float* a, const float* d, float wc,
                                     const float* b, const int32_t* t, int32_t c, ptrdiff_t k) {
    float less = t[k] == c ? b[k] : 0.0f;
    return d != NULL ? e[k] * a[k] - d[k] * wc - less : e[k] * a[k] - less;
}

static inline void fl_class_grad_float(float* dst, const float* e, const float* a,
                                       const float* d, float wc, const float* b,
                                       const int32_t* t, int32_t c, ptrdiff_t n, int stream) {
    ptrdiff_t j = 0;
    if (FL_STREAMS && stream) {
        FL_ALIGN64 float line[FL_LINE_FLOATS];
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
            fl_store_line(dst + j, line);
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

#endif
