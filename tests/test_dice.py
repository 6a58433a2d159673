"""dice_loss against MONAI's DiceLoss, its few lines transcribed with torch ops here.

MONAI is not a dependency: `monai_dice` is ``monai.losses.DiceLoss.forward``
(``softmax=True`` / ``sigmoid=True`` / neither, ``to_onehot_y=True`` for class
indices, ``smooth_nr = smooth_dr = smooth``, ``include_background=True``,
``batch=False``, MONAI's class ``weight``) written with torch.  The reference
runs in float64 on the input's values, so a comparison measures fastloss's own
rounding; values and autograd gradients both come from it.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastloss as fl
from test_errors import AxisError
from test_properties import arrays

ACTIVATIONS = ["softmax", "sigmoid", None]
REDUCTIONS = ["mean", "sum", "none"]
# Losses: as the other losses' parity.  Gradients: the softmax's p_c (q_c - r)
# cancels, so the absolute tolerance is relative to the gradient's scale.
TOLERANCE = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def monai_dice(x, target, *, axis=1, activation="softmax", smooth=1e-5, reduction="mean", weight=None,
               grad_output=None):
    """MONAI's DiceLoss forward, and autograd's gradient of ``sum(grad_output * loss)``.

    Classes are moved to dim 1 (MONAI's layout) and class indices get MONAI's
    one-hot; an ``(N, C)`` input gets a spatial axis of size 1, the choice
    dice_loss documents (MONAI's ``torch.sum(dim=[])`` would sum the batch).
    """
    xt = torch.from_numpy(np.asarray(x, np.float64).copy()).requires_grad_(True)
    inp = torch.movedim(xt, axis, 1)
    if inp.dim() == 2:
        inp = inp[..., None]
    if activation == "sigmoid":
        inp = torch.sigmoid(inp)
    elif activation == "softmax":
        inp = torch.softmax(inp, 1)
    target = np.asarray(target)
    if target.dtype.kind == "f":
        tgt = torch.movedim(torch.from_numpy(target.astype(np.float64)), axis, 1)
        if tgt.dim() == 2:
            tgt = tgt[..., None]
    else:
        tgt = torch.from_numpy(target.astype(np.int64))
        if tgt.dim() == 1:
            tgt = tgt[..., None]
        tgt = torch.movedim(F.one_hot(tgt, inp.shape[1]), -1, 1).to(inp.dtype)
    reduce_axis = list(range(2, inp.dim()))
    intersection = torch.sum(tgt * inp, dim=reduce_axis)
    ground_o = torch.sum(tgt, dim=reduce_axis)
    pred_o = torch.sum(inp, dim=reduce_axis)
    f = 1.0 - (2.0 * intersection + smooth) / (ground_o + pred_o + smooth)
    if weight is not None:
        f = f * torch.as_tensor(np.asarray(weight, np.float64))
    if reduction == "mean":
        f = torch.mean(f)
    elif reduction == "sum":
        f = torch.sum(f)
    upstream = torch.ones_like(f) if grad_output is None else torch.as_tensor(
        np.asarray(grad_output, np.float64)).expand_as(f)
    f.backward(upstream)
    return f.detach().numpy(), xt.grad.numpy()


def assert_matches(actual, expected, dtype, gradient=False):
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    tol = TOLERANCE[np.dtype(dtype)]
    expected = np.asarray(expected, np.float64)
    scale = np.nanmax(np.abs(expected), initial=0.0) if gradient and np.isfinite(expected).any() else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=10 * tol if gradient else tol,
                               atol=max(tol * scale, np.finfo(dtype).smallest_subnormal))  # float16's step


def check(x, target, dtype=None, **kwargs):
    """dice_loss with its gradient against `monai_dice`; returns fastloss's results."""
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else dtype
    loss, grad = fl.dice_loss(x, target, return_grad=True, **kwargs)
    ref_loss, ref_grad = monai_dice(x, target, **kwargs)
    assert_matches(loss, ref_loss, dtype)
    assert_matches(grad, ref_grad, dtype, gradient=True)
    return loss, grad


def class_indices(rng, shape, axis):
    classes = shape[axis]
    return rng.integers(0, classes, tuple(np.delete(shape, axis)))


def probabilities(rng, shape, axis):
    p = rng.random(shape)
    return p / p.sum(axis=axis, keepdims=True)


SHAPES = [(3, 4), (2, 3, 7), (2, 4, 5, 6), (2, 3, 2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("targets", [class_indices, probabilities])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_matches_monai(backend, rng, shape, reduction, targets, activation):
    x = rng.normal(size=shape)
    if activation is None:
        x = rng.random(shape)
    check(x, targets(rng, shape, 1), activation=activation, reduction=reduction)


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (3, 64, 7), (2, 9, 9, 1000)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("targets", [class_indices, probabilities])
def test_dtypes_and_sizes(backend, rng, shape, dtype, targets):
    x = rng.normal(size=shape).astype(dtype)
    check(x, targets(rng, shape, 1), dtype=dtype)


@pytest.mark.parametrize("axis", [-1, 0, 2])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("targets", [class_indices, probabilities])
def test_other_class_axes(backend, rng, axis, activation, targets):
    shape = (3, 4, 5, 6)
    x = rng.normal(size=shape).astype(np.float32)
    check(x, targets(rng, shape, axis), axis=axis, activation=activation, reduction="none")


def test_channels_last_is_not_copied(backend, rng):
    """An (N, H, W, C) input is read in place: its gradient comes back channels-last."""
    x = np.ascontiguousarray(rng.normal(size=(2, 6, 7, 5)).astype(np.float32))
    _, grad = check(x, class_indices(rng, x.shape, -1), axis=-1)
    assert grad.flags.c_contiguous


@pytest.mark.parametrize("layout", ["F", "strided", "reversed", "transposed"])
def test_non_contiguous_input(backend, rng, layout):
    base = rng.normal(size=(4, 6, 8, 10))
    x = {"F": np.asfortranarray(base), "strided": base[::2, :, ::2, 1::3],
         "reversed": base[::-1, ::-1, :, ::-1], "transposed": base.transpose(0, 1, 3, 2)}[layout]
    check(x, class_indices(rng, x.shape, 1))
    check(x, probabilities(rng, x.shape, 1), activation="sigmoid")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_grad_output(backend, rng, reduction):
    x = rng.normal(size=(3, 4, 5, 5))
    t = class_indices(rng, x.shape, 1)
    go = rng.normal(size=(3, 4)) if reduction == "none" else 2.5
    check(x, t, reduction=reduction, grad_output=go)
    if reduction == "none":  # broadcast over the samples
        check(x, t, reduction="none", grad_output=rng.normal(size=4))


def test_class_weight(backend, rng):
    x = rng.normal(size=(2, 3, 4, 5))
    check(x, class_indices(rng, x.shape, 1), weight=[0.5, 0.0, 2.0])
    check(x, probabilities(rng, x.shape, 1), weight=[1.0, 3.0, 0.25], reduction="none")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [1, -1])
def test_gradient_in_place(backend, rng, dtype, axis):
    x = rng.normal(size=(2, 4, 6, 5)).astype(dtype)
    t = class_indices(rng, x.shape, axis)
    ref_loss, ref_grad = monai_dice(x, t, axis=axis)
    loss, grad = fl.dice_loss(x, t, axis=axis, return_grad=True, gradient_out=x)
    assert grad is x
    assert_matches(loss, ref_loss, dtype)
    assert_matches(x, ref_grad, dtype, gradient=True)


def test_gradient_out_of_another_layout(backend, rng):
    x = rng.normal(size=(2, 4, 6, 5)).astype(np.float32)
    t = class_indices(rng, x.shape, 1)
    out = np.empty(x.shape, np.float32, order="F")
    _, grad = fl.dice_loss(x, t, return_grad=True, gradient_out=out)
    assert grad is out
    assert_matches(out, monai_dice(x, t)[1], np.float32, gradient=True)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits(backend, rng, activation, dtype):
    x = rng.choice([1e4, -1e4, 0.0, 3.0], size=(2, 3, 4, 6)).astype(dtype)
    check(x, class_indices(rng, x.shape, 1), activation=activation)
    check(x, probabilities(rng, x.shape, 1), activation=activation, reduction="none")


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("axis", [1, -1])
def test_special_values_propagate_as_monai(backend, rng, special, activation, axis):
    x = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    x[(1, 2, 3, 4)] = special
    loss, grad = check(x, class_indices(rng, x.shape, axis), axis=axis, activation=activation,
                       reduction="none")
    assert np.isnan(loss).any() == np.isnan(monai_dice(x, class_indices(rng, x.shape, axis), axis=axis,
                                                       activation=activation, reduction="none")[0]).any()


def test_absent_class_predicted_near_zero(backend, rng):
    """A class in no target, its probability ~0 everywhere: loss ~0, as MONAI's."""
    x = rng.normal(size=(2, 3, 8, 8))
    x[:, 2] = -40.0
    t = rng.integers(0, 2, (2, 8, 8))
    loss, _ = check(x, t, reduction="none")
    assert np.all(loss[:, 2] < 1e-4)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_class(backend, rng, activation):
    x = rng.random((3, 1, 4, 5))
    check(x, np.zeros((3, 4, 5), np.uint8), activation=activation, reduction="none")
    check(x, rng.random(x.shape), activation=activation)


def test_smooth_zero_gives_monai_nan(backend, rng):
    x = np.zeros((1, 2, 3))
    x[0, 0] = 1.0  # class 1: no prediction, no target
    loss, grad = check(x, np.zeros((1, 3), np.int64), activation=None, smooth=0.0, reduction="none")
    assert np.isnan(loss[0, 1]) and not np.isnan(loss[0, 0])


def test_empty(backend):
    loss, grad = fl.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 4), np.int64), return_grad=True)
    assert np.isnan(loss) and grad.shape == (0, 3, 4)
    assert fl.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 4), np.int64), reduction="sum") == 0
    assert fl.dice_loss(np.zeros((0, 3, 4)), np.zeros((0, 4), np.int64), reduction="none").shape == (0, 3)
    check(np.zeros((2, 3, 0, 4)), np.zeros((2, 0, 4), np.int64), reduction="none")
    check(np.zeros((2, 3, 0)), np.zeros((2, 3, 0)), smooth=0.5)


