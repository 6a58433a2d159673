"""Build the Cython backend, asking the compiler what it supports.

Every flag is probed with the compiler the build uses (as scikit-learn's
``_build_utils/openmp_helpers.py`` does): a small C program is compiled and
linked with it, and the flag is used only if that works.

* OpenMP: ``-fopenmp`` (gcc, clang), ``-Xpreprocessor -fopenmp -lomp`` (Apple
  clang, with libomp from ``$LIBOMP_PREFIX`` or Homebrew), ``/openmp`` (MSVC).
  Where none works the kernels build single-threaded, and fastloss warns of
  it at import (``fastloss._cython.threads.OPENMP`` is False).
* Optimisation flags, each on its own (``-O3``, ``-fno-math-errno``,
  ``-fno-trapping-math``; ``/O2`` for MSVC).
* Instruction-set levels: on an x86-64 target the kernels are built again for
  x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), where glibc's vector exp/log
  are faster and fastloss/_cython/_machine.h compiles its machine-specific
  paths, each with the first flag set the compiler accepts (``-march=x86-64-v3``,
  else the single ``-m`` features for compilers that predate the levels, else
  MSVC's ``/arch:AVX2``).  A level no flag set reaches is not built.
  fastloss._cython picks the best build the CPU runs at import (the baseline
  build is the portable one).  ``FASTLOSS_NATIVE=1`` instead builds once for
  this machine's CPU (``-march=native``), which makes the build unusable on
  older CPUs.
* ``libm`` is linked where it exists (not on Windows).

The tuning constants of fastloss/_constants.py are written into the C header
fastloss/_cython/_constants.h first, on every run (so a clean clone or an
sdist builds it too).
"""
import contextlib
import os
import runpy
import shutil
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.errors import CompileError, LinkError
except ImportError:  # setuptools < 59
    from distutils.errors import CompileError, LinkError

CYTHON_DIR = Path("fastloss", "_cython")
KERNEL_FAMILIES = runpy.run_path(str(CYTHON_DIR / "_families.py"))["KERNEL_FAMILIES"]
NATIVE = os.environ.get("FASTLOSS_NATIVE") == "1"

# -fno-math-errno and -fno-trapping-math leave every result (NaN and inf
# included) as IEEE gives it; they drop errno and the floating-point exception
# flags, which nothing reads.  Without the latter gcc may not compute both arms
# of a select (an arm "could trap"), which keeps such loops scalar.
OPTIMISATION_FLAGS = {"unix": ["-O3", "-fno-math-errno", "-fno-trapping-math"], "msvc": ["/O2"]}

OPENMP_PROGRAM = """
#include <omp.h>
int main(void) {
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += 1;
    return !(n >= 1 && omp_get_max_threads() >= 1);
}
"""

X86_64_PROGRAM = """
#if !(defined(__x86_64__) || defined(_M_X64))
#error "not an x86-64 target"
#endif
int main(void) { return 0; }
"""

# Each level: a program that compiles only where the flags reach the level,
# and the flag sets to try, best first.
V3_FEATURES = ["-mavx", "-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mlzcnt", "-mmovbe", "-mf16c"]
V4_FEATURES = ["-mavx512f", "-mavx512bw", "-mavx512cd", "-mavx512dq", "-mavx512vl"]
LEVELS = {
    "x86_64_v3": ("""
#include <immintrin.h>
#if !defined(__AVX2__)
#error "no AVX2"
#endif
__m256 probe(__m256 a, __m256 b) { return _mm256_fmadd_ps(a, b, a); }
int main(void) { return 0; }
""", [["-march=x86-64-v3"], V3_FEATURES, ["/arch:AVX2"]]),
    "x86_64_v4": ("""
#include <immintrin.h>
#if !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__))
#error "no AVX-512"
#endif
__m512 probe(__m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, a); }
int main(void) { return 0; }
""", [["-march=x86-64-v4"], V3_FEATURES + V4_FEATURES, ["/arch:AVX512"]]),
}
# Flags a level uses when the compiler takes them, but builds without.
LEVEL_EXTRAS = {"x86_64_v4": ["-mprefer-vector-width=512"]}


