"""fastloss.dask against torch and against the in-memory call, on the threaded scheduler and on a
dask.distributed LocalCluster of two worker processes."""
import contextlib
import subprocess
import sys
import threading
import warnings

import dask
import dask.array as da
import distributed
import numpy as np
import pytest

from conftest import assert_docstring_examples_run
import fastloss as fl
import fastloss.dask as fld
from reference import assert_close, focal_loss_and_grad, loss_and_grad, normaliser
from reference import z_loss_cross_entropy
from test_dice import monai_dice
from test_distillation import reference as distillation_reference

SHAPE = (5, 4, 7, 3)
# Uneven chunks on every axis, the class axis (1) split too.
CHUNKS = ((2, 3), (3, 1), (1, 4, 2), (2, 1))
POSITION_SHAPE = SHAPE[:1] + SHAPE[2:]
# The threaded scheduler runs both backends; the worker processes run the Cython one, which needs
# no JIT compilation in each new process.
RUNNERS = [("threads", "numba"), ("threads", "cython"), ("distributed", "cython")]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="512MiB",
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as cluster_client:
            yield cluster_client


@pytest.fixture(params=RUNNERS, ids=["-".join(runner) for runner in RUNNERS])
def compute(request):
    """``dask.compute`` on one scheduler, with graphs built under one backend."""
    scheduler, backend_name = request.param
    target = request.getfixturevalue("client") if scheduler == "distributed" else "threads"
    with fl.backend(backend_name):
        yield lambda *lazy: dask.compute(*lazy, scheduler=target)


def _class_targets(rng, classes):
    """Class indices with the first chunk along axis 0 (two samples) all ignored, and more ignored."""
    target = rng.integers(0, classes, POSITION_SHAPE)
    target[:2] = -100
    target[3, ::2] = -100
    return target


def _problems(rng):
    """Every function: its input, second argument, options, reductions, and torch's reference
    ``reference(reduction, grad_output) -> (loss, grad)``."""
    x = rng.standard_normal(SHAPE) * 3
    classes = SHAPE[1]
    weight = rng.uniform(0.2, 2.0, classes)
    target = _class_targets(rng, classes)
    probabilities = fl.softmax(rng.standard_normal(SHAPE), axis=1)
    binary = rng.random(SHAPE)
    pos_weight = rng.uniform(0.5, 2.0, (classes, 1, 1))
    log_p = fl.log_softmax(x, axis=1)
    ce_options = dict(weight=da.from_array(weight, chunks=2), label_smoothing=0.1, z_loss=1e-3)
    dice_targets = rng.integers(0, classes, POSITION_SHAPE)
    return {
        "nll_loss": (log_p, target, dict(weight=weight), ["mean", "sum", "none"],
                     lambda r, g: loss_and_grad("nll_loss", log_p, target, weight=weight, reduction=r,
                                                grad_output=g)),
        "cross_entropy": (x, target, ce_options, ["mean", "sum", "none"],
                          lambda r, g: z_loss_cross_entropy(x, target, 1e-3, weight=weight, label_smoothing=0.1,
                                                            reduction=r, grad_output=g)),
        "cross_entropy-probabilities": (x, probabilities, dict(label_smoothing=0.2), ["mean", "none"],
                                        lambda r, g: loss_and_grad("cross_entropy", x, probabilities,
                                                                   label_smoothing=0.2, reduction=r,
                                                                   grad_output=g)),
        "binary_cross_entropy": (fl.softmax(x, axis=1), binary, dict(weight=weight[:, None, None]),
                                 ["mean", "sum", "none"],
                                 lambda r, g: loss_and_grad("binary_cross_entropy", fl.softmax(x, axis=1), binary,
                                                            weight=weight[:, None, None], reduction=r,
                                                            grad_output=g)),
        "binary_cross_entropy_with_logits": (
            x, binary, dict(weight=weight[:, None, None], pos_weight=da.from_array(pos_weight, chunks=3)),
            ["mean", "none"],
            lambda r, g: loss_and_grad("binary_cross_entropy_with_logits", x, binary, weight=weight[:, None, None],
                                       pos_weight=pos_weight, reduction=r, grad_output=g)),
        "sigmoid_focal_loss": (x, binary.round(), dict(alpha=0.3, gamma=1.5), ["mean", "none"],
                               lambda r, g: focal_loss_and_grad(x, binary.round(), 0.3, 1.5, r, g)),
        "kl_div": (log_p, probabilities, {}, ["batchmean", "mean", "none"],
                   lambda r, g: loss_and_grad("kl_div", log_p, probabilities, reduction=r, grad_output=g)),
        "distillation_loss": (x, probabilities * 4, dict(temperature=2.5), ["batchmean", "sum", "none"],
                              lambda r, g: distillation_reference(x, probabilities * 4, temperature=2.5,
                                                                  reduction=r, grad_output=g)),
        "dice_loss": (x, dice_targets, dict(weight=weight), ["mean", "none"],
                      lambda r, g: monai_dice(x, dice_targets, weight=weight, reduction=r, grad_output=g)),
    }


