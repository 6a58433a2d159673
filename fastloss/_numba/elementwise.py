"""The elementwise losses: one driver for every loss of ``formulas.ELEMENTWISE``.

Kernels
-------
binary_cross_entropy(p, y, weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k ((y - 1) max(log1p(-p), -100) - y max(log(p), -100))`` and
    ``grad = g w_k (p - y) / max((1 - p) p, 1e-12)``.
binary_cross_entropy_with_logits(x, y, weight, pos_weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k ((1 - y) x - (1 + (pw_k - 1) y) log_sigmoid(x))`` and
    ``grad = g w_k ((pw_k y + 1 - y) sigmoid(x) - pw_k y)`` (``pw_k = 1``
    without pos_weight).
sigmoid_focal_loss(x, y, weight, alpha, gamma, grad_scale, grad_output, loss_out, grad_out) -> float
    torchvision's ``l = w_k a_t ce (1 - p_t)**gamma`` (``formulas.sigmoid_focal_loss``).
kl_div(x, y, weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k (xlogy(y, y) - y x)``, ``grad = -g w_k y``.
kl_div_log_target(x, y, weight, grad_scale, grad_output, loss_out, grad_out) -> float
    ``l = w_k exp(y) (y - x)``, ``grad = -g w_k exp(y)``.

Every element of the ``(outer, K, inner)`` arrays is a position; ``weight``
and ``pos_weight`` broadcast along K (focal and KL losses take no weight from the
front layer: theirs is empty).  With inner == 1 a block is a run of
rows of K elements and weights vary along a row; with inner > 1 it is a tile
of one ``(o, k)`` row, whose weights are scalars.  A run's losses are summed
with the lane accumulators of ``row_sum`` (an order set by the shape; a
strictly sequential float64 sum would cost more than the losses).  Results are
formed in scratch and copied out, so outputs may be the same memory as inputs.

Loss kinds
----------
Each loss's kernels are copies of the drivers in which the global ``LOSS`` is
its ``ELEMENTWISE`` entry (`_driver_for`), passed down as an argument: Numba
types each entry as an `ElementwiseLossType` of its own name, so every loss
compiles its own driver, and the overloads `_fill_shared`, `_loss_of`
and `_gradient_of` call that entry's formulas (inlined, so the loops
vectorise).  A new elementwise loss is its formulas and entry in `formulas`
and its kernel here, made by `_kernel` from the entry.
"""
import types as pytypes

import numpy as np
from numba import prange, types
from numba.core import datamodel
from numba.core.imputils import lower_constant
from numba.extending import overload, register_model, typeof_impl

from .._constants import STREAM_BYTES
from .blocking import block_range, row_blocking, sum_partials, tile_blocking
from .cache import njit
from .formulas import ELEMENTWISE, ElementwiseLoss
from .reductions import row_sum
from .streaming import stream_fence, stream_into
from .views import as_rows, borrowed

# Elements per `_segment` call: its scratch stays in L1.
SEGMENT = 1024


class ElementwiseLossType(types.Dummy):
    """Numba type of an `ElementwiseLoss`: the loss's name, no data."""

    def __init__(self, loss_name):
        self.loss_name = loss_name
        super().__init__(f"ElementwiseLoss({loss_name})")


register_model(ElementwiseLossType)(datamodel.models.OpaqueModel)


@typeof_impl.register(ElementwiseLoss)
def _typeof_elementwise_loss(val, c):
    return ElementwiseLossType(val.name)


@lower_constant(ElementwiseLossType)
def _lower_elementwise_loss(context, builder, typ, pyval):
    """An entry as a constant in a kernel: its type says everything, so no data."""
    return context.get_dummy_value()


def _fill_shared(kind, x, y, shared_buffer):
    """The loss's shared term of every element, in shared_buffer, returned; x
    itself for a loss without one (its formulas ignore it)."""
    raise NotImplementedError


@overload(_fill_shared, inline="always")
def _fill_shared_impl(kind, x, y, shared_buffer):
    shared = ELEMENTWISE[kind.loss_name].shared
    if shared is None:
        return lambda kind, x, y, shared_buffer: x

    def fill(kind, x, y, shared_buffer):
        for j in range(x.shape[0]):
            shared_buffer[j] = shared(x[j], y[j])
        return shared_buffer

    return fill


def _loss_of(kind, x, y, shared, pos_weight, has_pos_weight, parameters):
    """The ``loss`` formula of ``kind``'s entry."""
    raise NotImplementedError


