"""The kernel families of the Cython backend: one extension module each.

``setup.py`` builds every family for each x86-64 level (reading this file
with ``runpy``, so the build imports no fastloss), and ``fastloss._cython``
loads them from the build it picks.
"""
KERNEL_FAMILIES = ("normalisers", "nll", "cross_entropy", "elementwise", "distillation", "dice")
