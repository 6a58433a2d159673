"""fastloss on dask arrays: every loss lazily, chunk by chunk, with torch's reductions.

Each function takes fastloss's NumPy signature (without ``out`` / ``gradient_out``:
a lazy result has no buffer to write into) and ``dask.array.Array`` inputs;
targets, weights and ``grad_output`` may be dask or NumPy arrays.  It returns
lazy results: a 0-d dask array for a reduction, a dask array chunked like the
positions for ``reduction="none"``, and with ``return_grad=True`` a lazy gradient
chunked like the input.  dask schedules; fastloss computes each chunk.

Reductions are torch's over the whole array, not means of chunk means: every
chunk's loss is summed (``reduction="sum"``) and the sums added in float64; a
"mean" divides by the global normaliser (the summed weights of the non-ignored
targets, the element count, the batch size for "batchmean"), and a "mean"
gradient is every chunk's "sum" gradient scaled by ``grad_output / normaliser``,
the normaliser being a lazy scalar computed from the targets and weights first.

The class axis (and, for :func:`dice_loss`, every axis but the batch axis) must be
one chunk: an array split there is rechunked, with a ``dask.array.PerformanceWarning``.
Shape, dtype and option errors raise as fastloss's own calls raise them, before
any graph is built; a class target out of range raises fastloss's ``IndexError``
when the result is computed.

Each task runs fastloss's kernels with the backend that was active when the graph
was built, and with ``threads // running`` threads, where ``threads`` is the
worker's thread count (``fl.get_num_threads()`` at graph-building time under the
threaded scheduler) and ``running`` the fastloss tasks running in that process at
the start of the chunk's call, so that concurrent tasks do not oversubscribe the
cores.
"""
import contextlib
import math
import sys
import threading
import warnings

try:
    import dask.array as da
except ImportError as exc:  # dask is an optional extra
    raise ImportError('fastloss.dask needs dask: pip install "fastloss[dask]"') from exc
import numpy as np

import fastloss as fl

from . import _dice, _elementwise_losses, _validate
from ._backends import _available_cores
from ._reduction import gradient_scale, reduced, reduction_divisor

__all__ = [
    "softmax", "log_softmax", "nll_loss", "cross_entropy", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "kl_div", "distillation_loss", "dice_loss",
]

_LETTERS = "abcdefghijklmnopqrstuvwxy"
_PARTS = "z"  # the index of the axis along which a chunk returns its partial sums


# -- threads per task ---------------------------------------------------------------------------
# fl.set_num_threads is process-wide, so the count is shared by every task of a process: the
# first task to start saves the caller's count, each start or end sets threads // running, and
# the last task to end restores the caller's count.
_tasks_lock = threading.Lock()
_running_tasks = 0
_threads_outside_tasks = None


def _worker_threads():
    """The thread count of the dask.distributed worker running this task, or None outside one."""
    distributed = sys.modules.get("distributed")  # loaded in every worker process; never imported here
    if distributed is None:
        return None
    try:
        return distributed.get_worker().state.nthreads
    except ValueError:  # not in a worker: the threaded or synchronous scheduler
        return None


