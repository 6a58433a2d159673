"""nll_loss and cross_entropy: losses over a class axis, with fused gradients."""
import numpy as np

from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, private_copy
from ._reduction import gradient_scale, reduced
from ._registry import LOSSES, run_kernel

_LOSS_PARAMETERS = """
    weight : array_like, optional
        A rescaling weight per class, shape ``(C,)``.
    ignore_index : int, optional
        A class target that contributes neither loss nor gradient (default -100).
    reduction : {"mean", "sum", "none"}, optional
        "mean" divides the summed loss by the summed weights of the non-ignored
        targets (their count without ``weight``), as torch does; "none" returns
        the loss of every position, shaped as the target.
    axis : int, optional
        The class axis (default 1, torch's layout ``(N, C, d1, ..., dK)``);
        ``axis=-1`` takes channels-last data without a transposing copy.  For a
        1-D input ``(C,)`` the class axis is 0 whatever ``axis`` says.
    return_grad : bool, optional
        Also return the gradient with respect to ``input`` from the same pass.
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for "mean"/"sum", an array
        broadcastable to the loss for "none".  Needs ``return_grad=True``.
    gradient_out : ndarray, optional
        Where to write the gradient: ``input``'s shape and floating dtype, any
        layout.  Passing ``input`` itself computes the gradient in place.
        Needs ``return_grad=True``.
"""

_LOSS_RETURNS_RAISES = """
    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the input's floating dtype for "mean"/"sum"; for "none" an
        array of the target's shape.  "mean" over no targets (all ignored, or
        N = 0) is NaN, as in torch.
    grad : ndarray
        Only with ``return_grad=True``: the gradient of ``sum(grad_output * loss)``
        with respect to ``input``, equal to torch autograd's.

    Raises
    ------
    ValueError
        Mismatched shapes, an unknown ``reduction``, ``label_smoothing`` outside
        [0, 1], a ``weight`` whose length is not C, non-integer class targets,
        ``grad_output``/``gradient_out`` without ``return_grad``, a read-only
        ``gradient_out``.
    IndexError
        A class target outside [0, C) that is not ``ignore_index``.
    TypeError
        An input that cannot be a loss (complex, object, str, datetime), or a
        ``gradient_out`` of the wrong dtype.
"""


def _class_loss(spec, input, target, weight, ignore_index, reduction,
                label_smoothing, axis, return_grad, grad_output, gradient_out, z_loss=0.0):
    """The class-axis loss ``spec`` (a `fastloss._registry.LossSpec`)."""
    x, compute, result = _validate.as_input(input)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension, the class axis")
    axis = _validate.class_axis(axis, x.ndim)
    reduction = _validate.reduction(reduction)
    ignore = _validate.ignore_index(ignore_index)
    smoothing = _validate.label_smoothing(label_smoothing)
    z_loss = _validate.z_loss(z_loss)
    _validate.gradient_request(return_grad, grad_output, gradient_out)
    layout = ClassLayout.of(x, axis)
    classes = layout.classes
    target = np.asarray(target)
    # A target of the input's shape holds class probabilities, where the loss takes them.
    probabilities = target.shape == x.shape and "probabilities" in spec.kernels
    if probabilities:
        target = _validate.probability_target(target, compute, ignore)
    elif target.shape == layout.position_shape:
        _validate.class_target_dtype(target)
    else:
        expected = "the input's shape without the class axis"
        if "probabilities" in spec.kernels:
            expected += f" {layout.position_shape} (class indices) or the input's shape {x.shape} (probabilities)"
        else:
            expected += f" {layout.position_shape}"
        raise ValueError(f"target of shape {target.shape} does not match input {x.shape}: expected {expected}")
    weight = _validate.class_weight(weight, classes, compute)
    gradient_out = _validate.out_array(gradient_out, x.shape, result, "gradient_out")
    loss_shape = layout.position_shape if reduction == "none" else ()
    upstream = _validate.grad_output(grad_output, loss_shape, reduction, compute)

    backend = kernels(x.size)
    if probabilities:
        target_view = layout.canonical(target, compute)
    else:
        target_view = layout.canonical_positions(target, np.int64)
        ignored = backend.ignored_targets(target_view, classes, ignore)
        if ignored < 0:
            _validate.class_target(target, classes, ignore)  # raises, naming the target

    # Everything is checked: from here on nothing raises before the kernel writes.
    x3 = layout.canonical(x, compute)
    weight1 = backend.absent(1, compute) if weight is None else np.ascontiguousarray(weight)
    if reduction == "mean":
        if probabilities:  # torch divides by the number of positions, whatever the weights
            normaliser = float(layout.outer * layout.inner)
        elif weight is None:
            normaliser = float(target_view.size - ignored)
        else:
            kept = target_view if not ignored else target_view[target_view != ignore]
            normaliser = float(weight[kept].sum(dtype=np.float64))
    else:
        normaliser = 1.0
    if reduction == "none":
        grad_scale = 1.0
        upstream2 = (backend.absent(2, compute) if upstream is None
                     else layout.canonical_positions(upstream, compute))
        loss, loss2 = layout.empty_positions(compute)
    else:
        grad_scale = gradient_scale(upstream, normaliser)
        upstream2 = backend.absent(2, compute)
        loss2 = backend.absent(2, compute)
    reads = (x3, target_view, weight1, upstream2)
    grad = (Output(layout, compute, result, gradient_out, reads, scratch=private_copy(x3, x))
            if return_grad else None)
    grad3 = grad.buffer if grad is not None else backend.absent(3, compute)

    call = spec.kernels["probabilities" if probabilities else "classes"]
    total = run_kernel(backend, call, x3, target_view, weight1,
                       {"ignore_index": ignore, "label_smoothing": smoothing, "z_loss": z_loss},
                       grad_scale, upstream2, loss2, grad3)

    if reduction == "none":
        value = loss.astype(result, copy=False)
    else:
        value = reduced(total, normaliser, result)
    return (value, grad.finish()) if return_grad else value


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", axis=1,
             return_grad=False, grad_output=None, gradient_out=None):
    return _class_loss(LOSSES["nll_loss"], input, target, weight, ignore_index, reduction, 0.0, axis,
                       return_grad, grad_output, gradient_out)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=1, return_grad=False, grad_output=None,
                  gradient_out=None, z_loss=0.0):
    return _class_loss(LOSSES["cross_entropy"], input, target, weight, ignore_index, reduction,
                       label_smoothing, axis, return_grad, grad_output, gradient_out, z_loss)


