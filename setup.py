"""Build the Cython backend with OpenMP.

Portable by default: set FASTLOSS_NATIVE=1 to compile for the build machine's
CPU (-march=native), which makes the wheel unusable on older CPUs.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNEL_FAMILIES = ["threads", "normalisers", "nll", "cross_entropy", "binary"]

compile_args = ["-O3", "-fopenmp", "-fno-math-errno"]
if os.environ.get("FASTLOSS_NATIVE") == "1":
    compile_args.append("-march=native")

extensions = [
    Extension(
        f"fastloss._cython.{family}",
        [f"fastloss/_cython/{family}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=["-fopenmp"],
    )
    for family in KERNEL_FAMILIES
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