def _share(threads):
    return max(1, min(threads, _available_cores()) // max(_running_tasks, 1))


@contextlib.contextmanager
def _task_settings(backend_name, graph_threads):
    """Run a chunk's call with ``backend_name`` and this task's share of the worker's threads."""
    global _running_tasks, _threads_outside_tasks
    threads = _worker_threads() or graph_threads
    with _tasks_lock:
        if _running_tasks == 0:
            _threads_outside_tasks = fl.get_num_threads()
        _running_tasks += 1
        fl.set_num_threads(_share(threads))
    try:
        with fl.backend(backend_name):
            yield
    finally:
        with _tasks_lock:
            _running_tasks -= 1
            fl.set_num_threads(_share(threads) if _running_tasks else _threads_outside_tasks)


# -- argument checks on shapes and dtypes alone ------------------------------------------------
def _as_dask(value):
    return value if isinstance(value, da.Array) else da.asarray(value)


def _dtype_probe(arr):
    """An empty array of ``arr``'s dtype: fastloss's dtype checks, without the data."""
    return np.empty(0, arr.dtype)


def _shape_probe(arr):
    """A read-only NumPy view of ``arr``'s shape and dtype holding one element: fastloss's
    shape checks, without the data or its memory."""
    return np.broadcast_to(np.zeros((), arr.dtype), arr.shape)


def _input(value, name="input"):
    """``value`` as a dask array, with its compute and result dtypes (TypeError as fastloss)."""
    x = _as_dask(value)
    compute, result = _validate.float_dtypes(x, name)
    return x, compute, result


def _upstream(grad_output, loss_shape, reduction):
    """Check ``grad_output`` as fastloss does; return it as a dask array (or None)."""
    if grad_output is None:
        return None
    grad_output = _as_dask(grad_output)
    _validate.grad_output(_shape_probe(grad_output), loss_shape, reduction, grad_output.dtype)
    return grad_output if reduction == "none" else grad_output.reshape(())


def _one_chunk_along(x, axes, why, calls_below_user):
    """``x`` with each of ``axes`` in one chunk, rechunked with a PerformanceWarning (pointing at
    the caller ``calls_below_user`` frames up) if needed."""
    split = [ax for ax in axes if x.numblocks[ax] > 1]
    if not split:
        return x
    warnings.warn(f"fastloss.dask rechunks axes {split} of an array of shape {x.shape} into one chunk: {why}",
                  da.PerformanceWarning, stacklevel=calls_below_user + 1)
    return x.rechunk({ax: -1 for ax in split})


def _aligned(value, letters, shape, chunks):
    """``value`` (broadcastable to ``shape``, the array that ``letters`` index) as a dask array
    chunked as ``chunks`` along the axes it spans and whole along the ones it broadcasts over,
    with its blockwise index."""
    value = _as_dask(value)
    value = value.reshape((1,) * (len(shape) - value.ndim) + value.shape)
    value = value.rechunk(tuple((1,) if n == 1 else axis_chunks for n, axis_chunks in zip(value.shape, chunks)))
    return value, letters


# -- the lazy engine ---------------------------------------------------------------------------
class _ChunkCall:
    """One fastloss call on one chunk, as a dask task runs it (picklable: it reaches workers).

    The task gets the input's chunk, then the second argument's (target or teacher), then the
    keyword arguments named in ``names`` (chunks of arrays, or plain values).  Chunks are cast
    to the compute dtype first (float16 to float32...) and results back, so a chunk's sum
    keeps the compute precision.  ``loss_axes``
    are the input's axes that the loss of "none" keeps (None: all of them; ``transposed``: in
    the reverse order); the loss comes back with the others kept as size-1 axes.
    """

    def __init__(self, function, reduction, return_grad, compute, result, loss_axes=None, transposed=False):
        self.function = function
        self.names = ()  # set by _run
        self.reduction = reduction
        self.return_grad = return_grad
        self.compute = compute
        self.result = result
        self.loss_axes = loss_axes
        self.transposed = transposed
        self.counts_kept = False  # also return the chunk's summed weights of non-ignored targets
        self.backend = fl.get_backend()
        self.threads = fl.get_num_threads()

    def __call__(self, x, second, *blocks):
        keywords = dict(zip(self.names, blocks))
        with _task_settings(self.backend, self.threads):
            outcome = self.function(x.astype(self.compute, copy=False), second,
                                    reduction="none" if self.reduction == "none" else "sum",
                                    return_grad=self.return_grad, **keywords)
        loss, grad = outcome if self.return_grad else (outcome, None)
        if self.reduction == "none":
            loss = self._keepdims(loss.astype(self.result, copy=False), x.shape)
        else:
            sums = [loss]
            if self.counts_kept:
                sums.append(_kept_weight(second, keywords.get("weight"), keywords["ignore_index"],
                                         x.shape[keywords["axis"]]))
            loss = np.array(sums, np.float64).reshape((1,) * x.ndim + (len(sums),))
        return loss if grad is None else (loss, grad.astype(self.result, copy=False))

    def _keepdims(self, loss, shape):
        if self.loss_axes is None:
            return loss
        if self.transposed:
            loss = loss.T
        return loss.reshape([n if ax in self.loss_axes else 1 for ax, n in enumerate(shape)])


def _first(pair):
    return pair[0]


def _second(pair):
    return pair[1]


def _lazy_scalar(function, *arguments, dtype=np.float64, token=None):
    """``function(*arguments)`` as a 0-d dask array computed by one task, each dask argument
    handed over whole (its blocks concatenated: the chunks' partial sums are small)."""
    pairs = []
    for argument in arguments:
        pairs += [argument, _LETTERS[:argument.ndim]] if isinstance(argument, da.Array) else [argument, None]
    return da.blockwise(function, "", *pairs, dtype=dtype, meta=np.empty((), dtype), concatenate=True,
                        token=token)


def _partial_sums(partials):
    """The float64 sums over all chunks of the partials (the last axis: what each sum is of)."""
    return partials.reshape(-1, partials.shape[-1]).sum(axis=0, dtype=np.float64)


def _total(partials):
    return _partial_sums(partials)[0]


def _scale(upstream, normaliser):
    return np.float64(gradient_scale(None if upstream is None else float(upstream), float(normaliser)))


def _reduced(partials, normaliser, result):
    """The reduced loss: the summed losses over ``normaliser``, or over the summed weights the
    chunks counted beside their losses."""
    sums = _partial_sums(partials)
    return np.asarray(reduced(sums[0], float(sums[1] if sums.size == 2 else normaliser), result))


def _run(call, x, second, second_letters, keyword_arrays, normaliser, grad_output, loss_letters=None):
    """Build the graph of ``call`` over the chunks of ``x``.

    ``keyword_arrays`` maps keyword names to ``(dask array, letters)`` pairs or to plain values;
    ``normaliser`` is the divisor of the reduction (a float or a lazy 0-d array; unused when the
    chunks count it, ``call.counts_kept``); ``grad_output`` a checked dask array or None;
    ``loss_letters`` the output letters of "none" (default: x's letters, for losses of the
    input's shape).
    """
    letters = _LETTERS[:x.ndim]
    loss_letters = loss_letters or letters
    reduction = call.reduction
    if call.return_grad and reduction != "none":
        keyword_arrays["grad_output"] = (_lazy_scalar(_scale, grad_output, normaliser), "")
    elif grad_output is not None:
        keyword_arrays["grad_output"] = _aligned(grad_output, loss_letters, *_loss_geometry(x, loss_letters))
    call.names = list(keyword_arrays)
    arguments = [x, letters, second, second_letters]
    for value in keyword_arrays.values():
        arguments += value if isinstance(value, tuple) else (value, None)
    if reduction == "none":
        out_letters, new_axes = letters, {}
        adjust = {letter: 1 for letter in letters if letter not in loss_letters}
        loss_meta = np.empty((0,) * x.ndim, call.result)
    else:  # each chunk's partial sums along a new last axis
        out_letters, new_axes = letters + _PARTS, {_PARTS: 2 if call.counts_kept else 1}
        adjust = {letter: 1 for letter in letters}
        loss_meta = np.empty((0,) * (x.ndim + 1), np.float64)
    grad_meta = np.empty((0,) * x.ndim, call.result)
    name = call.function.__name__  # the tasks' name in progress bars and dashboards
    if call.return_grad:
        pairs = da.blockwise(call, letters, *arguments, meta=grad_meta, token=f"{name}-and-gradient")
        loss = da.blockwise(_first, out_letters, pairs, letters, new_axes=new_axes, adjust_chunks=adjust,
                            meta=loss_meta, token=name)
        grad = pairs.map_blocks(_second, meta=grad_meta, token=f"{name}-gradient")
    else:
        loss = da.blockwise(call, out_letters, *arguments, new_axes=new_axes, adjust_chunks=adjust, meta=loss_meta,
                            token=name)
        grad = None
    if reduction == "none":
        dropped = tuple(ax for ax, letter in enumerate(letters) if letter not in loss_letters)
        value = loss.squeeze(axis=dropped) if dropped else loss
    else:
        value = _lazy_scalar(_reduced, loss, normaliser, call.result, dtype=call.result, token=f"{name}-{reduction}")
    return (value, grad) if call.return_grad else value


def _loss_geometry(x, loss_letters):
    """The shape and chunks of the loss that ``loss_letters`` index (x's letters, a subset)."""
    letters = _LETTERS[:x.ndim]
    axes = [letters.index(letter) for letter in loss_letters]
    return tuple(x.shape[ax] for ax in axes), tuple(x.chunks[ax] for ax in axes)


def _documented(text):
    """Give the decorated function the docstring ``text`` (built from shared sections)."""
    def attach(function):
        function.__doc__ = text
        return function
    return attach


# -- normalisers ---------------------------------------------------------------------------------
def _position_softmax(function, x, axis):
    """fl.softmax or fl.log_softmax over the chunks of ``x``, the normalised axis in one chunk."""
    x, compute, result = _input(x, "x")
    normalised = _validate.axis(axis, max(x.ndim, 1))  # 0-d input is one position of one class
    if x.ndim:
        x = _one_chunk_along(x, [normalised], "the normalised axis must be one chunk", 3)
    return x.map_blocks(function, axis, meta=np.empty((0,) * x.ndim, result))


_NORMALISER_DOC = """{what} of a dask array along ``axis``, lazily, as :func:`fastloss.{name}`.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Logits, any shape (0-d included).
    axis : int, optional
        The axis to normalise over (default: the last).  Rechunked into one
        chunk, with a ``dask.array.PerformanceWarning``, if it spans several.

    Returns
    -------
    dask.array.Array
        {result} of ``x``'s shape and floating dtype, chunked like ``x``.

    Raises
    ------
    TypeError
        If ``x`` is complex, object, str or datetime.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> x = da.from_array(np.array([[0.0, 0.0], [0.0, 1.0]]), chunks=(1, 2))
    >>> fld.{name}(x).compute().round(4)
    {example}
    """


@_documented(_NORMALISER_DOC.format(what="Softmax", name="softmax", result="Probabilities",
                                    example="""array([[0.5   , 0.5   ],
           [0.2689, 0.7311]])"""))
def softmax(x, axis=-1):
    return _position_softmax(fl.softmax, x, axis)


@_documented(_NORMALISER_DOC.format(what="Log-softmax", name="log_softmax", result="Log-probabilities",
                                    example="""array([[-0.6931, -0.6931],
           [-1.3133, -0.3133]])"""))
def log_softmax(x, axis=-1):
    return _position_softmax(fl.log_softmax, x, axis)


# -- class-axis losses ---------------------------------------------------------------------------
def _kept_weight(target, weight, ignore, classes):
    """The float64 sum of the weights of a chunk's non-ignored targets (their count without
    weights), checked as fastloss checks targets (IndexError for one out of range)."""
    if _validate.class_target(target, classes, ignore) and not 0 <= ignore < classes:
        kept = target  # every target is a class, none is ignore_index: no mask needed
    else:
        kept = target[target != ignore]
    return kept.size if weight is None else weight[kept].sum(dtype=np.float64)


def _kept_weight_partial(target, weight, ignore, classes):
    return np.full((1,) * target.ndim + (1,), _kept_weight(target, weight, ignore, classes), np.float64)


def _class_loss(function, input, target, weight, ignore_index, reduction, axis, return_grad,
                grad_output, options):
    """``function`` (fl.nll_loss or fl.cross_entropy) over the chunks; ``options`` its own keywords."""
    x, compute, result = _input(input)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension, the class axis")
    axis = _validate.class_axis(axis, x.ndim)
    reduction = _validate.reduction(reduction)
    ignore = _validate.ignore_index(ignore_index)
    if "label_smoothing" in options:
        _validate.label_smoothing(options["label_smoothing"])
        _validate.z_loss(options["z_loss"])
    _validate.gradient_request(return_grad, grad_output, None)
    classes = x.shape[axis]
    position_shape = x.shape[:axis] + x.shape[axis + 1:]
    target = _as_dask(target)
    probabilities = target.shape == x.shape and function is fl.cross_entropy
    if probabilities:
        _validate.probability_target(_dtype_probe(target), compute, ignore)
    elif target.shape == position_shape:
        _validate.class_target(_dtype_probe(target), classes, ignore)
    else:
        expected = f"the input's shape without the class axis {position_shape}"
        if function is fl.cross_entropy:
            expected += f" (class indices) or the input's shape {x.shape} (probabilities)"
        raise ValueError(f"target of shape {target.shape} does not match input {x.shape}: expected {expected}")
    if weight is not None:
        weight = _as_dask(weight)
        _validate.class_weight(_shape_probe(weight), classes, weight.dtype)
    upstream = _upstream(grad_output, position_shape if reduction == "none" else (), reduction)

    x = _one_chunk_along(x, [axis], "the class axis must be one chunk", 3)
    letters = _LETTERS[:x.ndim]
    class_letter = letters[axis]
    position_letters = letters.replace(class_letter, "")
    if probabilities:
        second, second_letters = target.rechunk(x.chunks), letters
    else:
        second, second_letters = _aligned(target, position_letters, *_loss_geometry(x, position_letters))
    keyword_arrays = {"ignore_index": ignore, "axis": axis, **options}
    if weight is not None:
        keyword_arrays["weight"] = (weight.astype(compute).rechunk(-1), class_letter)
    call = _ChunkCall(function, reduction, return_grad, compute, result,
                      loss_axes=tuple(ax for ax in range(x.ndim) if ax != axis))
    normaliser = 1.0
    if reduction == "mean" and probabilities:  # torch divides by the number of positions, whatever the weights
        normaliser = float(math.prod(position_shape))
    elif reduction == "mean" and return_grad:  # the gradient's scale needs the normaliser first
        weights = (keyword_arrays["weight"] if weight is not None else (None, None))
        kept = da.blockwise(_kept_weight_partial, second_letters + _PARTS, second, second_letters, *weights,
                            ignore, None, classes, None, concatenate=True, new_axes={_PARTS: 1},
                            adjust_chunks={letter: 1 for letter in second_letters},
                            meta=np.empty((0,) * (len(second_letters) + 1), np.float64))
        normaliser = _lazy_scalar(_total, kept)
    else:
        call.counts_kept = reduction == "mean"  # the loss's tasks sum the normaliser too
    return _run(call, x, second, second_letters, keyword_arrays, normaliser, upstream, position_letters)


_CLASS_ARGUMENTS = """
    weight : dask.array.Array or array_like, optional
        A rescaling weight per class, shape ``(C,)``.
    ignore_index : int, optional
        A class target that contributes neither loss nor gradient (default -100).
    reduction : {"mean", "sum", "none"}, optional
        torch's: "mean" divides the loss summed over all chunks by the weights
        of the non-ignored targets summed over all chunks.
    axis : int, optional
        The class axis (default 1); rechunked into one chunk, with a
        ``dask.array.PerformanceWarning``, if it spans several.
"""

_GRADIENT_ARGUMENTS = """
    return_grad : bool, optional
        Also return the lazy gradient with respect to ``input``, from the same tasks.
    grad_output : dask.array.Array or array_like, optional
        The upstream gradient (default 1): a scalar for the reductions, an array
        broadcastable to the loss for "none".  Needs ``return_grad=True``.

    Returns
    -------
    loss : dask.array.Array
        0-d for the reductions; for "none" the loss of every position, chunked
        like the input's positions.
    grad : dask.array.Array
        Only with ``return_grad=True``: the gradient, chunked like the input
        (after any rechunking of the class axis).

    Raises
    ------
    ValueError, TypeError
        As the in-memory function, before any graph is built, for shapes,
        dtypes and options.
    IndexError
        When the result is computed, for a class target out of range in any chunk.
"""


@_documented("""Negative log-likelihood of class targets over dask arrays, as :func:`fastloss.nll_loss`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Log-probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : dask.array.Array or array_like of int
        Class indices, the input's shape without the class axis.
    """ + _CLASS_ARGUMENTS + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> logp = da.from_array(np.log(np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])), chunks=(2, 2))
    >>> round(float(fld.nll_loss(logp, np.array([0, 1, -100])).compute()), 6)
    0.490415
    """)
def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", axis=1,
             return_grad=False, grad_output=None):
    return _class_loss(fl.nll_loss, input, target, weight, ignore_index, reduction, axis, return_grad,
                       grad_output, {})


@_documented("""Cross-entropy of logits over dask arrays, as :func:`fastloss.cross_entropy`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : dask.array.Array or array_like
        Class indices (integers, the input's shape without the class axis) or
        class probabilities (floating, the input's shape).
    """ + _CLASS_ARGUMENTS + """
    label_smoothing : float, optional
        In [0, 1], as torch's.
    z_loss : float, optional
        At least 0: adds ``z_loss * logsumexp(input)**2`` to each position's loss.
    """ + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> logits = da.from_array(np.array([[-1.0, -3.0, 4.0], [-3.0, 3.0, -1.0]]), chunks=(1, 3))
    >>> loss, grad = fld.cross_entropy(logits, np.array([0, 1]), return_grad=True)
    >>> round(float(loss.compute()), 4)
    2.5141
    >>> grad.compute().round(3)
    array([[-0.497,  0.   ,  0.496],
           [ 0.001, -0.01 ,  0.009]])
    """)
def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  axis=1, return_grad=False, grad_output=None, z_loss=0.0):
    return _class_loss(fl.cross_entropy, input, target, weight, ignore_index, reduction, axis, return_grad,
                       grad_output, {"label_smoothing": label_smoothing, "z_loss": z_loss})


