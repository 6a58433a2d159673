"""FASTLOSS_PORTABLE=1 turns every machine-specific path off in both backends.

The whole suite runs a second time with it set (``.ci/run``); these tests check that the
switch reaches both backends, and that without it the machine paths this CPU has are used.
"""
import os
import subprocess
import sys

import pytest

FLAGS = """
import fastloss._cython as cy
import fastloss._numba.machine as machine
print(cy.BUILD, machine.STREAMING, machine.TABLE_EXP, machine.CPU_NAME)
"""


def machine_flags(**env):
    environment = {key: value for key, value in os.environ.items() if key != "FASTLOSS_PORTABLE"}
    result = subprocess.run([sys.executable, "-c", FLAGS], env=dict(environment, **env),
                            capture_output=True, text=True, check=True)
    build, streaming, table_exp, cpu = result.stdout.split()
    return build, streaming == "True", table_exp == "True", cpu


def test_portable_switch_reaches_both_backends():
    build, streaming, table_exp, cpu = machine_flags(FASTLOSS_PORTABLE="1")
    assert build == "fastloss._cython"  # the baseline build: no intrinsics compiled in
    assert not streaming and not table_exp
    assert cpu == "generic"


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the machine paths are x86-64's")
def test_default_uses_the_machine_paths_of_this_cpu():
    from fastloss._cython.threads import cpu_levels

    build, streaming, table_exp, cpu = machine_flags()
    assert streaming and cpu != "generic"
    levels = cpu_levels()
    assert build == (f"fastloss._cython.{levels[0]}" if levels else "fastloss._cython")
    assert table_exp == ("x86_64_v4" in levels)
