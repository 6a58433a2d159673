"""The switch that forces the portable kernels in both backends.

``FASTLOSS_PORTABLE=1`` (read once, at import) makes the Cython backend load
its baseline build, which holds no instruction-set intrinsics, and makes the
Numba backend compile for a generic CPU with every machine-specific path of
``fastloss._numba.machine`` turned off.  The results stay within rounding of
the default paths; CI runs the whole test suite a second time with it set.
"""
import os


def portable_forced():
    """Whether ``FASTLOSS_PORTABLE`` asks for the portable kernels (any value but "", "0")."""
    return os.environ.get("FASTLOSS_PORTABLE", "").strip() not in ("", "0")
