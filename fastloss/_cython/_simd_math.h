/* Let gcc's loop vectoriser call glibc's libmvec for exp/log/log1p.
 *
 * glibc only declares the SIMD variants of <math.h> functions under
 * -ffast-math, which we avoid because it breaks NaN/inf propagation.  The
 * libmvec variants themselves keep IEEE special values (exp(-inf) = 0,
 * NaN in -> NaN out), so declaring them here is safe.  libmvec comes in
 * through libm (its linker script pulls libmvec in as needed), hence the
 * "libraries = m" line in _rows.pxd.  The float32 exp of the softmax family
 * and of BCE (always of an argument <= 0) is inline instead: fl_expf_neg.
 */
#ifndef FASTLOSS_SIMD_MATH_H
#define FASTLOSS_SIMD_MATH_H

#include <math.h>

#include "_stream.h"

#if defined(__x86_64__) && defined(__GLIBC__) && defined(_OPENMP) \
    && !defined(__FAST_MATH__)
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
double log(double);
/* log1p joined libmvec in glibc 2.35. */
#if __GLIBC_PREREQ(2, 35)
#pragma omp declare simd notinbranch
float log1pf(float);
#pragma omp declare simd notinbranch
double log1p(double);
#endif
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0 or NaN, inline so that a loop calling it vectorises with
 * no call at all: libmvec's expf handles the whole range and costs about a
 * third more.  The steps and constants are those of the Numba backend's
 * vexp_neg (_vmath.py): Cephes expf's reduction, n = round(x / ln2) by the
 * 1.5 * 2^23 rounding trick and r = x - n ln2 with ln2 in two parts, then
 * exp(r) = 1 + r (1 + r P(r)) with a degree-4 P (within 1.03 ulp).  The
 * polynomial is evaluated times 2^-64 (its coefficients scaled exactly), so
 * one multiply by 2^(n + 64), a normal number for x >= -110, gives the
 * result, a subnormal one rounded once; below -110 exp rounds to 0. */
#define FL_EXP_MAGIC 12582912.0f

static inline float fl_exp_reduce(float x, float* k)
{
    float n;
    *k = fmaf(x, 1.44269504088896341f, FL_EXP_MAGIC);
    n = *k - FL_EXP_MAGIC;
    return fmaf(n, 2.12194440e-4f, fmaf(n, -0.693359375f, x));
}

/* exp(r) times `scale`, a power of two (so the scaling is exact). */
static inline float fl_exp_poly(float r, float scale)
{
    float p = fmaf(1.3879673788e-3f * scale, r, 8.3687296137e-3f * scale);
    p = fmaf(p, r, 4.1667226702e-2f * scale);
    p = fmaf(p, r, 1.6666521132e-1f * scale);
    p = fmaf(p, r, 4.9999997020e-1f * scale);
    return fmaf(r, fmaf(r, p, scale), scale);
}

/* n + offset (n read from k as above) moved into a float's exponent field. */
static inline uint32_t fl_exp_bits(float k, uint32_t offset)
{
    uint32_t bits;
    memcpy(&bits, &k, sizeof bits);
    return (bits - 0x4b400000u + offset) << 23;
}

static inline float fl_expf_neg(float x)
{
    float k, r, scale;
    uint32_t bits;
    x = x < -110.0f ? -110.0f : x;  /* NaN falls through */
    r = fl_exp_reduce(x, &k);
    bits = fl_exp_bits(k, 127u + 64u);
    memcpy(&scale, &bits, sizeof scale);
    return fl_exp_poly(r, 0x1p-64f) * scale;
}

/* fl_expf_neg(x) for FL_EXP_NORMAL_MIN <= x <= 0, where exp(x) is a normal
 * float: n is added to the exponent bits of exp(r), which saves the clamp
 * and the multiply (a tenth of the work), with the same result.  It serves
 * up to x = 88 too (fl_exp_first_f32 takes it up to FL_SHIFT_ABOVE). */