# -- elementwise losses --------------------------------------------------------------------------
def _elementwise_loss(function, input, target, factors, reduction, return_grad, grad_output, options=None,
                      reductions=_validate.REDUCTIONS):
    """The elementwise loss ``function`` over the chunks; ``factors`` maps its array keywords
    (``weight``, ``pos_weight``) to what the caller passed, ``options`` its scalar ones."""
    x, compute, result = _input(input)
    target = _as_dask(target)
    _validate.float_dtypes(target, "target")
    _validate.same_shape(target, x.shape, "target")
    reduction = _validate.reduction(reduction, reductions)
    _validate.gradient_request(return_grad, grad_output, None)
    letters = _LETTERS[:x.ndim]
    keyword_arrays = dict(options or {})
    for name, value in factors.items():
        if value is not None:
            value = _as_dask(value)
            _elementwise_losses._broadcast_factor(_shape_probe(value), name, x.shape, value.dtype)
            keyword_arrays[name] = _aligned(value.astype(compute), letters, x.shape, x.chunks)
    upstream = _upstream(grad_output, x.shape if reduction == "none" else (), reduction)
    call = _ChunkCall(function, reduction, return_grad, compute, result)
    return _run(call, x, target.astype(compute).rechunk(x.chunks), letters, keyword_arrays,
                reduction_divisor(reduction, x.shape), upstream)