@overload(_loss_of, inline="always")
def _loss_of_impl(kind, x, y, shared, pos_weight, has_pos_weight, parameters):
    loss = ELEMENTWISE[kind.loss_name].loss
    return (lambda kind, x, y, shared, pos_weight, has_pos_weight, parameters:
            loss(x, y, shared, pos_weight, has_pos_weight, parameters))


def _gradient_of(kind, x, y, shared, pos_weight, has_pos_weight, parameters, g):
    """The ``gradient`` formula of ``kind``'s entry."""
    raise NotImplementedError


@overload(_gradient_of, inline="always")
def _gradient_of_impl(kind, x, y, shared, pos_weight, has_pos_weight, parameters, g):
    gradient = ELEMENTWISE[kind.loss_name].gradient
    return (lambda kind, x, y, shared, pos_weight, has_pos_weight, parameters, g:
            gradient(x, y, shared, pos_weight, has_pos_weight, parameters, g))


def _at(v, j):
    """``v[j]`` for an array, ``v`` for a scalar, in jitted code: one segment
    loop then serves per-element weights (inner == 1) and per-row ones."""
    raise NotImplementedError


@overload(_at)
def _at_impl(v, j):
    if isinstance(v, types.Array):
        return lambda v, j: v[j]
    return lambda v, j: v


@njit(cache=True, error_model="numpy")
def _segment(kind, x, target, weight, pos_weight, has_pos_weight, parameters, grad_output, grad_scale,
             loss_buffer, grad_buffer, shared_buffer):
    """Losses of one contiguous run into ``loss_buffer``, gradients into ``grad_buffer``
    unless it is empty.

    ``weight``, ``pos_weight``: arrays along the run or scalars; ``parameters``:
    the loss's pair of scalar options (float64); ``grad_output``: the run's, or
    empty; ``shared_buffer``: scratch as long as the run.  Arithmetic is in x's
    dtype, ``grad_scale`` and ``parameters`` included.
    """
    dt = x.dtype.type
    g = dt(grad_scale)
    options = (dt(parameters[0]), dt(parameters[1]))
    shared = _fill_shared(kind, x, target, shared_buffer)
    for j in range(x.shape[0]):
        loss_buffer[j] = _loss_of(kind, x[j], target[j], shared[j], _at(pos_weight, j),
                                  has_pos_weight, options) * _at(weight, j)
    if grad_buffer.shape[0] == 0:
        return
    for j in range(x.shape[0]):
        gj = g * grad_output[j] if grad_output.shape[0] != 0 else g
        grad_buffer[j] = _gradient_of(kind, x[j], target[j], shared[j], _at(pos_weight, j),
                                      has_pos_weight, options, gj) * _at(weight, j)


@njit(cache=True, error_model="numpy", inline="always")
def _write_segment(loss_buffer, grad_buffer, loss_out, grad_out, f, stream):
    """Copy a segment's losses and gradients (unless absent) to ``f:`` of the flat
    outputs, and return the sum of its losses (inlined: the views are borrowed)."""
    m = loss_buffer.shape[0]
    if loss_out.size != 0:
        stream_into(loss_buffer, borrowed(loss_out, f, m), stream)
    if grad_out.size != 0:
        stream_into(grad_buffer, borrowed(grad_out, f, m), stream)
    return row_sum(loss_buffer)


@njit(cache=True, error_model="numpy")
def _row_weights(v, K, f, out):
    """``out[j] = v[(f + j) % K]``: a row-path piece's per-element weights, copied row by row."""
    j = 0
    k = f % K
    while j < out.shape[0]:
        n = min(K - k, out.shape[0] - j)
        # A loop, not a slice assignment: that one compiles Numba's shape-mismatch
        # error message (string formatting) into every elementwise kernel.
        for i in range(n):
            out[j + i] = v[k + i]
        j += n
        k = 0


