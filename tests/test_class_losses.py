"""nll_loss and cross_entropy against torch: values and autograd gradients."""
import numpy as np
import pytest

import fastloss as fl
from reference import assert_close, loss_and_grad

SHAPES = [(5,), (7, 5), (3, 4, 6), (2, 5, 4, 3), (2, 3, 2, 3, 4), (6, 1), (2, 1, 3, 3), (0, 5), (0, 4, 3, 3)]
LOSSES = ["nll_loss", "cross_entropy"]
INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def make_input(rng, name, shape, dtype):
    x = rng.standard_normal(shape) * 3
    if name == "nll_loss":  # log-probabilities, not normalised: nll_loss does not care
        x = -np.abs(x)
    return x.astype(dtype)


def make_target(rng, shape, axis=1, ignore_fraction=0.2, ignore_index=-100):
    axis = 0 if len(shape) == 1 else axis % len(shape)
    classes = shape[axis]
    position_shape = shape[:axis] + shape[axis + 1:]
    target = rng.integers(0, classes, size=position_shape)
    target[rng.random(position_shape) < ignore_fraction] = ignore_index
    return np.asarray(target, np.int64)


def make_upstream(rng, reduction, loss_shape, dtype):
    if reduction == "none":
        return rng.uniform(-2, 2, size=loss_shape).astype(dtype)
    return 0.7


def check(name, x, target, dtype, *, weight=None, reduction="mean", grad_output=None, **kwargs):
    """fastloss against torch, and nothing the caller passed is modified."""
    originals = [np.array(a, copy=True) for a in (x, target, weight, grad_output) if a is not None]
    loss, grad = getattr(fl, name)(x, target, weight, reduction=reduction, return_grad=True,
                                   grad_output=grad_output, **kwargs)
    ref_loss, ref_grad = loss_and_grad(name, x, target, weight=weight, reduction=reduction,
                                       grad_output=grad_output, **kwargs)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    if reduction != "none":
        assert isinstance(loss, np.generic)
    alone = getattr(fl, name)(x, target, weight, reduction=reduction, **kwargs)
    np.testing.assert_array_equal(alone, loss)
    for before, after in zip(originals, [a for a in (x, target, weight, grad_output) if a is not None]):
        np.testing.assert_array_equal(before, after)
    return loss, grad


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_matches_torch(backend, rng, name, shape, dtype, reduction, weighted):
    x = make_input(rng, name, shape, dtype)
    target = make_target(rng, shape)
    classes = shape[0] if len(shape) == 1 else shape[1]
    weight = rng.uniform(0.1, 2.0, classes).astype(dtype) if weighted else None
    upstream = make_upstream(rng, reduction, target.shape, dtype)
    check(name, x, target, dtype, weight=weight, reduction=reduction, grad_output=upstream)


def test_worked_example(backend):
    logits = np.array([[-1.0, -3.0, 4.0], [-3.0, 3.0, -1.0]])
    target = np.array([0, 1])
    loss, _ = check("cross_entropy", logits, target, np.float64)
    assert round(float(loss), 4) == 2.5141


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_every_target_ignored(backend, rng, name, reduction, weighted):
    x = make_input(rng, name, (4, 3, 5), np.float64)
    target = np.full((4, 5), -100)
    weight = rng.uniform(0.5, 1.5, 3) if weighted else None
    loss, grad = check(name, x, target, np.float64, weight=weight, reduction=reduction)
    if reduction == "mean":
        assert np.isnan(loss)
    assert not grad.any()


