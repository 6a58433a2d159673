"""fastloss.jax against optax (and torch where optax has no such option): values and
gradients, under jax.jit and jax.vmap, on both backends.

optax's losses return one value per example and take the classes on the last axis;
their means are compared with fastloss's "mean".  Focal loss: optax's
``sigmoid_focal_loss(alpha=a)`` is torchvision's (fastloss's) with the same ``alpha``, and
optax's default ``alpha=None`` (no alpha factor) is fastloss's ``alpha=-1``.
"""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_docstring_examples_run
import fastloss.jax as flj
from reference import assert_close, loss_and_grad, z_loss_cross_entropy

@pytest.fixture(params=["buffer_callback", "pure_callback"])
def callback(request, monkeypatch):
    """Each way to the host: XLA's buffers in place (the CPU's), or pure_callback's copies
    (other platforms': forced here)."""
    if request.param == "pure_callback":
        monkeypatch.setattr(flj, "_in_place", lambda: False)
    return request.param


REDUCE = {"none": lambda loss: loss, "mean": jnp.mean, "sum": jnp.sum}
# Random logits, and logits of size 1e4: exp overflows float32 unless the kernel shifts by the max.
SCALES = [3.0, 1e4]


def value_and_vjp(function, x, cotangent=None):
    """``function(x)`` and the gradient of ``sum(cotangent * function(x))``, both under jit."""
    def run(x):
        value, pullback = jax.vjp(function, x)
        return value, pullback(jnp.ones_like(value) if cotangent is None else cotangent)[0]
    return jax.jit(run)(x)


def assert_matches(function, reference, x, cotangent=None, dtype=np.float32):
    """fastloss and the reference (both functions of the logits): values and gradients."""
    for actual, expected in zip(value_and_vjp(function, x, cotangent), value_and_vjp(reference, x, cotangent)):
        assert_close(actual, expected, dtype)


def random_cotangent(rng, reduction, shape):
    return jnp.asarray(rng.standard_normal(shape if reduction == "none" else ()), jnp.float32)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_integer_labels_match_optax(backend, callback, rng, reduction, scale):
    """(N, C) logits, and (N, C, H, W) ones that optax sees with the classes moved last."""
    x = jnp.asarray(rng.standard_normal((12, 7)) * scale, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 7, 12))
    assert_matches(lambda x: flj.cross_entropy(x, labels, reduction=reduction),
                   lambda x: REDUCE[reduction](optax.softmax_cross_entropy_with_integer_labels(x, labels)),
                   x, random_cotangent(rng, reduction, (12,)))
    maps = jnp.asarray(rng.standard_normal((2, 5, 3, 4)) * scale, jnp.float32)
    pixel_labels = jnp.asarray(rng.integers(0, 5, (2, 3, 4)))
    assert_matches(lambda x: flj.cross_entropy(x, pixel_labels, reduction=reduction),
                   lambda x: REDUCE[reduction](optax.softmax_cross_entropy_with_integer_labels(
                       jnp.moveaxis(x, 1, -1), pixel_labels)),
                   maps, random_cotangent(rng, reduction, (2, 3, 4)))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_probability_targets_match_optax(backend, rng, reduction, scale):
    x = jnp.asarray(rng.standard_normal((9, 6)) * scale, jnp.float32)
    probabilities = jax.nn.softmax(jnp.asarray(rng.standard_normal((9, 6)), jnp.float32))
    assert_matches(lambda x: flj.cross_entropy(x, probabilities, axis=-1, reduction=reduction),
                   lambda x: REDUCE[reduction](optax.softmax_cross_entropy(x, probabilities)),
                   x, random_cotangent(rng, reduction, (9,)))


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_class_options_match_torch(backend, rng, reduction):
    """weight, ignore_index, label_smoothing and z_loss reach the kernel, and a weighted
    mean's gradient is scaled by its normaliser; torch (the z-loss: its formula in torch
    ops) is the reference, as optax has none of them."""
    x = (rng.standard_normal((10, 5, 3)) * 3).astype(np.float32)
    target = rng.integers(0, 5, (10, 3))
    target[0, 0] = target[4, 2] = 2
    weight = rng.random(5).astype(np.float32) + 0.5
    cotangent = np.asarray(random_cotangent(rng, reduction, (10, 3)))
    options = dict(weight=weight, ignore_index=2, reduction=reduction, label_smoothing=0.1)
    expected = z_loss_cross_entropy(x, target, 1e-3, grad_output=cotangent, **options)
    weight = options.pop("weight")
    actual = value_and_vjp(lambda x: flj.cross_entropy(x, jnp.asarray(target), jnp.asarray(weight),
                                                       z_loss=1e-3, **options),
                           jnp.asarray(x), jnp.asarray(cotangent))
    for a, e in zip(actual, expected):
        assert_close(a, e, np.float32)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_binary_cross_entropy_matches_optax(backend, rng, reduction, scale):
    x = jnp.asarray(rng.standard_normal((8, 6)) * scale, jnp.float32)
    labels = jnp.asarray(rng.random((8, 6)) < 0.4, jnp.float32)
    assert_matches(lambda x: flj.binary_cross_entropy_with_logits(x, labels, reduction=reduction),
                   lambda x: REDUCE[reduction](optax.sigmoid_binary_cross_entropy(x, labels)),
                   x, random_cotangent(rng, reduction, (8, 6)))


