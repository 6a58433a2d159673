"""Numba backend of the fastloss kernels.

Kernels take the canonical views described in ``fastloss._backends`` and are
deterministic: bitwise the same for any thread count.  Importing compiles
nothing; a kernel compiles on first use for each dtype (and read-only-ness) of
its arguments and is cached on disk.

Modules
-------
normalisers
    softmax, log_softmax and their backward kernels.
nll, cross_entropy, binary
    The loss kernels.
threads
    Per-thread thread count.
"""
import numba

# Several Python threads may call kernels at once: the default workqueue
# layer is not threadsafe and aborts the process then, OpenMP is.  Numba
# fixes the layer at its first parallel launch, so set it before any kernel.
numba.config.THREADING_LAYER = "omp"

from .binary import binary_cross_entropy, binary_cross_entropy_with_logits  # noqa: E402
from .cross_entropy import cross_entropy_class, cross_entropy_prob  # noqa: E402
from .nll import nll_loss  # noqa: E402
from .normalisers import log_softmax, log_softmax_backward, softmax, softmax_backward  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402

__all__ = [
    "softmax",
    "log_softmax",
    "softmax_backward",
    "log_softmax_backward",
    "nll_loss",
    "cross_entropy_class",
    "cross_entropy_prob",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "set_num_threads",
    "get_num_threads",
]
