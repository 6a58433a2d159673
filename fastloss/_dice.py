"""dice_loss: the soft Dice loss of segmentation (MONAI's ``DiceLoss``), with a fused gradient."""
import numpy as np

from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, _cached_layout, private_copy
from ._reduction import gradient_scale, reduced
from ._registry import LOSSES, run_kernel

__all__ = ["dice_loss"]

# The activations, by the code the kernels take: its index here.
ACTIVATIONS = (None, "softmax", "sigmoid")


def _activation_code(activation):
    if not (activation is None or isinstance(activation, str) and activation in ACTIVATIONS):
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return ACTIVATIONS.index(activation)


def _class_indices(target, classes):
    """Check class-index targets: integers, each in ``[0, C)``."""
    if target.dtype.kind not in "iu":
        raise ValueError(
            f"class targets must be integers, got dtype {target.dtype}; "
            "float targets of the input's shape are class probabilities"
        )
    if target.size and (target.min() < 0 or target.max() >= classes):
        value = target[(target < 0) | (target >= classes)].flat[0]
        raise IndexError(f"class target {value} is out of range: targets must lie in [0, {classes})")


def _class_weight(weight, classes, dtype):
    """MONAI's class weights: C values, none negative."""
    weight = _validate.class_weight(weight, classes, dtype)
    if weight is not None and not (weight >= 0).all():
        raise ValueError("weight must hold values of at least 0 (MONAI's rule)")
    return weight


def _sample_layout(x, axis):
    """A layout of ``x`` whose outer positions start with the batch axis (the first axis
    other than the class axis), so that each sample is a run of whole ``outer`` rows:
    the memory order's when it starts so (C order, channels-last), else batch first."""
    batch = 1 if axis == 0 else 0
    layout = ClassLayout.of(x, axis)
    if layout.order[0] == batch:
        return layout
    return _cached_layout(x.shape, axis, (batch, *(ax for ax in range(x.ndim) if ax != batch)))


def dice_loss(input, target, *, axis=1, activation="softmax", smooth=1e-5, weight=None, reduction="mean",
              return_grad=False, grad_output=None, gradient_out=None):
    x, compute, result = _validate.as_input(input)
    if x.ndim < 2:
        raise ValueError(f"input must have at least two dimensions, a batch and a class axis; got shape {x.shape}")
    axis = _validate.axis(axis, x.ndim)
    code = _activation_code(activation)
    smooth = _validate.finite_real(smooth, "smooth", 0.0)
    reduction = _validate.reduction(reduction)
    _validate.gradient_request(return_grad, grad_output, gradient_out)
    layout = _sample_layout(x, axis)
    samples = x.shape[1 if axis == 0 else 0]
    classes = layout.classes
    target = np.asarray(target)
    probabilities = target.shape == x.shape
    if probabilities:
        target = _validate.probability_target(target, compute, ignore=-1)  # no ignore_index here
    elif target.shape == layout.position_shape:
        _class_indices(target, classes)
    else:
        raise ValueError(
            f"target of shape {target.shape} does not match input {x.shape}: expected the input's shape "
            f"without the class axis {layout.position_shape} (class indices) or the input's shape (probabilities)")
    weight = _class_weight(weight, classes, compute)
    gradient_out = _validate.out_array(gradient_out, x.shape, result, "gradient_out")
    loss_shape = (samples, classes) if reduction == "none" else ()
    upstream = _validate.grad_output(grad_output, loss_shape, reduction, compute)

    # Everything is checked: from here on nothing raises before the kernel writes.
    backend = kernels(x.size)
    x3 = layout.canonical(x, compute)
    target_view = (layout.canonical(target, compute) if probabilities
                   else layout.canonical_positions(target, np.int64))
    weight1 = backend.absent(1, compute) if weight is None else np.ascontiguousarray(weight)
    if reduction == "none":
        grad_scale = 1.0
        upstream2 = backend.absent(2, compute) if upstream is None else np.ascontiguousarray(upstream)
        loss = loss2 = np.empty(loss_shape, compute)
    else:
        grad_scale = gradient_scale(upstream, samples * classes if reduction == "mean" else 1.0)
        upstream2 = loss2 = backend.absent(2, compute)
    reads = (x3, target_view, weight1, upstream2)
    grad = (Output(layout, compute, result, gradient_out, reads, scratch=private_copy(x3, x))
            if return_grad else None)
    grad3 = grad.buffer if grad is not None else backend.absent(3, compute)

    call = LOSSES["dice_loss"].kernels["probabilities" if probabilities else "classes"]
    total = run_kernel(backend, call, x3, target_view, weight1,
                       {"activation": code, "smooth": smooth, "samples": samples},
                       grad_scale, upstream2, loss2, grad3)

    if reduction == "none":
        value = loss.astype(result, copy=False)
    else:
        value = reduced(total, samples * classes if reduction == "mean" else 1.0, result)
    return (value, grad.finish()) if return_grad else value


