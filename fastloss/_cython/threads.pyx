"""OpenMP thread count of the Cython kernels, for the calling thread only.

omp_set_num_threads sets the calling thread's own copy of the OpenMP
nthreads ICV, so Python threads that pick different counts do not interfere.
"""
from openmp cimport omp_get_max_threads, omp_set_num_threads


def set_num_threads(int n):
    """Use ``n`` OpenMP threads in the kernels this thread calls next."""
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    omp_set_num_threads(n)


def get_num_threads():
    """Number of OpenMP threads the kernels called from this thread will use."""
    return omp_get_max_threads()



cdef extern from *:
    """
    /* gcc 12 names the x86-64 micro-architecture levels in __builtin_cpu_supports. */
    static int fastloss_cpu_level(void) {
    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
        __builtin_cpu_init();
        if (__builtin_cpu_supports("x86-64-v4")) return 4;
        if (__builtin_cpu_supports("x86-64-v3")) return 3;
    #endif
        return 1;
    }
    """
    int fastloss_cpu_level() nogil


def cpu_levels():
    """The kernel builds this CPU can run beyond the baseline, best first.

    ``x86_64_v4`` is x86-64-v4 (AVX-512), ``x86_64_v3`` is x86-64-v3 (AVX2, FMA).
    """
    level = fastloss_cpu_level()
    return [f"x86_64_v{v}" for v in (4, 3) if level >= v]