@pytest.mark.parametrize("shape,axis", [((2, 3, 700, 1000), 1), ((2, 128, 128, 3), -1), ((4, 40, 50, 60), 1)])
def test_large_inputs_and_thread_count(backend, rng, shape, axis):
    """Several blocks per sample, a streamed gradient: the reference's values, and bitwise the
    same results on one thread as on all."""
    x = rng.normal(size=shape).astype(np.float32)
    t = class_indices(rng, shape, axis)
    loss, grad = check(x, t, axis=axis, reduction="none")
    previous = fl.get_num_threads()
    try:
        fl.set_num_threads(1)
        one_loss, one_grad = fl.dice_loss(x, t, axis=axis, reduction="none", return_grad=True)
    finally:
        fl.set_num_threads(previous)
    assert np.array_equal(loss, one_loss) and np.array_equal(grad, one_grad)


def test_inputs_unmodified(backend, rng):
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    t = class_indices(rng, x.shape, 1)
    y = probabilities(rng, x.shape, 1)
    copies = x.copy(), t.copy(), y.copy()
    fl.dice_loss(x, t, return_grad=True)
    fl.dice_loss(x, y, return_grad=True, activation="sigmoid", reduction="none",
                 grad_output=np.ones((2, 3)))
    for arr, copy in zip((x, t, y), copies):
        assert np.array_equal(arr, copy)


