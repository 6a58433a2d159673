"""kl_div against torch.nn.functional.kl_div."""
import warnings

import numpy as np
import pytest

import fastloss as fl
from reference import assert_close, loss_and_grad
from test_class_losses import make_upstream

SHAPES = [(), (7,), (64, 8), (3, 4, 6), (2, 3, 5, 4), (0, 3), (3, 0)]
REDUCTIONS = ["mean", "batchmean", "sum", "none"]


def reference(x, target, **kwargs):
    with warnings.catch_warnings():  # torch's notice that "mean" is not "batchmean"
        warnings.simplefilter("ignore", UserWarning)
        return loss_and_grad("kl_div", x, target, **kwargs)


def check(x, target, dtype, reduction="mean", log_target=False, grad_output=None):
    """fastloss against torch, and nothing the caller passed is modified."""
    originals = [np.array(a, copy=True) for a in (x, target)]
    loss, grad = fl.kl_div(x, target, reduction=reduction, log_target=log_target, return_grad=True,
                           grad_output=grad_output)
    ref_loss, ref_grad = reference(x, target, reduction=reduction, log_target=log_target,
                                   grad_output=grad_output)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    np.testing.assert_array_equal(fl.kl_div(x, target, reduction=reduction, log_target=log_target), loss)
    for before, after in zip(originals, (x, target)):
        np.testing.assert_array_equal(before, after)
    return loss, grad


def log_probabilities(rng, shape, dtype):
    """Log-softmax of random logits along the last axis."""
    z = rng.standard_normal(shape) * 2
    if z.ndim and z.shape[-1]:
        z = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True], ids=["probabilities", "log_target"])
def test_matches_torch(backend, rng, shape, dtype, reduction, log_target):
    x = log_probabilities(rng, shape, dtype)
    target = log_probabilities(rng, shape, dtype)
    if not log_target:
        target = np.exp(target)
    check(x, target, dtype, reduction, log_target, make_upstream(rng, reduction, shape, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_negative_and_nan_targets_as_torch(backend, dtype):
    """xlogy: a zero target contributes 0 (even against -inf input); a negative or NaN
    target gives NaN, as torch's."""
    x = np.array([-1.0, -np.inf, -2.0, -0.5, -1.0, np.nan, -1e4, 0.0], dtype)
    target = np.array([0.0, 0.0, -0.5, np.nan, 1.0, 0.3, 0.2, 1.0], dtype)
    for reduction in ("none", "sum"):
        check(x, target, dtype, reduction)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_log_targets_as_torch(backend, dtype):
    x = np.array([-1.0, -np.inf, -2.0, 0.0, np.nan, -1e4, 1e4], dtype)
    target = np.array([-np.inf, -np.inf, -1e4, 80.0, -1.0, np.nan, -50.0], dtype)
    for reduction in ("none", "sum"):
        check(x, target, dtype, reduction, log_target=True)


def test_batchmean_is_the_divergence_per_sample(backend, rng):
    """Summed over the class axis and averaged over samples: KL(p || q) of each row."""
    log_q = log_probabilities(rng, (5, 7), np.float64)
    p = np.exp(log_probabilities(rng, (5, 7), np.float64))
    expected = np.mean(np.sum(p * (np.log(p) - log_q), axis=1))
    np.testing.assert_allclose(fl.kl_div(log_q, p, reduction="batchmean"), expected, rtol=1e-12)
    np.testing.assert_allclose(fl.kl_div(log_q, np.log(p), reduction="batchmean", log_target=True), expected,
                               rtol=1e-12)


def test_float16_computes_in_float32(backend, rng):
    x = log_probabilities(rng, (4, 33), np.float16)
    target = np.exp(log_probabilities(rng, (4, 33), np.float32)).astype(np.float16)
    loss, grad = fl.kl_div(x, target, reduction="batchmean", return_grad=True)
    ref_loss, ref_grad = reference(x.astype(np.float32), target.astype(np.float32), reduction="batchmean")
    assert loss.dtype == grad.dtype == np.float16
    assert_close(loss, ref_loss.astype(np.float16), np.float16)
    assert_close(grad, ref_grad.astype(np.float16), np.float16)


def test_memory_layouts_and_in_place(backend, rng):
    base = log_probabilities(rng, (4, 6, 10), np.float32)
    for layout in (np.asfortranarray, lambda a: a[:, ::2], lambda a: a[::-1]):
        x = layout(base.copy())  # a fresh array each time: the gradient overwrites it
        target = np.asfortranarray(np.exp(log_probabilities(rng, x.shape, np.float32)))
        check(x, target, np.float32, "none", grad_output=rng.standard_normal(x.shape).astype(np.float32))
        expected_loss, expected_grad = reference(x.copy(), target, reduction="batchmean")
        loss, grad = fl.kl_div(x, target, reduction="batchmean", return_grad=True, gradient_out=x)
        assert grad is x
        assert_close(loss, expected_loss, np.float32)
        assert_close(x, expected_grad, np.float32)


def test_errors_raise_before_writing(backend):
    out = np.full((2, 3), 7.0)
    with pytest.raises(ValueError, match="reduction"):
        fl.kl_div(np.zeros((2, 3)), np.zeros((2, 3)), reduction="average", return_grad=True, gradient_out=out)
    with pytest.raises(ValueError, match="target"):
        fl.kl_div(np.zeros((2, 3)), np.zeros((3,)), return_grad=True, gradient_out=out)
    with pytest.raises(TypeError):
        fl.kl_div(np.zeros((2, 3)), np.array([["a"] * 3] * 2))
    assert (out == 7.0).all()