#define FL_EXP_NORMAL_MIN -86.5f

static inline float fl_expf_normal(float x)
{
    float k, y;
    uint32_t bits;
    float r = fl_exp_reduce(x, &k);
    y = fl_exp_poly(r, 1.0f);
    memcpy(&bits, &y, sizeof bits);
    bits += fl_exp_bits(k, 0);
    memcpy(&y, &bits, sizeof y);
    return y;
}

/* Whether every exp(x - max) of a row is normal, so fl_expf_normal may
 * take it: no NaN (the sum would be NaN) and min - max >= FL_EXP_NORMAL_MIN
 * (false for an infinity too).  x - max rounds no lower than min - max. */
static inline int fl_normal_exps(float mx, float mn, float sum)
{
    return sum == sum && mn - mx >= FL_EXP_NORMAL_MIN;
}

/* max(x[:n]), n >= 1, in the lanes of an `omp simd` reduction, and in
 * *normal whether the row's exps may use fl_expf_normal.  A NaN may be
 * dropped from the max: it reaches every result through the exp-sum. */
static inline float fl_row_max_f32(const float* x, ptrdiff_t n, int* normal)
{
    float mx = x[0], mn = x[0], s = 0;
#pragma omp simd reduction(max:mx) reduction(min:mn) reduction(+:s)
    for (ptrdiff_t j = 0; j < n; j++) {
        mx = x[j] > mx ? x[j] : mx;
        mn = x[j] < mn ? x[j] : mn;
        s += x[j];
    }
    *normal = fl_normal_exps(mx, mn, s);
    return mx;
}

/* The loops below take the exp as a constant function pointer, so each call
 * site inlines one exp (a per-value select between the two is not unswitched
 * by gcc: it would compute both). */
typedef float (*fl_exp_fn)(float);

/* e[g:end] = exp(x[g:end] - m); returns their float32 sum. */
static inline float fl_exp_store_sum(const float* x, float m, float* e, ptrdiff_t g,
                                     ptrdiff_t end, fl_exp_fn exp_fn)
{
    float s = 0;
#pragma omp simd reduction(+:s)
    for (ptrdiff_t j = g; j < end; j++) {
        float v = exp_fn(x[j] - m);
        e[j] = v;
        s += v;
    }
    return s;
}

/* sum(exp(x[g:end] - m)), the exps also stored in e unless it is NULL, and the
 * running max, min and sum of track[g:end] (the next row, or x itself). */
