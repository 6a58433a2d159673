"""Soft Dice loss of segmentation (MONAI's ``DiceLoss``), with optional gradient.

Kernels
-------
dice_class(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out) -> float
dice_prob(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out) -> float
    ``x`` is ``(outer, C, inner)`` with its ``samples`` samples along ``outer``
    (sample n is ``x[n * outer / samples:(n + 1) * outer / samples]``); the
    targets are class indices ``(outer, inner)`` (`dice_class`) or values
    ``(outer, C, inner)`` of x's dtype (`dice_prob`).  ``p = activation(x)``
    over the classes (``activation``: `formulas.DICE_IDENTITY`, `DICE_SOFTMAX`
    or `DICE_SIGMOID`); sample n and class c have the loss
    ``l_nc = w_c dice_value(I, P, T)`` of the sums over the sample's positions
    ``I = sum p t``, ``P = sum p``, ``T = sum t`` (t one-hot for class
    indices; ``w_c = 1`` without ``weight``).  The kernel returns ``sum l_nc``
    (float64, in (n, c) order), writes ``l_nc`` into ``loss_out`` (``(samples,
    C)``) when it is given and ``d sum_nc g_nc l_nc / dx`` into ``grad_out``,
    ``g_nc = grad_scale * grad_output[n, c]`` (``grad_scale`` without
    ``grad_output``, an ``(samples, C)`` array).

Two passes, each reading the logits once: pass 1 sums ``p t``, ``p`` and ``t``
of every block of positions (rows when ``inner == 1``, tiles when
``inner > 1``, each block within one sample, bounds fixed by the shape) in
float64; the blocks of a sample are added in block order, so results do not
depend on the thread count.  Pass 2 (only with ``grad_out``) recomputes p and
writes ``g dl/dx`` from the gradient coefficients of `dice_coefficients`.
A block reads all its x before it writes its gradient, so ``grad_out`` may be
``x``.
"""
import numpy as np
from numba import prange
from numba.extending import overload

from .._constants import STREAM_BYTES
from .blocking import BLOCK_GROUPS, block_range, row_blocking, tile_blocking
from .cache import njit
from .formulas import (DICE_SIGMOID, DICE_SOFTMAX, dice_coefficients, dice_probability_gradient, dice_sigmoid,
                       dice_sigmoid_gradient, dice_softmax_gradient, dice_value)
from .reductions import row_sum, row_weighted_sum, tile_max_fast
from .row_exp import row_exp_sum_first, scale_in_place
from .streaming import stream_fence, stream_into
from .tile_exp import tile_exp_fast, tile_exp_first
from .views import borrowed

# The rows of a block's sums: I = sum p t, P = sum p, T = sum t.
_SUMS = 3


# ---- the activation of a row or a tile -----------------------------------------

@njit(cache=True, error_model="numpy")
def _row_probabilities(xr, activation, p):
    """``p = activation(xr)`` over one row of C classes."""
    if activation == DICE_SOFTMAX:
        s, _ = row_exp_sum_first(xr, p)
        scale_in_place(p, p.dtype.type(1.0 / s))
    elif activation == DICE_SIGMOID:
        for j in range(xr.shape[0]):
            p[j] = dice_sigmoid(xr[j])
    else:
        for j in range(xr.shape[0]):
            p[j] = xr[j]