@pytest.mark.parametrize("name", LOSSES)
def test_ignore_index_inside_class_range(backend, rng, name):
    x = make_input(rng, name, (16, 4), np.float32)
    target = rng.integers(0, 4, 16)
    check(name, x, target, np.float32, ignore_index=2)
    check(name, x, target, np.float32, ignore_index=2, weight=np.array([1.0, 2.0, 3.0, 4.0], np.float32))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("target_dtype", INTEGER_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_integer_target_dtype(backend, rng, name, target_dtype):
    x = make_input(rng, name, (6, 5, 3), np.float32)
    target = rng.integers(0, 5, (6, 3)).astype(target_dtype)
    check(name, x, target, np.float32)


def _layouts(rng, name, dtype):
    base = make_input(rng, name, (6, 5, 8, 7), dtype)
    yield "fortran", np.asfortranarray(base)
    yield "sliced", base[:, :, ::2, 1:]
    yield "negative-strides", base[::-1, :, :, ::-1]
    yield "channels-last-memory", np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    yield "class-axis-sliced", base[:, ::2]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_memory_layouts(backend, rng, name, dtype, reduction):
    for _, x in _layouts(rng, name, dtype):
        target = make_target(rng, x.shape)
        if rng.random() < 0.5:
            target = np.asfortranarray(target)
        upstream = make_upstream(rng, reduction, target.shape, dtype)
        check(name, x, target, dtype, reduction=reduction, grad_output=upstream,
              weight=rng.uniform(0.5, 1.5, x.shape[1]).astype(dtype))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", [(9, 4), (2, 4, 5, 6), (3, 7, 2, 3, 4)], ids=str)
def test_channels_last_axis(backend, rng, name, shape):
    """axis=-1 on (N, ..., C) data equals torch on the class axis moved to dim 1."""
    x = make_input(rng, name, shape, np.float32)
    target = make_target(rng, shape, axis=-1)
    check(name, x, target, np.float32, axis=-1, reduction="none",
          grad_output=make_upstream(rng, "none", target.shape, np.float32))
    check(name, x, target, np.float32, axis=-1, weight=np.linspace(0.5, 2, shape[-1]).astype(np.float32))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "sliced"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradient_in_place(backend, rng, name, contiguous, reduction):
    full = make_input(rng, name, (4, 6, 10, 9), np.float32)
    x = full if contiguous else full[:, :, ::2]
    before = x.copy()
    between_rows = full[:, :, 1::2].copy()
    target = make_target(rng, x.shape)
    upstream = make_upstream(rng, reduction, target.shape, np.float32)
    ref_loss, ref_grad = loss_and_grad(name, before, target, reduction=reduction, grad_output=upstream)
    loss, grad = getattr(fl, name)(x, target, reduction=reduction, return_grad=True,
                                   grad_output=upstream, gradient_out=x)
    assert grad is x
    assert_close(loss, ref_loss, np.float32)
    assert_close(x, ref_grad, np.float32)
    if not contiguous:
        np.testing.assert_array_equal(full[:, :, 1::2], between_rows)


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_out_of_another_layout(backend, rng, name):
    x = make_input(rng, name, (8, 5, 6), np.float64)
    target = make_target(rng, x.shape)
    out = np.asfortranarray(np.full(x.shape, np.nan))
    _, grad = getattr(fl, name)(x, target, return_grad=True, gradient_out=out)
    assert grad is out
    assert_close(out, loss_and_grad(name, x, target)[1], np.float64)


@pytest.mark.parametrize("name", LOSSES)
def test_integer_input_is_promoted_to_float64(backend, rng, name):
    x = rng.integers(-5, 5, (6, 4))
    target = make_target(rng, x.shape, ignore_fraction=0)
    loss, grad = getattr(fl, name)(x, target, return_grad=True)
    ref_loss, ref_grad = loss_and_grad(name, x.astype(np.float64), target)
    assert_close(loss, ref_loss, np.float64)
    assert_close(grad, ref_grad, np.float64)


def test_cross_entropy_is_nll_of_log_softmax(backend, rng):
    x = rng.standard_normal((3, 8, 4, 5)).astype(np.float32)
    target = make_target(rng, x.shape, ignore_fraction=0)
    expected = fl.nll_loss(fl.log_softmax(x, axis=1), target)
    np.testing.assert_allclose(fl.cross_entropy(x, target), expected, rtol=1e-6)


# A NaN whose payload the exps' exponent arithmetic would turn into a finite number.
PAYLOAD_NAN = np.array(0x7FC01000, np.uint32).view(np.float32)[()]


def check_shift_limits(x, target):
    """Loss and gradient against torch, with a small upstream gradient that a large shifted
    sum could push into subnormal scales; the loss alone as with the gradient."""
    upstream = np.full(target.shape, 1e-7, np.float32)
    loss, grad = fl.cross_entropy(x, target, reduction="none", return_grad=True, grad_output=upstream)
    ref_loss, ref_grad = loss_and_grad("cross_entropy", x, target, reduction="none", grad_output=upstream)
    assert_close(loss, ref_loss, np.float32)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-13)
    only_loss = fl.cross_entropy(x, target, reduction="none")
    np.testing.assert_array_equal(only_loss, loss)


@pytest.mark.parametrize("C", [1000, 33])
def test_rows_shifted_by_their_first_value_or_their_max(backend, rng, C):
    """A float32 row's exps may be shifted by its first value (one pass) when no value lies
    more than 30 above it and every exp stays normal, else by its max: rows on either side of
    those limits, among ordinary ones."""
    x = (rng.standard_normal((12, C)) * 2).astype(np.float32)
    x[0, 5] = x[0, 0] + 29.5           # first value shifts, sum near e^29.5
    x[1, 5] = x[1, 0] + 100.0          # far above (exps would overflow): the max shifts
    x[2, 0] = 90.0                     # exps below the normal range: the max shifts
    x[9, 5] = x[9, 0] + 30.5           # just too far above
    x[3, :] = -86.0 + rng.random(C).astype(np.float32) * 6  # tiny logits, first value shifts
    x[4, :] = 85.0 + rng.random(C).astype(np.float32) * 5   # large ones
    x[5, 0] = x[5, 1] - 86.4          # x[0] the min, all exps normal
    x[6, 0] = -np.inf                  # an infinite first value
    x[7, 3] = PAYLOAD_NAN
    x[8, 0] = PAYLOAD_NAN
    target = rng.integers(0, C, 12)
    check_shift_limits(x, target)


@pytest.mark.parametrize("C", [21, 3])
def test_tiles_shifted_by_their_first_class_or_their_max(backend, rng, C):
    """A float32 tile of a spatial map may be shifted by its first class when, at every
    position, no class lies more than 30 above it and every exp stays normal, else by its
    max: each image below is one tile (20 positions, a partial vector) holding one such
    position among ordinary ones, as in the row test above."""
    x = (rng.standard_normal((12, C, 4, 5)) * 2).astype(np.float32)
    x[0, 2, 1, 2] = x[0, 0, 1, 2] + 29.5
    x[1, 2, 1, 2] = x[1, 0, 1, 2] + 100.0
    x[2, 0, 1, 2] = 90.0
    x[9, 2, 1, 2] = x[9, 0, 1, 2] + 30.5
    x[3] = -86.0 + rng.random((C, 4, 5)).astype(np.float32) * 6
    x[4] = 85.0 + rng.random((C, 4, 5)).astype(np.float32) * 5
    x[5, 0, 1, 2] = x[5, 1, 1, 2] - 86.4
    x[6, 0, 1, 2] = -np.inf
    x[7, C - 1, 1, 2] = PAYLOAD_NAN
    x[8, 0, 1, 2] = PAYLOAD_NAN
    target = rng.integers(0, C, (12, 4, 5))
    check_shift_limits(x, target)
