"""Backend selection and the kernel interface both backends implement.

The front layer (``_class_losses.py``, ``_elementwise_losses.py``,
``_normalisers.py``) hands every kernel canonical views and
never anything else, so a kernel only has to be fast and correct on them.

Canonical views
---------------
* ``x``: a C-contiguous ``(outer, C, inner)`` float32 or float64 array, the
  class axis in the middle.  ``inner == 1`` is an ``(N, C)`` batch or
  channels-last data (a row of C contiguous values per position); ``inner > 1``
  is a spatial map whose class stride is ``inner``.
* class targets: a C-contiguous ``(outer, inner)`` int64 array, every value
  already checked (by ``ignored_targets``) to lie in ``[0, C)`` or to equal
  ``ignore_index``.
* per-position arrays (``grad_output``, ``loss_out``): C-contiguous
  ``(outer, inner)`` arrays of x's dtype.
* class vectors (``weight``): C-contiguous ``(C,)`` arrays of x's dtype.
* An optional array that was not given is passed as the backend module's
  ``absent(ndim, dtype)``: an array of size 0 (same ndim and dtype) for Numba,
  so each kernel compiles once per dtype; None for Cython, whose typed
  memoryviews take it at no cost (they take a size-0 array as well).
* Output buffers may alias inputs of the same shape: ``out`` may be ``x``,
  ``grad_out`` may be ``x`` (the gradient written in place), and the backward
  kernels' ``out`` may be ``grad_output`` or ``output``.  Kernels read every
  input element they need before writing the output element at that index.

Kernels (same names and arguments in ``fastloss._numba`` and ``fastloss._cython``)
-----------------------------------------------------------------------------------
``softmax(x, out)``, ``log_softmax(x, out)``
    Normalise over the class axis.
``softmax_backward(grad_output, output, out)``
    ``out = output * (grad_output - sum_c(grad_output * output))``.
``log_softmax_backward(grad_output, output, out)``
    ``out = grad_output - exp(output) * sum_c(grad_output)``.
``ignored_targets(target, classes, ignore_index) -> int``
    The number of class targets equal to ``ignore_index``, or -1 if one lies
    outside ``[0, classes)`` without being ``ignore_index``: the range check of
    the class losses, on their canonical target view, before any kernel writes.
``nll_loss(logp, target, weight, ignore_index, grad_scale, grad_output, loss_out, grad_out) -> float``
``cross_entropy_class(x, target, weight, ignore_index, label_smoothing, grad_scale, grad_output, loss_out, grad_out) -> float``
``cross_entropy_prob(x, target, weight, label_smoothing, grad_scale, grad_output, loss_out, grad_out) -> float``
    ``target`` of ``cross_entropy_prob`` is an ``(outer, C, inner)`` array of
    x's dtype.  Each position ``i`` has the loss ``l_i`` (0 for an ignored
    target); the kernel returns ``sum_i l_i`` as a float64, writes ``l_i``
    into ``loss_out`` when it is given, and writes
    ``g_i * d l_i / d x`` into ``grad_out`` when it is given, where
    ``g_i = grad_scale * grad_output[i]`` (``grad_scale`` alone when
    ``grad_output`` is absent).  An ignored position gets torch's gradient
    there: zero from ``nll_loss``; ``0 * softmax`` from ``cross_entropy_class``,
    i.e. zero, or NaN where the position's softmax is NaN.
Elementwise kernels, one per elementwise loss of ``fastloss._registry.LOSSES``:
``name(x, y, weight, *arguments, grad_scale, grad_output, loss_out, grad_out) -> float``
    ``arguments`` are those its registry ``KernelCall`` names, e.g.
    ``binary_cross_entropy(p, y, weight, ...)`` and
    ``binary_cross_entropy_with_logits(x, y, weight, pos_weight, ...)``.
    ``x``, ``y``, ``grad_output``, ``loss_out`` and ``grad_out`` are
    ``(outer, K, inner)`` arrays; ``weight`` and per-element factors such as
    ``pos_weight`` are ``(K,)`` vectors broadcast along the middle axis.
``dice_class(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out) -> float``
``dice_prob(x, target, weight, activation, smooth, samples, grad_scale, grad_output, loss_out, grad_out) -> float``
    The Dice loss of each (sample, class): x's ``outer`` rows are ``samples``
    runs of equal length, one per sample; ``activation`` is the index in
    ``fastloss._dice.ACTIVATIONS``; ``grad_output`` and ``loss_out`` are
    ``(samples, C)``.  See ``fastloss/_numba/dice.py``.

Determinism: positions are cut into blocks whose bounds depend on the array
shape only; each block's partial sum is accumulated in float64 in position
order and the partials are added in block order, so a result is bitwise the
same for any thread count.

Threads: each backend module has ``set_num_threads(n)`` and
``get_num_threads()``; both act on the calling thread only, so the dispatcher
sets the count before every kernel call.
"""