@njit(cache=True, error_model="numpy")
def _tile_probabilities(x, o, i0, n, activation, p, shift, exp_sum, exp_sum32):
    """``p[c * n:(c + 1) * n] = activation(x[o, :, i0:i0 + n])[c]``: packed class rows.
    Scratch of n items: ``shift``, ``exp_sum`` (float64), ``exp_sum32``."""
    C = x.shape[1]
    dt = x.dtype.type
    if activation == DICE_SOFTMAX:
        if not tile_exp_first(x, o, i0, n, p, exp_sum, exp_sum32, True):
            tile_max_fast(x, o, i0, n, shift)
            tile_exp_fast(x, o, i0, n, shift, p, exp_sum, exp_sum32, True)
        inverse = shift  # the shifts are spent
        for i in range(n):
            inverse[i] = dt(1.0 / exp_sum[i])
        for c in range(C):
            pc = p[c * n:(c + 1) * n]
            for i in range(n):
                pc[i] = pc[i] * inverse[i]
        return
    for c in range(C):
        xc = x[o, c, i0:i0 + n]
        pc = p[c * n:(c + 1) * n]
        if activation == DICE_SIGMOID:
            for i in range(n):
                pc[i] = dice_sigmoid(xc[i])
        else:
            for i in range(n):
                pc[i] = xc[i]


# ---- targets: one class row of a tile, one row of classes ----------------------
# Class indices (a 2-D target) become one-hot rows in scratch; probability
# targets (3-D) are read in place.  Overloads: each kind compiles its own.

def tile_targets(target, o, i0, n, targets32):
    """Class indices: the tile's targets as int32 into ``targets32`` (an int64 compare would
    halve the vector width of `class_tile_row`); nothing for probability targets."""
    raise NotImplementedError


@overload(tile_targets)
def _tile_targets(target, o, i0, n, targets32):
    if target.ndim == 3:
        return lambda target, o, i0, n, targets32: None

    def impl(target, o, i0, n, targets32):
        tg = target[o, i0:i0 + n]
        for i in range(n):
            targets32[i] = np.int32(tg[i])

    return impl


def class_tile_row(target, o, c, i0, n, targets32, scratch):
    """``t_c`` over the tile's n positions: class c's target row, or its one-hot row
    (1 where the class index is c) built in ``scratch`` from `tile_targets`."""
    raise NotImplementedError


@overload(class_tile_row)
def _class_tile_row(target, o, c, i0, n, targets32, scratch):
    if target.ndim == 3:
        return lambda target, o, c, i0, n, targets32, scratch: target[o, c, i0:i0 + n]

    def impl(target, o, c, i0, n, targets32, scratch):
        c32 = np.int32(c)
        one = scratch.dtype.type(1)
        zero = scratch.dtype.type(0)
        for i in range(n):
            scratch[i] = one if targets32[i] == c32 else zero
        return scratch

    return impl


def row_targets(target, r, scratch):
    """The targets of row r over its classes: ``target[r, :, 0]``, or the one-hot row of
    the class index ``target[r, 0]`` built in ``scratch``."""
    raise NotImplementedError


@overload(row_targets)
def _row_targets(target, r, scratch):
    if target.ndim == 3:
        return lambda target, r, scratch: target[r, :, 0]

    def impl(target, r, scratch):
        for j in range(scratch.shape[0]):
            scratch[j] = 0
        scratch[target[r, 0]] = 1
        return scratch

    return impl


# ---- pass 1: the block sums -----------------------------------------------------

@njit(cache=True, error_model="numpy")
def _add_tile_sums(p, t, prod, sums, c):
    """Class c's sums of a tile, ``p`` and ``t`` its rows, into ``sums[:, c]``."""
    sums[0, c] = row_weighted_sum(p, t, prod)
    sums[1, c] = row_sum(p)
    sums[2, c] = row_sum(t)


@njit(cache=True, error_model="numpy")
def _tile_scratch(x, T):
    """Scratch of a group of tiles of up to T positions: the packed activations (C * T),
    four rows in x's dtype, a float64 row and the class indices as int32."""
    return np.empty(x.shape[1] * T, x.dtype), np.empty((4, T), x.dtype), np.empty(T), np.empty(T, np.int32)


@njit(cache=True, error_model="numpy")
def _tile_of_block(b, tiles, T, inner):
    """``(o, i0, n)``: block b is positions ``i0:i0 + n`` of outer row o."""
    i0, i1 = block_range(b % tiles, T, inner)
    return b // tiles, i0, i1 - i0


