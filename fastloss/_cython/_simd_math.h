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
static inline float fl_expf_neg(float x)
{
    const float magic = 12582912.0f, down = 0x1p-64f;
    float k, n, r, p, scale;
    uint32_t bits;
    x = x < -110.0f ? -110.0f : x;  /* NaN falls through */
    k = fmaf(x, 1.44269504088896341f, magic);
    n = k - magic;
    r = fmaf(n, 2.12194440e-4f, fmaf(n, -0.693359375f, x));
    p = fmaf(1.3879673788e-3f * down, r, 8.3687296137e-3f * down);
    p = fmaf(p, r, 4.1667226702e-2f * down);
    p = fmaf(p, r, 1.6666521132e-1f * down);
    p = fmaf(p, r, 4.9999997020e-1f * down);
    memcpy(&bits, &k, sizeof bits);
    bits = (bits + (127u + 64u - 0x4b400000u)) << 23;
    memcpy(&scale, &bits, sizeof scale);
    return fmaf(r, fmaf(r, p, down), down) * scale;
}

/* e = exp(x - m) for a row with m = max(x) (e may be x); returns sum(e).
 *
 * The float32 sum runs in the vector lanes of an `omp simd` reduction, kept
 * in registers: Cython's explicit lane arrays stay on the stack, every chunk
 * then paying a store and a reload.  So the order of the additions is set by
 * the build's vector width (and the row length), not by the thread count.
 * Groups of FL_ROW_GROUP terms are added in float64. */
#define FL_ROW_GROUP 2048

static inline double fl_exp_shift_f32(const float* x, float m, float* e, ptrdiff_t n)
{
    double total = 0;
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_GROUP ? n : g + FL_ROW_GROUP;
        float s = 0;
#pragma omp simd reduction(+:s)
        for (ptrdiff_t j = g; j < end; j++) {
            float v = fl_expf_neg(x[j] - m);
            e[j] = v;
            s += v;
        }
        total += s;
    }
    return total;
}

/* sum(exp(x - m)) over a row, as fl_exp_shift_f32 without storing the exps,
 * and *next_max = max(next[:n]): the next row's max pass runs in the same
 * loop, its loads overlapping this row's exps.  A NaN may be dropped from
 * the max, as in row_max. */
static inline double fl_exp_sum_next_max_f32(const float* x, float m, ptrdiff_t n,
                                             const float* next, float* next_max)
{
    double total = 0;
    float mx = next[0];
    for (ptrdiff_t g = 0; g < n; g += FL_ROW_GROUP) {
        ptrdiff_t end = n - g < FL_ROW_GROUP ? n : g + FL_ROW_GROUP;
        float s = 0;
#pragma omp simd reduction(+:s) reduction(max:mx)
        for (ptrdiff_t j = g; j < end; j++) {
            s += fl_expf_neg(x[j] - m);
            mx = next[j] > mx ? next[j] : mx;
        }
        total += s;
    }
    *next_max = mx;
    return total;
}

#endif
