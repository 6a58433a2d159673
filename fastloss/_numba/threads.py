"""Thread count of the Numba kernels.

Numba keeps the count per calling thread, so the dispatcher sets it before
every kernel call (a no-op when this thread last set the same count); a
request above Numba's pool size (``NUMBA_NUM_THREADS``) is capped to it
rather than raising.
"""
import threading

import numba

# The count this module last set in each thread: asking Numba again costs a call.
_last_set = threading.local()


def set_num_threads(n):
    """Use ``n`` threads (at least 1) for the calling thread's next kernels."""
    n = int(n)
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    if getattr(_last_set, "n", None) != n:
        numba.set_num_threads(n)
        _last_set.n = n


def get_num_threads():
    """Threads the calling thread's kernels use."""
    return numba.get_num_threads()
