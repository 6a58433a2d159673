"""Recycled memory for large results.

A new array of tens of MiB is cheap to ask for and dear to first write: every
page faults and is zeroed by the kernel, which on a 2-core machine takes about
as long as the cross-entropy kernel that fills it.  glibc's malloc keeps freed
blocks of up to 32 MiB for reuse; larger ones go back to the system, so a loop
that computes the same loss every step would fault its gradient in anew each
time.  Results of at least ``RECYCLE_BYTES`` are therefore placed in buffers
kept here: when the last array (or view, or buffer export) of one is gone, the
buffer waits, idle, for the next result of the same size.  At most
``FASTLOSS_RECYCLE_MIB`` MiB (environment variable, default 512; 0 turns the
recycling off) stay idle, the least recently used going first.  A recycled
result is a new array like any other; its memory is only ever reused after
every reference to it has died.
"""
import math
import os
import threading
import weakref

import numpy as np

RECYCLE_BYTES = 32 << 20
idle_limit = int(os.environ.get("FASTLOSS_RECYCLE_MIB", "512")) << 20

_lock = threading.Lock()
_idle = []  # raw uint8 buffers, least recently returned first


class _Lease:
    """Lends a raw buffer's memory to one result; returns it when it dies.

    The arrays built on it keep it alive through their base, and so does any
    view or buffer export of them, so it dies with the last user of the memory.
    """

    __slots__ = ("__array_interface__", "__weakref__", "_raw")

    def __init__(self, raw, shape, dtype):
        self._raw = raw
        self.__array_interface__ = {"data": (raw.ctypes.data, False), "shape": shape,
                                    "typestr": dtype.str, "version": 3}


def _take(nbytes):
    with _lock:
        for k in range(len(_idle) - 1, -1, -1):
            if _idle[k].nbytes == nbytes:
                return _idle.pop(k)
    return np.empty(nbytes, np.uint8)


def _give_back(raw):
    with _lock:
        _idle.append(raw)
        total = sum(r.nbytes for r in _idle)
        while _idle and total > idle_limit:
            total -= _idle.pop(0).nbytes


def empty(shape, dtype):
    """``np.empty(shape, dtype)`` (C order), in recycled memory when it is large."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < RECYCLE_BYTES or idle_limit <= 0:
        return np.empty(shape, dtype)
    raw = _take(nbytes)
    lease = _Lease(raw, tuple(shape), dtype)
    weakref.finalize(lease, _give_back, raw).atexit = False
    return np.asarray(lease)


def idle_bytes():
    """Bytes of recycled buffers now waiting for a result."""
    with _lock:
        return sum(r.nbytes for r in _idle)
