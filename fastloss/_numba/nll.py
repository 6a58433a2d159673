"""Negative log-likelihood over log-probabilities.

Kernels
-------
ignored_targets(target, classes, ignore_index) -> int
    The number of class targets equal to ``ignore_index``, or -1 if a target lies
    outside ``[0, classes)`` without being ``ignore_index`` (the front layer then
    names it).
nll_loss(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l_i = -w[t] * logp[o, t, i]`` (0 where ``t == ignore_index``); the
    gradient is ``-g_i * w[t]`` at the target class and 0 elsewhere.  Every
    logp value of a block is read before its gradient is written, so
    ``grad_out`` may be ``logp``.
"""
import numpy as np
from numba import prange

from .blocking import block_range, row_blocking, sum_partials, tile_blocking
from .cache import njit


@njit(cache=True, error_model="numpy")
def ignored_targets(target, classes, ignore_index):
    """See the module docstring."""
    flat = target.reshape(target.size)
    ignored = 0
    bad = False
    for k in range(flat.shape[0]):  # branch-free: the loop vectorises
        ignored += flat[k] == ignore_index
        bad |= ((flat[k] < 0) | (flat[k] >= classes)) & (flat[k] != ignore_index)
    return -1 if bad else ignored


@njit(cache=True, error_model="numpy")
def _zero_tile(a, o, i0, n):
    """``a[o, :, i0:i0+n] = 0``."""
    if n == a.shape[2]:
        flat = a[o].reshape(a.shape[1] * n)
        for j in range(flat.shape[0]):
            flat[j] = 0
        return
    for c in range(a.shape[1]):
        ac = a[o, c, i0:i0 + n]
        for i in range(n):
            ac[i] = 0


@njit(cache=True, error_model="numpy")
def _nll_block(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out,
               o0, o1, i0, n):
    """Loss sum of positions ``[o0, o1) x [i0, i0+n)``, in position order."""
    has_w = weight.size != 0
    part = 0.0
    for o in range(o0, o1):
        for i in range(i0, i0 + n):
            t = target[o, i]
            l = 0.0
            if t != ignore_index:
                l = -(np.float64(weight[t]) if has_w else 1.0) * np.float64(logp[o, t, i])
            part += l
            if loss_out.size != 0:
                loss_out[o, i] = l
    if grad_out.size != 0:
        for o in range(o0, o1):
            _zero_tile(grad_out, o, i0, n)
            for i in range(i0, i0 + n):
                t = target[o, i]
                if t != ignore_index:
                    g = grad_scale * grad_output[o, i] if grad_output.size != 0 else grad_scale
                    grad_out[o, t, i] = -g * (np.float64(weight[t]) if has_w else 1.0)
    return part


@njit(parallel=True, cache=True, error_model="numpy")
def _nll_row_blocks(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out):
    """`nll_loss` on rows (``inner == 1``)."""
    outer, C, _ = logp.shape
    rows, nb = row_blocking(outer, C)
    partials = np.empty(nb)
    for b in prange(nb):
        o0, o1 = block_range(b, rows, outer)
        partials[b] = _nll_block(logp, target, weight, ignore_index, grad_scale, grad_output,
                                 loss_out, grad_out, o0, o1, 0, 1)
    return sum_partials(partials)


@njit(parallel=True, cache=True, error_model="numpy")
def _nll_tile_blocks(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out):
    """`nll_loss` on tiles (``inner > 1``)."""
    outer, C, inner = logp.shape
    T, tiles, nb = tile_blocking(outer, C, inner)
    partials = np.empty(nb)
    for b in prange(nb):
        o = b // tiles
        i0, i1 = block_range(b % tiles, T, inner)
        partials[b] = _nll_block(logp, target, weight, ignore_index, grad_scale, grad_output,
                                 loss_out, grad_out, o, o + 1, i0, i1 - i0)
    return sum_partials(partials)


def nll_loss(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out):
    """Sum of the per-position NLL; see the module docstring.

    Rows and tiles are kernels of their own, picked here: a call compiles only the path it takes.
    """
    outer, _, inner = logp.shape
    if outer * inner == 0:
        return 0.0
    kernel = _nll_row_blocks if inner == 1 else _nll_tile_blocks
    return kernel(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out)