CLASS_AXIS = {"nll_loss", "cross_entropy", "cross_entropy-probabilities", "distillation_loss", "dice_loss"}


def _loss_shape(name, reduction):
    if reduction != "none":
        return ()
    if name == "dice_loss":
        return SHAPE[:2]
    return POSITION_SHAPE if name.startswith(("nll_loss", "cross_entropy")) else SHAPE


@contextlib.contextmanager
def _split_class_axis_warning(expected):
    """Expect a PerformanceWarning (the class axis rechunked) if ``expected``, else none."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert any(issubclass(w.category, da.PerformanceWarning) for w in caught) == expected


@pytest.mark.parametrize("name", list(_problems(np.random.default_rng(0))))
def test_losses_match_torch_and_the_in_memory_call(compute, rng, name):
    """Uneven chunks on every axis, the class axis split, whole chunks of ignored targets, dask
    and NumPy arguments: the loss, its reductions and gradient equal torch's, and the in-memory
    call's to rounding."""
    x, second, options, reductions, reference = _problems(rng)[name]
    function = name.split("-")[0]
    lazy, upstreams = [], []
    for reduction in reductions:
        upstream = rng.uniform(0.5, 2.0, _loss_shape(name, reduction))
        upstreams.append(upstream)
        with _split_class_axis_warning(name in CLASS_AXIS):
            lazy.append(getattr(fld, function)(
                da.from_array(x, chunks=CHUNKS), da.from_array(second, chunks=2), reduction=reduction,
                return_grad=True, grad_output=da.from_array(upstream, chunks=3), **options))
    for (loss, grad), reduction in zip(lazy, reductions):
        assert isinstance(loss, da.Array) and isinstance(grad, da.Array)
        assert grad.shape == SHAPE and grad.chunks[0] == CHUNKS[0] and grad.chunks[2:] == (
            CHUNKS[2:] if name != "dice_loss" else ((7,), (3,)))
        if reduction == "none" and name != "dice_loss":
            assert loss.chunks[0] == CHUNKS[0] and loss.chunks[-1] == CHUNKS[-1]
        else:
            assert loss.ndim == (2 if reduction == "none" else 0)
    computed = compute(*lazy)
    for (loss, grad), reduction, upstream in zip(computed, reductions, upstreams):
        ref_loss, ref_grad = reference(reduction, upstream)
        assert_close(loss, ref_loss, np.float64)
        assert_close(grad, ref_grad, np.float64)
        in_memory = getattr(fl, function)(x, second, reduction=reduction, return_grad=True,
                                          grad_output=upstream, **options)
        np.testing.assert_allclose(loss, in_memory[0], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(grad, in_memory[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normalisers_match_torch(compute, rng, name):
    x = rng.standard_normal(SHAPE) * 3
    with _split_class_axis_warning(True):
        lazy = getattr(fld, name)(da.from_array(x, chunks=CHUNKS), axis=1)
    assert lazy.chunks[0] == CHUNKS[0] and lazy.chunks[1] == (4,)
    (result,) = compute(lazy)
    assert_close(result, normaliser(name, x, 1)[0], np.float64)
    np.testing.assert_allclose(result, getattr(fl, name)(x, axis=1), rtol=1e-12)


def test_loss_alone_and_channels_last_float32(compute, rng):
    """No gradient asked, classes on the last axis, float32: equal to torch at float32's tolerance."""
    x = rng.standard_normal((40, 9, 6)).astype(np.float32)
    target = rng.integers(0, 6, (40, 9))
    lazy = [fld.cross_entropy(da.from_array(x, chunks=(7, 4, 6)), target, axis=-1, reduction=reduction)
            for reduction in ("mean", "sum", "none")]
    for reduction, loss in zip(("mean", "sum", "none"), compute(*lazy)):
        expected, _ = loss_and_grad("cross_entropy", x, target, axis=2, reduction=reduction)
        assert_close(loss, expected, np.float32)


def test_every_target_ignored_gives_torch_nan(compute, rng):
    x = rng.standard_normal((6, 3))
    target = np.full(6, -100)
    loss, grad = compute(*fld.cross_entropy(da.from_array(x, chunks=2), target, return_grad=True))
    ref_loss, ref_grad = loss_and_grad("cross_entropy", x, target)
    assert np.isnan(loss) and np.isnan(ref_loss)
    np.testing.assert_array_equal(grad, ref_grad)


def _bad_in_last_chunk(name, rng):
    """Arguments of ``name`` whose data is wrong in the last chunk only."""
    x = rng.standard_normal(SHAPE)
    target = rng.integers(0, SHAPE[1], POSITION_SHAPE)
    if name == "binary_cross_entropy":
        x = fl.softmax(x, axis=1)
        x[-1, -1, -1, -1] = 1.5
        return x, rng.random(SHAPE)
    target[-1, -1, -1] = SHAPE[1] if name != "nll_loss" else -3
    return x, target


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "dice_loss", "binary_cross_entropy"])
def test_bad_data_in_the_last_chunk_raises_as_in_memory(compute, rng, name):
    x, second = _bad_in_last_chunk(name, rng)
    with pytest.raises((IndexError, ValueError)) as in_memory:
        getattr(fl, name)(x, second)
    chunks = tuple(c if ax != 1 else -1 for ax, c in enumerate(CHUNKS))
    lazy = getattr(fld, name)(da.from_array(x, chunks=chunks), da.from_array(second, chunks=2))
    with pytest.raises(in_memory.type) as raised:
        compute(lazy)
    assert str(raised.value) == str(in_memory.value)


def _shape_and_dtype_errors():
    x, target = np.zeros((4, 3, 5)), np.zeros((4, 5), np.int64)
    return [
        ("cross_entropy", (x, target[:, :4]), {}),
        ("cross_entropy", (x.astype(complex), target), {}),
        ("nll_loss", (x, target.astype(np.float64)), {}),
        ("nll_loss", (x, target), dict(weight=np.ones(4))),
        ("cross_entropy", (x, target), dict(reduction="average")),
        ("cross_entropy", (x, target), dict(label_smoothing=1.5)),
        ("cross_entropy", (x, target), dict(grad_output=2.0)),
        ("cross_entropy", (x, target), dict(reduction="none", return_grad=True, grad_output=np.ones((3, 5)))),
        ("cross_entropy", (x, target), dict(return_grad=True, grad_output=np.ones(2))),
        ("binary_cross_entropy_with_logits", (x, x[:, :2]), {}),
        ("binary_cross_entropy_with_logits", (x, x), dict(pos_weight=np.ones(4))),
        ("kl_div", (x, x), dict(reduction="batchsum")),
        ("sigmoid_focal_loss", (x, x), dict(gamma=-1.0)),
        ("distillation_loss", (x, x[:3]), {}),
        ("distillation_loss", (x, x), dict(temperature=0.0)),
        ("dice_loss", (x[0, 0], x[0, 0]), {}),
        ("dice_loss", (x, target), dict(activation="relu")),
    ]


@pytest.mark.parametrize("name, arguments, options", _shape_and_dtype_errors())
def test_shape_dtype_and_option_errors_raise_before_any_graph(name, arguments, options):
    """The in-memory call's exception and message, from the call itself (nothing is computed)."""
    with pytest.raises((ValueError, TypeError, IndexError)) as in_memory:
        getattr(fl, name)(*arguments, **options)
    lazy_arguments = [da.from_array(a, chunks=2) for a in arguments]
    with pytest.raises(in_memory.type) as raised:
        getattr(fld, name)(*lazy_arguments, **options)
    assert str(raised.value) == str(in_memory.value)


def test_concurrent_tasks_share_the_threads_and_restore_the_count():
    """Two tasks at once each get half of a 2-thread budget; the caller's count comes back after."""
    before = fl.get_num_threads()
    both_inside = threading.Barrier(2)
    seen = []

    def task():
        with fld._task_settings("cython", 2):
            both_inside.wait()
            seen.append(fl.get_num_threads())
            both_inside.wait()

    workers = [threading.Thread(target=task) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == [max(1, min(2, fld._available_cores()) // 2)] * 2
    assert fl.get_num_threads() == before


def test_a_worker_task_uses_the_worker_threads(client):
    """A LocalCluster worker of one thread runs its task's kernels on one thread."""
    def threads_in_task():
        with fld._task_settings("cython", 2):
            return fl.get_num_threads()

    futures = [client.submit(threads_in_task, pure=False, workers=[address]) for address in client.run(lambda: 0)]
    assert client.gather(futures) == [1, 1]


def test_bench_implementations_agree():
    """The dask bench's three implementations give one loss: fastloss.dask and the in-memory call
    against the mean cross-entropy written with dask.array's own operations."""
    from fastloss._bench_dask import IMPLEMENTATIONS, measure

    rows, values = measure(shape=(6, 5, 8, 4), samples_per_chunk=4, repeat=1)
    assert [row[0] for row in rows] == list(IMPLEMENTATIONS)
    assert all(row[1] > 0 for row in rows)
    reference = values["dask.array NumPy-style"]
    assert values["fastloss.dask"] == pytest.approx(reference, rel=1e-6)
    assert values["fastloss in memory"] == pytest.approx(reference, rel=1e-6)


def test_import_fastloss_does_not_import_dask():
    code = "import sys, fastloss; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_without_dask_names_the_extra():
    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
            "try:\n    import fastloss.dask\nexcept ImportError as exc:\n    print(exc)")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert 'pip install "fastloss[dask]"' in output


def test_docstring_examples(backend):
    """The Examples in fastloss.dask's docstrings run, under each backend."""
    import fastloss.dask
    assert_docstring_examples_run(fastloss.dask)
