"""The on-disk cache of the Numba kernels: keyed on every source they are built from, kept per user.

Numba's own cache (``cache=True``) stamps a kernel's entry with the file that
defines the kernel alone, while a kernel's machine code also holds every
helper it calls, from other modules (`vector_math`, `row_exp`, ...), and the
constants of ``fastloss/_constants.py``: an edit of one of those would leave
stale machine code in use.  And it writes beside the sources (``__pycache__``),
which fails, or falls back to a folder shared by every package, when the
package folder is read-only.

Every kernel of this backend is made by `njit` below instead.  Its cache entry
is stamped with `source_hash`, the hash of every file of ``SOURCES``, so any
edit of them recompiles every kernel; and it lives in `cache_dir`, a folder of
the user's: ``$FASTLOSS_CACHE_DIR``, else ``$NUMBA_CACHE_DIR``, else the user
cache folder (``~/.cache/fastloss`` on Linux), in a subfolder named by the
fastloss version and the source hash, so that two installs never overwrite
each other's entries.  Numba still keys each entry by the function's bytecode,
the argument types and the CPU (name and features), so the portable build
(``FASTLOSS_PORTABLE=1``) has entries of its own.  Old subfolders are never
read again and may be deleted.
"""
import functools
import hashlib
import os
import warnings
from pathlib import Path

import numba
from numba.core import caching, config
from numba.core.dispatcher import Dispatcher
from numba.misc.appdirs import AppDirs

from .. import __version__

_PACKAGE = Path(__file__).resolve().parent.parent

# Every file the kernels' machine code is built from.
SOURCES = (*sorted(_PACKAGE.joinpath("_numba").glob("*.py")), _PACKAGE / "_constants.py")


@functools.cache
def source_hash():
    """Hex SHA-256 of the names and contents of ``SOURCES``."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def cache_dir():
    """The folder of this install's cache entries (it may not exist yet)."""
    root = (os.environ.get("FASTLOSS_CACHE_DIR") or config.CACHE_DIR
            or AppDirs(appname="fastloss", appauthor=False).user_cache_dir)
    return os.path.join(root, f"fastloss-{__version__}-{source_hash()[:16]}")


class _SourceLocator(caching._CacheLocator):
    """Locates a kernel's entries in `cache_dir`, stamped with `source_hash`."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self):
        return cache_dir()

    def get_source_stamp(self):
        return source_hash()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


class _SourceKeyedImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_SourceLocator]


class SourceKeyedCache(caching.FunctionCache):
    """Numba's function cache with `_SourceLocator`; a folder that cannot be written
    to costs a warning and the caching, never the call."""

    _impl_class = _SourceKeyedImpl

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError as exc:
            warnings.warn(f"fastloss cannot write its Numba cache to {self.cache_path} ({exc}); "
                          "set FASTLOSS_CACHE_DIR to a writable folder", RuntimeWarning, stacklevel=2)
            self.disable()


def njit(*, cache=False, **options):
    """``numba.njit(cache=cache, **options)``, the cache a `SourceKeyedCache` rather than Numba's own.

    Examples
    --------
    >>> import numpy as np
    >>> from fastloss._numba.cache import njit
    >>> @njit(cache=True, error_model="numpy")
    ... def double(x):
    ...     return 2 * x
    >>> double(np.float32(1.5))
    3.0
    """
    def decorate(func):
        dispatcher = numba.njit(**options)(func)
        if cache and isinstance(dispatcher, Dispatcher):  # not a Dispatcher under NUMBA_DISABLE_JIT
            # What Dispatcher.enable_caching does, with this cache class.
            dispatcher._cache = SourceKeyedCache(func)
        return dispatcher

    return decorate
