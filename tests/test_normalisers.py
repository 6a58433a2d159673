"""softmax, log_softmax and their backward passes against torch."""
import numpy as np
import pytest

import fastloss as fl
from reference import assert_close, loss_and_grad, normaliser

NAMES = ["softmax", "log_softmax"]
CASES = [((), -1), ((7,), 0), ((6, 9), -1), ((6, 9), 0), ((4, 5, 6), 1), ((2, 3, 4, 5), 1),
         ((2, 3, 4, 5), -1), ((2, 3, 2, 3, 4), 2), ((5, 1), 1), ((0, 4), -1), ((3, 0), 0)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape, axis", CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_match_torch(backend, rng, name, shape, axis, dtype):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    upstream = rng.standard_normal(shape).astype(dtype)
    expected, expected_grad = normaliser(name, x, axis, upstream)
    x_before = x.copy()
    y = getattr(fl, name)(x, axis=axis)
    assert_close(y, expected, dtype)
    grad = getattr(fl, f"{name}_backward")(upstream, y, axis=axis)
    assert_close(grad, expected_grad, dtype)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("name", NAMES)
def test_default_axis_is_last(backend, rng, name):
    x = rng.standard_normal((3, 4, 5))
    assert_close(getattr(fl, name)(x), normaliser(name, x, -1)[0], np.float64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_memory_layouts(backend, rng, name, axis):
    base = rng.standard_normal((5, 6, 7, 8)).astype(np.float32)
    for x in (np.asfortranarray(base), base[:, ::2, 1:], base[::-1, :, ::-1],
              np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
        upstream = rng.standard_normal(x.shape).astype(np.float32)
        expected, expected_grad = normaliser(name, x, axis, upstream)
        y = getattr(fl, name)(x, axis=axis)
        assert_close(y, expected, np.float32)
        assert_close(getattr(fl, f"{name}_backward")(upstream, y, axis=axis), expected_grad, np.float32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sliced", [False, True], ids=["contiguous", "sliced"])
def test_in_place(backend, rng, name, sliced):
    full = rng.standard_normal((6, 10, 7)).astype(np.float32)
    x = full[:, ::2] if sliced else full
    expected, expected_grad = normaliser(name, x.copy(), 1, np.ones(x.shape))
    y = getattr(fl, name)(x, axis=1, out=x)
    assert y is x
    assert_close(x, expected, np.float32)
    upstream = np.ones(x.shape, np.float32)
    grad = getattr(fl, f"{name}_backward")(upstream, x, axis=1, out=upstream)
    assert grad is upstream
    assert_close(upstream, expected_grad, np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_out_of_another_layout(backend, rng, name):
    x = rng.standard_normal((8, 5))
    out = np.asfortranarray(np.full(x.shape, np.nan))
    assert getattr(fl, name)(x, out=out) is out
    assert_close(out, normaliser(name, x, -1)[0], np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_lists_and_integers_become_float64(backend, name):
    y = getattr(fl, name)([[1, 2, 3], [0, 0, 0]])
    assert y.dtype == np.float64
    assert_close(y, normaliser(name, np.array([[1.0, 2, 3], [0, 0, 0]]), -1)[0], np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits(backend, name):
    x = np.array([[1e4, -1e4, 0.0], [-np.inf, 0.0, 1.0], [30.0, 30.0, 30.0]], np.float32)
    assert_close(getattr(fl, name)(x), normaliser(name, x, -1)[0], np.float32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_rows_among_ordinary_ones(backend, rng, name, dtype):
    """A row with a NaN, an inf or only -inf leaves its neighbours alone (log_softmax
    takes each row's max in the previous row's exp pass)."""
    x = rng.standard_normal((70, 50)).astype(dtype)
    x[0, 1] = np.nan
    x[3, 7] = np.nan
    x[4, 0] = np.inf
    x[5] = -np.inf
    x[6, 2] = -np.inf
    x[69, 49] = np.inf
    assert_close(getattr(fl, name)(x), normaliser(name, x, -1)[0], dtype)


def test_tiny_exps_on_both_sides_of_the_normal_range(backend):
    """exp(x - max) near the smallest normal float32: a row whose exps are all normal takes
    the fast float32 exp (no scaling multiply), any other row the exact one; both must match
    torch down to subnormal results, which the fast exp cannot produce."""
    rows = [[0.0, -10.0, -86.4, -80.0], [0.0, -86.6, -100.0, -104.0], [5.0, -81.4, -81.6, 5.0],
            [0.0, -87.3, -87.4, -95.0], [-3.0, -89.4, -120.0, -3.0]]
    x = np.array(rows * 20, np.float32)  # enough rows for the next-row max of log_softmax
    target = np.arange(len(x)) % x.shape[1]
    for name in NAMES:
        got = getattr(fl, name)(x)
        np.testing.assert_allclose(got, normaliser(name, x, -1)[0], rtol=2e-6, atol=1e-44)
    _, grad = fl.cross_entropy(x, target, reduction="sum", return_grad=True)
    expected = loss_and_grad("cross_entropy", x, target, reduction="sum")[1]
    assert_close(grad, expected, np.float32)
    tiny = np.abs(expected) < 1e-30
    np.testing.assert_allclose(grad[tiny], expected[tiny], rtol=2e-6, atol=1e-44)
