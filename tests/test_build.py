"""What setup.py chose and what the Cython backend picks at import: the CPU level, OpenMP."""
import os
import platform
import subprocess
import sys

import llvmlite.binding as llvm

from fastloss._cython import threads

V3 = ["avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "popcnt", "sse4.2"]
V4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]


def test_cpu_levels_agree_with_llvm():
    """The CPUID/XCR0 reading of threads.pyx says what LLVM's host detection says."""
    features = llvm.get_host_cpu_features()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert threads.cpu_levels() == []
        return
    v3 = all(features.get(name, False) for name in V3)
    v4 = v3 and all(features.get(name, False) for name in V4)
    expected = ["x86_64_v4"] * v4 + ["x86_64_v3"] * v3
    assert threads.cpu_levels() == expected


def test_the_compiler_is_named():
    assert threads.COMPILER.split()[0] in ("gcc", "clang", "MSVC")


def test_without_openmp_the_import_warns_and_one_thread_runs():
    """The warning comes exactly from a build without OpenMP, whose thread count stays 1."""
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastloss._cython as cy\n"
            "print(any('without OpenMP' in str(w.message) for w in caught))\n"
            "cy.set_num_threads(2)\n"
            "print(cy.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1")).stdout.split()
    assert out == [str(not threads.OPENMP), "2" if threads.OPENMP else "1"]
    # OpenMP 3.0 is the least Cython's prange needs; a build without OpenMP reports version 0.
    assert threads.OPENMP_VERSION >= 200805 if threads.OPENMP else threads.OPENMP_VERSION == 0

