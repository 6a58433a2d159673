"""fastloss.show_config() and python -m fastloss --info: the report matches what is loaded."""
import subprocess
import sys

import pytest

import fastloss as fl


def test_the_report_names_what_runs():
    import fastloss._cython as cython_backend
    from fastloss._cython import threads
    from fastloss._numba import THREADING_LAYER, cache

    report = fl.show_config(mode="dicts")
    assert report["fastloss"]["version"] == fl.__version__
    cython = report["cython backend"]
    assert cython["available"]
    assert cython_backend.BUILD.endswith(cython["build"]) or cython["build"] == "baseline"
    assert cython["levels this CPU runs"] == threads.cpu_levels()
    assert cython["compiler"] == threads.COMPILER
    assert cython["openmp"].startswith("yes" if threads.OPENMP else "no")
    numba = report["numba backend"]
    assert numba["threading layer"] == THREADING_LAYER
    assert numba["cache folder"] == cache.cache_dir()


def test_the_printed_report_and_the_command_agree(capsys):
    fl.show_config()
    printed = capsys.readouterr().out
    command = subprocess.run([sys.executable, "-m", "fastloss", "--info"], capture_output=True, text=True,
                             check=True).stdout
    for text in (printed, command):
        assert f"version: {fl.__version__}" in text
        assert "cython backend:" in text and "threading layer:" in text


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        fl.show_config(mode="json")
