"""Elementwise losses (every element a position): the binary cross-entropies, sigmoid_focal_loss, kl_div.

Each public function is a thin call of `_elementwise_loss` with its registry entry
(`fastloss._registry.LOSSES`); the backends' elementwise driver computes it.
"""
import numpy as np

from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, private_copy
from ._reduction import gradient_scale, reduced, reduction_divisor
from ._registry import LOSSES, run_kernel

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "kl_div"]



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


def _factor_vector(backend, factor, shape, axis, dtype):
    """``factor`` as a ``(shape[axis],)`` vector, for a factor that varies along ``axis`` at most
    (``backend``'s absent array if there is none)."""
    if factor is None:
        return backend.absent(1, dtype)
    padded = factor.reshape((1,) * (len(shape) - factor.ndim) + factor.shape)
    return np.ascontiguousarray(np.broadcast_to(padded.reshape(-1), (shape[axis],)), dtype=dtype)


def _elementwise_loss(spec, input, target, factors, reduction, return_grad, grad_output,
                      gradient_out, target_kind="elements", options=None, reductions=_validate.REDUCTIONS,
                      normaliser=None):
    """The elementwise loss ``spec`` (a `fastloss._registry.LossSpec`); ``factors`` maps
    ``"weight"`` and each per-element factor the kernel takes to what the caller passed
    (None if nothing); ``options`` the kernel's scalar options by name (checked already);
    ``target_kind`` picks the kernel of ``spec.kernels``; ``normaliser`` overrides the
    reduction's divisor (the flattened call keeps the caller's shape's)."""
    x, compute, result = _validate.as_input(input)
    target = np.asarray(target)
    _validate.float_dtypes(target, "target")
    _validate.same_shape(target, x.shape, "target")
    reduction = _validate.reduction(reduction, reductions)
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
            flat_gradient_out, target_kind, options, reductions, reduction_divisor(reduction, x.shape))
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

    backend = kernels(x.size)
    axis = varying.pop() if varying else x.ndim - 1
    layout = ClassLayout.of(x, axis)
    x3 = layout.canonical(x, compute)
    y3 = layout.canonical(target, compute)
    vectors = {name: _factor_vector(backend, factor, x.shape, axis, compute) for name, factor in factors.items()}
    if reduction == "none":
        grad_scale = 1.0
        upstream3 = backend.absent(3, compute) if upstream is None else layout.canonical(upstream, compute)
        loss, loss3 = layout.empty(compute)
    else:
        if normaliser is None:
            normaliser = reduction_divisor(reduction, x.shape)
        grad_scale = gradient_scale(upstream, normaliser)
        upstream3 = backend.absent(3, compute)
        loss3 = backend.absent(3, compute)
    reads = (x3, y3, *vectors.values(), upstream3)
    grad = (Output(layout, compute, result, gradient_out, reads, scratch=private_copy(x3, x))
            if return_grad else None)
    grad3 = grad.buffer if grad is not None else backend.absent(3, compute)

    total = run_kernel(backend, spec.kernels[target_kind], x3, y3, vectors["weight"],
                       {**vectors, **(options or {})}, grad_scale, upstream3, loss3, grad3)

    if reduction == "none":
        value = loss.astype(result, copy=False)
    else:
        value = reduced(total, normaliser, result)
    return (value, grad.finish()) if return_grad else value


_REDUCTION = """
    reduction : {{"mean", "sum", "none"}}, optional
        "mean" divides the summed loss by the number of elements (weights do
        not enter the divisor, as in torch); "none" returns the loss of every
        element.
"""

_GRADIENT_ARGUMENTS = """
    return_grad : bool, optional
        Also return the gradient with respect to ``input`` from the same pass.
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for the reductions, an array
        broadcastable to the input for "none".  Needs ``return_grad=True``.
    gradient_out : ndarray, optional
        Where to write the gradient: ``input``'s shape and floating dtype, any
        layout; ``input`` itself computes it in place.  Needs ``return_grad=True``.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the input's floating dtype for the reductions (NaN for a
        "mean" over no elements); the input's shape for "none".
    grad : ndarray
        Only with ``return_grad=True``: the gradient of ``sum(grad_output * loss)``
        with respect to ``input``, equal to torch autograd's.

    Raises
    ------
    ValueError
        A target whose shape is not the input's{factors}, an unknown ``reduction``,
        ``grad_output``/``gradient_out`` without ``return_grad``{extra}.
    TypeError
        An input that cannot be a loss (complex, object, str, datetime), or a
        ``gradient_out`` of the wrong dtype{type_extra}.
"""
_BINARY_FACTORS = ", a ``weight`` or ``pos_weight`` that does not broadcast to it"


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


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none", return_grad=False,
                       grad_output=None, gradient_out=None):
    alpha, gamma = _validate.focal_parameters(alpha, gamma)
    return _elementwise_loss(LOSSES["sigmoid_focal_loss"], input, target, {"weight": None}, reduction,
                             return_grad, grad_output, gradient_out, options={"alpha": alpha, "gamma": gamma})


