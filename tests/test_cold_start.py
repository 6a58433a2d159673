"""Importing fastloss compiles nothing; the Numba backend loads only when it is used."""
import os
import subprocess
import sys


def run(code, **env):
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_import_with_the_cython_default_does_not_load_numba():
    assert run("import sys, fastloss; print(fastloss.get_backend(), 'numba' in sys.modules)",
               FASTLOSS_BACKEND="cython") == "cython False"


def test_numba_backend_compiles_nothing_at_import():
    # Every jitted function of the backend's modules (a kernel of the interface may be a
    # Python function that picks the jitted kernel of its path).
    code = ("import sys, fastloss, fastloss._numba\n"
            "from numba.core.registry import CPUDispatcher\n"
            "modules = [m for name, m in list(sys.modules.items()) if name.startswith('fastloss._numba.')]\n"
            "jitted = [v for m in modules for v in vars(m).values() if isinstance(v, CPUDispatcher)]\n"
            "print(len(jitted) > 0, sum(len(k.signatures) for k in jitted))")
    assert run(code, FASTLOSS_BACKEND="numba") == "True 0"
