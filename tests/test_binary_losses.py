"""binary_cross_entropy and binary_cross_entropy_with_logits against torch."""
import numpy as np
import pytest

import fastloss as fl
from reference import assert_close, loss_and_grad
from test_class_losses import make_upstream

SHAPES = [(), (7,), (64, 8), (3, 4, 6), (2, 3, 5, 4), (0, 3)]
LOSSES = ["binary_cross_entropy", "binary_cross_entropy_with_logits"]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def make_input(rng, name, shape, dtype):
    x = rng.standard_normal(shape) * 3
    return (sigmoid(x) if name == "binary_cross_entropy" else x).astype(dtype)


def check(name, x, target, dtype, reduction="mean", grad_output=None, **kwargs):
    originals = [np.array(a, copy=True) for a in (x, target, *kwargs.values())]
    loss, grad = getattr(fl, name)(x, target, reduction=reduction, return_grad=True,
                                   grad_output=grad_output, **kwargs)
    ref_loss, ref_grad = loss_and_grad(name, x, target, reduction=reduction,
                                       grad_output=grad_output, **kwargs)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    np.testing.assert_array_equal(getattr(fl, name)(x, target, reduction=reduction, **kwargs), loss)
    for before, after in zip(originals, (x, target, *kwargs.values())):
        np.testing.assert_array_equal(before, after)
    return loss, grad


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_torch(backend, rng, name, shape, dtype, reduction, weighted):
    x = make_input(rng, name, shape, dtype)
    target = rng.random(shape).astype(dtype)
    kwargs = {}
    if weighted:
        kwargs["weight"] = rng.uniform(0.1, 2, shape[-1:]).astype(dtype)
    check(name, x, target, dtype, reduction, make_upstream(rng, reduction, shape, dtype), **kwargs)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("weight_shape", [(), (1,), (5,), (4, 1), (4, 5), (3, 1, 1), (3, 1, 5), (2, 3, 4, 5)],
                         ids=str)
def test_weight_broadcasts(backend, rng, name, weight_shape):
    shape = (2, 3, 4, 5)
    x = make_input(rng, name, shape, np.float64)
    target = (rng.random(shape) < 0.5).astype(np.float64)
    weight = rng.uniform(0.1, 2, weight_shape)
    check(name, x, target, np.float64, "none", rng.standard_normal(shape), weight=weight)
    check(name, x, target, np.float64, "mean", weight=weight)


@pytest.mark.parametrize("pos_weight_shape", [(5,), (3, 1, 1), (1,), (4, 5), (3, 4, 1)], ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pos_weight_broadcasts(backend, rng, pos_weight_shape, weighted, dtype):
    shape = (2, 3, 4, 5)
    x = make_input(rng, "binary_cross_entropy_with_logits", shape, dtype)
    target = rng.random(shape).astype(dtype)
    kwargs = {"pos_weight": rng.uniform(0.5, 3, pos_weight_shape).astype(dtype)}
    if weighted:
        kwargs["weight"] = rng.uniform(0.1, 2, (3, 1, 1)).astype(dtype)
    for reduction in ("mean", "sum", "none"):
        check("binary_cross_entropy_with_logits", x, target, dtype, reduction,
              make_upstream(rng, reduction, shape, dtype), **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite(backend, rng, dtype):
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4] * 2, dtype)
    target = np.array([0.0] * 7 + [1.0] * 7, dtype)
    for reduction in ("none", "sum"):
        loss, grad = check("binary_cross_entropy_with_logits", x, target, dtype, reduction,
                           pos_weight=np.array([2.5], dtype))
        assert np.isfinite(loss).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_of_exactly_zero_and_one(backend, dtype):
    """Each log term is clamped at -100, as torch does: finite loss, torch's gradient."""
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.5], dtype)
    target = np.array([0.0, 1.0, 0.0, 1.0, 0.3], dtype)
    for reduction in ("none", "mean"):
        loss, grad = check("binary_cross_entropy", p, target, dtype, reduction)
        assert np.isfinite(loss).all()


def test_worked_example(backend):
    """The seeds' value is torch's in float32."""
    logits = np.array([[0.2], [-1.0], [2.0]], np.float32)
    target = np.array([[1.0], [0.0], [1.0]], np.float32)
    from_probabilities, _ = check("binary_cross_entropy", sigmoid(logits), target, np.float32)
    from_logits, _ = check("binary_cross_entropy_with_logits", logits, target, np.float32)
    np.testing.assert_allclose([from_probabilities, from_logits], 0.346109539270401, rtol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
def test_memory_layouts_and_in_place(backend, rng, name):
    base = make_input(rng, name, (4, 6, 10), np.float32)
    for layout in (np.asfortranarray, lambda a: a[:, ::2], lambda a: a[::-1]):
        x = layout(base.copy())  # a fresh array each time: the gradient overwrites it
        target = np.asfortranarray(rng.random(x.shape).astype(np.float32))
        check(name, x, target, np.float32, "none", rng.standard_normal(x.shape).astype(np.float32),
              weight=rng.random((6, 1))[: x.shape[1]].astype(np.float32))
        expected_loss, expected_grad = loss_and_grad(name, x.copy(), target)
        loss, grad = getattr(fl, name)(x, target, return_grad=True, gradient_out=x)
        assert grad is x
        assert_close(loss, expected_loss, np.float32)
        assert_close(x, expected_grad, np.float32)
