"""Build the Cython backend with OpenMP.

The kernels are built for baseline x86-64 and, on x86-64, again for the
x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512) levels, where glibc's vector
exp/log are several times faster; fastloss._cython picks the best build the
CPU runs at import.  FASTLOSS_NATIVE=1 instead builds once for this
machine's CPU (-march=native), which makes the build unusable on older CPUs.
"""
import os
import platform
import shutil
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNEL_FAMILIES = ["normalisers", "nll", "cross_entropy", "binary"]
BASE_ARGS = ["-O3", "-fopenmp", "-fno-math-errno"]
NATIVE = os.environ.get("FASTLOSS_NATIVE") == "1"
LEVELS = {} if NATIVE or platform.machine() not in ("x86_64", "AMD64") else {
    "x86_64_v3": ["-march=x86-64-v3"],
    "x86_64_v4": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
}


def extension(name, source, extra_args):
    return Extension(
        name, [source],
        include_dirs=[np.get_include(), "fastloss/_cython"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=BASE_ARGS + extra_args,
        extra_link_args=["-fopenmp"],
    )


def level_source(level, family):
    """A copy of a kernel source under the level's module path: Cython names a module by its file."""
    target = Path("build", "cython_levels", "fastloss", "_cython", level, f"{family}.pyx")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f"fastloss/_cython/{family}.pyx", target)
    return str(target)


baseline_args = ["-march=native"] if NATIVE else []
extensions = [extension(f"fastloss._cython.{family}", f"fastloss/_cython/{family}.pyx", baseline_args)
              for family in ["threads"] + KERNEL_FAMILIES]
extensions += [extension(f"fastloss._cython.{level}.{family}", level_source(level, family), args)
               for level, args in LEVELS.items() for family in KERNEL_FAMILIES]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["."],
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