nll_loss.__doc__ = """Negative log-likelihood of class targets, as ``torch.nn.functional.nll_loss``.

    ``loss[i] = -weight[t_i] * input[i, t_i]`` at every position ``i`` whose
    target ``t_i`` is not ``ignore_index``.

    Parameters
    ----------
    input : array_like
        Log-probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : array_like of int
        Class indices of the input's shape without the class axis (a scalar
        for a ``(C,)`` input), any integer dtype.
""" + _LOSS_PARAMETERS + _LOSS_RETURNS_RAISES + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logp = np.array([[-0.5, -1.2, -2.0, -3.0], [-1.0, -0.2, -3.0, -2.0], [-2.0, -1.0, -0.1, -3.0]])
    >>> round(float(fl.nll_loss(logp, np.array([3, 1, 2]))), 6)
    1.1
    """

cross_entropy.__doc__ = """Cross-entropy of logits, as ``torch.nn.functional.cross_entropy``.

    The log-sum-exp of every position, its loss and (with ``return_grad``) the
    gradient ``softmax(input) - onehot(target)``, scaled by weight, normaliser
    and ``grad_output``, are computed in one pass over the logits.

    Parameters
    ----------
    input : array_like
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : array_like
        Either class indices (integer dtype, the input's shape without the
        class axis) or class probabilities (floating, the input's shape), as
        in torch: a target of the input's shape is taken as probabilities.
""" + _LOSS_PARAMETERS + """
    label_smoothing : float, optional
        In [0, 1]: mixes the targets with the uniform distribution,
        ``(1 - label_smoothing) * target + label_smoothing / C``, with torch's
        handling of ``weight`` and ``ignore_index``.
    z_loss : float, optional
        Finite and at least 0 (default 0: none; else ValueError).  Adds
        ``z_loss * logsumexp(input)**2`` to every position's loss, the auxiliary
        loss of PaLM and T5X that keeps the log-normaliser near 0, weighted and
        reduced as the position's cross-entropy is: times ``weight[t]`` for a
        class target (nothing where the target is ignored; "mean" divides by
        the same sum of weights), times 1 for probability targets.  Its
        gradient, ``2 * z_loss * logsumexp(input) * softmax(input)``, comes from
        the same pass.  torch has no such keyword.
""" + _LOSS_RETURNS_RAISES + """
    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logits = np.array([[-1.0, -3.0, 4.0], [-3.0, 3.0, -1.0]])
    >>> loss, grad = fl.cross_entropy(logits, np.array([0, 1]), return_grad=True)
    >>> round(float(loss), 4)
    2.5141
    >>> grad.round(3)
    array([[-0.497,  0.   ,  0.496],
           [ 0.001, -0.01 ,  0.009]])
    """
