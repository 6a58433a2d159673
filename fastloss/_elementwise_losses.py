"""Elementwise losses (every element a position): binary_cross_entropy and binary_cross_entropy_with_logits.

Each public function is a thin call of `_elementwise_loss` with its registry entry
(`fastloss._registry.LOSSES`); the backends' elementwise driver computes it.
"""
import numpy as np

from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, absent, private_copy
from ._reduction import gradient_scale, reduced
from ._registry import LOSSES, run_kernel

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits"]


def _varying_axes(factor, shape):
    """Axes of ``shape`` along which ``factor`` (broadcast to ``shape``) changes."""
    padded = factor.reshape((1,) * (len(shape) - factor.ndim) + factor.shape)
    return {ax for ax, n in enumerate(padded.shape) if n != 1}


def _broadcast_factor(factor, name, shape, dtype):
    if factor is None:
        return None
    factor = np.asarray(factor)
    _validate.float_dtypes(factor, name)
    try:
        np.broadcast_to(factor, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {factor.shape} does not broadcast to the input shape {shape}") from None
    return factor.astype(dtype, copy=False)


def _factor_vector(factor, shape, axis, dtype):
    """``factor`` as a ``(shape[axis],)`` vector, for a factor that varies along ``axis`` at most."""
    if factor is None:
        return absent(1, dtype)
    padded = factor.reshape((1,) * (len(shape) - factor.ndim) + factor.shape)
    return np.ascontiguousarray(np.broadcast_to(padded.reshape(-1), (shape[axis],)), dtype=dtype)


def _elementwise_loss(spec, input, target, factors, reduction, return_grad, grad_output,
                      gradient_out):
    """The elementwise loss ``spec`` (a `fastloss._registry.LossSpec`); ``factors`` maps
    ``"weight"`` and each of ``spec.factors`` to what the caller passed (None if nothing)."""
    x, compute, result = _validate.as_input(input)
    target = np.asarray(target)
    _validate.float_dtypes(target, "target")
    _validate.same_shape(target, x.shape, "target")
    reduction = _validate.reduction(reduction)
    _validate.gradient_request(return_grad, grad_output, gradient_out)
    varying = set()     # axes along which some factor varies
    for name, value in factors.items():
        factor = factors[name] = _broadcast_factor(value, name, x.shape, compute)
        if factor is not None:
            varying |= _varying_axes(factor, x.shape)
    gradient_out = _validate.out_array(gradient_out, x.shape, result, "gradient_out")
    loss_shape = x.shape if reduction == "none" else ()
    upstream = _validate.grad_output(grad_output, loss_shape, reduction, compute)
    if spec.input == "probabilities":
        _validate.binary_probabilities(x)

    if x.ndim == 0 or len(varying) > 1:
        # Factors that vary along several axes are materialised at full size, and
        # the problem becomes one axis of numel elements.
        flat = (x.size,)
        flat_gradient_out = (gradient_out.reshape(-1) if gradient_out is not None
                             and gradient_out.flags.c_contiguous else None)
        outcome = _elementwise_loss(
            spec, x.reshape(flat), target.reshape(flat),
            {name: None if factor is None else np.broadcast_to(factor, x.shape).reshape(flat)
             for name, factor in factors.items()},
            reduction, return_grad,
            upstream.reshape(flat) if isinstance(upstream, np.ndarray) else upstream,
            flat_gradient_out)
        loss, grad = outcome if return_grad else (outcome, None)
        if reduction == "none":
            loss = loss.reshape(x.shape)
        if not return_grad:
            return loss
        if gradient_out is None:
            return loss, grad.reshape(x.shape)
        if flat_gradient_out is None:
            np.copyto(gradient_out, grad.reshape(x.shape))
        return loss, gradient_out

    axis = varying.pop() if varying else x.ndim - 1
    layout = ClassLayout.of(x, axis)
    x3 = layout.canonical(x, compute)
    y3 = layout.canonical(target, compute)
    vectors = {name: _factor_vector(factor, x.shape, axis, compute) for name, factor in factors.items()}
    if reduction == "none":
        grad_scale = 1.0
        upstream3 = absent(3, compute) if upstream is None else layout.canonical(upstream, compute)
        loss = layout.empty(compute)
        loss3 = layout.view(loss, compute)
    else:
        normaliser = float(x.size) if reduction == "mean" else 1.0
        grad_scale = gradient_scale(upstream, normaliser)
        upstream3 = absent(3, compute)
        loss3 = absent(3, compute)
    reads = (x3, y3, *vectors.values(), upstream3)
    grad = (Output(layout, compute, result, gradient_out, reads, scratch=private_copy(x3, x))
            if return_grad else None)
    grad3 = grad.buffer if grad is not None else absent(3, compute)

    total = run_kernel(kernels(), spec.kernels["elements"], x3, y3, vectors["weight"], vectors,
                       grad_scale, upstream3, loss3, grad3)

    if reduction == "none":
        value = loss.astype(result, copy=False)
    else:
        value = reduced(total, normaliser, result)
    return (value, grad.finish()) if return_grad else value


_COMMON = """
    reduction : {{"mean", "sum", "none"}}, optional
        "mean" divides the summed loss by the number of elements (weights do
        not enter the divisor, as in torch); "none" returns the loss of every
        element.
    return_grad : bool, optional
        Also return the gradient with respect to ``input`` from the same pass.
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for "mean"/"sum", an array
        broadcastable to the input for "none".  Needs ``return_grad=True``.
    gradient_out : ndarray, optional
        Where to write the gradient: ``input``'s shape and floating dtype, any
        layout; ``input`` itself computes it in place.  Needs ``return_grad=True``.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the input's floating dtype for "mean"/"sum" (NaN for a
        "mean" over no elements); the input's shape for "none".
    grad : ndarray
        Only with ``return_grad=True``: the gradient of ``sum(grad_output * loss)``
        with respect to ``input``, equal to torch autograd's.

    Raises
    ------
    ValueError
        A target whose shape is not the input's, a ``weight`` or ``pos_weight``
        that does not broadcast to it, an unknown ``reduction``,
        ``grad_output``/``gradient_out`` without ``return_grad``{extra}.
    TypeError
        An input that cannot be a loss (complex, object, str, datetime), or a
        ``gradient_out`` of the wrong dtype.
"""


def binary_cross_entropy(input, target, weight=None, *, reduction="mean",
                         return_grad=False, grad_output=None, gradient_out=None):
    return _elementwise_loss(LOSSES["binary_cross_entropy"], input, target, {"weight": weight},
                             reduction, return_grad, grad_output, gradient_out)


def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_output=None,
                                     gradient_out=None):
    return _elementwise_loss(LOSSES["binary_cross_entropy_with_logits"], input, target,
                             {"weight": weight, "pos_weight": pos_weight}, reduction, return_grad,
                             grad_output, gradient_out)