static inline float fl_exp_sum_range(const float* x, float m, float* e, ptrdiff_t g,
                                     ptrdiff_t end, fl_exp_fn exp_fn, const float* track,
                                     float* max, float* min, float* sum)
{
    float s = 0, mx = *max, mn = *min, sx = *sum;
#pragma omp simd reduction(+:s, sx) reduction(max:mx) reduction(min:mn)
    for (ptrdiff_t j = g; j < end; j++) {
        float v = exp_fn(x[j] - m);
        if (e != NULL) e[j] = v;
        s += v;
        mx = track[j] > mx ? track[j] : mx;
        mn = track[j] < mn ? track[j] : mn;
        sx += track[j];
    }
    *max = mx;
    *min = mn;
    *sum = sx;
    return s;
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* exp(x) for 16 values whose exps are all normal floats (x in
 * [FL_EXP_NORMAL_MIN, 88]), in about three quarters of fl_expf_normal's
 * work: n = round(x 32 / ln2), exp(x) = 2^(n / 32) exp(r) with |r| <= ln2 / 64,
 * 2^((n mod 32) / 32) read from a 32-entry table held in two registers
 * (vpermt2ps), exp(r) by its degree-3 Taylor polynomial (error below 2^-30),
 * and floor(n / 32) added to the exponent bits.  Within 1.01 ulp on 20M
 * points of [-86.5, 30] (fl_expf_normal: 0.92); rows take it, a tenth faster
 * (cross-entropy on (8192, 1000) 1.63 -> 1.52 ms, both builds in one process). */
static const float fl_exp2_32nds[32] __attribute__((aligned(64))) = {
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

/* fl_exp_store_sum(x, m, e, g, end, fl_expf_normal) with fl_exp16_normal; the
 * last partial vector masked. */
static inline float fl_exp_store_sum_normal(const float* x, float m, float* e, ptrdiff_t g,
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
 * computed (rather than in one burst after them: cross-entropy on (8192,
 * 1000) 1.19 -> 1.09 ms, both builds in one process, memory not the bound). */
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

/* fl_exp_sum_range(x, m, NULL, g, end, fl_expf_normal, next, max, min, sum) by fl_exp16_normal. */
static inline float fl_exp_sum_range_normal(const float* x, float m, ptrdiff_t g, ptrdiff_t end,
                                            const float* next, float* max, float* min,
                                            float* sum)
{
    return fl_exp_track16(x, m, NULL, g, end, next, max, min, sum, NULL);
}

/* fl_exp_store_sum_normal(x, c, e, g, end) for a shift c not known to keep
 * the exps normal: also the max, min and sum of x[g:end] (as fl_exp_sum_range
 * takes them of its next row), which say whether it did. */
static inline float fl_exp_store_sum_range(const float* x, float c, float* e, ptrdiff_t g,
                                           ptrdiff_t end, float* max, float* min, float* sum,
                                           fl_row_grad* pending)
{
    return fl_exp_track16(x, c, e, g, end, x, max, min, sum, pending);
}
#else
static inline float fl_exp_store_sum_normal(const float* x, float m, float* e, ptrdiff_t g,
                                            ptrdiff_t end)
{
    return fl_exp_store_sum(x, m, e, g, end, fl_expf_normal);
}

static inline float fl_exp_sum_range_normal(const float* x, float m, ptrdiff_t g, ptrdiff_t end,
                                            const float* next, float* max, float* min,
                                            float* sum)
{
    return fl_exp_sum_range(x, m, NULL, g, end, fl_expf_normal, next, max, min, sum);
}

/* The pending row is left whole to its fl_row_grad_finish. */
static inline float fl_exp_store_sum_range(const float* x, float c, float* e, ptrdiff_t g,
                                           ptrdiff_t end, float* max, float* min, float* sum,
                                           fl_row_grad* pending)
{
    (void)pending;
    return fl_exp_sum_range(x, c, e, g, end, fl_expf_normal, x, max, min, sum);
}
#endif

/* e = exp(x - m) for a row with m = max(x) (e may be x); returns sum(e);
 * normal as set by fl_row_max_f32.
 *
 * The float32 sum runs in the vector lanes of an `omp simd` reduction, kept
 * in registers: Cython's explicit lane arrays stay on the stack, every chunk
 * then paying a store and a reload.  So the order of the additions is set by
 * the build's vector width (and the row length), not by the thread count.
 * Groups of FL_ROW_GROUP terms are added in float64. */
#define FL_ROW_GROUP 2048

static inline double fl_exp_shift_f32(const float* x, float m, float* e, ptrdiff_t n,
                                      int normal)
{
    double total = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_GROUP ? n : g + FL_ROW_GROUP;
        total += normal ? fl_exp_store_sum_normal(x, m, e, g, end)
                        : fl_exp_store_sum(x, m, e, g, end, fl_expf_neg);
    }
    return total;
}

/* e = exp(x - x[0]) over a row of n >= 1 values (e not x), returning sum(e) as
 * fl_exp_shift_f32 does, in one pass: the first value is the shift, and *ok
 * says whether it served, that is no value is NaN, none lies more than
 * FL_SHIFT_ABOVE above x[0] (the sum, and with it the gradient's scale, stays
 * within e^FL_SHIFT_ABOVE of the max-shifted one) and every exp is normal.
 * Otherwise the caller shifts by the max in two passes.  A pending row's
 * gradient (or NULL) leaves in part meanwhile (see fl_exp_track16); the
 * caller then calls fl_row_grad_finish on it. */
#define FL_SHIFT_ABOVE 30.0f

static inline double fl_exp_first_f32(const float* x, float* e, ptrdiff_t n, int* ok,
                                      fl_row_grad* pending)
{
    double total = 0;
    float c = x[0], mx = x[0], mn = x[0], sx = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_GROUP ? n : g + FL_ROW_GROUP;
        total += fl_exp_store_sum_range(x, c, e, g, end, &mx, &mn, &sx, pending);
    }
    *ok = sx == sx && mx - c <= FL_SHIFT_ABOVE && mn - c >= FL_EXP_NORMAL_MIN;
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
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_GROUP ? n : g + FL_ROW_GROUP;
        total += normal ? fl_exp_sum_range_normal(x, m, g, end, next, &mx, &mn, &sx)
                        : fl_exp_sum_range(x, m, NULL, g, end, fl_expf_neg, next, &mx, &mn, &sx);
    }
    *next_max = mx;
    *next_normal = fl_normal_exps(mx, mn, sx);
    return total;
}

