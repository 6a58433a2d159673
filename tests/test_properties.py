"""Property-based parity with torch on inputs nobody hand-picked.

CI runs the "ci" profile (fixed seed, bounded examples); set
FASTLOSS_HYPOTHESIS_PROFILE=long for a longer local run.
"""
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastloss as fl
from reference import focal_loss_and_grad, loss_and_grad, normaliser, normaliser_backward, z_loss_cross_entropy

# The backend fixture only selects a backend: nothing in it needs resetting between examples.
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None,
                          suppress_health_check=SUPPRESSED)
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=SUPPRESSED)
settings.load_profile(os.environ.get("FASTLOSS_HYPOTHESIS_PROFILE", "ci"))

DTYPES = [np.float16, np.float32, np.float64]
TOLERANCE = {np.float16: dict(rtol=5e-3, atol=5e-3), np.float32: dict(rtol=1e-4, atol=1e-5),
             np.float64: dict(rtol=1e-9, atol=1e-12)}
SPECIALS = [1e4, -1e4, np.inf, -np.inf, np.nan]


@st.composite
def arrays(draw, shape, dtype, extremes=True, low=-4.0, high=4.0):
    """Random values in one of several memory layouts, optionally with extreme values."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(st.sampled_from(["C", "F", "strided", "reversed"]))
    if layout == "strided":
        big = rng.uniform(low, high, tuple(2 * n for n in shape))
        values = big[tuple(slice(None, None, 2) for _ in shape)]
    else:
        values = rng.uniform(low, high, shape)
    values = np.asarray(values)  # 0-d: indexing and uniform give a scalar, not an array
    if extremes and values.size and draw(st.booleans()):
        picks = rng.random(values.shape) < 0.1
        values[picks] = rng.choice(SPECIALS, size=int(picks.sum()))
    if layout == "F":
        values = np.array(values, order="F")  # asfortranarray would make 0-d 1-d
    elif layout == "reversed":  # the same values, seen through negative strides
        values = np.flip(np.flip(values).copy())
    return values.astype(dtype, copy=False)


@st.composite
def class_problems(draw):
    ndim = draw(st.integers(1, 4))
    wide = draw(st.integers(0, 9)) == 0
    classes = draw(st.sampled_from([1000, 2**17])) if wide else draw(st.integers(1, 7))
    others = [draw(st.integers(0, 1 if wide else 4)) for _ in range(ndim - 1)]
    axis = 0 if ndim == 1 else draw(st.integers(-ndim, ndim - 1))
    shape = list(others)
    shape.insert(axis % ndim, classes)
    shape = tuple(shape)
    dtype = draw(st.sampled_from(DTYPES))
    x = draw(arrays(shape, dtype))
    positions = shape[:axis % ndim] + shape[axis % ndim + 1:]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    probabilities = draw(st.booleans())
    if probabilities:
        target = rng.random(shape)
        target = (target / np.maximum(target.sum(axis=axis, keepdims=True), 1e-12)).astype(dtype)
        ignore_index = -100
    else:
        ignore_index = draw(st.sampled_from([-100, 0, classes - 1]))
        target = rng.integers(0, classes, positions)
        target = np.where(rng.random(positions) < 0.2, ignore_index, target)
        narrow = (np.uint8 if classes < 200 and ignore_index >= 0
                  else np.int16 if classes <= 2**15 else np.int32)  # one that holds every class
        target = target.astype(draw(st.sampled_from([np.int64, np.int32, narrow])))
    weight = rng.uniform(0, 2, classes).astype(dtype) if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    loss_shape = positions if reduction == "none" else ()
    grad_output = (rng.uniform(-2, 2, loss_shape).astype(dtype) if reduction == "none"
                   else float(rng.uniform(-2, 2)))
    return dict(x=x, target=target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                label_smoothing=smoothing, axis=axis, grad_output=grad_output)


def compare(actual, expected, dtype):
    actual = np.asarray(actual)
    assert actual.dtype == dtype
    expected = np.asarray(expected).astype(dtype).astype(np.float64)
    np.testing.assert_allclose(actual.astype(np.float64), expected, equal_nan=True, **TOLERANCE[dtype])


@given(problem=class_problems())
def test_cross_entropy(backend, problem):
    x = problem.pop("x")
    target = problem.pop("target")
    loss, grad = fl.cross_entropy(x, target, **problem, return_grad=True)
    expected_loss, expected_grad = loss_and_grad("cross_entropy", x, target, **problem)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@given(problem=class_problems())
def test_nll_loss(backend, problem):
    x = problem.pop("x")
    target = problem.pop("target")
    problem.pop("label_smoothing")
    if target.shape == x.shape:  # nll_loss takes class indices only
        return
    loss, grad = fl.nll_loss(x, target, **problem, return_grad=True)
    expected_loss, expected_grad = loss_and_grad("nll_loss", x, target, **problem)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@st.composite
def binary_problems(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.integers(0, 5)) for _ in range(ndim))
    dtype = draw(st.sampled_from(DTYPES))
    with_logits = draw(st.booleans())
    x = draw(arrays(shape, dtype, extremes=with_logits, low=-30 if with_logits else 0,
                    high=30 if with_logits else 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    target = rng.random(shape).astype(dtype)

    def factor():
        kept = draw(st.integers(0, ndim))
        factor_shape = tuple(n if draw(st.booleans()) else 1 for n in shape[ndim - kept:])
        return rng.uniform(0, 3, factor_shape).astype(dtype)

    options = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    if draw(st.booleans()):
        options["weight"] = factor()
    if with_logits and draw(st.booleans()):
        options["pos_weight"] = factor()
    options["grad_output"] = (rng.uniform(-2, 2, shape).astype(dtype) if options["reduction"] == "none"
                              else float(rng.uniform(-2, 2)))
    name = "binary_cross_entropy_with_logits" if with_logits else "binary_cross_entropy"
    return name, x, target, options


@given(problem=binary_problems())
def test_binary_losses(backend, problem):
    name, x, target, options = problem
    loss, grad = getattr(fl, name)(x, target, **options, return_grad=True)
    expected_loss, expected_grad = loss_and_grad(name, x, target, **options)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@given(problem=class_problems(), z_loss=st.sampled_from([1e-4, 0.1, 1.0]))
def test_cross_entropy_z_loss(backend, problem, z_loss):
    """Against the reference in float64 on the same values (torch's float32 gradient of
    ``logsumexp**2`` loses digits at huge logits)."""
    x = problem.pop("x")
    target = problem.pop("target")
    loss, grad = fl.cross_entropy(x, target, **problem, z_loss=z_loss, return_grad=True)
    wide = {key: value.astype(np.float64) if isinstance(value, np.ndarray) and value.dtype.kind == "f" else value
            for key, value in problem.items()}
    wide_target = target.astype(np.float64) if target.dtype.kind == "f" else target
    expected_loss, expected_grad = z_loss_cross_entropy(x.astype(np.float64), wide_target, z_loss, **wide)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@st.composite
def focal_problems(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.integers(0, 5)) for _ in range(ndim))
    dtype = draw(st.sampled_from(DTYPES))
    x = draw(arrays(shape, dtype, extremes=False, low=-60, high=60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    soft = draw(st.booleans())
    target = (rng.random(shape) if soft else rng.random(shape) < 0.5).astype(dtype)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    return dict(x=x, target=target, alpha=draw(st.sampled_from([0.25, -1.0, 0.8])),
                gamma=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5])), reduction=reduction,
                grad_output=(rng.uniform(-2, 2, shape).astype(dtype) if reduction == "none"
                             else float(rng.uniform(-2, 2))))


@given(problem=focal_problems())
def test_sigmoid_focal_loss(backend, problem):
    """Against torchvision's formula in float64, with ``(1 - p_t) ** gamma`` formed in log
    space (its plain form has no finite gradient where 1 - p_t rounds to 0 and gamma < 1)."""
    x, target = problem.pop("x"), problem.pop("target")
    loss, grad = fl.sigmoid_focal_loss(x, target, **problem, return_grad=True)
    upstream = problem.pop("grad_output")
    expected_loss, expected_grad = focal_loss_and_grad(
        x.astype(np.float64), target.astype(np.float64), problem["alpha"], problem["gamma"], problem["reduction"],
        upstream.astype(np.float64) if isinstance(upstream, np.ndarray) else upstream, stable=True)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@given(data=st.data())
def test_kl_div(backend, data):
    ndim = data.draw(st.integers(0, 4))
    shape = tuple(data.draw(st.integers(0, 5)) for _ in range(ndim))
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(shape, dtype, low=-8, high=0))
    log_target = data.draw(st.booleans())
    target = data.draw(arrays(shape, dtype, extremes=log_target, low=-8 if log_target else 0,
                              high=0 if log_target else 1))
    reduction = data.draw(st.sampled_from(["mean", "batchmean", "sum", "none"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    upstream = rng.uniform(-2, 2, shape).astype(dtype) if reduction == "none" else float(rng.uniform(-2, 2))
    options = dict(reduction=reduction, log_target=log_target, grad_output=upstream)
    loss, grad = fl.kl_div(x, target, **options, return_grad=True)
    with warnings.catch_warnings():  # torch's notice that "mean" is not "batchmean"
        warnings.simplefilter("ignore", UserWarning)
        expected_loss, expected_grad = loss_and_grad("kl_div", x, target, **options)
    compare(loss, expected_loss, x.dtype.type)
    compare(grad, expected_grad, x.dtype.type)


@given(data=st.data())
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normalisers(backend, name, data):
    ndim = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.integers(0, 6)) for _ in range(ndim))
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(arrays(shape, dtype))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    upstream = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y = getattr(fl, name)(x, axis=axis)
    compare(y, normaliser(name, x, axis)[0], x.dtype.type)
    compare(getattr(fl, f"{name}_backward")(upstream, y, axis=axis),
            normaliser_backward(name, upstream, y, axis), x.dtype.type)
