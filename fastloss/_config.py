"""``fastloss.show_config()``: what this install runs on, for a bug report."""
import importlib
import importlib.metadata
import os
import platform
import sys

# CPU features worth naming in a report: what the machine-specific paths of
# either backend use (x86-64 levels, AVX-512, streaming stores) or could use.
REPORTED_FEATURES = ("sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512dq",
                     "avx512vl", "avx512fp16", "amx-tile", "neon", "sve", "sve2")
OPTIONAL_PACKAGES = ("torch", "jax", "dask")


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's name from Linux's cpuinfo: its "model name" (x86) or "Model" line; on Arm,
    which names no model, its implementer and part codes (the first core's); else what
    `platform` knows."""
    fields = {}
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model"):
        if fields.get(key):
            return fields[key]
    if fields.get("CPU implementer") and fields.get("CPU part"):
        return f"Arm implementer {fields['CPU implementer']}, part {fields['CPU part']}"
    return platform.processor() or "unknown"


def _cpu():
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return {
        "model": _cpu_model(),
        "architecture": platform.machine(),
        "llvm name": llvm.get_host_cpu_name(),
        "cores available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "features": [name for name in REPORTED_FEATURES if features.get(name, False)],
    }


def _cython():
    try:
        cython_backend = importlib.import_module("fastloss._cython")
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    from fastloss._cython import threads

    levels = threads.cpu_levels()
    built = []
    for level in levels:
        try:
            importlib.import_module(f"fastloss._cython.{level}.{cython_backend.KERNEL_FAMILIES[0]}")
            built.append(level)
        except ImportError:
            pass
    chosen = cython_backend.BUILD.rpartition(".")[2]
    chosen = "baseline" if chosen == "_cython" else chosen
    if os.environ.get("FASTLOSS_PORTABLE", "").strip() not in ("", "0"):
        why = "FASTLOSS_PORTABLE is set: the portable build"
    elif os.environ.get("FASTLOSS_CPU"):
        why = f"FASTLOSS_CPU={os.environ['FASTLOSS_CPU']} caps the level"
    elif built:
        why = "the best level this CPU runs that was built"
    elif levels:
        why = "this CPU runs " + ", ".join(levels) + " but no such build was made"
    else:
        why = "this CPU runs no x86-64 level beyond the baseline"
    return {
        "available": True,
        "build": chosen,
        "why": why,
        "levels this CPU runs": levels,
        "levels built and runnable": built,
        "compiler": threads.COMPILER,
        "openmp": (f"yes (_OPENMP {threads.OPENMP_VERSION})" if threads.OPENMP
                   else "no: built without OpenMP, the kernels run on one thread"),
        "threads": threads.get_num_threads(),
    }


def _numba():
    try:
        numba_backend = importlib.import_module("fastloss._numba")
    except ImportError as exc:
        return {"available": False, "error": str(exc)}
    import numba
    from numba.core.registry import cpu_target

    from fastloss._numba import cache, machine

    _, cpu_name, _ = cpu_target.target_context.codegen().magic_tuple()
    return {
        "available": True,
        "threading layer": numba_backend.THREADING_LAYER,
        "threads": numba.config.NUMBA_NUM_THREADS,
        "compiles for CPU": cpu_name,
        "machine-specific paths": {"streaming stores": machine.STREAMING, "AVX-512 table exp": machine.TABLE_EXP},
        "cache folder": cache.cache_dir(),
    }


def config():
    """The report of `show_config` as nested dicts."""
    import numpy

    import fastloss

    return {
        "fastloss": {"version": fastloss.__version__, "location": os.path.dirname(fastloss.__file__),
                     "default backend": fastloss.get_backend(), "threads": fastloss.get_num_threads()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable, "platform": platform.platform()},
        "dependencies": {"numpy": numpy.__version__, "numba": _version("numba"),
                         "llvmlite": _version("llvmlite")},
        "optional": {name: _version(name) or "not installed" for name in OPTIONAL_PACKAGES},
        "cpu": _cpu(),
        "cython backend": _cython(),
        "numba backend": _numba(),
        "environment": {name: value for name, value in sorted(os.environ.items())
                        if name.startswith(("FASTLOSS_", "NUMBA_", "OMP_"))},
    }


def _lines(section, indent=""):
    for key, value in section.items():
        if isinstance(value, dict) and value:
            yield f"{indent}{key}:"
            yield from _lines(value, indent + "  ")
        else:
            shown = (", ".join(map(str, value)) or "none") if isinstance(value, (list, dict)) else value
            yield f"{indent}{key}: {shown}"


def show_config(mode="stdout"):
    """Print (or return) what fastloss runs on here: the report to paste into a bug report.

    Versions (fastloss, Python, NumPy, Numba, the optional torch / JAX / dask),
    the CPU and its features, the Cython backend's build (the x86-64 level chosen
    and why, the compiler, OpenMP and its threads) and the Numba backend's
    (threading layer, threads, the CPU it compiles for, its cache folder), and
    the ``FASTLOSS_*``, ``NUMBA_*`` and ``OMP_*`` environment variables.
    Importing the Numba backend for the report takes about a second.
    The same report is printed by ``python -m fastloss --info``.

    Parameters
    ----------
    mode : {"stdout", "dicts"}, default "stdout"
        ``"stdout"`` prints the report; ``"dicts"`` returns it as nested dicts
        instead (as ``numpy.show_config`` does).

    Returns
    -------
    dict or None
        The report when ``mode="dicts"``.

    Raises
    ------
    ValueError
        If ``mode`` is neither.

    Examples
    --------
    >>> import fastloss as fl
    >>> report = fl.show_config(mode="dicts")
    >>> report["fastloss"]["version"] == fl.__version__
    True
    >>> sorted(report)[:3]
    ['cpu', 'cython backend', 'dependencies']
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    report = config()
    if mode == "dicts":
        return report
    print("\n".join(_lines(report)))
    return None
