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
