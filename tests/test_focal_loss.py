"""sigmoid_focal_loss against torchvision's formula, written with torch ops in reference.py."""
import numpy as np
import pytest

import fastloss as fl
from reference import assert_close, focal_loss_and_grad
from test_class_losses import make_upstream

SHAPES = [(), (7,), (64, 8), (3, 4, 6), (2, 1, 5, 4), (0, 3)]
PARAMETERS = [(0.25, 2.0), (-1.0, 2.0), (0.25, 0.0), (0.6, 1.0), (0.25, 0.5), (0.9, 3.7)]


def check(x, target, dtype, alpha=0.25, gamma=2.0, reduction="none", grad_output=None, stable=False):
    """fastloss against the reference, and nothing the caller passed is modified."""
    originals = [np.array(a, copy=True) for a in (x, target)]
    loss, grad = fl.sigmoid_focal_loss(x, target, alpha=alpha, gamma=gamma, reduction=reduction,
                                       return_grad=True, grad_output=grad_output)
    ref_loss, ref_grad = focal_loss_and_grad(x, target, alpha, gamma, reduction, grad_output, stable)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    np.testing.assert_array_equal(
        fl.sigmoid_focal_loss(x, target, alpha=alpha, gamma=gamma, reduction=reduction), loss)
    for before, after in zip(originals, (x, target)):
        np.testing.assert_array_equal(before, after)
    return loss, grad


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha, gamma", PARAMETERS)
def test_matches_torchvision(backend, rng, shape, dtype, reduction, alpha, gamma):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    target = (rng.random(shape) < 0.3).astype(dtype)
    check(x, target, dtype, alpha, gamma, reduction, make_upstream(rng, reduction, shape, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_targets(backend, rng, dtype):
    """Targets between 0 and 1 follow torchvision's formula as written."""
    x = (rng.standard_normal((5, 40)) * 4).astype(dtype)
    target = rng.random((5, 40)).astype(dtype)
    for alpha, gamma in PARAMETERS:
        check(x, target, dtype, alpha, gamma, "sum")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 2.5])
def test_huge_logits_stay_finite(backend, dtype, gamma):
    """Logits up to 1e4 either way, where 1 - p_t underflows to 0 and torchvision's
    gradient is NaN for gamma < 1: equal to the reference formed in log space."""
    x = np.array([-1e4, -1e3, -100.0, -30.0, -17.0, -1.0, 0.0, 1.0, 17.0, 30.0, 100.0, 1e3, 1e4] * 2, dtype)
    target = np.repeat(np.array([0.0, 1.0], dtype), x.size // 2)
    for alpha in (0.25, -1.0):
        for reduction in ("none", "sum"):
            loss, grad = check(x, target, dtype, alpha, gamma, reduction, stable=True)
            assert np.isfinite(loss).all() and np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_as_torchvision(backend, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.5, np.nan, np.inf, -np.inf, -0.5], dtype)
    target = np.array([0.0, 0.0, 0.0, np.nan, 1.0, 1.0, 1.0, 1.0], dtype)
    check(x, target, dtype, reduction="none")
    check(x, target, dtype, reduction="sum")


def test_gamma_zero_is_alpha_weighted_bce_with_logits(backend, rng):
    x = rng.standard_normal((6, 9)) * 3
    target = (rng.random((6, 9)) < 0.5).astype(np.float64)
    alpha_t = 0.25 * target + 0.75 * (1 - target)
    loss, grad = fl.sigmoid_focal_loss(x, target, gamma=0.0, return_grad=True)
    bce, bce_grad = fl.binary_cross_entropy_with_logits(x, target, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, alpha_t * bce, rtol=1e-12)
    np.testing.assert_allclose(grad, alpha_t * bce_grad, rtol=1e-12)


def test_float16_computes_in_float32(backend, rng):
    x = (rng.standard_normal((4, 33)) * 3).astype(np.float16)
    target = (rng.random((4, 33)) < 0.5).astype(np.float16)
    loss, grad = fl.sigmoid_focal_loss(x, target, reduction="mean", return_grad=True)
    ref_loss, ref_grad = focal_loss_and_grad(x.astype(np.float32), target.astype(np.float32), 0.25, 2.0, "mean")
    assert loss.dtype == grad.dtype == np.float16
    assert_close(loss, ref_loss.astype(np.float16), np.float16)
    assert_close(grad, ref_grad.astype(np.float16), np.float16)


def test_memory_layouts_and_in_place(backend, rng):
    base = (rng.standard_normal((4, 6, 10)) * 3).astype(np.float32)
    for layout in (np.asfortranarray, lambda a: a[:, ::2], lambda a: a[::-1]):
        x = layout(base.copy())  # a fresh array each time: the gradient overwrites it
        target = np.asfortranarray((rng.random(x.shape) < 0.5).astype(np.float32))
        check(x, target, np.float32, grad_output=rng.standard_normal(x.shape).astype(np.float32))
        expected_loss, expected_grad = focal_loss_and_grad(x.copy(), target, 0.25, 2.0, "sum")
        loss, grad = fl.sigmoid_focal_loss(x, target, reduction="sum", return_grad=True, gradient_out=x)
        assert grad is x
        assert_close(loss, expected_loss, np.float32)
        assert_close(x, expected_grad, np.float32)


@pytest.mark.parametrize("alpha, gamma, error", [
    (0.25, -1.0, ValueError), (np.nan, 2.0, ValueError), (0.25, np.inf, ValueError),
    ("0.25", 2.0, TypeError), (0.25, None, TypeError),
])
def test_bad_parameters_raise_before_writing(backend, alpha, gamma, error):
    x = np.zeros((2, 3))
    out = np.full((2, 3), 7.0)
    with pytest.raises(error, match="alpha|gamma"):
        fl.sigmoid_focal_loss(x, np.zeros((2, 3)), alpha=alpha, gamma=gamma, return_grad=True, gradient_out=out)
    assert (out == 7.0).all()


def test_bad_shapes_and_reduction_raise(backend):
    with pytest.raises(ValueError, match="target"):
        fl.sigmoid_focal_loss(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="reduction"):
        fl.sigmoid_focal_loss(np.zeros((2, 3)), np.zeros((2, 3)), reduction="batchmean")
