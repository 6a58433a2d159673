/* Let gcc's loop vectoriser call glibc's libmvec for exp/log/log1p.
 *
 * glibc only declares the SIMD variants of <math.h> functions under
 * -ffast-math, which we avoid because it breaks NaN/inf propagation.  The
 * libmvec variants themselves keep IEEE special values (exp(-inf) = 0,
 * NaN in -> NaN out), so declaring them here is safe.  libmvec comes in
 * through libm (its linker script pulls libmvec in as needed), hence the
 * "libraries = m" line in _rows.pxd.
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

#endif