_LOGITS_AND_TARGETS = """
    Parameters
    ----------
    input : dask.array.Array or array_like
        Logits, any shape.
    target : dask.array.Array or array_like
        Targets of the input's shape.
"""

_ELEMENTWISE_REDUCTION = """
    reduction : {"mean", "sum", "none"}, optional
        "mean" divides the loss summed over all chunks by the number of elements.
"""


@_documented("""Binary cross-entropy of probabilities over dask arrays, as :func:`fastloss.binary_cross_entropy`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Probabilities in [0, 1] (checked chunk by chunk, when computed).
    target : dask.array.Array or array_like
        Targets of the input's shape.
    weight : dask.array.Array or array_like, optional
        A rescaling weight that broadcasts against the input.
    """ + _ELEMENTWISE_REDUCTION + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> p = da.from_array(np.array([0.9, 0.2, 0.6, 0.5]), chunks=3)
    >>> round(float(fld.binary_cross_entropy(p, np.array([1.0, 0.0, 1.0, 1.0])).compute()), 6)
    0.383119
    """)
def binary_cross_entropy(input, target, weight=None, *, reduction="mean", return_grad=False, grad_output=None):
    return _elementwise_loss(fl.binary_cross_entropy, input, target, {"weight": weight}, reduction,
                             return_grad, grad_output)


@_documented("""Binary cross-entropy of logits over dask arrays, as :func:`fastloss.binary_cross_entropy_with_logits`.
""" + _LOGITS_AND_TARGETS + """    weight : dask.array.Array or array_like, optional
        A rescaling weight that broadcasts against the input.
    pos_weight : dask.array.Array or array_like, optional
        A weight of the positive term that broadcasts against the input.
    """ + _ELEMENTWISE_REDUCTION + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> logits = da.from_array(np.array([[0.2], [-1.0], [2.0]]), chunks=2)
    >>> target = np.array([[1.0], [0.0], [1.0]])
    >>> round(float(fld.binary_cross_entropy_with_logits(logits, target).compute()), 6)
    0.34611
    """)