binary_cross_entropy.__doc__ = """Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    ``loss = -weight * (target * log(input) + (1 - target) * log(1 - input))``,
    each log clamped at -100 as torch does, so ``input`` of exactly 0 or 1
    gives a finite loss and torch's gradient.

    Parameters
    ----------
    input : array_like
        Probabilities in [0, 1], any shape (0-d included).
    target : array_like
        Targets of the input's shape (floating; integers are taken as floats).
    weight : array_like, optional
        A rescaling weight that broadcasts against the input.
""" + _COMMON.format(extra=", an input outside [0, 1] (or NaN)") + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> p = 1 / (1 + np.exp(-np.array([[0.2], [-1.0], [2.0]])))
    >>> round(float(fl.binary_cross_entropy(p, np.array([[1.0], [0.0], [1.0]]))), 6)
    0.34611
    """

binary_cross_entropy_with_logits.__doc__ = """Binary cross-entropy of logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``loss = weight * ((1 - target) * x - (1 + (pos_weight - 1) * target) * log_sigmoid(x))``,
    the numerically stable form: no overflow for logits of any size.

    Parameters
    ----------
    input : array_like
        Logits, any shape (0-d included).
    target : array_like
        Targets of the input's shape.
    weight : array_like, optional
        A rescaling weight that broadcasts against the input.
    pos_weight : array_like, optional
        A weight of the positive term that broadcasts against the input, e.g.
        ``(C,)`` for ``(N, C)`` input or ``(C, 1, 1)`` for ``(N, C, H, W)``.
""" + _COMMON.format(extra="") + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logits = np.array([[0.2], [-1.0], [2.0]])
    >>> round(float(fl.binary_cross_entropy_with_logits(logits, np.array([[1.0], [0.0], [1.0]]))), 6)
    0.34611
    """
