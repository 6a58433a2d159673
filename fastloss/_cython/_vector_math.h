/* Portable vector math of the kernels: what every build, on any CPU, compiles.
 *
 * - glibc's libmvec for exp/log/log1p: glibc declares the SIMD variants of
 *   <math.h> functions only under -ffast-math, which we avoid because it
 *   breaks NaN/inf propagation.  The libmvec variants themselves keep IEEE
 *   special values (exp(-inf) = 0, NaN in -> NaN out), so declaring them here
 *   is safe, and gcc's loop vectoriser then calls them.  libmvec comes in
 *   through libm (its linker script pulls libmvec in as needed), which
 *   setup.py links wherever it exists.
 * - The inline float32 exp of the softmax family and of BCE (fl_expf_neg, of
 *   an argument <= 0; fl_expf_normal, where the result is a normal float):
 *   plain C that gcc vectorises at the build's width.
 * - The row reductions and range exps written on them, and the gathers.
 *
 * Machine-specific code (intrinsics) is in _machine.h, which includes this.
 */
#ifndef FASTLOSS_VECTOR_MATH_H
#define FASTLOSS_VECTOR_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_constants.h"

/* A variable aligned to a 64-byte line, in each compiler's spelling. */
#if defined(_MSC_VER) && !defined(__clang__)
#define FL_ALIGN64 __declspec(align(64))
#else
#define FL_ALIGN64 __attribute__((aligned(64)))
#endif

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

/* exp(x) for x <= 0 or NaN, inline so that a loop calling it vectorises with
 * no call at all: libmvec's expf handles the whole range and does more work.
 * The steps and constants are those of the Numba backend's vexp_neg
 * (_vmath.py): Cephes expf's reduction, n = round(x / ln2) by the
 * 1.5 * 2^23 rounding trick and r = x - n ln2 with ln2 in two parts, then
 * exp(r) = 1 + r (1 + r P(r)) with a degree-4 P (within 1.03 ulp).  The
 * polynomial is evaluated times 2^-64 (its coefficients scaled exactly), so
 * one multiply by 2^(n + 64), a normal number for x >= FL_EXP_FLOAT32_MIN,
 * gives the result, a subnormal one rounded once; below FL_EXP_FLOAT32_MIN
 * exp rounds to 0. */
#define FL_EXP_MAGIC 12582912.0f

/* a * b + c rounded once where the build has a fused multiply-add
 * instruction (C99's FP_FAST_FMAF says fmaf is fast), which the polynomials
 * are written for; elsewhere (baseline x86-64, the portable build) a multiply
 * and an add: a software fmaf is exact but many times slower and keeps the
 * loop scalar, and the separate rounding costs at most about an ulp, as in
 * Cephes' own unfused code. */
#ifdef FP_FAST_FMAF
#define FL_MULADD(a, b, c) fmaf(a, b, c)
#else
#define FL_MULADD(a, b, c) ((a) * (b) + (c))
#endif

static inline float fl_exp_reduce(float x, float* k)
{
    float n;
    *k = FL_MULADD(x, 1.44269504088896341f, FL_EXP_MAGIC);
    n = *k - FL_EXP_MAGIC;
    return FL_MULADD(n, 2.12194440e-4f, FL_MULADD(n, -0.693359375f, x));
}

/* exp(r) times `scale`, a power of two (so the scaling is exact). */
static inline float fl_exp_poly(float r, float scale)
{
    float p = FL_MULADD(1.3879673788e-3f * scale, r, 8.3687296137e-3f * scale);
    p = FL_MULADD(p, r, 4.1667226702e-2f * scale);
    p = FL_MULADD(p, r, 1.6666521132e-1f * scale);
    p = FL_MULADD(p, r, 4.9999997020e-1f * scale);
    return FL_MULADD(r, FL_MULADD(r, p, scale), scale);
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
    x = x < FL_EXP_FLOAT32_MIN ? FL_EXP_FLOAT32_MIN : x;  /* NaN falls through */
    r = fl_exp_reduce(x, &k);
    bits = fl_exp_bits(k, 127u + 64u);
    memcpy(&scale, &bits, sizeof scale);
    return fl_exp_poly(r, 0x1p-64f) * scale;
}

/* fl_expf_neg(x) for FL_NORMAL_EXP_MIN <= x <= 0, where exp(x) is a normal
 * float: n is added to the exponent bits of exp(r), which saves the clamp
 * and the multiply, with the same result.  It serves up to x = 88 too
 * (fl_exp_first_f32 takes it up to FL_FIRST_SHIFT_ABOVE). */
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
 * take it: no NaN (the sum would be NaN) and min - max >= FL_NORMAL_EXP_MIN
 * (false for an infinity too).  x - max rounds no lower than min - max. */
static inline int fl_normal_exps(float mx, float mn, float sum)
{
    return sum == sum && mn - mx >= FL_NORMAL_EXP_MIN;
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

/* sum(exp(x[g:end] - m)), the exps also stored in e if `store`, and the
 * running max, min and sum of track[g:end] (the next row, or x itself).
 * `store` is a constant at each call site, so the store is compiled in or
 * out: under a run-time test gcc would make it a masked vector store, which
 * some CPUs (AMD's) run far slower than a plain one. */
static inline float fl_exp_sum_range(const float* x, float m, float* e, int store, ptrdiff_t g,
                                     ptrdiff_t end, fl_exp_fn exp_fn, const float* track,
                                     float* max, float* min, float* sum)
{
    float s = 0, mx = *max, mn = *min, sx = *sum;
#pragma omp simd reduction(+:s, sx) reduction(max:mx) reduction(min:mn)
    for (ptrdiff_t j = g; j < end; j++) {
        float v = exp_fn(x[j] - m);
        if (store) e[j] = v;
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
