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

#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0 or NaN, inline so that a loop calling it vectorises with
 * no call at all: libmvec's expf handles the whole range and costs about a
 * third more.  The steps and constants are those of the Numba backend's
 * vexp_neg (Cephes expf, within one ulp): n = round(x / ln2) by the
 * 1.5 * 2^23 rounding trick, r = x - n ln2 with ln2 in two parts, and the
 * scale 2^n applied as 2^(n + 64) * 2^-64 so that results down to the
 * subnormals round once (x is clamped to -110, where exp rounds to 0). */
static inline float fl_expf_neg(float x)
{
    const float magic = 12582912.0f;
    float k, n, r, p, y, scale, unscale;
    uint32_t bits;
    x = x < -110.0f ? -110.0f : x;  /* NaN falls through */
    k = fmaf(x, 1.44269504088896341f, magic);
    n = k - magic;
    r = fmaf(n, 2.12194440e-4f, fmaf(n, -0.693359375f, x));
    p = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    y = fmaf(p, r * r, r) + 1.0f;
    memcpy(&bits, &k, sizeof bits);
    bits = (bits + (127u + 64u - 0x4b400000u)) << 23;
    memcpy(&scale, &bits, sizeof scale);
    bits = (127u - 64u) << 23;
    memcpy(&unscale, &bits, sizeof unscale);
    return y * scale * unscale;
}

#endif
