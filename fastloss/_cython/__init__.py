"""Cython backend: OpenMP kernels over the canonical views of ``fastloss._backends``.

The kernels are built for several x86-64 levels (see ``setup.py``); the best
one this CPU runs is used.  ``FASTLOSS_CPU=baseline`` (or ``x86_64_v3``)
caps the level, e.g. to compare builds.  ``FASTLOSS_PORTABLE=1``
(``fastloss._portable.portable_forced``) selects the baseline build, the
portable one: it holds none of the machine-specific code of ``_machine.h``.

``BUILD`` names the package whose kernels are in use: ``"fastloss._cython"``
exactly when the portable (baseline) build is, else
``"fastloss._cython.x86_64_v3"`` or ``"fastloss._cython.x86_64_v4"``.
"""
import importlib
import os

from fastloss._cython._families import KERNEL_FAMILIES
from fastloss._cython.threads import cpu_levels, get_num_threads, set_num_threads
from fastloss._portable import portable_forced


def _best_build():
    """The package holding the fastest kernel build this CPU runs (and that was built)."""
    cap = os.environ.get("FASTLOSS_CPU", "").strip().lower()
    levels = cpu_levels()
    if portable_forced() or cap == "baseline":
        levels = []
    elif cap in levels:
        levels = levels[levels.index(cap):]
    for level in levels:
        try:
            for family in KERNEL_FAMILIES:
                importlib.import_module(f"fastloss._cython.{level}.{family}")
        except ImportError:  # e.g. FASTLOSS_NATIVE=1 builds no levels
            continue
        return f"fastloss._cython.{level}"
    return "fastloss._cython"


BUILD = _best_build()
_normalisers, _nll, _cross_entropy, _elementwise = (
    importlib.import_module(f"{BUILD}.{family}") for family in KERNEL_FAMILIES)

softmax = _normalisers.softmax
log_softmax = _normalisers.log_softmax
softmax_backward = _normalisers.softmax_backward
log_softmax_backward = _normalisers.log_softmax_backward
nll_loss = _nll.nll_loss
cross_entropy_class = _cross_entropy.cross_entropy_class
cross_entropy_prob = _cross_entropy.cross_entropy_prob
binary_cross_entropy = _elementwise.binary_cross_entropy
binary_cross_entropy_with_logits = _elementwise.binary_cross_entropy_with_logits

__all__ = [
    "softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "nll_loss",
    "cross_entropy_class", "cross_entropy_prob", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "set_num_threads", "get_num_threads", "BUILD",
]