import contextlib
import contextvars
import importlib
import os
import sys

from ._constants import BLOCK_ELEMS

BACKENDS = ("numba", "cython")

# The context manager overrides the process-wide choice per thread / task, so
# threads that use different backends at once do not race on a global.
_scoped_backend = contextvars.ContextVar("fastloss_backend", default=None)


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_name(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    return name


def _import(name):
    module = sys.modules.get(f"fastloss._{name}")  # every call asks: skip importlib's locks
    if module is not None:
        return module
    try:
        return importlib.import_module(f"fastloss._{name}")
    except ImportError as exc:
        raise ImportError(
            f"the {name} backend of fastloss cannot be imported ({exc}); "
            "reinstall fastloss with `pip install .` so its extensions are built"
        ) from exc


def _default_backend():
    requested = os.environ.get("FASTLOSS_BACKEND")
    if requested:
        return _check_name(requested.strip().lower())
    try:  # the compiled backend needs no JIT warm-up
        _import("cython")
        return "cython"
    except ImportError:
        return "numba"


_process_backend = _default_backend()
_num_threads = _available_cores()


def get_backend():
    """Return the name of the active backend, ``"numba"`` or ``"cython"``.

    Examples
    --------
    >>> import fastloss as fl
    >>> fl.get_backend() in ("numba", "cython")
    True
    """
    return _scoped_backend.get() or _process_backend


def set_backend(name):
    """Make ``name`` (``"numba"`` or ``"cython"``) the backend of every later call.

    Inside a :func:`backend` block the change lasts until the block ends.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend.
    ImportError
        If that backend cannot be loaded (e.g. the Cython extensions were not built).

    Examples
    --------
    >>> import fastloss as fl
    >>> previous = fl.get_backend()
    >>> fl.set_backend("numba")
    >>> fl.get_backend()
    'numba'
    >>> fl.set_backend(previous)
    """
    global _process_backend
    _import(_check_name(name))
    if _scoped_backend.get() is not None:
        _scoped_backend.set(name)
    else:
        _process_backend = name


@contextlib.contextmanager
def backend(name):
    """Use backend ``name`` inside a ``with`` block, then restore the previous one.

    The choice is local to the calling thread (and asyncio task).

    Examples
    --------
    >>> import fastloss as fl
    >>> with fl.backend("numba"):
    ...     fl.get_backend()
    'numba'
    """
    _import(_check_name(name))
    token = _scoped_backend.set(name)
    try:
        yield
    finally:
        _scoped_backend.reset(token)


def get_num_threads():
    """Return how many threads the kernels use (default: the cores this process may run on).

    Examples
    --------
    >>> import fastloss as fl
    >>> fl.get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(n):
    """Make every kernel of both backends use ``n`` threads.

    Results do not depend on ``n``: reductions use a partition fixed by the data shape.

    Raises
    ------
    ValueError
        If ``n`` is not an integer from 1 to the number of available cores.

    Examples
    --------
    >>> import fastloss as fl
    >>> previous = fl.get_num_threads()
    >>> fl.set_num_threads(1)
    >>> fl.get_num_threads()
    1
    >>> fl.set_num_threads(previous)
    """
    global _num_threads
    limit = _available_cores()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"number of threads must be an integer from 1 to {limit}, got {n!r}")
    _num_threads = n


def kernels(elements):
    """The active backend's kernel module, with its thread count set for the calling thread.

    A call on ``elements`` elements that fit in one block (``BLOCK_ELEMS``) runs on the
    calling thread alone: waking the pool, and its barriers, would cost it more than its
    work (and a Numba kernel does not check its size before it launches the pool).
    """
    module = _import(get_backend())
    module.set_num_threads(1 if elements <= BLOCK_ELEMS else _num_threads)
    return module