@njit(cache=True, error_model="numpy")
def _elementwise_rows(kind, x, target, weight, pos_weight, parameters, grad_scale, grad_output, loss_out,
                      grad_out, K, f0, f1, stream):
    """Elements ``f0:f1`` of the flat ``(rows * K)`` arrays, in `SEGMENT` pieces that cross
    rows: short rows would otherwise leave most elements to the scalar loop tails."""
    dt = x.dtype.type
    has_weight, has_pos_weight = weight.size != 0, pos_weight.size != 0
    size = min(f1 - f0, SEGMENT)
    loss_buffer = np.empty(size, x.dtype)
    grad_buffer = np.empty(size if grad_out.size != 0 else 0, x.dtype)
    shared_buffer = np.empty(size, x.dtype)
    weight_buffer = np.ones(size if has_weight or has_pos_weight else 0, x.dtype)
    pos_weight_buffer = np.ones(size if has_pos_weight else 0, x.dtype)
    part = 0.0
    for j0 in range(f0, f1, SEGMENT):
        m = min(SEGMENT, f1 - j0)
        go = borrowed(grad_output, j0, m) if grad_output.size != 0 else grad_output
        xm, ym, sm = borrowed(x, j0, m), borrowed(target, j0, m), borrowed(shared_buffer, 0, m)
        lm = borrowed(loss_buffer, 0, m)
        gm = borrowed(grad_buffer, 0, m) if grad_out.size != 0 else grad_buffer
        if has_weight or has_pos_weight:
            wm = borrowed(weight_buffer, 0, m)
            pwm = borrowed(pos_weight_buffer, 0, m) if has_pos_weight else wm
            if has_weight:
                _row_weights(weight, K, j0, wm)
            if has_pos_weight:
                _row_weights(pos_weight, K, j0, pwm)
            _segment(kind, xm, ym, wm, pwm, has_pos_weight, parameters, go, grad_scale, lm, gm, sm)
        else:
            _segment(kind, xm, ym, dt(1.0), dt(1.0), False, parameters, go, grad_scale, lm, gm, sm)
        part += _write_segment(lm, gm, loss_out, grad_out, j0, stream)
    stream_fence(stream)
    return part


@njit(cache=True, error_model="numpy")
def _elementwise_tile(kind, x, target, weight, pos_weight, parameters, grad_scale, grad_output, loss_out,
                      grad_out, row, k, i0, n, stream):
    """Positions ``i0:i0+n`` of row ``row`` (class ``k``) of the ``(outer * K, inner)`` arrays."""
    dt = x.dtype.type
    w = dt(weight[k]) if weight.size != 0 else dt(1.0)
    pw = dt(pos_weight[k]) if pos_weight.size != 0 else dt(1.0)
    size = min(n, SEGMENT)
    loss_buffer = np.empty(size, x.dtype)
    grad_buffer = np.empty(size if grad_out.size != 0 else 0, x.dtype)
    shared_buffer = np.empty(size, x.dtype)
    part = 0.0
    f0 = row * x.shape[1]
    for j0 in range(i0, i0 + n, SEGMENT):
        m = min(SEGMENT, i0 + n - j0)
        f = f0 + j0
        go = borrowed(grad_output, f, m) if grad_output.size != 0 else grad_output.reshape(0)
        lm = borrowed(loss_buffer, 0, m)
        gm = borrowed(grad_buffer, 0, m) if grad_out.size != 0 else grad_buffer
        _segment(kind, borrowed(x, f, m), borrowed(target, f, m), w, pw, pos_weight.size != 0, parameters, go,
                 grad_scale, lm, gm, borrowed(shared_buffer, 0, m))
        part += _write_segment(lm, gm, loss_out, grad_out, f, stream)
    stream_fence(stream)
    return part


def _elementwise_row_blocks(x, y, weight, pos_weight, parameters, grad_scale, grad_output, loss_out, grad_out):
    """Parallel driver of every elementwise kernel on rows (``inner == 1``), for the loss
    ``LOSS`` (each loss compiles its own copy: see `_driver_for`)."""
    kind = LOSS
    outer, K, _ = x.shape
    stream = x.size * x.itemsize >= STREAM_BYTES
    rows, nb = row_blocking(outer, K)
    n = x.size
    xf, yf, gf = x.reshape(n), y.reshape(n), grad_out.reshape(grad_out.size)
    gof, lof = grad_output.reshape(grad_output.size), loss_out.reshape(loss_out.size)
    if nb == 1:  # no thread launch for a single block
        # Bounds typed as the loop's are (a literal 0 would compile _elementwise_rows twice).
        r0, r1 = block_range(0, rows, outer)
        return _elementwise_rows(kind, xf, yf, weight, pos_weight, parameters, grad_scale, gof, lof, gf, K,
                                 r0 * K, r1 * K, stream)
    partials = np.empty(nb)
    for b in prange(nb):
        r0, r1 = block_range(b, rows, outer)
        partials[b] = _elementwise_rows(kind, xf, yf, weight, pos_weight, parameters, grad_scale, gof, lof, gf,
                                        K, r0 * K, r1 * K, stream)
    return sum_partials(partials)


