"""Every documented error, raised before anything is written."""
import numpy as np
import pytest

import fastloss as fl
from reference import loss_and_grad

SENTINEL = np.float32(-12345.0)
# numpy.exceptions is NumPy 1.25+; the class is numpy.AxisError before (and the same after).
AxisError = getattr(np, "exceptions", np).AxisError


def logits(shape=(4, 3, 5), dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def good_target(shape=(4, 5), classes=3):
    return np.random.default_rng(1).integers(0, classes, shape)


def raises_without_writing(exception, match, func, x, *args, **kwargs):
    """The call raises, the sentinel-filled gradient_out is untouched, the input unchanged."""
    x_before = np.array(x, copy=True)
    gradient_out = np.full(np.shape(x), SENTINEL, np.asarray(x).dtype)
    with pytest.raises(exception, match=match):
        func(x, *args, return_grad=True, gradient_out=gradient_out, **kwargs)
    assert (gradient_out == SENTINEL).all()
    np.testing.assert_array_equal(x, x_before)


CLASS_CASES = [
    (ValueError, "target of shape", dict(target=good_target((4, 6)))),
    (ValueError, "target of shape", dict(target=good_target((4,)))),
    (ValueError, "reduction must be one of", dict(reduction="avg")),
    (ValueError, "weight must have shape", dict(weight=np.ones(4, np.float32))),
    (ValueError, "weight must have shape", dict(weight=np.ones((3, 1), np.float32))),
    (ValueError, "class targets must be integers", dict(target=good_target().astype(np.float32))),
    (ValueError, "class targets must be integers", dict(target=good_target().astype(bool))),
    (IndexError, "class target 3 is out of range", dict(target=np.where(good_target() == 0, 3, good_target()))),
    (IndexError, "class target -1 is out of range", dict(target=np.where(good_target() == 0, -1, good_target()))),
    (ValueError, "grad_output must be a scalar", dict(grad_output=np.ones(3))),
    (ValueError, "does not broadcast to the loss shape", dict(reduction="none", grad_output=np.ones(3))),
]


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("exception, match, change", CLASS_CASES,
                         ids=[f"{e.__name__}-{m}-{i}" for i, (e, m, _) in enumerate(CLASS_CASES)])
def test_class_loss_errors(backend, name, exception, match, change):
    arguments = dict(target=good_target())
    arguments.update(change)
    target = arguments.pop("target")
    raises_without_writing(exception, match, getattr(fl, name), logits(), target, **arguments)


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("bad, dtype", [(2 ** 63 - 1, np.int64), (-2 ** 63, np.int64), (2 ** 63 + 5, np.uint64),
                                        (3, np.uint8), (-100, np.int8)],
                         ids=["int64-max", "int64-min", "uint64-above-int64", "uint8-classes", "int8-ignore-other"])
def test_extreme_class_targets_are_named(backend, name, bad, dtype):
    """A bad target anywhere (here the last, and only it) is named by its own value, whatever its
    dtype: the backends' check reads int64 targets, the message the caller's."""
    target = good_target().astype(dtype)
    target.flat[-1] = bad
    raises_without_writing(IndexError, f"class target {bad} is out of range", getattr(fl, name), logits(), target,
                           ignore_index=1 if bad == -100 else -100)


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("ignore_index", [-100, 0, 2])
def test_mean_divides_by_the_kept_targets_as_torch(backend, name, ignore_index):
    """The "mean" divides by the weights of the targets other than ignore_index (counted by the
    backends' target check), ignore_index inside the class range or not, as torch does."""
    x, target = logits(dtype=np.float64), good_target()
    target[0] = ignore_index
    for weight in (None, np.array([0.5, 2.0, 3.0])):
        expected, _ = loss_and_grad(name, x, target, weight=weight, ignore_index=ignore_index)
        np.testing.assert_allclose(getattr(fl, name)(x, target, weight, ignore_index=ignore_index), expected,
                                   rtol=1e-12)


@pytest.mark.parametrize("smoothing", [-0.1, 1.5])
def test_label_smoothing_range(backend, smoothing):
    raises_without_writing(ValueError, r"label_smoothing must be in \[0, 1\]", fl.cross_entropy,
                           logits(), good_target(), label_smoothing=smoothing)


def test_probability_target_must_be_float_and_not_ignore(backend):
    x = logits()
    raises_without_writing(ValueError, "must be floating", fl.cross_entropy, x, np.ones(x.shape, int))
    raises_without_writing(ValueError, "ignore_index is not supported", fl.cross_entropy,
                           x, np.ones(x.shape, np.float32), ignore_index=0)


def test_nll_loss_takes_no_probability_targets(backend):
    x = logits()
    raises_without_writing(ValueError, "target of shape", fl.nll_loss, x, np.ones(x.shape, np.float32))


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits", "softmax", "log_softmax"])
@pytest.mark.parametrize("bad", [np.ones((2, 3), complex), np.array([["a", "b"]]), np.ones((2, 3), object),
                                 np.ones((2, 3), "datetime64[s]")], ids=["complex", "str", "object", "datetime"])
def test_unusable_dtypes(backend, name, bad):
    func = getattr(fl, name)
    args = () if "softmax" in name else (np.zeros(bad.shape[:1], int) if "nll" in name or "cross" in name
                                         and "binary" not in name else np.zeros(bad.shape),)
    with pytest.raises(TypeError, match="cannot be a loss input"):
        func(bad, *args)


def test_ignored_target_may_be_out_of_range(backend):
    target = good_target()
    target[0, 0] = -100
    fl.cross_entropy(logits(), target)


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
def test_gradient_out_checks(backend, name):
    x, target = logits(), good_target()
    func = getattr(fl, name)
    with pytest.raises(ValueError, match="gradient_out must have shape"):
        func(x, target, return_grad=True, gradient_out=np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="gradient_out must have dtype float32"):
        func(x, target, return_grad=True, gradient_out=np.zeros(x.shape, np.float64))
    read_only = np.full(x.shape, SENTINEL, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        func(x, target, return_grad=True, gradient_out=read_only)
    with pytest.raises(TypeError, match="must be a NumPy array"):
        func(x, target, return_grad=True, gradient_out=[[0.0]])
    with pytest.raises(ValueError, match="need return_grad=True"):
        func(x, target, gradient_out=np.zeros(x.shape, np.float32))


def test_input_needs_a_class_axis(backend):
    with pytest.raises(ValueError, match="at least one dimension"):
        fl.cross_entropy(np.float32(1.0), 0)


def test_binary_errors(backend):
    p = np.full((3, 4), 0.5, np.float32)
    for bad in (1.5, -0.1, np.nan):
        q = p.copy()
        q[1, 2] = bad
        raises_without_writing(ValueError, r"probabilities in \[0, 1\]", fl.binary_cross_entropy, q, p)
    for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        func = getattr(fl, name)
        raises_without_writing(ValueError, "must have the input's shape", func, p, p[:, :2])
        raises_without_writing(ValueError, "does not broadcast", func, p, p, weight=np.ones(3))
        raises_without_writing(ValueError, "reduction must be one of", func, p, p, reduction="batchmean")
    raises_without_writing(ValueError, "does not broadcast", fl.binary_cross_entropy_with_logits, p, p,
                           pos_weight=np.ones((2, 1)))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_normaliser_errors(backend, name):
    x = logits((3, 4))
    func = getattr(fl, name)
    with pytest.raises(AxisError):
        func(x, axis=2)
    out = np.full(x.shape, SENTINEL, np.float64)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        func(x, out=out)
    out = np.full((4, 3), SENTINEL, np.float32)
    with pytest.raises(ValueError, match="out must have shape"):
        func(x, out=out)
    assert (out == SENTINEL).all()
    with pytest.raises(ValueError, match="grad_output must have the input's shape"):
        getattr(fl, f"{name}_backward")(x[:2], x)


def test_backend_and_thread_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        fl.set_backend("jax")
    with pytest.raises(ValueError, match="unknown backend"):
        with fl.backend("torch"):
            pass
    for bad in (0, -1, 2.0, True, 10**6):
        with pytest.raises(ValueError, match="number of threads"):
            fl.set_num_threads(bad)


def _calls():
    """Every public function with valid arguments: (name, function, input, other args)."""
    x = logits((4, 3, 5))
    p = np.full((4, 3, 5), 0.5, np.float32)
    y = fl.softmax(x, axis=1)
    return [
        ("softmax", fl.softmax, x, (), "out"),
        ("log_softmax", fl.log_softmax, x, (), "out"),
        ("softmax_backward", lambda g, out=None: fl.softmax_backward(g, y, out=out), x, (), "out"),
        ("log_softmax_backward", lambda g, out=None: fl.log_softmax_backward(g, y, out=out), x, (), "out"),
        ("nll_loss", fl.nll_loss, x, (good_target(),), "gradient_out"),
        ("cross_entropy", fl.cross_entropy, x, (good_target(),), "gradient_out"),
        ("binary_cross_entropy", fl.binary_cross_entropy, p, (p,), "gradient_out"),
        ("binary_cross_entropy_with_logits", fl.binary_cross_entropy_with_logits, x, (p,), "gradient_out"),
    ]


def _output_kwargs(keyword, buffer):
    extra = {"return_grad": True} if keyword == "gradient_out" else {}
    return {keyword: buffer, **extra}


@pytest.mark.parametrize("case", _calls(), ids=lambda c: c[0])
@pytest.mark.parametrize("problem", ["shape", "dtype", "read-only", "not-an-array"])
def test_every_output_buffer_is_checked(backend, case, problem):
    name, func, x, args, keyword = case
    buffer = {
        "shape": np.full((5, 3, 4), SENTINEL, np.float32),
        "dtype": np.full(x.shape, SENTINEL, np.float64),
        "read-only": np.full(x.shape, SENTINEL, np.float32),
        "not-an-array": [[SENTINEL]],
    }[problem]
    if problem == "read-only":
        buffer.flags.writeable = False
    exception = TypeError if problem in ("dtype", "not-an-array") else ValueError
    x_before = x.copy()
    with pytest.raises(exception, match=keyword):
        func(x, *args, **_output_kwargs(keyword, buffer))
    np.testing.assert_array_equal(x, x_before)
    if isinstance(buffer, np.ndarray):
        assert (buffer == SENTINEL).all()


@pytest.mark.parametrize("case", _calls(), ids=lambda c: c[0])
def test_a_failing_call_leaves_a_good_output_buffer_untouched(backend, case):
    """The output is fine but another argument is bad: the buffer keeps every byte."""
    name, func, x, args, keyword = case
    buffer = np.full(x.shape, SENTINEL, np.float32)
    if keyword == "out":
        bad_call = (lambda: func(x.astype(complex), out=buffer)) if "backward" not in name else (
            lambda: func(x[:2], out=buffer))
        exception = TypeError if "backward" not in name else ValueError
    else:
        bad_call = lambda: func(x, *args, reduction="avg", **_output_kwargs(keyword, buffer))  # noqa: E731
        exception = ValueError
    with pytest.raises(exception):
        bad_call()
    assert buffer.tobytes() == np.full(x.shape, SENTINEL, np.float32).tobytes()


@pytest.mark.parametrize("name", ["softmax_backward", "log_softmax_backward"])
@pytest.mark.parametrize("bad_argument", ["grad_output", "output"])
def test_unusable_dtypes_in_backward(backend, name, bad_argument):
    good = logits((3, 4))
    arguments = {"grad_output": good, "output": good}
    arguments[bad_argument] = good.astype(complex)
    with pytest.raises(TypeError, match="cannot be a loss input"):
        getattr(fl, name)(arguments["grad_output"], arguments["output"])


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("bad_target", [np.full((3, 4), 0.5, complex), np.full((3, 4), "a")],
                         ids=["complex", "str"])
def test_binary_target_dtype(backend, name, bad_target):
    p = np.full((3, 4), 0.5, np.float32)
    raises_without_writing(TypeError, "cannot be a loss input", getattr(fl, name), p, bad_target)