def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None, reduction="mean",
                                     return_grad=False, grad_output=None):
    return _elementwise_loss(fl.binary_cross_entropy_with_logits, input, target,
                             {"weight": weight, "pos_weight": pos_weight}, reduction, return_grad, grad_output)


@_documented("""Sigmoid focal loss of logits over dask arrays, as :func:`fastloss.sigmoid_focal_loss`.
""" + _LOGITS_AND_TARGETS + """    alpha : float, optional
        The weight of the positive term (negative: none), 0.25 by default.
    gamma : float, optional
        The focusing exponent, at least 0 (2 by default).
    reduction : {"none", "mean", "sum"}, optional
        "none" (the default, as torchvision's); "mean" divides the loss summed
        over all chunks by the number of elements.
    """ + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> logits = da.from_array(np.array([[2.0, -1.0], [-3.0, 0.5]]), chunks=1)
    >>> fld.sigmoid_focal_loss(logits, np.array([[1.0, 0.0], [1.0, 0.0]])).compute().round(4).tolist()
    [[0.0005, 0.017], [0.6916, 0.2831]]
    """)
def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none", return_grad=False,
                       grad_output=None):
    alpha, gamma = _validate.focal_parameters(alpha, gamma)
    return _elementwise_loss(fl.sigmoid_focal_loss, input, target, {}, reduction, return_grad, grad_output,
                             {"alpha": alpha, "gamma": gamma})


@_documented("""Pointwise KL divergence over dask arrays, as :func:`fastloss.kl_div`.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Log-probabilities, any shape.
    target : dask.array.Array or array_like
        Probabilities (log-probabilities with ``log_target=True``), the input's shape.
    reduction : {"mean", "batchmean", "sum", "none"}, optional
        torch's: "batchmean" divides the loss summed over all chunks by the
        size of the first axis (the whole array's, not a chunk's).
    log_target : bool, optional
        Whether ``target`` holds log-probabilities.
    """ + _GRADIENT_ARGUMENTS + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> log_q = da.from_array(np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])), chunks=(1, 3))
    >>> p = np.array([[0.25, 0.25, 0.5], [0.0, 0.2, 0.8]])
    >>> round(float(fld.kl_div(log_q, p, reduction="batchmean").compute()), 6)
    0.155958
    """)