@njit(cache=True, error_model="numpy")
def _sum_tiles(x, target, activation, T, tiles, b0, b1, partials):
    """Pass 1 of blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    p, d, exp_sum, targets32 = _tile_scratch(x, T)
    for b in range(b0, b1):
        o, i0, n = _tile_of_block(b, tiles, T, x.shape[2])
        _tile_probabilities(x, o, i0, n, activation, p, d[0], exp_sum, d[1])
        tile_targets(target, o, i0, n, targets32)
        for c in range(x.shape[1]):
            t = class_tile_row(target, o, c, i0, n, targets32, d[2, :n])
            # The exp sums are spent: their scratch takes the products p t.
            _add_tile_sums(p[c * n:(c + 1) * n], t, exp_sum, partials[b], c)


@njit(cache=True, error_model="numpy")
def _add_row_sums(p, t, sums):
    """One position's ``p`` and ``t`` rows (over the classes) added to ``sums``."""
    for j in range(p.shape[0]):
        sums[0, j] += np.float64(p[j]) * np.float64(t[j])
        sums[1, j] += p[j]
        sums[2, j] += t[j]


@njit(cache=True, error_model="numpy")
def _sum_rows(x2, target, activation, per_sample, rows, blocks_per_sample, b0, b1, partials):
    """Pass 1 of blocks ``b0:b1`` of the row path (``inner == 1``)."""
    C = x2.shape[1]
    p = np.empty(C, x2.dtype)
    onehot = np.empty(C, x2.dtype)
    for b in range(b0, b1):
        r0, r1 = _row_block(b, per_sample, rows, blocks_per_sample)
        sums = partials[b]
        sums[:] = 0
        for r in range(r0, r1):
            _row_probabilities(x2[r], activation, p)
            _add_row_sums(p, row_targets(target, r, onehot), sums)


@njit(cache=True, error_model="numpy")
def _row_block(b, per_sample, rows, blocks_per_sample):
    """Rows of block b: blocks of ``rows`` rows cut each sample's ``per_sample`` rows."""
    n = b // blocks_per_sample
    r0, r1 = block_range(b % blocks_per_sample, rows, per_sample)
    return n * per_sample + r0, n * per_sample + r1


@njit(cache=True, error_model="numpy")
def _row_plan(outer, C, samples):
    """``(rows per sample, rows per block, blocks per sample, blocks)`` of the row path."""
    per_sample = outer // samples
    rows, blocks_per_sample = row_blocking(per_sample, C)
    return per_sample, rows, blocks_per_sample, samples * blocks_per_sample


