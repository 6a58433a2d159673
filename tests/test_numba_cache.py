"""The Numba kernels' on-disk cache (fastloss/_numba/cache.py) and the warm-up.

The cache tests run small kernels in child processes, on a copy of the package
in a temporary folder, each with a cache folder of its own.
"""
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import fastloss
from fastloss import _warm_up

PACKAGE = Path(fastloss.__file__).parent

# A kernel that inlines a helper of another module: row_exp (row_exp.py) takes
# its exps from vector_math.py; row_blocking (blocking.py) reads BLOCK_ELEMS
# from _constants.py.
CHILD = """
import json, numpy as np
import fastloss
from fastloss._numba.blocking import row_blocking
from fastloss._numba.row_exp import row_exp
e = np.empty(1)
row_exp(np.zeros(1), 0.0, e)
rows, _ = row_blocking(10, 10)
kernels = (row_exp, row_blocking)
print(json.dumps({"file": fastloss.__file__, "exp": float(e[0]), "rows": int(rows),
                  "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
                  "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels)}))
"""


def package_copy(folder):
    """A copy of the fastloss sources (no builds, no caches) in ``folder``; returns its root."""
    shutil.copytree(PACKAGE, folder / "fastloss",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.c", "*.cpp", "*.h"))
    return folder


def run_child(root, **env):
    """CHILD's results, run on the package copy at ``root``; ``env`` adds to a clean environment."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("FASTLOSS_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    environment.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", FASTLOSS_BACKEND="numba", **env)
    result = subprocess.run([sys.executable, "-c", CHILD], env=environment, cwd=root, capture_output=True,
                            text=True, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(root), "the child imported another fastloss"
    return out


def edit(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} once: update this test"
    path.write_text(text.replace(old, new))


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("module, old, new, result, before, after", [
    # exp(0) built from one + one: 2.
    ("_numba/vector_math.py", "return ldexp(one + (px + px) / (q - px), k)",
     "return ldexp(one + one + (px + px) / (q - px), k)", "exp", 1.0, 2.0),
    ("_constants.py", "BLOCK_ELEMS = 32768", "BLOCK_ELEMS = 1000", "rows", 3276, 100),
], ids=["helper module", "constants"])
def test_an_edit_of_an_inlined_source_recompiles(tmp_path, module, old, new, result, before, after):
    root = package_copy(tmp_path / "copy")
    cache = str(tmp_path / "cache")
    first = run_child(root, FASTLOSS_CACHE_DIR=cache)
    assert (first[result], first["misses"], first["hits"]) == (before, 2, 0)
    second = run_child(root, FASTLOSS_CACHE_DIR=cache)
    assert (second[result], second["misses"], second["hits"]) == (before, 0, 2)
    edit(root / "fastloss" / module, old, new)
    edited = run_child(root, FASTLOSS_CACHE_DIR=cache)
    assert (edited[result], edited["misses"], edited["hits"]) == (after, 2, 0)


def test_a_read_only_package_caches_in_the_user_cache_folder(tmp_path):
    root = package_copy(tmp_path / "copy")
    user_cache = tmp_path / "user-cache"
    for path in [*root.rglob("*"), root]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    sources = files_under(root)
    try:
        first = run_child(root, XDG_CACHE_HOME=str(user_cache))
        second = run_child(root, XDG_CACHE_HOME=str(user_cache))
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert (first["misses"], first["hits"]) == (2, 0)
    assert (second["misses"], second["hits"]) == (0, 2)
    assert files_under(root) == sources, "the cache wrote into the package folder"
    [folder] = (user_cache / "fastloss").iterdir()
    assert folder.name.startswith(f"fastloss-{fastloss.__version__}-")
    assert any(name.endswith(".nbi") for name in os.listdir(folder))


def test_numba_cache_dir_is_used_when_fastloss_cache_dir_is_not_set(tmp_path):
    root = package_copy(tmp_path / "copy")
    run_child(root, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), XDG_CACHE_HOME=str(tmp_path / "user"))
    assert [p.name.startswith("fastloss-") for p in (tmp_path / "numba-cache").iterdir()] == [True]
    assert not (tmp_path / "user").exists()


def test_warm_up_covers_every_public_function():
    utilities = {"get_backend", "set_backend", "backend", "get_num_threads", "set_num_threads", "show_config"}
    public = set(fastloss.__all__) - utilities
    tasks = _warm_up.tasks()
    assert {task.function for task in tasks} == public
    for name in public:
        paths = {(task.dtype, task.path) for task in tasks if task.function == name}
        assert {("float32", "batched"), ("float32", "spatial"), ("float64", "batched")} <= paths


def test_warm_up_reports_each_call():
    progress = io.StringIO()
    _warm_up.warm_up(["nll_loss"], ["float64"], stream=progress)
    lines = progress.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["[1/2] nll_loss float64 batched",
                                                       "[2/2] nll_loss float64 spatial"]
    assert all(line.endswith(" s") for line in lines)


def test_warm_up_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown function"):
        _warm_up.tasks(["cross_entropy", "focal_loss"])
