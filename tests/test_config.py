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


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse avx2
"""
# An Arm core (Neoverse N1 of an AWS Graviton2) names no model: implementer and part codes.
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c

processor\t: 1
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


@pytest.mark.parametrize("text, expected", [
    (X86_CPUINFO, "AMD EPYC 7B13"),
    (ARM_CPUINFO, "Arm implementer 0x41, part 0xd0c"),
])
def test_the_cpu_model_is_read_on_x86_and_arm(tmp_path, text, expected):
    from fastloss._config import _cpu_model

    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert _cpu_model(str(path)) == expected


def test_a_missing_cpuinfo_falls_back_to_platform(tmp_path, monkeypatch):
    from fastloss import _config

    monkeypatch.setattr(_config.platform, "processor", lambda: "")
    assert _config._cpu_model(str(tmp_path / "absent")) == "unknown"