def kl_div(input, target, *, reduction="mean", log_target=False, return_grad=False, grad_output=None,
           gradient_out=None):
    return _elementwise_loss(LOSSES["kl_div"], input, target, {"weight": None}, reduction, return_grad,
                             grad_output, gradient_out,
                             target_kind="log_probabilities" if log_target else "probabilities",
                             reductions=_validate.KL_REDUCTIONS)


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
""" + _REDUCTION + _GRADIENT_ARGUMENTS.format(factors=_BINARY_FACTORS,
                                                extra=", an input outside [0, 1] (or NaN)", type_extra="") + """
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
""" + _REDUCTION + _GRADIENT_ARGUMENTS.format(factors=_BINARY_FACTORS, extra="", type_extra="") + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logits = np.array([[0.2], [-1.0], [2.0]])
    >>> round(float(fl.binary_cross_entropy_with_logits(logits, np.array([[1.0], [0.0], [1.0]]))), 6)
    0.34611
    """

sigmoid_focal_loss.__doc__ = """Sigmoid focal loss of logits, as ``torchvision.ops.sigmoid_focal_loss``.

    ``loss = alpha_t * ce * (1 - p_t) ** gamma`` with ``p = sigmoid(input)``,
    ``ce`` the binary cross-entropy with logits, ``p_t = p * target + (1 - p) *
    (1 - target)`` and ``alpha_t = alpha * target + (1 - alpha) * (1 - target)``
    (1 when ``alpha < 0``).  ``1 - p_t`` is formed from ``exp(-|input|)`` as
    ``target * sigmoid(-x) + (1 - target) * sigmoid(x)``, so it keeps its digits
    where torchvision's ``1 - p_t`` rounds to 0: for logits up to 1e4 and any
    ``gamma``, loss and gradient are finite, where torchvision's gradient is NaN
    for ``gamma < 1`` once ``p_t`` rounds to 1.

    Parameters
    ----------
    input : array_like
        Logits, any shape (0-d included).
    target : array_like
        Targets of the input's shape, usually 0 or 1 (soft targets are taken as
        in torchvision's formula).
    alpha : float, optional
        The weight of the positive term, 0.25 by default; negative turns the
        alpha factor off (torchvision's -1).
    gamma : float, optional
        The focusing exponent, at least 0 (2 by default; 0 gives alpha-weighted
        BCE with logits).  torchvision accepts a negative one; fastloss raises.
    reduction : {"none", "mean", "sum"}, optional
        "none" (the default, as torchvision's) returns the loss of every
        element; "mean" divides the sum by the number of elements.
""" + _GRADIENT_ARGUMENTS.format(factors="", extra=", a non-finite ``alpha`` or ``gamma``, ``gamma < 0``",
                                 type_extra=", an ``alpha`` or ``gamma`` that is not a real number") + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logits = np.array([[2.0, -1.0], [-3.0, 0.5]])
    >>> targets = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> fl.sigmoid_focal_loss(logits, targets).round(4).tolist()
    [[0.0005, 0.017], [0.6916, 0.2831]]
    """

kl_div.__doc__ = """Pointwise Kullback-Leibler divergence, as ``torch.nn.functional.kl_div``.

    ``input`` holds log-probabilities ``log q``; the loss of each element is
    ``target * (log(target) - input)`` (``0 * log 0 = 0``, torch's ``xlogy``),
    or with ``log_target=True``, ``exp(target) * (target - input)``.  Summed over
    a distribution's axis it is ``KL(target || q)``.

    Parameters
    ----------
    input : array_like
        Log-probabilities, any shape (0-d included).  They are not checked, as
        in torch.
    target : array_like
        Probabilities (log-probabilities with ``log_target=True``) of the
        input's shape; torch also broadcasts them, fastloss does not.
    reduction : {"mean", "batchmean", "sum", "none"}, optional
        torch's: "mean" divides the sum by the number of elements (torch's
        default, which torch warns about), "batchmean" by the size of the first
        axis (the KL divergence per sample; the sum for 0-d input), "none"
        returns every element's term.
    log_target : bool, optional
        Whether ``target`` holds log-probabilities.
""" + _GRADIENT_ARGUMENTS.format(factors="", extra="", type_extra="") + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> log_q = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    >>> p = np.array([[0.25, 0.25, 0.5], [0.0, 0.2, 0.8]])
    >>> round(float(fl.kl_div(log_q, p, reduction="batchmean")), 6)
    0.155958
    """