def kl_div(input, target, *, reduction="mean", log_target=False, return_grad=False, grad_output=None):
    return _elementwise_loss(fl.kl_div, input, target, {}, reduction, return_grad, grad_output,
                             {"log_target": log_target}, _validate.KL_REDUCTIONS)


# -- losses over the class axis of two inputs, and over whole samples --------------------------
@_documented("""Knowledge-distillation loss over dask arrays, as :func:`fastloss.distillation_loss`.

    Parameters
    ----------
    student_logits : dask.array.Array or array_like
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    teacher_logits : dask.array.Array or array_like
        Logits of the student's shape (rechunked like it).
    temperature : float, optional
        Finite and above 0 (default 1).
    axis : int, optional
        The class axis (default 1); rechunked into one chunk, with a
        ``dask.array.PerformanceWarning``, if it spans several.
    reduction : {"batchmean", "sum", "mean", "none"}, optional
        "batchmean" divides the loss summed over all chunks by the whole
        array's ``shape[0]``, "mean" by its number of elements.
    """ + _GRADIENT_ARGUMENTS.replace("``input``", "``student_logits``") + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> student = da.from_array(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), chunks=(1, 3))
    >>> teacher = np.array([[3.0, 0.5, 0.2], [0.1, 3.0, 1.0]])
    >>> round(float(fld.distillation_loss(student, teacher, temperature=2.0).compute()), 6)
    0.133129
    """)
def distillation_loss(student_logits, teacher_logits, *, temperature=1.0, axis=1, reduction="batchmean",
                      return_grad=False, grad_output=None):
    x, compute, result = _input(student_logits, "student_logits")
    if x.ndim == 0:
        raise ValueError("student_logits must have at least one dimension, the class axis")
    teacher = _as_dask(teacher_logits)
    _validate.float_dtypes(teacher, "teacher_logits")
    _validate.same_shape(teacher, x.shape, "teacher_logits")
    temperature = _validate.finite_real(temperature, "temperature", 0.0, strict=True)
    axis = _validate.class_axis(axis, x.ndim)
    reduction = _validate.reduction(reduction, _validate.KL_REDUCTIONS)
    _validate.gradient_request(return_grad, grad_output, None)
    upstream = _upstream(grad_output, x.shape if reduction == "none" else (), reduction)
    x = _one_chunk_along(x, [axis], "the class axis must be one chunk", 2)
    call = _ChunkCall(fl.distillation_loss, reduction, return_grad, compute, result)
    return _run(call, x, teacher.astype(compute).rechunk(x.chunks), _LETTERS[:x.ndim],
                {"temperature": temperature, "axis": axis}, reduction_divisor(reduction, x.shape), upstream)


@_documented("""Soft Dice loss over dask arrays, as :func:`fastloss.dice_loss`, exactly.

    The loss of a (sample, class) is a function of sums over all of the
    sample's positions, so each sample must lie in one chunk: the class and
    spatial axes are rechunked into one chunk, with a
    ``dask.array.PerformanceWarning``, if they span several; the batch axis
    may be chunked freely.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Logits (probabilities with ``activation=None``), ``(N, C, d1, ..., dK)`` or ``(N, C)``.
    target : dask.array.Array or array_like
        Class indices (the input's shape without the class axis) or per-class
        targets (floating, the input's shape).
    axis : int, optional
        The class axis (default 1); the batch axis is the first of the others.
    activation : {"softmax", "sigmoid", None}, optional
        Applied to ``input`` first.
    smooth : float, optional
        Added to numerator and denominator, at least 0 (default 1e-5).
    weight : dask.array.Array or array_like, optional
        A non-negative weight per class, shape ``(C,)``.
    reduction : {"mean", "sum", "none"}, optional
        "mean" over the N x C losses of the whole array, their "sum", or
        "none": an ``(N, C)`` array chunked like the batch axis.
    """ + _GRADIENT_ARGUMENTS.replace("broadcastable to the loss", "broadcastable to ``(N, C)``") + """
    Examples
    --------
    >>> import dask.array as da, numpy as np, fastloss.dask as fld
    >>> logits = da.from_array(np.array([[[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]]]), chunks=(1, 2, 3))
    >>> round(float(fld.dice_loss(logits, np.array([[0, 1, 1]])).compute()), 4)
    0.2336
    """)
def dice_loss(input, target, *, axis=1, activation="softmax", smooth=1e-5, weight=None, reduction="mean",
              return_grad=False, grad_output=None):
    x, compute, result = _input(input)
    if x.ndim < 2:
        raise ValueError(f"input must have at least two dimensions, a batch and a class axis; got shape {x.shape}")
    axis = _validate.axis(axis, x.ndim)
    _dice._activation_code(activation)
    smooth = _validate.finite_real(smooth, "smooth", 0.0)
    reduction = _validate.reduction(reduction)
    _validate.gradient_request(return_grad, grad_output, None)
    batch = 1 if axis == 0 else 0
    samples, classes = x.shape[batch], x.shape[axis]
    position_shape = x.shape[:axis] + x.shape[axis + 1:]
    target = _as_dask(target)
    probabilities = target.shape == x.shape
    if probabilities:
        _validate.probability_target(_dtype_probe(target), compute, ignore=-1)
    elif target.shape == position_shape:
        _dice._class_indices(_dtype_probe(target), classes)
    else:
        raise ValueError(
            f"target of shape {target.shape} does not match input {x.shape}: expected the input's shape "
            f"without the class axis {position_shape} (class indices) or the input's shape (probabilities)")
    if weight is not None:
        weight = _as_dask(weight)
        _validate.class_weight(_shape_probe(weight), classes, weight.dtype)
    upstream = _upstream(grad_output, (samples, classes) if reduction == "none" else (), reduction)

    x = _one_chunk_along(x, [ax for ax in range(x.ndim) if ax != batch],
                         "the Dice loss of a sample sums over all its positions", 2)
    letters = _LETTERS[:x.ndim]
    position_letters = letters.replace(letters[axis], "")
    if probabilities:
        second, second_letters = target.rechunk(x.chunks), letters
    else:
        second, second_letters = _aligned(target, position_letters, *_loss_geometry(x, position_letters))
    keyword_arrays = {"axis": axis, "activation": activation, "smooth": smooth}
    if weight is not None:
        keyword_arrays["weight"] = (weight.rechunk(-1), letters[axis])
    loss_letters = letters[batch] + letters[axis]
    call = _ChunkCall(fl.dice_loss, reduction, return_grad, compute, result,
                      loss_axes=(batch, axis), transposed=axis < batch)
    outcome = _run(call, x, second, second_letters, keyword_arrays,
                   float(samples * classes) if reduction == "mean" else 1.0, upstream, loss_letters)
    if reduction != "none" or axis > batch:
        return outcome
    loss, *grad = outcome if return_grad else (outcome,)
    return (loss.T, *grad) if return_grad else loss.T