def test_binary_cross_entropy_weights_match_torch(backend, rng):
    x = (rng.standard_normal((4, 3, 5)) * 3).astype(np.float32)
    target = (rng.random((4, 3, 5)) < 0.4).astype(np.float32)
    weight = rng.random((3, 1)).astype(np.float32)
    pos_weight = rng.random(5).astype(np.float32) * 3
    expected = loss_and_grad("binary_cross_entropy_with_logits", x, target, weight=weight, pos_weight=pos_weight)
    actual = value_and_vjp(lambda x: flj.binary_cross_entropy_with_logits(
        x, jnp.asarray(target), jnp.asarray(weight), pos_weight=jnp.asarray(pos_weight)), jnp.asarray(x))
    for a, e in zip(actual, expected):
        assert_close(a, e, np.float32)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("alpha, optax_alpha, gamma", [(0.25, 0.25, 2.0), (-1.0, None, 2.0), (0.6, 0.6, 0.5)])
def test_focal_loss_matches_optax(backend, rng, reduction, scale, alpha, optax_alpha, gamma):
    x = jnp.asarray(rng.standard_normal((8, 6)) * scale, jnp.float32)
    labels = jnp.asarray(rng.random((8, 6)) < 0.3, jnp.float32)
    assert_matches(lambda x: flj.sigmoid_focal_loss(x, labels, alpha=alpha, gamma=gamma, reduction=reduction),
                   lambda x: REDUCE[reduction](optax.sigmoid_focal_loss(x, labels, alpha=optax_alpha, gamma=gamma)),
                   x, random_cotangent(rng, reduction, (8, 6)))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((6, 5), -1), ((3, 4, 5), 1), ((), -1)])
def test_normalisers_match_jax_nn(backend, callback, rng, name, shape, axis):
    x = jnp.asarray(rng.standard_normal(shape) * 5, jnp.float32)
    def reference(x):  # jax.nn takes no 0-d input: one class
        return getattr(jax.nn, name)(x.reshape(x.shape or (1,)), axis=axis).reshape(x.shape)
    assert_matches(lambda x: getattr(flj, name)(x, axis=axis), reference, x, jnp.asarray(rng.standard_normal(shape), jnp.float32))


def per_example_mean(x, labels):
    return optax.softmax_cross_entropy_with_integer_labels(jnp.moveaxis(x, 0, -1), labels).mean()


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_vmap_reduces_each_example(backend, callback, rng, reduction):
    """A mapped "mean" is each example's own mean (one kernel call per example), a mapped
    "none" every position's loss (one call for the batch); gradients per example."""
    reference = per_example_mean if reduction == "mean" else (
        lambda x, t: optax.softmax_cross_entropy_with_integer_labels(jnp.moveaxis(x, 0, -1), t))
    x = jnp.asarray(rng.standard_normal((3, 4, 5, 2)) * 3, jnp.float32)   # 3 examples of (C=4, 5, 2)
    labels = jnp.asarray(rng.integers(0, 4, (3, 5, 2)))
    cotangent = jnp.asarray(rng.standard_normal((3,) if reduction == "mean" else (3, 5, 2)), jnp.float32)

    def mapped(loss):
        return jax.vmap(lambda x, t: loss(x, t))
    fastloss_loss = mapped(lambda x, t: flj.cross_entropy(x, t, reduction=reduction, axis=0))
    assert_matches(lambda x: fastloss_loss(x, labels), lambda x: mapped(reference)(x, labels), x, cotangent)


