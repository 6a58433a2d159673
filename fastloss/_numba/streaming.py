"""Writing a result out of scratch, with streaming (non-temporal) stores when it is large.

A large result is written from scratch with `stream_into` (or `stream_affine`):
non-temporal stores skip reading each destination line into cache before
overwriting it, which halves the memory traffic of the write.  Small results
keep ordinary stores, so they stay in cache for the caller.  The stores
themselves and the fence come from `machine` (plain stores and no fence where
the machine has no streaming stores).

A locked instruction waits until every streamed line in flight has reached
memory, and Numba updates an array's reference count with one whenever it
takes a view or passes an array to a function that is not inlined.  So the
loops that stream take their rows and class rows as `borrowed` views, and the
helpers here are inlined into them.

Aliasing
--------
A loop reading an input and writing an output that is the same memory falls
back to scalar code (LLVM's runtime overlap check fails).  Wherever an output
may alias an input, the last pass reads scratch only, or the result is built
in scratch and copied (`copy_into`).
"""

from .cache import njit
from .machine import store_fence, stream_line, stream_line_at


@njit(cache=True, error_model="numpy")
def copy_into(src, out):
    """``out[:] = src``; the loop that lets an aliased result leave scratch."""
    for j in range(src.shape[0]):
        out[j] = src[j]


@njit(cache=True, error_model="numpy", inline="always")
def stream_into(src, out, stream):
    """``out[:] = src`` with non-temporal stores for out's whole lines if ``stream``.

    A block that streams ends with `stream_fence` (a fence per call would
    stall every row).
    """
    if not stream:
        copy_into(src, out)
        return
    dt = out.dtype.type
    stream_affine(src, dt(0), dt(1), dt(0), out, -1, dt(0))  # (x - 0) 1 - 0 is x, even -0 and NaN


@njit(cache=True, error_model="numpy", inline="always")
def stream_shifted(src, m, c, out):
    """``out[:] = (src - m) - c`` with non-temporal stores for out's whole lines
    (out may be src); the block ends with `stream_fence`."""
    stream_affine(src, m, out.dtype.type(1), c, out, -1, c)


@njit(cache=True, error_model="numpy", inline="always")
def stream_affine(src, m, a, c, out, t, v):
    """``out[:] = (src - m) a - c``, but ``out[t] = v`` if ``0 <= t``, with
    non-temporal stores for out's whole lines (out may be src); the block ends
    with `stream_fence`.  A streamed line gets v in a register: a plain store
    into the line, or a plain line amid streamed ones, waits for memory."""
    n = src.shape[0]
    per_line = 64 // out.itemsize
    head = min(n, (-out.ctypes.data) % 64 // out.itemsize)
    body = head + (n - head) // per_line * per_line
    for j in range(head):
        out[j] = v if j == t else (src[j] - m) * a - c
    # The line loops stay bare: a test per line costs time in a memory-bound pass.
    if head <= t < body:
        line = t - (t - head) % per_line
        _stream_lines(src, m, a, c, out, head, line)
        stream_line_at(out, line, src, line, m, a, c, t, v)
        _stream_lines(src, m, a, c, out, line + per_line, body)
    else:
        _stream_lines(src, m, a, c, out, head, body)
    for k in range(body, n):
        out[k] = v if k == t else (src[k] - m) * a - c


@njit(cache=True, error_model="numpy", inline="always")
def _stream_lines(src, m, a, c, out, lo, hi):
    for j in range(lo, hi, 64 // out.itemsize):
        stream_line(out, j, src, j, m, a, c)


@njit(cache=True, error_model="numpy")
def stream_fence(stream):
    """Make a block's streaming stores visible before the threads join."""
    if stream:
        store_fence()