def test_integer_input_is_promoted(backend, rng):
    x = rng.integers(-3, 3, (2, 3, 4))
    loss, grad = check(x, class_indices(rng, x.shape, 1), dtype=np.float64)
    assert loss.dtype == np.float64 and grad.dtype == np.float64


ERRORS = [
    (ValueError, dict(input=np.zeros(3), target=np.zeros((), np.int64))),
    (ValueError, dict(activation="relu")),
    (ValueError, dict(smooth=-1e-5)),
    (ValueError, dict(smooth=np.inf)),
    (ValueError, dict(smooth=np.nan)),
    (TypeError, dict(smooth="small")),
    (ValueError, dict(reduction="batchmean")),
    (ValueError, dict(target=np.zeros((2, 5), np.int64))),
    (ValueError, dict(target=np.zeros((2, 4, 5)))),            # float class indices
    (ValueError, dict(target=np.zeros((2, 3, 4, 5), np.int64))),  # integer per-class targets
    (IndexError, dict(target=np.full((2, 4, 5), 3))),
    (IndexError, dict(target=np.full((2, 4, 5), -1))),
    (ValueError, dict(weight=[1.0, 2.0])),
    (ValueError, dict(weight=[1.0, -2.0, 1.0])),
    (ValueError, dict(grad_output=1.0)),
    (ValueError, dict(return_grad=True, grad_output=np.ones(2))),
    (ValueError, dict(return_grad=True, reduction="none", grad_output=np.ones((3, 3)))),
    (TypeError, dict(return_grad=True, gradient_out=np.zeros((2, 3, 4, 5), np.float32))),
    (ValueError, dict(return_grad=True, gradient_out=np.zeros((2, 3, 4, 4)))),
    (TypeError, dict(input=np.zeros((2, 3, 4, 5), complex))),
    (AxisError, dict(axis=4)),
]