def _elementwise_tile_blocks(x, y, weight, pos_weight, parameters, grad_scale, grad_output, loss_out, grad_out):
    """Parallel driver of every elementwise kernel on tiles (``inner > 1``), for the loss ``LOSS``."""
    kind = LOSS
    outer, K, inner = x.shape
    stream = x.size * x.itemsize >= STREAM_BYTES
    T, tiles, nb = tile_blocking(outer * K, 1, inner)
    x2, y2 = x.reshape((outer * K, inner)), y.reshape((outer * K, inner))
    go2, lo2 = as_rows(grad_output, outer * K, inner), as_rows(loss_out, outer * K, inner)
    g2 = as_rows(grad_out, outer * K, inner)
    partials = np.empty(nb)
    for b in prange(nb):
        i0, i1 = block_range(b % tiles, T, inner)
        row = b // tiles
        partials[b] = _elementwise_tile(kind, x2, y2, weight, pos_weight, parameters, grad_scale, go2, lo2, g2,
                                        row, row % K, i0, i1 - i0, stream)
    return sum_partials(partials)


# The loss of a driver's copy (see `_driver_for`); None in the drivers themselves, which are
# never compiled.
LOSS = None


def _driver_for(entry, driver):
    """A parallel kernel of ``driver`` for the loss ``entry``: a copy of the function whose
    global ``LOSS`` is the entry (Numba takes a global as a constant, of the entry's own
    type, so each loss compiles its own kernel), named after both, so that each has its
    own cache entries.

    Not a jitted function binding the entry: that would be one more compiled level, and
    each level re-optimises all the code below it.  Not the entry as an argument: typing
    a Python object costs each call microseconds of dispatch.
    """
    copy = pytypes.FunctionType(driver.__code__, {**driver.__globals__, "LOSS": entry},
                                f"{driver.__name__}_{entry.name}")
    copy.__qualname__ = copy.__name__
    copy.__doc__ = driver.__doc__
    return njit(parallel=True, cache=True, error_model="numpy")(copy)


# The parameters of a loss without scalar options.
_NO_PARAMETERS = (0.0, 0.0)


def _kernel(entry, doc, takes=None):
    """The elementwise kernel of ``entry``: its parallel kernel on rows (``inner == 1``) or
    on tiles, picked here, so a call compiles only the path it takes.

    ``takes`` names what the kernel takes between ``weight`` and ``grad_scale``:
    ``"pos_weight"`` (an array), ``"parameters"`` (the loss's two scalar options), or
    nothing (None).
    """
    row_kernel = _driver_for(entry, _elementwise_row_blocks)
    tile_kernel = _driver_for(entry, _elementwise_tile_blocks)

    def kernel(x, y, weight, *arguments):
        if x.size == 0:
            return 0.0
        if takes == "pos_weight":
            pos_weight, parameters, rest = arguments[0], _NO_PARAMETERS, arguments[1:]
        elif takes == "parameters":
            pos_weight, parameters, rest = weight[:0], (float(arguments[0]), float(arguments[1])), arguments[2:]
        else:
            pos_weight, parameters, rest = weight[:0], _NO_PARAMETERS, arguments
        return (row_kernel if x.shape[2] == 1 else tile_kernel)(x, y, weight, pos_weight, parameters, *rest)

    kernel.__name__ = kernel.__qualname__ = entry.name
    kernel.__doc__ = doc
    return kernel


# The kernels of the elementwise losses, one per entry of ``ELEMENTWISE``: the
# package exports this list.
__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "kl_div",
           "kl_div_log_target"]

binary_cross_entropy = _kernel(
    ELEMENTWISE["binary_cross_entropy"],
    "Sum of the elementwise BCE of probabilities ``p``; see the module docstring.")
binary_cross_entropy_with_logits = _kernel(
    ELEMENTWISE["binary_cross_entropy_with_logits"],
    "Sum of the elementwise BCE of logits ``x``; see the module docstring.", takes="pos_weight")
_focal_any_gamma = _kernel(
    ELEMENTWISE["sigmoid_focal_loss"], "`sigmoid_focal_loss` for any gamma.", takes="parameters")
_focal_square = _kernel(
    ELEMENTWISE["sigmoid_focal_loss_square"], "`sigmoid_focal_loss` for gamma = 2.", takes="parameters")


def sigmoid_focal_loss(x, y, weight, alpha, gamma, *arguments):
    """Sum of the elementwise sigmoid focal loss of logits ``x``; see the module docstring.
    gamma = 2, the default, has kernels of its own, whose loops vectorise better."""
    kernel = _focal_square if gamma == 2.0 else _focal_any_gamma
    return kernel(x, y, weight, alpha, gamma, *arguments)


kl_div = _kernel(
    ELEMENTWISE["kl_div"],
    "Sum of the pointwise KL divergence of log-probabilities ``x`` to probabilities; see the module docstring.")
kl_div_log_target = _kernel(
    ELEMENTWISE["kl_div_log_target"],
    "Sum of the pointwise KL divergence of log-probabilities ``x`` to log-probabilities; see the module "
    "docstring.")
