"""``python -m fastloss warm-up``: compile every Numba kernel ahead of time, into the on-disk cache.

On an empty cache each Numba kernel compiles on its first call; the warm-up
makes those first calls, through the public functions (so exactly the
specialisations the front layer uses are built), for float32 and float64 and
every path a kernel has: rows (a batch ``(N, C)``), tiles (a spatial map
``(N, C, H, W)``), probability targets, a streamed gradient.  Later processes
load the kernels from the cache (`fastloss._numba.cache`).
"""
import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

import fastloss as fl
from ._constants import STREAM_BYTES, STREAM_ROW_BYTES

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Task:
    """One first call: a public function on one dtype and one path of its kernel."""

    function: str
    dtype: str
    path: str
    call: object  # the call, given the dtype

    def __str__(self):
        return f"{self.function} {self.dtype} {self.path}"


def _logits(dtype, shape):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _classes(shape, classes):
    return np.random.default_rng(1).integers(0, classes, shape)


def _probabilities(dtype, shape):
    x = _logits(dtype, shape)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(dtype)


def _binary(dtype, shape):
    return (np.random.default_rng(2).random(shape) < 0.5).astype(dtype)


# The shapes of the paths: rows (inner == 1) and tiles (inner > 1).
BATCH = (8, 5)
SPATIAL = (2, 5, 3, 4)