def test_vmap_of_grad_and_unmapped_arguments(backend, callback, rng):
    """vmap of jax.grad; a target shared by every example (in_axes=None), reduced per example and
    not; per-example 1-D logits."""
    x = jnp.asarray(rng.standard_normal((4, 6, 3)), jnp.float32)
    shared = jnp.asarray(rng.integers(0, 3, 6))
    grads = jax.jit(jax.vmap(jax.grad(flj.cross_entropy), in_axes=(0, None)))(x, shared)
    expected = jax.vmap(jax.grad(lambda x, t: optax.softmax_cross_entropy_with_integer_labels(x, t).mean()),
                        in_axes=(0, None))(x, shared)
    assert_close(grads, expected, np.float32)
    assert_close(jax.vmap(lambda x, t: flj.cross_entropy(x, t, reduction="none"), in_axes=(0, None))(x, shared),
                 jax.vmap(optax.softmax_cross_entropy_with_integer_labels, in_axes=(0, None))(x, shared), np.float32)
    rows, labels = x[0], shared
    assert_close(jax.vmap(flj.cross_entropy)(rows, labels),
                 optax.softmax_cross_entropy_with_integer_labels(rows, labels), np.float32)


def test_vmap_of_mapped_class_weights(backend, callback, rng):
    """Per-example class weights cannot go to the kernel in one call: the loop path, against
    the weighted mean written with jnp ops."""
    x = jnp.asarray(rng.standard_normal((3, 8, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, (3, 8)))
    weights = jnp.asarray(rng.random((3, 4)) + 0.5, jnp.float32)

    def reference(x, t, w):
        per_position = optax.softmax_cross_entropy_with_integer_labels(x, t) * w[t]
        return per_position.sum() / w[t].sum()
    for reduction, expected in [("mean", jax.vmap(reference)(x, labels, weights)),
                                ("none", jax.vmap(lambda x, t, w: optax.softmax_cross_entropy_with_integer_labels(
                                    x, t) * w[t])(x, labels, weights))]:
        actual = jax.vmap(lambda x, t, w: flj.cross_entropy(x, t, w, reduction=reduction))(x, labels, weights)
        assert_close(actual, expected, np.float32)


def test_vmap_of_elementwise_factors(backend, rng):
    """A mapped pos_weight of fewer axes than the logits broadcasts against each example's logits."""
    x = jnp.asarray(rng.standard_normal((3, 4, 5)) * 3, jnp.float32)
    labels = jnp.asarray(rng.random((3, 4, 5)) < 0.5, jnp.float32)
    pos_weight = jnp.asarray(rng.random((3, 5)) * 3, jnp.float32)

    def reference(x, y, p):  # torch's formula: the positive term times pos_weight
        return -(p * y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    actual = jax.vmap(lambda x, y, p: flj.binary_cross_entropy_with_logits(x, y, pos_weight=p, reduction="none"))(
        x, labels, pos_weight)
    assert_close(actual, jax.vmap(reference)(x, labels, pos_weight), np.float32)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_computes_in_float32(backend, rng, dtype):
    x = jnp.asarray(rng.standard_normal((6, 5)) * 3, dtype)
    labels = jnp.asarray(rng.integers(0, 5, 6))
    loss, grad = jax.value_and_grad(flj.cross_entropy)(x, labels)
    expected_loss, expected_grad = jax.value_and_grad(
        lambda x: optax.softmax_cross_entropy_with_integer_labels(x.astype(jnp.float32), labels).mean())(x)
    assert loss.dtype == dtype and grad.dtype == dtype
    np.testing.assert_array_equal(np.asarray(loss, np.float32), np.asarray(expected_loss.astype(dtype), np.float32))
    np.testing.assert_array_equal(np.asarray(grad, np.float32), np.asarray(expected_grad, np.float32))


def test_float64_with_x64(backend, rng):
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((6, 5)) * 3, jnp.float64)
        labels = jnp.asarray(rng.integers(0, 5, 6))
        expected = loss_and_grad("cross_entropy", np.asarray(x), np.asarray(labels))
        for actual, e in zip(jax.jit(jax.value_and_grad(flj.cross_entropy))(x, labels), expected):
            assert_close(actual, e, np.float64)


def test_plain_call_computes_no_gradient(monkeypatch):
    """Only a differentiated call asks the kernel for the gradient."""
    x, labels = jnp.ones((4, 3)), jnp.zeros(4, jnp.int32)
    requests, host = [], flj._host

    def recording_host(call, with_grad, *arguments, **keywords):
        requests.append(with_grad)
        return host(call, with_grad, *arguments, **keywords)
    monkeypatch.setattr(flj, "_host", recording_host)
    flj.cross_entropy(x, labels)
    jax.value_and_grad(flj.cross_entropy)(x, labels)
    assert requests == [False, True]


def bad_calls():
    x, labels = jnp.ones((4, 3)), jnp.zeros(4, jnp.int32)
    return [
        (ValueError, "reduction", lambda: flj.cross_entropy(x, labels, reduction="avg")),
        (ValueError, "does not match", lambda: flj.cross_entropy(x, labels[:3])),
        (ValueError, "must be integers", lambda: flj.cross_entropy(x, labels.astype(jnp.float32))),
        (ValueError, "weight must have shape", lambda: flj.cross_entropy(x, labels, jnp.ones(4))),
        (ValueError, "label_smoothing", lambda: flj.cross_entropy(x, labels, label_smoothing=2.0)),
        (ValueError, "z_loss", lambda: flj.cross_entropy(x, labels, z_loss=-1.0)),
        (ValueError, "at least one dimension", lambda: flj.cross_entropy(jnp.float32(1.0), labels)),
        (IndexError, "out of bounds", lambda: flj.cross_entropy(x, labels, axis=2)),
        (TypeError, "cannot be a loss input", lambda: flj.cross_entropy(x.astype(jnp.complex64), labels)),
        (ValueError, "must have the input's shape", lambda: flj.binary_cross_entropy_with_logits(x, x[:2])),
        (ValueError, "pos_weight of shape", lambda: flj.binary_cross_entropy_with_logits(x, x, pos_weight=jnp.ones(4))),
        (ValueError, "gamma", lambda: flj.sigmoid_focal_loss(x, x, gamma=-1.0)),
        (TypeError, "alpha", lambda: flj.sigmoid_focal_loss(x, x, alpha="a")),
        (IndexError, "out of bounds", lambda: flj.softmax(x, axis=3)),
    ]


@pytest.mark.parametrize("case", range(len(bad_calls())))
def test_bad_input_raises_at_trace_time(case):
    """Under jax.jit the checks run while tracing, with the NumPy API's exceptions."""
    error, message, call = bad_calls()[case]
    with pytest.raises(error, match=message):
        jax.jit(call)()


def test_class_target_out_of_range(backend, callback):
    x, labels = jnp.ones((4, 3)), jnp.array([0, 1, 3, 2])
    with pytest.raises(IndexError, match="class target 3 is out of range"):
        flj.cross_entropy(x, labels)  # concrete targets: checked before the callback
    with pytest.raises(jax.errors.JaxRuntimeError, match="class target 3 is out of range"):
        jax.jit(flj.cross_entropy)(x, labels).block_until_ready()


def test_import_without_jax_says_how_to_install():
    code = "import sys; sys.modules['jax'] = None\ntry:\n    import fastloss.jax\nexcept ImportError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "fastloss[jax]"' in out


def test_docstring_examples(backend):
    """The Examples in fastloss.jax's docstrings run, under each backend."""
    import fastloss.jax
    assert_docstring_examples_run(fastloss.jax)