dice_loss.__doc__ = """Soft Dice loss of segmentation, as MONAI's ``DiceLoss`` in its common setting.

    With ``p = activation(input)`` over the class axis and ``t`` the target
    (one-hot for class indices), sample n and class c have the loss

        ``l_nc = 1 - (2 sum_i p_i t_i + smooth) / (sum_i p_i + sum_i t_i + smooth)``

    summed over the sample's positions i (its spatial positions), times
    ``weight[c]`` if given; then the reduction over the N x C values.  This is
    ``monai.losses.DiceLoss(softmax=True or sigmoid=True, to_onehot_y=True for
    class indices, smooth_nr=smooth, smooth_dr=smooth, include_background=True,
    batch=False)``.  The per-(sample, class) sums are taken in float64 in an
    order fixed by the shape; with ``return_grad`` a second pass over the
    input writes the gradient (through the softmax's Jacobian, or the
    sigmoid's ``p (1 - p)``).

    Parameters
    ----------
    input : array_like
        Logits (probabilities with ``activation=None``), ``(N, C, d1, ..., dK)``
        or ``(N, C)`` (no spatial axes: each sum is over one position).  The
        class axis is ``axis``; the batch axis is the first of the others
        (axis 0, or axis 1 when ``axis=0``).
    target : array_like
        Class indices (integer dtype, the input's shape without the class axis,
        each in [0, C)) or per-class targets such as probabilities or a one-hot
        encoding (floating, the input's shape; not range-checked, as in MONAI).
    axis : int, optional
        The class axis (default 1, MONAI's layout); ``axis=-1`` takes
        channels-last ``(N, d1, ..., dK, C)`` data without a transposing copy.
    activation : {"softmax", "sigmoid", None}, optional
        Applied to ``input`` over the classes (softmax) or element by element
        (sigmoid) first; None takes ``input`` as probabilities, unchecked.
    smooth : float, optional
        Added to numerator and denominator (MONAI's ``smooth_nr`` and
        ``smooth_dr``), finite and at least 0 (default 1e-5).  With 0, a class
        absent from both prediction and target has loss 0/0 = NaN, as in MONAI.
    weight : array_like, optional
        A non-negative weight per class, shape ``(C,)``, multiplying each
        class's loss before the reduction (MONAI's ``weight``).
    reduction : {"mean", "sum", "none"}, optional
        "mean" over the N x C losses, their "sum", or "none": an ``(N, C)``
        array (MONAI's "none" keeps singleton spatial axes, ``(N, C, 1, ...)``;
        this does not).
    return_grad : bool, optional
        Also return the gradient with respect to ``input``.
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for "mean"/"sum", an array
        broadcastable to ``(N, C)`` for "none".  Needs ``return_grad=True``.
    gradient_out : ndarray, optional
        Where to write the gradient: ``input``'s shape and floating dtype, any
        layout.  Passing ``input`` itself computes the gradient in place.
        Needs ``return_grad=True``.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the input's floating dtype for "mean"/"sum" ("mean" of N x C
        = 0 values is NaN); for "none" an ``(N, C)`` array.
    grad : ndarray
        Only with ``return_grad=True``: the gradient of ``sum(grad_output * loss)``
        with respect to ``input``, equal to torch autograd's through MONAI's code.

    Raises
    ------
    ValueError
        An input of fewer than 2 dimensions, a target of neither accepted
        shape, non-integer class indices or non-floating per-class targets, an
        unknown ``activation`` or ``reduction``, ``smooth`` negative or not
        finite, a ``weight`` of the wrong length or with a negative value,
        ``grad_output``/``gradient_out`` without ``return_grad``, a read-only
        ``gradient_out``, a ``grad_output`` of the wrong shape.
    IndexError
        A class index outside [0, C).
    TypeError
        An input that cannot be a loss (complex, object, str, datetime), a
        ``smooth`` that is not a number, a ``gradient_out`` of the wrong dtype.

    Notes
    -----
    Where this differs from MONAI's ``DiceLoss``: class indices come without
    MONAI's singleton channel axis (``(N, d1, ..., dK)``, not ``(N, 1, d1,
    ..., dK)``) and are checked; for an ``(N, C)`` input MONAI's sums over no
    spatial axes (``torch.sum(..., dim=[])``) reduce over the whole batch,
    while here each sum is over the sample's one position; with one class (C = 1), MONAI ignores
    ``softmax=True`` and ``to_onehot_y=True`` (with a warning), while here the
    softmax of one class is 1 and class index 0 is the one-hot target 1, as for
    any C; "none" returns ``(N, C)``; ``include_background=False``,
    ``squared_pred``, ``jaccard``, ``batch=True`` and ``other_act`` are not
    offered.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> logits = np.array([[[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]]])   # (N=1, C=2, 3 positions)
    >>> target = np.array([[0, 1, 1]])
    >>> loss, grad = fl.dice_loss(logits, target, return_grad=True)
    >>> round(float(loss), 4)
    0.2336
    >>> grad.round(4)
    array([[[-0.0163,  0.0056,  0.0747],
            [ 0.0163, -0.0056, -0.0747]]])
    """
