"""Plain NumPy versions of the losses: the baseline of the demo and the benchmarks.

Written the obvious way (several passes, temporaries), in float64 sums, for
integer class targets without ignore_index, and the binary losses without weights.
"""
import numpy as np


def log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis=-1):
    return np.exp(log_softmax(x, axis))


def _picked(logp, target, axis):
    return np.take_along_axis(logp, np.expand_dims(target, axis), axis).squeeze(axis)


def nll_loss(logp, target, axis=1):
    """Mean NLL and its gradient."""
    count = target.size
    onehot = np.moveaxis(np.eye(logp.shape[axis], dtype=logp.dtype)[target], -1, axis)
    return -_picked(logp, target, axis).mean(dtype=np.float64), -onehot / count


def cross_entropy(x, target, axis=1):
    """Mean cross-entropy and its gradient softmax - onehot."""
    logp = log_softmax(x, axis)
    loss, minus_onehot = nll_loss(logp, target, axis)
    return loss, np.exp(logp) / target.size + minus_onehot


def binary_cross_entropy(p, y):
    loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    grad = (p - y) / np.maximum((1 - p) * p, 1e-12) / p.size
    return loss.mean(dtype=np.float64), grad


def binary_cross_entropy_with_logits(x, y):
    log_sigmoid = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    loss = (1 - y) * x - log_sigmoid
    return loss.mean(dtype=np.float64), (np.exp(log_sigmoid) - y) / x.size
