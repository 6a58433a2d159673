"""Torch as the reference: values and autograd gradients computed in the test run."""
import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = {
    np.dtype(np.float16): dict(rtol=2e-3, atol=2e-3),
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
}


def assert_close(actual, expected, dtype):
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    np.testing.assert_allclose(actual.astype(np.float64), np.asarray(expected, np.float64),
                               **TOLERANCE[np.dtype(dtype)])


def _tensor(a, dtype=None):
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    elif a.dtype == np.float16:  # torch's CPU float16 losses are not ours to match: use float32
        a = a.astype(np.float32)
    return torch.from_numpy(np.array(a, order="C"))  # ascontiguousarray would make 0-d 1-d


def _to_class_dim(t, axis):
    """Torch wants the classes on dim 1 (dim 0 for 1-D input)."""
    if t.dim() <= 1:
        return t
    return torch.movedim(t, axis, 1).contiguous()


def loss_and_grad(name, x, target, *, axis=1, grad_output=None, weight=None,
                  pos_weight=None, **kwargs):
    """torch.nn.functional.<name> of numpy inputs, and d(sum(grad_output * loss))/d(input)."""
    xt = _tensor(x).requires_grad_(True)
    if name in ("nll_loss", "cross_entropy"):
        floats = np.asarray(target).dtype.kind == "f"
        tt = _tensor(target) if floats else _tensor(target, np.int64)
        if floats:
            tt = _to_class_dim(tt.to(xt.dtype), axis)
        inp = _to_class_dim(xt, axis)
    else:
        tt = _tensor(target).to(xt.dtype)
        inp = xt
    if weight is not None:
        kwargs["weight"] = _tensor(weight).to(xt.dtype)
    if pos_weight is not None:
        kwargs["pos_weight"] = _tensor(pos_weight).to(xt.dtype)
    loss = getattr(F, name)(inp, tt, **kwargs)
    upstream = torch.ones_like(loss) if grad_output is None else _tensor(grad_output).to(loss.dtype)
    loss.backward(upstream.expand_as(loss))
    return loss.detach().numpy(), xt.grad.numpy()


def normaliser(name, x, axis, grad_output=None):
    """softmax/log_softmax of x, and the gradient of sum(grad_output * y)."""
    xt = _tensor(x).requires_grad_(True)
    y = getattr(torch, name)(xt, dim=axis)
    upstream = torch.ones_like(y) if grad_output is None else _tensor(grad_output).to(y.dtype)
    y.backward(upstream)
    return y.detach().numpy(), xt.grad.numpy()


def normaliser_backward(name, grad_output, output, axis):
    """torch's own backward of softmax/log_softmax from a given output (float16 via float32)."""
    gy, y = _tensor(grad_output), _tensor(output)
    kernel = getattr(torch.ops.aten, f"_{name}_backward_data")
    return kernel(gy, y, axis % max(y.dim(), 1), y.dtype).numpy()


def focal_reference(x, target, alpha, gamma, reduction, stable=False):
    """torchvision's sigmoid_focal_loss, transcribed with torch ops (torchvision is not a
    dependency); ``stable`` forms ``(1 - p_t) ** gamma`` as ``exp(gamma log(1 - p_t))`` with the
    log from log-sigmoids, the same function with no 0 * inf where 1 - p_t rounds to 0."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, target, reduction="none")
    if stable:
        log_q = torch.logaddexp(torch.log(target) + F.logsigmoid(-x), torch.log1p(-target) + F.logsigmoid(x))
        loss = ce * torch.exp(gamma * log_q)
    else:
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return {"mean": loss.mean, "sum": loss.sum}.get(reduction, lambda: loss)()


def focal_loss_and_grad(x, target, alpha, gamma, reduction, grad_output=None, stable=False):
    """`focal_reference` of numpy inputs, and d(sum(grad_output * loss))/d(input)."""
    xt = _tensor(x).requires_grad_(True)
    loss = focal_reference(xt, _tensor(target).to(xt.dtype), alpha, gamma, reduction, stable)
    upstream = torch.ones_like(loss) if grad_output is None else _tensor(grad_output).to(loss.dtype)
    loss.backward(upstream.expand_as(loss))
    return loss.detach().numpy(), xt.grad.numpy()


def z_loss_cross_entropy(x, target, z_loss, *, axis=1, weight=None, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, grad_output=None):
    """``cross_entropy`` plus ``z_loss * w * logsumexp**2`` per position (``w``: the target's
    weight, 0 where ignored; 1 for probability targets), reduced as torch reduces the
    cross-entropy, written with torch ops; and d(sum(grad_output * loss))/d(input)."""
    xt = _tensor(x).requires_grad_(True)
    inp = _to_class_dim(xt, axis)
    class_dim = 1 if inp.dim() > 1 else 0
    probabilities = np.asarray(target).dtype.kind == "f"
    tt = _to_class_dim(_tensor(target).to(xt.dtype), axis) if probabilities else _tensor(target, np.int64)
    w = None if weight is None else _tensor(weight).to(xt.dtype)
    ce = F.cross_entropy(inp, tt, weight=w, ignore_index=ignore_index, reduction="none",
                         label_smoothing=label_smoothing)
    lse = torch.logsumexp(inp, dim=class_dim)
    if probabilities:
        position_weight = torch.ones_like(lse)
        z_terms = z_loss * lse ** 2
    else:
        kept = tt != ignore_index
        position_weight = kept.to(xt.dtype) if w is None else torch.where(kept, w[tt.clamp(min=0)], 0)
        # An ignored position has no z-term at all, even where its lse is not finite.
        z_terms = torch.where(kept, z_loss * position_weight * lse ** 2, 0)
    losses = ce + z_terms
    if reduction == "none":
        loss = losses
    elif reduction == "sum":
        loss = losses.sum()
    else:
        loss = losses.sum() / (losses.numel() if probabilities else position_weight.sum())
    upstream = torch.ones_like(loss) if grad_output is None else _tensor(grad_output).to(loss.dtype)
    loss.backward(upstream.expand_as(loss))
    return loss.detach().numpy(), xt.grad.numpy()