def _streamed_batch(dtype):
    """A batch whose gradient is streamed: STREAM_BYTES or more, rows that fit in L1."""
    itemsize = np.dtype(dtype).itemsize
    classes = STREAM_ROW_BYTES // itemsize
    return (-(-STREAM_BYTES // (classes * itemsize)), classes)


def _by_shape(run):
    """The batched and spatial paths of ``run(dtype, shape)``."""
    return [("batched", lambda dtype: run(dtype, BATCH)), ("spatial", lambda dtype: run(dtype, SPATIAL))]


def _normaliser_paths(name):
    def forward(dtype, shape):
        return getattr(fl, name)(_logits(dtype, shape), axis=1)

    def backward(dtype, shape):
        return getattr(fl, name)(_logits(dtype, shape), _probabilities(dtype, shape), axis=1)

    return _by_shape(backward if name.endswith("_backward") else forward)


def _class_target_paths(name):
    def run(dtype, shape):
        target = _classes(shape[:1] + shape[2:], shape[1])
        return getattr(fl, name)(_logits(dtype, shape), target, return_grad=True)

    return _by_shape(run)


def _cross_entropy_paths():
    def probabilities(dtype, shape):
        return fl.cross_entropy(_logits(dtype, shape), _probabilities(dtype, shape), return_grad=True)

    def streamed(dtype):
        shape = _streamed_batch(dtype)
        return fl.cross_entropy(_logits(dtype, shape), _classes(shape[:1], shape[1]), return_grad=True)

    return [*_class_target_paths("cross_entropy"),
            *[(f"{path} probabilities", call) for path, call in _by_shape(probabilities)],
            ("streamed gradient", streamed)]


def _elementwise_paths(name):
    def run(dtype, shape):
        x = _logits(dtype, shape)
        if name == "binary_cross_entropy":
            x = 1 / (1 + np.exp(-x))
        return getattr(fl, name)(x, _binary(dtype, shape), return_grad=True)

    if name == "sigmoid_focal_loss":  # its two kernels: gamma = 2 and any other gamma
        def focal(dtype, shape, gamma):
            return fl.sigmoid_focal_loss(_logits(dtype, shape), _binary(dtype, shape), gamma=gamma,
                                         return_grad=True)

        return [(f"{path}{'' if gamma == 2.0 else ' gamma 2.5'}",
                 lambda dtype, shape=shape, gamma=gamma: focal(dtype, shape, gamma))
                for path, shape in (("batched", BATCH), ("spatial", SPATIAL)) for gamma in (2.0, 2.5)]
    if name == "kl_div":  # its two kernels: probability and log-probability targets
        def divergence(dtype, shape, log_target):
            target = _probabilities(dtype, shape)
            return fl.kl_div(np.log(_probabilities(dtype, shape)), np.log(target) if log_target else target,
                             log_target=log_target, return_grad=True)

        return [(f"{path}{' log_target' if log_target else ''}",
                 lambda dtype, shape=shape, log_target=log_target: divergence(dtype, shape, log_target))
                for path, shape in (("batched", BATCH), ("spatial", SPATIAL)) for log_target in (False, True)]
    return _by_shape(run)


def _distillation_paths():
    def run(dtype, shape):
        return fl.distillation_loss(_logits(dtype, shape), _probabilities(dtype, shape), return_grad=True)

    return _by_shape(run)


def _dice_paths():
    def probabilities(dtype, shape):
        return fl.dice_loss(_logits(dtype, shape), _probabilities(dtype, shape), return_grad=True)

    return [*_class_target_paths("dice_loss"),
            *[(f"{path} probabilities", call) for path, call in _by_shape(probabilities)]]


def _paths():
    """``{public function: [(path, call(dtype)), ...]}``."""
    paths = {name: _normaliser_paths(name)
             for name in ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward")}
    paths["nll_loss"] = _class_target_paths("nll_loss")
    paths["cross_entropy"] = _cross_entropy_paths()
    paths.update({name: _elementwise_paths(name) for name in fl._elementwise_losses.__all__})
    paths["distillation_loss"] = _distillation_paths()
    paths["dice_loss"] = _dice_paths()
    return paths


def tasks(functions=None, dtypes=DTYPES):
    """The first calls of the warm-up.

    Parameters
    ----------
    functions : iterable of str, optional
        Public function names (default: every public function with a kernel).
    dtypes : iterable of str, optional
        ``"float32"``, ``"float64"`` or both (the default).

    Returns
    -------
    list of Task

    Raises
    ------
    ValueError
        For a name that is not a public function with a kernel, or an unknown dtype.
    """
    paths = _paths()
    functions = list(paths) if functions is None else list(functions)
    unknown = [name for name in functions if name not in paths]
    unknown += [dtype for dtype in dtypes if dtype not in DTYPES]
    if unknown:
        raise ValueError(f"unknown function or dtype {unknown}: expected names of {sorted(paths)} "
                         f"and dtypes of {DTYPES}")
    return [Task(name, dtype, path, call) for dtype in dtypes for name in functions
            for path, call in paths[name]]


def warm_up(functions=None, dtypes=DTYPES, stream=sys.stderr):
    """Compile (or load from the cache) the Numba kernels of the public functions.

    Every call of `tasks` runs under the Numba backend, one line of progress
    each on ``stream``: ``[12/38] cross_entropy float32 spatial  3.1 s``.

    Parameters
    ----------
    functions : iterable of str, optional
        Public function names (default: all of them).
    dtypes : iterable of str, optional
        ``"float32"``, ``"float64"`` or both (the default).
    stream : file, optional
        Where the progress goes (default: standard error); None for none.

    Returns
    -------
    float
        Seconds the whole warm-up took.

    Raises
    ------
    ValueError
        As `tasks` does.

    Examples
    --------
    >>> from fastloss._warm_up import warm_up
    >>> warm_up(["softmax"], ["float64"], stream=None) >= 0
    True
    """
    todo = tasks(functions, dtypes)
    start = time.perf_counter()
    with fl.backend("numba"):
        for number, task in enumerate(todo, 1):
            task_start = time.perf_counter()
            task.call(np.dtype(task.dtype))
            if stream is not None:
                print(f"[{number}/{len(todo)}] {task}  {time.perf_counter() - task_start:.1f} s",
                      file=stream, flush=True)
    return time.perf_counter() - start


def main(argv=None):
    """``python -m fastloss warm-up [function ...] [--dtype float32|float64]``."""
    parser = argparse.ArgumentParser(prog="python -m fastloss warm-up", description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="*", help="public functions to warm up (default: all)")
    parser.add_argument("--dtype", choices=DTYPES, action="append",
                        help="a dtype to warm up (repeatable; default: both)")
    args = parser.parse_args(argv)
    from ._numba.cache import cache_dir

    try:
        seconds = warm_up(args.functions or None, args.dtype or DTYPES)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"warm-up done in {seconds:.1f} s; the kernels are cached in {cache_dir()}", file=sys.stderr)