@contextlib.contextmanager
def silenced_output():
    """Hide what the compiler prints about a probe it rejects (file descriptors 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


class CompilerProbe:
    """Answers whether the build's C compiler accepts flags, by building small programs."""

    def __init__(self, compiler):
        self.compiler = compiler
        self.msvc = compiler.compiler_type == "msvc"

    def builds(self, program, compile_args=(), link_args=(), libraries=(), include_dirs=(),
               library_dirs=()):
        """Whether ``program`` compiles and links with these arguments (warnings count as failure)."""
        strict = [] if self.msvc else ["-Werror"]
        with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder), silenced_output():
            Path("probe.c").write_text(program)
            try:
                objects = self.compiler.compile(["probe.c"], include_dirs=list(include_dirs),
                                                extra_postargs=[*compile_args, *strict])
                self.compiler.link_executable(objects, "probe", libraries=list(libraries),
                                              library_dirs=list(library_dirs),
                                              extra_postargs=list(link_args))
            except (CompileError, LinkError):
                return False
        return True

    def accepted(self, flags):
        """The flags of ``flags`` the compiler accepts, each tried on its own."""
        return [flag for flag in flags if self.builds("int main(void) { return 0; }\n", [flag])]

    def openmp(self):
        """(compile args, link args, include dirs, library dirs) that build OpenMP code, or None."""
        if self.msvc:
            candidates = [(["/openmp"], [], [], [])]
        else:
            candidates = [(["-fopenmp"], ["-fopenmp"], [], [])]
            prefixes = [os.environ.get("LIBOMP_PREFIX"), "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
            candidates += [(["-Xpreprocessor", "-fopenmp"], ["-lomp"], [f"{p}/include"], [f"{p}/lib"])
                           for p in prefixes if p and Path(p).is_dir()]
            candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"], [], []))
        for compile_args, link_args, include_dirs, library_dirs in candidates:
            if self.builds(OPENMP_PROGRAM, compile_args, link_args, include_dirs=include_dirs,
                           library_dirs=library_dirs):
                return compile_args, link_args, include_dirs, library_dirs
        return None

    def level_flags(self):
        """{level: flags} for each x86-64 level the compiler can build for this target."""
        if NATIVE or not self.builds(X86_64_PROGRAM):
            return {}
        levels = {}
        for level, (program, flag_sets) in LEVELS.items():
            flags = next((flags for flags in flag_sets if self.builds(program, flags)), None)
            if flags is not None:
                levels[level] = flags + self.accepted(LEVEL_EXTRAS.get(level, []))
        return levels


class ProbingBuildExt(build_ext):
    """build_ext that gives each extension the flags its compiler was found to accept."""

    def build_extensions(self):
        probe = CompilerProbe(self.compiler)
        common = self.common_arguments(probe)
        levels = probe.level_flags()
        self.extensions = [ext for ext in self.extensions if level_of(ext) in (None, *levels)]
        for ext in self.extensions:
            ext.extra_compile_args = common["compile"] + levels.get(level_of(ext), [])
            ext.extra_link_args = common["link"]
            ext.include_dirs += common["include_dirs"]
            ext.library_dirs += common["library_dirs"]
            ext.libraries += common["libraries"]
        print(f"fastloss build: {self.compiler.compiler_type} compiler; OpenMP: "
              f"{' '.join(common['openmp']) or 'none, the kernels will run on one thread'}; "
              f"x86-64 levels: {', '.join(levels) or 'none'}; flags: {' '.join(common['compile'])}")
        super().build_extensions()

    @staticmethod
    def common_arguments(probe):
        """Compiler and linker arguments of every extension, from the probe."""
        compile_args = probe.accepted(OPTIMISATION_FLAGS["msvc" if probe.msvc else "unix"])
        if NATIVE:
            compile_args += probe.accepted(["-march=native"])
        openmp = probe.openmp()
        omp_compile, omp_link, include_dirs, library_dirs = openmp or ([], [], [], [])
        libraries = ["m"] if not probe.msvc and probe.builds("int main(void) { return 0; }\n",
                                                              libraries=["m"]) else []
        return {"compile": compile_args + omp_compile, "link": omp_link, "include_dirs": include_dirs,
                "library_dirs": library_dirs, "libraries": libraries, "openmp": omp_compile}


def level_of(ext):
    """The x86-64 level an extension is built for, or None for the baseline build."""
    parts = ext.name.split(".")
    return parts[2] if len(parts) == 4 and parts[2] in LEVELS else None


def write_constants_header():
    """fastloss/_constants.py as #defines (FL_<NAME>), read without importing fastloss."""
    source = Path("fastloss", "_constants.py")
    values = {name: value for name, value in runpy.run_path(str(source)).items()
              if name.isupper() and isinstance(value, (int, float))}
    lines = [f"/* Generated by setup.py from {source.as_posix()}: do not edit. */",
             "#ifndef FASTLOSS_CONSTANTS_H", "#define FASTLOSS_CONSTANTS_H"]
    for name, value in values.items():
        text = f"{value!r}f" if isinstance(value, float) else str(value)
        lines.append(f"#define FL_{name} ({text})" if value < 0 else f"#define FL_{name} {text}")
    lines.append("#endif")
    header = CYTHON_DIR / "_constants.h"
    text = "\n".join(lines) + "\n"
    if not header.exists() or header.read_text() != text:  # keep its time: no needless rebuild
        header.write_text(text)


def extension(name, source):
    return Extension(
        name, [source],
        include_dirs=[np.get_include(), str(CYTHON_DIR)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=sorted(str(p) for p in (*CYTHON_DIR.glob("*.h"), *CYTHON_DIR.glob("*.pxd"))),
    )


def level_source(level, family):
    """A copy of a kernel source under the level's module path: Cython names a module by its file."""
    source = CYTHON_DIR / f"{family}.pyx"
    target = Path("build", "cython_levels", "fastloss", "_cython", level, f"{family}.pyx")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_bytes() != source.read_bytes():  # else no rebuild
        shutil.copyfile(source, target)
    return str(target)


write_constants_header()
# threads and the bandwidth benchmark do not depend on the level: built once.
extensions = [extension(f"fastloss._cython.{module}", str(CYTHON_DIR / f"{module}.pyx"))
              for module in ["threads", "bandwidth", *KERNEL_FAMILIES]]
extensions += [extension(f"fastloss._cython.{level}.{family}", level_source(level, family))
               for level in ([] if NATIVE else LEVELS) for family in KERNEL_FAMILIES]

setup(
    cmdclass={"build_ext": ProbingBuildExt},
    # Extensions compile in parallel, one per core (pip install runs build_ext without -j).
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
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
