"""Canonical views: any array as C-contiguous ``(outer, C, inner)`` with the class axis in the middle.

The axes other than the class axis may be visited in any order: a loss is a
sum over positions, and a per-position result is written back through the
same order.  So a layout picks the axis order in which the array's memory is
C-contiguous (C order, Fortran order, channels-last, any transpose of a
contiguous block) and needs no copy; only an array that is contiguous in no
order (a strided slice, negative strides) is copied, once.
"""
import functools
import math

import numpy as np

from . import _buffers


def _memory_order(arr):
    """Axis permutation under which ``arr`` is C-contiguous, or None."""
    order = tuple(sorted(range(arr.ndim), key=lambda ax: -abs(arr.strides[ax])))
    if arr.transpose(order).flags.c_contiguous:
        return order
    return None


class ClassLayout:
    """How arrays of ``shape`` map onto ``(outer, C, inner)`` for class axis ``axis``.

    ``order`` is the axis order in memory; arrays made by :meth:`empty` follow it,
    so the results of a call have the memory order of its input.
    """

    def __init__(self, shape, axis, order=None):
        self.shape = tuple(shape)
        self.axis = axis
        self.order = tuple(range(len(shape))) if order is None else tuple(order)
        class_pos = self.order.index(axis)
        ordered = [self.shape[ax] for ax in self.order]
        self.outer = math.prod(ordered[:class_pos])
        self.classes = self.shape[axis]
        self.inner = math.prod(ordered[class_pos + 1:])
        self.position_shape = self.shape[:axis] + self.shape[axis + 1:]
        self.position_order = tuple(ax - (ax > axis) for ax in self.order if ax != axis)
        # Inverse permutations, and the memory-order shapes, kept: small calls pay for every NumPy call.
        self._in_order = self.order == tuple(range(len(self.shape)))
        self._full_inverse = _inverse(self.order)
        self._position_inverse = _inverse(self.position_order)
        self._ordered_shape = tuple(self.shape[ax] for ax in self.order)
        self._ordered_positions = tuple(self.position_shape[ax] for ax in self.position_order)

    @classmethod
    def of(cls, arr, axis):
        """The layout that views ``arr`` without a copy when its memory allows it."""
        if arr.flags.c_contiguous:  # the common case: no permutation to find
            return _cached_layout(arr.shape, axis, None)
        return _cached_layout(arr.shape, axis, _memory_order(arr))

    # -- arrays of the full shape -------------------------------------------------
    def view(self, arr, dtype):
        """``arr`` as ``(outer, C, inner)`` without a copy, or None if its dtype or memory do not
        allow it: a kernel writes whole aligned vectors, so the items must be aligned too."""
        moved = arr.transpose(self.order)
        if arr.dtype != dtype or not moved.flags.c_contiguous or not arr.flags.aligned:
            return None
        return moved.reshape(self.outer, self.classes, self.inner)

    def canonical(self, arr, dtype):
        """``arr`` as ``(outer, C, inner)`` of ``dtype``, copying (once) only if needed."""
        if self._in_order and arr.dtype == dtype and arr.flags.c_contiguous:
            return arr.reshape(self.outer, self.classes, self.inner)  # the common case, cheaply
        moved = np.ascontiguousarray(arr.transpose(self.order), dtype=dtype)
        return moved.reshape(self.outer, self.classes, self.inner)

    def empty(self, dtype):
        """A new array of the full shape in this layout's memory order, and its
        ``(outer, C, inner)`` view."""
        arr3 = _buffers.empty((self.outer, self.classes, self.inner), dtype)
        return self.full(arr3), arr3

    def full(self, arr3):
        """The inverse of :meth:`view`: an ``(outer, C, inner)`` array seen in the full shape."""
        if self._in_order:
            return arr3.reshape(self.shape)
        return arr3.reshape(self._ordered_shape).transpose(self._full_inverse)

    # -- arrays of the position shape (the input's shape without the class axis) --
    def canonical_positions(self, arr, dtype):
        """``arr`` (of the position shape) as ``(outer, inner)``, copying only if needed."""
        if self._in_order and arr.dtype == dtype and arr.flags.c_contiguous:
            return arr.reshape(self.outer, self.inner)  # the common case, cheaply
        moved = np.ascontiguousarray(arr.transpose(self.position_order), dtype=dtype)
        return moved.reshape(self.outer, self.inner)

    def empty_positions(self, dtype):
        """A new array of the position shape, and its ``(outer, inner)`` view."""
        moved = np.empty(self._ordered_positions, dtype)
        return moved.transpose(self._position_inverse), moved.reshape(self.outer, self.inner)


@functools.lru_cache(maxsize=256)
def _cached_layout(shape, axis, order):
    """Layouts are immutable: a training loop's repeated shapes build theirs once."""
    return ClassLayout(shape, axis, order)


def _inverse(permutation):
    return tuple(sorted(range(len(permutation)), key=permutation.__getitem__))


def _same_view(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides)


class Output:
    """Where a kernel writes a full-shape result, and how it reaches the caller.

    The kernel writes straight into the caller's ``out`` when its dtype and
    memory allow and it overlaps no kernel input (``reads``; None for an absent
    one) other than as the very same view (the documented in-place case).  Otherwise it writes into ``scratch``
    (a private copy of an input that may be overwritten) or a new buffer, and
    :meth:`finish` copies or casts the result into place.
    """

    def __init__(self, layout, compute_dtype, result_dtype, out=None, reads=(), scratch=None):
        self.layout = layout
        self.result_dtype = result_dtype
        self.out = out
        if out is None:
            direct = None
            if compute_dtype == result_dtype and scratch is None:
                self.out, direct = layout.empty(result_dtype)
        else:
            direct = layout.view(out, compute_dtype)
            if direct is not None and any(
                a is not None and np.may_share_memory(direct, a) and not _same_view(direct, a) for a in reads
            ):
                direct = None
        self.direct = direct is not None
        self.buffer = direct if self.direct else (
            scratch if scratch is not None
            else _buffers.empty((layout.outer, layout.classes, layout.inner), compute_dtype))

    def finish(self):
        if self.direct:
            return self.out
        result = self.layout.full(self.buffer)
        if self.out is None:
            return result.astype(self.result_dtype, copy=False)
        np.copyto(self.out, result, casting="unsafe")
        return self.out


def private_copy(canonical, original):
    """``canonical`` if it is a copy made by the layout (free to overwrite), else None."""
    return None if np.may_share_memory(canonical, original) else canonical
