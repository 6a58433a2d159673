"""float16 and integer inputs, and the promise of no copy where the memory layout allows it."""
import numpy as np
import pytest

import fastloss as fl
from fastloss._layout import ClassLayout
from reference import assert_close, loss_and_grad, normaliser


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_float16_computes_in_float32_and_returns_float16(backend, rng, name, reduction):
    x = (rng.standard_normal((5, 4, 6)) * 2).astype(np.float16)
    if name == "binary_cross_entropy_with_logits":
        target = rng.random(x.shape).astype(np.float16)
    else:
        target = rng.integers(0, 4, (5, 6))
    loss, grad = getattr(fl, name)(x, target, reduction=reduction, return_grad=True)
    ref_loss, ref_grad = loss_and_grad(name, x.astype(np.float32), target.astype(np.float32)
                                       if target.dtype.kind == "f" else target, reduction=reduction)
    assert_close(loss, ref_loss.astype(np.float16), np.float16)
    assert_close(grad, ref_grad.astype(np.float16), np.float16)
    out = np.empty_like(x)
    assert getattr(fl, name)(x, target, reduction=reduction, return_grad=True, gradient_out=out)[1] is out
    np.testing.assert_array_equal(out, grad)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_float16_normalisers(backend, rng, name):
    x = rng.standard_normal((7, 5)).astype(np.float16)
    y = getattr(fl, name)(x)
    assert_close(y, normaliser(name, x.astype(np.float32), -1)[0].astype(np.float16), np.float16)
    assert getattr(fl, name)(x, out=x) is x
    np.testing.assert_array_equal(x, y)


def test_bool_and_integer_binary_inputs_are_float64(backend):
    x = np.array([[0, 1], [1, 0]])
    loss = fl.binary_cross_entropy_with_logits(x, x.astype(bool))
    assert loss.dtype == np.float64
    ref = loss_and_grad("binary_cross_entropy_with_logits", x.astype(float), x.astype(float))[0]
    assert_close(loss, ref, np.float64)


@pytest.mark.parametrize("make, axis", [
    (lambda a: a, 1),
    (lambda a: a, -1),
    (np.asfortranarray, 1),
    (lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2), 1),
    (lambda a: np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1), 1),
], ids=["C", "C-last-axis", "Fortran", "channels-last", "positions-first"])
def test_canonical_view_needs_no_copy(rng, make, axis):
    x = make(rng.standard_normal((2, 3, 4, 5)))
    layout = ClassLayout.of(x, axis % x.ndim)
    view = layout.view(x, x.dtype)
    assert view is not None and np.shares_memory(view, x)
    assert view.shape == (layout.outer, x.shape[axis], layout.inner)
    # the view holds the same values at the same (position, class) pairs
    moved = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    viewed = np.moveaxis(view, 1, -1).reshape(-1, x.shape[axis])
    assert sorted(map(tuple, moved)) == sorted(map(tuple, viewed))


def test_int64_targets_are_not_copied(rng):
    x = rng.standard_normal((4, 3, 5))
    target = rng.integers(0, 3, (4, 5))
    layout = ClassLayout.of(x, 1)
    assert np.shares_memory(layout.canonical_positions(target, np.int64), target)


def test_strided_input_is_copied_once(rng):
    x = rng.standard_normal((4, 6, 5))[:, ::2]
    layout = ClassLayout.of(x, 1)
    assert layout.view(x, x.dtype) is None
    canonical = layout.canonical(x, x.dtype)
    assert canonical.flags.c_contiguous and not np.shares_memory(canonical, x)