/* fl_tile_exp_first_f32's work on `rows` (1 to FL_TILE_ROWS) class rows,
 * at once on AVX-512: four memory streams in flight read a tile from memory
 * about a fifth faster than one (cross-entropy on (16, 21, 256, 256)). */
#define FL_TILE_ROWS 4

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
    float hi = *dmax, lo = *dmin, sd = 0;
    for (int r = 0; r < rows; r++) {
        const float* xr = x + r * stride;
        float* er = e != NULL ? e + r * T : NULL;
        int set = first && r == 0;
#pragma omp simd reduction(max:hi) reduction(min:lo) reduction(+:sd)
        for (ptrdiff_t k = 0; k < T; k++) {
            float d = xr[k] - x0[k];
            float v = fl_expf_normal(d);
            if (er != NULL) er[k] = v;
            f[k] = set ? v : f[k] + v;
            hi = d > hi ? d : hi;
            lo = d < lo ? d : lo;
            sd += d;
        }
    }
    *dmax = hi;
    *dmin = lo;
    *dsum += sd;
#endif
}

/* A tile's exp-sum shifted by its first class, in one pass over x: for
 * positions k < T, s[k] = sum_c exp(x[c stride + k] - x[k]), the exps packed
 * in e (C x T) unless it is NULL, in float32 over groups of `group` classes
 * (f holds a group's sums) added to the float64 s, as tile_exp_sum does.
 * Returns whether the first class served as the shift, on the terms of
 * fl_exp_first_f32 (no NaN, no x more than FL_SHIFT_ABOVE above its
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
    return dsum == dsum && dmax <= FL_SHIFT_ABOVE && dmin >= FL_EXP_NORMAL_MIN;
}

/* out[k] = src[max(t[k], 0) * stride + k * step] for k < n: a tile's logits
 * (step 1) or weights (step 0) at its targets, class 0 where t[k] is -1
 * (ignored; the caller selects that value away).  `omp simd` lets gcc use
 * vector gathers, which it would not risk on aliasing grounds. */
#define FL_GATHER(name, type)                                                         \
static inline void name(const type* src, const int32_t* t, ptrdiff_t stride,         \
                        ptrdiff_t step, ptrdiff_t n, double* out)                    \
{                                                                                     \
    _Pragma("omp simd")                                                               \
    for (ptrdiff_t k = 0; k < n; k++)                                                 \
        out[k] = src[(t[k] > 0 ? t[k] : 0) * stride + k * step];                      \
}
FL_GATHER(fl_gather_f32, float)
FL_GATHER(fl_gather_f64, double)

#endif
