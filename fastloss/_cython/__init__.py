"""Cython backend: OpenMP kernels over the canonical views of ``fastloss._backends``.

The kernels are built for several x86-64 levels (see ``setup.py``); the best
one this CPU runs is used.  ``FASTLOSS_CPU=baseline`` (or ``x86_64_v3``)
caps the level, e.g. to compare builds.  ``FASTLOSS_PORTABLE=1``
(``fastloss._portable.portable_forced``) selects the baseline build, the
portable one: it holds none of the machine-specific code of ``_machine.h``.

``BUILD`` names the package whose kernels are in use: ``"fastloss._cython"``
exactly when the portable (baseline) build is, else
``"fastloss._cython.x86_64_v3"`` or ``"fastloss._cython.x86_64_v4"``.

A build whose compiler took no OpenMP flag runs every kernel on one thread;
importing it warns once (a ``RuntimeWarning``), and ``fastloss.show_config()``
says so too.
"""
import importlib
import os
import warnings

from fastloss._cython._families import KERNEL_FAMILIES
from fastloss._cython.threads import OPENMP, cpu_levels, get_num_threads, set_num_threads
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


def absent(ndim, dtype):
    """What a kernel takes for an optional array that was not given: None, which a typed
    memoryview argument receives at no cost (a size-0 array costs it a buffer acquisition)."""
    return None


def _kernels(module):
    """The kernels a family module defines: its public functions (its ``def`` entry points)."""
    return {name: getattr(module, name) for name in dir(module)
            if not name.startswith("_") and callable(getattr(module, name))}


if not OPENMP:
    warnings.warn("fastloss's Cython kernels were built without OpenMP (the compiler took no OpenMP flag): "
                  "they run on one thread. Rebuild with an OpenMP-capable compiler (e.g. gcc, or clang "
                  "with libomp) for parallel kernels, or use the Numba backend.", RuntimeWarning, stacklevel=2)

BUILD = _best_build()
KERNELS = {}
for _family in KERNEL_FAMILIES:
    KERNELS.update(_kernels(importlib.import_module(f"{BUILD}.{_family}")))
globals().update(KERNELS)

__all__ = [*KERNELS, "absent", "set_num_threads", "get_num_threads", "BUILD"]
