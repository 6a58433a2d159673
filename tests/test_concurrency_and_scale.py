"""Many Python threads at once, and index arithmetic past 2**31 elements."""
import threading

import numpy as np

import fastloss as fl
from conftest import BACKENDS
from reference import assert_close, loss_and_grad


def test_many_threads_at_once_get_correct_results(rng):
    """Kernels release the GIL and keep no shared state: concurrent calls do not interfere."""
    jobs = []
    for i in range(16):
        shape = [(64, 10), (4, 7, 20, 20), (300, 33), (2, 5, 9)][i % 4]
        x = rng.standard_normal(shape).astype(np.float32)
        target = rng.integers(0, shape[1], shape[:1] + shape[2:])
        jobs.append((BACKENDS[i % 2], x, target, loss_and_grad("cross_entropy", x, target)))
    errors = []
    start = threading.Barrier(len(jobs))

    def work(backend_name, x, target, expected):
        try:
            start.wait()
            with fl.backend(backend_name):
                for _ in range(20):
                    loss, grad = fl.cross_entropy(x, target, return_grad=True)
                    assert_close(loss, expected[0], np.float32)
                    assert_close(grad, expected[1], np.float32)
        except Exception as exc:  # reported in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]


def test_positions_past_int32_range(backend):
    """A (2**31 + 1000)-element canonical view; np.zeros maps untouched pages lazily, and the
    forward pass only reads, so this costs address space, not memory."""
    classes = 1000
    rows = 2**31 // classes + 1
    x = np.zeros((rows, classes), np.float32)
    target = np.zeros(rows, np.int64)
    target[-1] = 999
    assert x.size > 2**31
    loss = fl.cross_entropy(x, target, reduction="sum")
    np.testing.assert_allclose(loss, rows * np.log(classes), rtol=1e-6)
