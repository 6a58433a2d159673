"""Numba backend of the fastloss kernels.

Kernels take the canonical views described in ``fastloss._backends`` and are
deterministic: bitwise the same for any thread count.  Importing compiles
nothing; a kernel compiles on first use for each dtype (and read-only-ness) of
its arguments and is cached on disk, in a folder of the user's, keyed on every
source file of the backend (see `cache`); ``python -m fastloss warm-up``
compiles them all ahead of time.

Modules
-------
normalisers
    softmax, log_softmax and their backward kernels.
nll, cross_entropy, elementwise
    The loss kernels; ``elementwise`` is the one driver of every loss in
    ``formulas.ELEMENTWISE`` (the binary cross-entropies).
dice
    The Dice loss: per-(sample, class) sums, then the gradient, in two passes.
distillation
    The distillation loss: a student's and a teacher's logits, rows or tiles
    of both read once.
formulas
    The math of each loss, one function per formula, and the registry of
    elementwise losses.
blocking, views, reductions, row_exp, tile_exp, streaming
    The pieces the loops are made of: the block partition, borrowed views,
    lane sums and maxima, the exp-sums of rows and of tiles, writing results
    out (with streaming stores where the machine has them).
vector_math
    Vectorisable exp, log and log1p.
machine, machine_table_exp
    Every machine-specific piece, behind guards with portable defaults.
threads
    Per-thread thread count.
cache
    The on-disk cache of the kernels and the `njit` that gives it to them.

``THREADING_LAYER`` is Numba's threading layer: OpenMP, else TBB, whichever
this install can load; else the workqueue layer, with kernel calls then
serialised, as that layer is not threadsafe.

``FASTLOSS_PORTABLE=1`` makes Numba compile for the generic CPU (see
`machine`): it must be set before Numba compiles anything in the process.
"""
import functools
import importlib
import threading

import numba
import numpy as np
from numba.core.registry import cpu_target

from .._portable import portable_forced


def _threadsafe_layer():
    """The first of Numba's threadsafe threading layers this install can load, or None.

    Several Python threads may call kernels at once: the workqueue layer is not
    threadsafe and aborts the process then; OpenMP and TBB are.  Numba's wheels
    do not ship both on every platform (TBB needs the separate tbb package).
    """
    for layer, module in (("omp", "omppool"), ("tbb", "tbbpool")):
        try:
            importlib.import_module(f"numba.np.ufunc.{module}")
        except ImportError:
            continue
        return layer
    return None


# Numba fixes the layer at its first parallel launch, so set it before any kernel.
THREADING_LAYER = _threadsafe_layer() or "workqueue"
numba.config.THREADING_LAYER = THREADING_LAYER
_one_caller = threading.Lock()


def _serialised(kernel):
    """``kernel`` called by one Python thread at a time: the workqueue layer's only safe use."""
    @functools.wraps(kernel)
    def call(*args):
        with _one_caller:
            return kernel(*args)
    return call


@functools.lru_cache(maxsize=64)
def absent(ndim, dtype):
    """What a kernel takes for an optional array that was not given: a size-0 array of that
    ndim and dtype (shared: nothing can be written to it), so that each kernel compiles once
    per dtype rather than once per combination of given and absent arguments."""
    return np.empty((0,) * ndim, dtype)


def _compile_for_generic_cpu():
    """Make Numba compile for the generic CPU of this architecture, with no extra features.

    Numba reads ``config.CPU_NAME`` and ``CPU_FEATURES`` when it creates its CPU
    codegen, along with the target context (a cached property of the CPU target
    in numba 0.68), which the first ``njit`` does; so this runs before any
    module of the package defines a kernel, and fails if the codegen exists
    already for another CPU.
    """
    if "_toplevel_target_context" in vars(cpu_target):
        _, cpu, features = cpu_target.target_context.codegen().magic_tuple()
        if (cpu, features) != ("generic", ""):
            raise RuntimeError(
                f"FASTLOSS_PORTABLE is set, but Numba already compiles for CPU {cpu!r} in this process: "
                "FASTLOSS_PORTABLE must be set before Numba compiles anything (set it in the environment "
                "before the process starts, or at least before the first numba.njit)")
    numba.config.CPU_NAME = "generic"
    numba.config.CPU_FEATURES = ""


if portable_forced():
    _compile_for_generic_cpu()

from .cross_entropy import cross_entropy_class, cross_entropy_prob  # noqa: E402
from .dice import dice_class, dice_prob  # noqa: E402
from .distillation import distillation_loss  # noqa: E402
from . import elementwise  # noqa: E402
from .elementwise import *  # noqa: E402,F401,F403 (one kernel per elementwise loss)
from .nll import ignored_targets, nll_loss  # noqa: E402
from .normalisers import log_softmax, log_softmax_backward, softmax, softmax_backward  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

KERNELS = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "ignored_targets", "nll_loss",
           "cross_entropy_class", "cross_entropy_prob", *elementwise.__all__]
KERNELS += ["dice_class", "dice_prob"]
KERNELS += ["distillation_loss"]
if THREADING_LAYER == "workqueue":
    globals().update({name: _serialised(globals()[name]) for name in KERNELS})

__all__ = [*KERNELS, "absent", "set_num_threads", "get_num_threads", "THREADING_LAYER"]
