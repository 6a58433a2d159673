"""Views of array data that the loops take: borrowed rows, row views of arrays, class rows of a tile.

A view made by slicing holds a reference to its array, and Numba updates that
reference count with a locked instruction, which waits until every streamed
line in flight has reached memory (see `streaming`).  The loops that stream
therefore take their rows as `borrowed` views, which hold none.
"""
from numba import carray, types
from numba.extending import intrinsic

from .cache import njit


@intrinsic
def _address_of(typingctx, arr, i):
    """Pointer to item ``i`` of a C-contiguous array's data."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.gep(data, [args[1]])

    if not isinstance(arr, types.Array) or arr.layout != "C":
        return None
    return types.CPointer(arr.dtype)(arr, i), codegen


@njit(cache=True, error_model="numpy", inline="always")
def borrowed(a, start, n):
    """Items ``start:start + n`` of a C-contiguous array's data, as a view that
    holds no reference: taking it in a loop costs no locked reference-count
    update, which would wait for every streamed line in flight."""
    return carray(_address_of(a, start), (n,))


@njit(cache=True, error_model="numpy")
def as_rows(a, n_rows, C):
    """``(n_rows, C)`` view of an ``(n_rows, C, 1)`` array; ``(0, 0)`` if it is absent."""
    if a.size == 0:
        return a.reshape((0, 0))
    return a.reshape((n_rows, C))


@njit(cache=True, error_model="numpy", inline="always")
def four_class_rows(x, o, c, i0, n):
    """Class rows ``c:c+4`` of tile ``i0:i0+n`` of ``x[o]``: the sweeps below take four at once."""
    return x[o, c, i0:i0 + n], x[o, c + 1, i0:i0 + n], x[o, c + 2, i0:i0 + n], x[o, c + 3, i0:i0 + n]


@njit(cache=True, error_model="numpy", inline="always")
def four_packed_rows(e, c, n):
    """Rows ``c:c+4`` of flat packed ``(C, n)`` scratch."""
    return e[c * n:(c + 1) * n], e[(c + 1) * n:(c + 2) * n], e[(c + 2) * n:(c + 3) * n], e[(c + 3) * n:(c + 4) * n]