@njit(parallel=True, cache=True, error_model="numpy")
def _tile_sums(x, target, activation, samples):
    """Pass 1 on tiles (``inner > 1``): the ``(samples, 3, C)`` sums."""
    outer, C, inner = x.shape
    T, tiles, nb = tile_blocking(outer, C, inner)
    partials = np.empty((nb, _SUMS, C))
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _sum_tiles(x, target, activation, T, tiles, k * nb // ns, (k + 1) * nb // ns, partials)
    return _fold_samples(partials, samples)


@njit(parallel=True, cache=True, error_model="numpy")
def _row_sums(x, target, activation, samples):
    """Pass 1 on rows (``inner == 1``): the ``(samples, 3, C)`` sums."""
    outer, C, _ = x.shape
    per_sample, rows, blocks_per_sample, nb = _row_plan(outer, C, samples)
    partials = np.empty((nb, _SUMS, C))
    x2 = x.reshape((outer, C))
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _sum_rows(x2, target, activation, per_sample, rows, blocks_per_sample, k * nb // ns,
                  (k + 1) * nb // ns, partials)
    return _fold_samples(partials, samples)


@njit(cache=True, error_model="numpy")
def _fold_samples(partials, samples):
    """Each sample's sums: its (consecutive) blocks' partials added in block order."""
    nb, _, C = partials.shape
    per_sample = nb // samples
    sums = np.zeros((samples, _SUMS, C))
    for b in range(nb):
        sums[b // per_sample] += partials[b]
    return sums


# ---- the losses and the gradient coefficients -----------------------------------

@njit(cache=True, error_model="numpy")
def _finish(sums, weight, smooth, grad_scale, grad_output, loss_out, coefficients):
    """Every (sample, class)'s loss (into ``loss_out`` if given) and, if ``coefficients``
    (``(2, samples, C)``) is not empty, its gradient coefficients; returns the losses' sum."""
    samples, _, C = sums.shape
    total = 0.0
    for n in range(samples):
        for c in range(C):
            w = np.float64(weight[c]) if weight.size != 0 else 1.0
            intersection, predicted, expected = sums[n, 0, c], sums[n, 1, c], sums[n, 2, c]
            loss = w * dice_value(intersection, predicted, expected, smooth)
            total += loss
            if loss_out.size != 0:
                loss_out[n, c] = loss
            if coefficients.size != 0:
                g = w * (grad_scale * grad_output[n, c] if grad_output.size != 0 else grad_scale)
                a, b = dice_coefficients(intersection, predicted, expected, smooth, g)
                coefficients[0, n, c] = a
                coefficients[1, n, c] = b
    return total


# ---- pass 2: the gradient -------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _tile_gradient(x, target, activation, o, i0, n, a, b, p, t, shift, exp_sum, exp_sum32, r, targets32,
                   grad_out, stream):
    """The gradient of one tile, a and b its sample's coefficient rows (x's dtype)."""
    C = x.shape[1]
    inner = x.shape[2]
    _tile_probabilities(x, o, i0, n, activation, p, shift, exp_sum, exp_sum32)
    tile_targets(target, o, i0, n, targets32)
    if activation == DICE_SOFTMAX:
        for i in range(n):
            r[i] = 0
        for c in range(C):
            tc = class_tile_row(target, o, c, i0, n, targets32, t)
            pc = borrowed(p, c * n, n)
            for i in range(n):
                r[i] += pc[i] * dice_probability_gradient(a[c], b[c], tc[i])
    for c in range(C):
        tc = class_tile_row(target, o, c, i0, n, targets32, t)
        pc = borrowed(p, c * n, n)
        ac = a[c]
        bc = b[c]
        if activation == DICE_SOFTMAX:
            for i in range(n):
                pc[i] = dice_softmax_gradient(pc[i], dice_probability_gradient(ac, bc, tc[i]), r[i])
        elif activation == DICE_SIGMOID:
            for i in range(n):
                pc[i] = dice_sigmoid_gradient(pc[i], dice_probability_gradient(ac, bc, tc[i]))
        else:
            for i in range(n):
                pc[i] = dice_probability_gradient(ac, bc, tc[i])
        stream_into(pc, borrowed(grad_out, (o * C + c) * inner + i0, n), stream)


@njit(cache=True, error_model="numpy")
def _gradient_tiles(x, target, activation, coefficients, per_sample, grad_out, stream, T, tiles, b0, b1):
    """Pass 2 of blocks ``b0:b1`` of the tile path, sharing one set of scratch."""
    p, d, exp_sum, targets32 = _tile_scratch(x, T)
    for b in range(b0, b1):
        o, i0, n = _tile_of_block(b, tiles, T, x.shape[2])
        sample = o // per_sample
        _tile_gradient(x, target, activation, o, i0, n, coefficients[0, sample], coefficients[1, sample],
                       p, d[0, :n], d[1], exp_sum, d[2], d[3], targets32, grad_out, stream)
    stream_fence(stream)


@njit(parallel=True, cache=True, error_model="numpy")
def _tile_gradients(x, target, activation, coefficients, grad_out):
    """Pass 2 on tiles (``inner > 1``)."""
    outer, C, inner = x.shape
    T, tiles, nb = tile_blocking(outer, C, inner)
    per_sample = outer // coefficients.shape[1]
    stream = grad_out.size * grad_out.itemsize >= STREAM_BYTES
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _gradient_tiles(x, target, activation, coefficients, per_sample, grad_out, stream, T, tiles,
                        k * nb // ns, (k + 1) * nb // ns)


@njit(cache=True, error_model="numpy")
def _row_gradient(xr, tr, activation, a, b, p, gr):
    """The gradient ``gr`` of one row of classes ``xr`` with targets ``tr``."""
    _row_probabilities(xr, activation, p)
    C = xr.shape[0]
    if activation == DICE_SOFTMAX:
        r = 0.0
        for j in range(C):
            r += np.float64(p[j]) * dice_probability_gradient(a[j], b[j], tr[j])
        rr = p.dtype.type(r)
        for j in range(C):
            gr[j] = dice_softmax_gradient(p[j], dice_probability_gradient(a[j], b[j], tr[j]), rr)
    elif activation == DICE_SIGMOID:
        for j in range(C):
            gr[j] = dice_sigmoid_gradient(p[j], dice_probability_gradient(a[j], b[j], tr[j]))
    else:
        for j in range(C):
            gr[j] = dice_probability_gradient(a[j], b[j], tr[j])


@njit(cache=True, error_model="numpy")
def _gradient_rows(x2, target, activation, coefficients, g2, per_sample, rows, blocks_per_sample, b0, b1):
    """Pass 2 of blocks ``b0:b1`` of the row path."""
    C = x2.shape[1]
    p = np.empty(C, x2.dtype)
    onehot = np.empty(C, x2.dtype)
    for b in range(b0, b1):
        r0, r1 = _row_block(b, per_sample, rows, blocks_per_sample)
        a = coefficients[0, r0 // per_sample]
        bb = coefficients[1, r0 // per_sample]
        for r in range(r0, r1):
            _row_gradient(x2[r], row_targets(target, r, onehot), activation, a, bb, p, g2[r])


@njit(parallel=True, cache=True, error_model="numpy")
def _row_gradients(x, target, activation, coefficients, grad_out):
    """Pass 2 on rows (``inner == 1``)."""
    outer, C, _ = x.shape
    per_sample, rows, blocks_per_sample, nb = _row_plan(outer, C, coefficients.shape[1])
    x2 = x.reshape((outer, C))
    g2 = grad_out.reshape((outer, C))
    ns = min(nb, BLOCK_GROUPS)
    for k in prange(ns):
        _gradient_rows(x2, target, activation, coefficients, g2, per_sample, rows, blocks_per_sample,
                       k * nb // ns, (k + 1) * nb // ns)


def _dice(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out):
    outer, C, inner = x.shape
    if samples * C == 0:
        return 0.0
    if outer * inner == 0:  # no positions: every sum is 0
        sums = np.zeros((samples, _SUMS, C))
    elif inner > 1:
        sums = _tile_sums(x, target, activation, samples)
    else:
        sums = _row_sums(x, target, activation, samples)
    wants_gradient = grad_out.size != 0
    coefficients = np.empty((2, samples, C) if wants_gradient else (0, 0, 0), x.dtype)
    total = _finish(sums, weight, smooth, grad_scale, grad_output, loss_out, coefficients)
    if wants_gradient:
        kernel = _tile_gradients if inner > 1 else _row_gradients
        kernel(x, target, activation, coefficients, grad_out)
    return total


def dice_class(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out):
    """Dice loss of class-index targets; see the module docstring.

    Each pass of each path is a kernel of its own: a call compiles only those it takes.
    """
    return _dice(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out)


def dice_prob(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out):
    """Dice loss of probability targets (x's shape and dtype); see the module docstring."""
    return _dice(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out)
