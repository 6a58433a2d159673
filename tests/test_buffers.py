"""Large results live in recycled memory (fastloss/_buffers.py): reused only
once nothing refers to them, and as correct as any new array."""
import numpy as np
import pytest

import fastloss as fl
from fastloss import _buffers

from .reference import assert_close, loss_and_grad, normaliser

# 34.4 MB of float32: past the recycling threshold.
LARGE = (4, 21, 320, 320)


def address(a):
    return a.__array_interface__["data"][0]


def recycled(a):
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(a, _buffers._Lease)


@pytest.fixture
def recycling(monkeypatch):
    """A clean pool (what other tests left idle is set aside for this one)."""
    monkeypatch.setattr(_buffers, "_idle", [])
    monkeypatch.setattr(_buffers, "idle_limit", 512 << 20)


def large_logits(rng):
    return rng.standard_normal(LARGE, dtype=np.float32) * 4


def test_large_result_reuses_the_memory_of_a_dead_one(backend, rng, recycling):
    x = large_logits(rng)
    first = fl.log_softmax(x, axis=1)
    assert first.nbytes >= _buffers.RECYCLE_BYTES
    assert recycled(first)
    where = address(first)
    del first
    assert _buffers.idle_bytes() == x.nbytes
    second = fl.log_softmax(x, axis=1)
    assert address(second) == where
    assert _buffers.idle_bytes() == 0


KEEPERS = {
    "view": lambda a: a[1:, ::2],
    "memoryview": memoryview,
    "reshaped transpose": lambda a: a.T.reshape(-1, order="F"),  # a view, not a copy
}


@pytest.mark.parametrize("keep", KEEPERS)
def test_memory_of_a_live_result_is_never_handed_out(backend, rng, recycling, keep):
    x = large_logits(rng)
    first = fl.log_softmax(x, axis=1)
    expected = np.asarray(KEEPERS[keep](first.copy()))
    kept = KEEPERS[keep](first)
    del first
    assert _buffers.idle_bytes() == 0
    second = fl.log_softmax(x + 1, axis=1)
    assert not np.shares_memory(second, np.asarray(kept))
    np.testing.assert_array_equal(np.asarray(kept), expected)
    del kept
    assert _buffers.idle_bytes() == x.nbytes
    del second


def test_recycled_gradient_and_softmax_match_torch(backend, rng, recycling):
    x = large_logits(rng)
    target = rng.integers(0, LARGE[1], (LARGE[0],) + LARGE[2:])
    # Stale values in the recycled memory: large, NaN and infinite.
    stale = fl.softmax(x, axis=1)
    stale[...] = np.nan
    stale[0, :, :3] = np.inf
    del stale
    loss, grad = fl.cross_entropy(x, target, return_grad=True)
    ref_loss, ref_grad = loss_and_grad("cross_entropy", x, target)
    assert_close(loss, ref_loss, np.float32)
    assert_close(grad, ref_grad, np.float32)
    del grad
    y = fl.softmax(x, axis=1)
    assert_close(y, normaliser("softmax", x, 1)[0], np.float32)


def test_idle_memory_is_capped(backend, rng, monkeypatch, recycling):
    monkeypatch.setattr(_buffers, "idle_limit", 80 << 20)
    arrays = [fl.log_softmax(rng.standard_normal((n, 21, 320, 320), dtype=np.float32), axis=1)
              for n in (4, 5, 6)]
    sizes = [a.nbytes for a in arrays]
    while arrays:
        arrays.pop(0)
    # 34, 43 and 52 MB given back in that order: the oldest go first.
    assert _buffers.idle_bytes() == sizes[2]


def test_recycling_off(backend, rng, monkeypatch, recycling):
    monkeypatch.setattr(_buffers, "idle_limit", 0)
    first = fl.log_softmax(large_logits(rng), axis=1)
    del first
    assert _buffers.idle_bytes() == 0


def test_small_results_are_plain_arrays(backend, rng, recycling):
    y = fl.softmax(rng.standard_normal((64, 10), dtype=np.float32))
    assert not recycled(y)
    del y
    assert _buffers.idle_bytes() == 0
