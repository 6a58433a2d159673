"""Backend and thread control; both backends agree; results do not depend on the thread count."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss as fl
from fastloss._constants import BLOCK_ELEMS
from conftest import BACKENDS


def workload(rng, shape=(6, 7, 33, 40), dtype=np.float32):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    target = rng.integers(0, shape[1], shape[:1] + shape[2:])
    target[rng.random(target.shape) < 0.1] = -100
    weight = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    return x, target, weight


def every_call(x, target, weight):
    """One call of every public kernel on the same data, results as a list of arrays."""
    probabilities = fl.softmax(x, axis=1)
    class_factor = weight.reshape((-1,) + (1,) * (x.ndim - 2))
    results = [probabilities, fl.log_softmax(x, axis=1), fl.log_softmax(x, axis=-1),
               fl.softmax_backward(x, probabilities, axis=1),
               fl.log_softmax_backward(x, fl.log_softmax(x, axis=1), axis=1)]
    for reduction in ("mean", "sum", "none"):
        results += fl.cross_entropy(x, target, weight, reduction=reduction, return_grad=True)
        results += fl.cross_entropy(x, target, weight, reduction=reduction, label_smoothing=0.1,
                                    return_grad=True)
        results += fl.cross_entropy(x, probabilities, weight, reduction=reduction, return_grad=True)
        results += fl.nll_loss(x, target, weight, reduction=reduction, return_grad=True)
        results += fl.binary_cross_entropy(probabilities, probabilities[::-1], reduction=reduction,
                                           return_grad=True)
        results += fl.binary_cross_entropy_with_logits(
            x, probabilities, class_factor, pos_weight=class_factor,
            reduction=reduction, return_grad=True)
    return [np.asarray(r) for r in results]


@pytest.mark.parametrize("shape", [(300, 40), (6, 7, 33, 40)], ids=str)
def test_backends_agree(rng, shape):
    data = workload(rng, shape, np.float64)
    results = {}
    for name in BACKENDS:
        with fl.backend(name):
            results[name] = every_call(*data)
    for a, b in zip(*results.values()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", [(3000, 40), (6, 7, 33, 40), (2, 3, 700, 700)], ids=str)
def test_bitwise_identical_for_any_thread_count(backend, rng, shape):
    data = workload(rng, shape)
    previous = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        one = every_call(*data)
        fl.set_num_threads(previous)
        many = every_call(*data)
        again = every_call(*data)
    finally:
        fl.set_num_threads(previous)
    for a, b, c in zip(one, many, again):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_backend_context_manager_restores():
    before = fl.get_backend()
    other = "numba" if before == "cython" else "cython"
    with fl.backend(other):
        assert fl.get_backend() == other
        with fl.backend(before):
            assert fl.get_backend() == before
        assert fl.get_backend() == other
    assert fl.get_backend() == before


def test_set_backend_and_threads():
    before_backend, before_threads = fl.get_backend(), fl.get_num_threads()
    try:
        for name in BACKENDS:
            fl.set_backend(name)
            assert fl.get_backend() == name
        fl.set_num_threads(1)
        assert fl.get_num_threads() == 1
    finally:
        fl.set_backend(before_backend)
        fl.set_num_threads(before_threads)


@pytest.mark.parametrize("name", BACKENDS)
def test_environment_variable_picks_the_default(name):
    code = "import fastloss; print(fastloss.get_backend())"
    env = dict(os.environ, FASTLOSS_BACKEND=name)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == name


def test_backends_honour_the_thread_count(backend):
    """The count reaches the backend's own runtime (numba / OpenMP) in the calling thread
    for a call bigger than one block; a Cython build without OpenMP has one thread whatever
    the count."""
    from fastloss._backends import kernels
    from fastloss._cython.threads import OPENMP

    elements = 2 * BLOCK_ELEMS
    previous = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        assert kernels(elements).get_num_threads() == 1
    finally:
        fl.set_num_threads(previous)
    assert kernels(elements).get_num_threads() == (previous if backend == "numba" or OPENMP else 1)


@pytest.mark.parametrize("elements, pool", [(BLOCK_ELEMS, False), (BLOCK_ELEMS + 1, True)])
def test_calls_within_one_block_run_on_the_calling_thread(backend, elements, pool):
    """Waking the pool costs a call of one block more than its work (a Cython build without
    OpenMP has one thread whatever the call)."""
    from fastloss._backends import _available_cores, kernels
    from fastloss._cython.threads import OPENMP

    previous = fl.get_num_threads()
    fl.set_num_threads(_available_cores())
    try:
        pooled = fl.get_num_threads() if backend == "numba" or OPENMP else 1
        assert kernels(elements).get_num_threads() == (pooled if pool else 1)
    finally:
        fl.set_num_threads(previous)

LEVEL_RUN = """
import sys, numpy as np, fastloss as fl
sys.path.insert(0, {tests!r})
from test_backends import every_call, workload
with fl.backend("cython"):
    results = every_call(*workload(np.random.default_rng(5), (5, 6, 7, 30), np.float64))
np.savez({path!r}, *results)
"""


def test_every_cython_build_gives_the_same_results(tmp_path):
    """The kernels built for each x86-64 level this CPU runs agree with the baseline build."""
    from fastloss._cython.threads import cpu_levels

    outcomes = {}
    for level in ["baseline"] + cpu_levels():
        path = tmp_path / f"{level}.npz"
        code = LEVEL_RUN.format(tests=os.path.dirname(__file__), path=str(path))
        subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTLOSS_CPU=level), check=True)
        with np.load(path) as saved:
            outcomes[level] = [saved[key] for key in saved.files]
    for level, results in outcomes.items():
        for a, b in zip(results, outcomes["baseline"]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=level)