@pytest.mark.parametrize("error,change", ERRORS)
def test_errors_before_anything_is_written(backend, error, change):
    arguments = dict(input=np.zeros((2, 3, 4, 5)), target=np.zeros((2, 4, 5), np.int64))
    arguments.update(change)
    out = arguments.get("gradient_out")
    before = None if out is None else out.copy()
    with pytest.raises(error):
        fl.dice_loss(arguments.pop("input"), arguments.pop("target"), **arguments)
    if out is not None:
        assert np.array_equal(out, before)


def test_read_only_gradient_out(backend):
    out = np.zeros((2, 3, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fl.dice_loss(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64), return_grad=True, gradient_out=out)


@st.composite
def dice_problems(draw):
    ndim = draw(st.integers(2, 4))
    classes = draw(st.integers(1, 5))
    others = [draw(st.integers(1, 4)) for _ in range(ndim - 1)]
    axis = draw(st.sampled_from([1, -1]))
    shape = list(others)
    shape.insert(axis % ndim, classes)
    shape = tuple(shape)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    activation = draw(st.sampled_from(["softmax", "sigmoid"]))
    # Logits in [-4, 4]: a float32 sigmoid's p (1 - p) near saturation carries p's
    # rounding, relative ulp(1) / (1 - p), in torch as here; huge logits have their own test.
    x = draw(arrays(shape, dtype, extremes=False))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    target = (class_indices(rng, shape, axis) if draw(st.booleans())
              else probabilities(rng, shape, axis).astype(dtype))
    smooth = draw(st.sampled_from([1e-5, 1.0, 1e-8]))
    return x, target, axis, activation, smooth


@given(dice_problems())
def test_property_loss_in_unit_interval_and_parity(backend, problem):
    """With smooth > 0 and probabilities and targets in [0, 1], each loss lies in [0, 1]
    (2 p t <= p + t); values and gradients match MONAI's."""
    x, target, axis, activation, smooth = problem
    loss, _ = check(x, target, axis=axis, activation=activation, smooth=smooth, reduction="none")
    assert np.all((loss >= -1e-6) & (loss <= 1 + 1e-6))
