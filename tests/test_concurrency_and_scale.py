"""Many Python threads at once, results large enough to be streamed, and index arithmetic
past 2**31 elements."""
import threading

import numpy as np
import pytest

import fastloss as fl
from conftest import BACKENDS
from reference import assert_close, loss_and_grad, normaliser


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


def _misaligned(shape, dtype=np.float32):
    """A C-contiguous buffer that starts 4 bytes past a 64-byte line: streamed stores
    need plain stores at both ends of every row."""
    raw = np.empty(np.prod(shape) * np.dtype(dtype).itemsize + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + 4
    return raw[start:start + np.prod(shape) * np.dtype(dtype).itemsize].view(dtype).reshape(shape)


# Every result here is over the 8 MiB past which the kernels write with streaming stores.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2100, 1003), (131100, 17), (300000, 7), (2, 7, 300, 503)])
def test_large_cross_entropy_gradient_into_misaligned_buffer(backend, rng, shape, dtype):
    """Targets on every class: the target's term lands in every part of a streamed row,
    rows of one whole line or none among them.  float64 items 4 bytes off their
    alignment go through scratch (streamed, they crashed)."""
    x = rng.standard_normal(shape).astype(dtype)
    x[::50, 1] = x[::50, 0] + 100  # far above the first value: shifted by their max
    target = rng.permutation(np.arange(x.size // shape[1]) % shape[1]).reshape(shape[:1] + shape[2:])
    target.flat[::7] = -100
    gradient = _misaligned(shape, dtype)
    loss, grad = fl.cross_entropy(x, target, return_grad=True, gradient_out=gradient)
    expected = loss_and_grad("cross_entropy", x, target)
    assert grad is gradient
    assert_close(loss, expected[0], dtype)
    assert_close(grad, expected[1], dtype)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(2100, 1003), (2, 7, 300, 503)])
def test_large_cross_entropy_gradient_in_place(backend, rng, shape, label_smoothing):
    """gradient_out=x: each row or tile is read before its streamed gradient overwrites it."""
    x = rng.standard_normal(shape).astype(np.float32)
    target = rng.integers(0, shape[1], shape[:1] + shape[2:])
    expected = loss_and_grad("cross_entropy", x, target, label_smoothing=label_smoothing)
    loss, grad = fl.cross_entropy(x, target, return_grad=True, gradient_out=x,
                                  label_smoothing=label_smoothing)
    assert grad is x
    assert_close(loss, expected[0], np.float32)
    assert_close(x, expected[1], np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(2100, 1003), (2, 7, 300, 503)])
def test_large_normaliser_into_misaligned_buffer(backend, rng, name, shape, dtype):
    """float64 items 4 bytes off their alignment: the result goes through scratch."""
    x = rng.standard_normal(shape).astype(dtype)
    out = _misaligned(shape, dtype)
    assert getattr(fl, name)(x, axis=1, out=out) is out
    assert_close(out, normaliser(name, x, 1)[0], dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(2100, 1003), (2, 7, 300, 503)])
def test_large_normaliser_in_place(backend, rng, name, shape):
    """out=x: each row or tile is read (its max in the pass before, for float32
    log_softmax rows) before its streamed result overwrites it."""
    x = rng.standard_normal(shape).astype(np.float32)
    expected = normaliser(name, x, 1)[0]
    assert getattr(fl, name)(x, axis=1, out=x) is x
    assert_close(x, expected, np.float32)


@pytest.mark.parametrize("shape", [(2100, 1003), (3, 1, 1021, 1023)])
def test_large_bce_with_logits_into_misaligned_buffers(backend, rng, shape):
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    target = rng.random(shape).astype(np.float32)
    gradient = _misaligned(shape)
    loss, grad = fl.binary_cross_entropy_with_logits(x, target, reduction="none", return_grad=True,
                                                     grad_output=0.5, gradient_out=gradient)
    expected = loss_and_grad("binary_cross_entropy_with_logits", x, target, reduction="none",
                             grad_output=np.full(shape, 0.5, np.float32))
    assert grad is gradient
    assert_close(loss, expected[0], np.float32)
    assert_close(grad, expected[1], np.float32)


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
