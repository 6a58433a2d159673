"""cross_entropy with class-probability targets and with label smoothing, against torch."""
import numpy as np
import pytest

from reference import loss_and_grad
from test_class_losses import check, make_target, make_upstream

SHAPES = [(6,), (7, 5), (3, 4, 6), (2, 5, 4, 3), (6, 1), (0, 5)]


def make_probabilities(rng, shape, axis, dtype):
    raw = rng.random(shape)
    return (raw / raw.sum(axis=axis, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15, 1.0])
def test_probability_targets(backend, rng, shape, dtype, reduction, weighted, smoothing):
    axis = 0 if len(shape) == 1 else 1
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    target = make_probabilities(rng, shape, axis, dtype)
    weight = rng.uniform(0.1, 2, shape[axis]).astype(dtype) if weighted else None
    loss_shape = shape[:axis] + shape[axis + 1:]
    check("cross_entropy", x, target, dtype, weight=weight, reduction=reduction,
          label_smoothing=smoothing, grad_output=make_upstream(rng, reduction, loss_shape, dtype))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.1, 0.6, 1.0])
def test_label_smoothing_with_class_targets(backend, rng, shape, dtype, reduction, weighted, smoothing):
    """torch's rule: the smoothing term is masked at ignored targets and, for a weighted
    "mean", divided by the summed weights of the kept targets, like the NLL term."""
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    target = make_target(rng, shape, ignore_fraction=0.3)
    classes = shape[0] if len(shape) == 1 else shape[1]
    weight = rng.uniform(0.1, 2, classes).astype(dtype) if weighted else None
    check("cross_entropy", x, target, dtype, weight=weight, reduction=reduction,
          label_smoothing=smoothing, grad_output=make_upstream(rng, reduction, target.shape, dtype))


def test_label_smoothing_with_ignore_index_inside_class_range(backend, rng):
    x = rng.standard_normal((10, 4, 3))
    target = rng.integers(0, 4, (10, 3))
    check("cross_entropy", x, target, np.float64, ignore_index=0, label_smoothing=0.2,
          weight=np.array([0.5, 1.0, 2.0, 3.0]))


@pytest.mark.parametrize("axis", [1, -1])
def test_probability_targets_in_any_layout(backend, rng, axis):
    base = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    for x in (base, np.asfortranarray(base), base[:, :, ::-2]):
        target = make_probabilities(rng, x.shape, axis, np.float32)
        check("cross_entropy", x, np.asfortranarray(target), np.float32, axis=axis,
              label_smoothing=0.1)


def test_smoothing_of_minus_inf_logits_is_torchs(backend):
    """A logit of -inf makes the smoothing term inf (torch's value), and with no smoothing it is ignored."""
    x = np.array([[0.0, -np.inf, 1.0]])
    target = np.array([2])
    for smoothing in (0.0, 0.1):
        loss, grad = check("cross_entropy", x, target, np.float64, label_smoothing=smoothing)
        expected_loss, _ = loss_and_grad("cross_entropy", x, target, label_smoothing=smoothing)
        assert np.isinf(loss) == np.isinf(expected_loss)
