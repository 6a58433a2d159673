"""Plain NumPy versions of the losses: the baseline of the demo and the benchmarks.

Written the obvious way (several passes, temporaries), in float64 sums, for
integer class targets without ignore_index, the binary losses without weights, kl_div
and distillation_loss with the "batchmean" reduction, the focal and Dice losses with the
"mean" one (Dice: softmax, class indices).
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


def sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0):
    """Mean sigmoid focal loss (torchvision's formula) and its gradient."""
    p = 1 / (1 + np.exp(-x))
    log_sigmoid = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    ce = (1 - y) * x - log_sigmoid
    q = y * (1 - p) + (1 - y) * p
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    loss = alpha_t * ce * q ** gamma
    grad = alpha_t * ((p - y) * q ** gamma + ce * gamma * q ** (gamma - 1) * p * (1 - p) * (1 - 2 * y))
    return loss.mean(dtype=np.float64), grad / x.size


def kl_div(logq, p):
    """KL divergence summed over everything and divided by the first axis ("batchmean"), and its gradient."""
    terms = np.where(p == 0, 0, p * np.log(np.where(p == 0, 1, p))) - p * logq
    return terms.sum(dtype=np.float64) / logq.shape[0], -p / logq.shape[0]


def distillation_loss(student, teacher, temperature=1.0, axis=1):
    """``T**2 KL(softmax(teacher / T) || softmax(student / T))`` divided by the first axis
    ("batchmean"), and its gradient with respect to the student."""
    log_q = log_softmax(student / temperature, axis)
    log_p = log_softmax(teacher / temperature, axis)
    p = np.exp(log_p)
    loss = temperature ** 2 * (p * (log_p - log_q)).sum(dtype=np.float64) / student.shape[0]
    return loss, temperature * (np.exp(log_q) - p) / student.shape[0]


def dice_loss(x, target, smooth=1e-5):
    """Mean soft Dice loss of softmax(x) (classes on axis 1) against class indices, over the
    (sample, class) pairs, and its gradient."""
    p = softmax(x, axis=1)
    onehot = np.moveaxis(np.eye(x.shape[1], dtype=x.dtype)[target], -1, 1)
    spatial = tuple(range(2, x.ndim))
    intersection = (p * onehot).sum(axis=spatial, keepdims=True)
    denominator = (p + onehot).sum(axis=spatial, keepdims=True) + smooth
    loss = 1 - (2 * intersection + smooth) / denominator
    pairs = x.shape[0] * x.shape[1]
    grad_p = -(2 * onehot * denominator - (2 * intersection + smooth)) / denominator ** 2 / pairs
    return loss.mean(dtype=np.float64), p * (grad_p - (p * grad_p).sum(axis=1, keepdims=True))
