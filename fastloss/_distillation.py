"""distillation_loss: the KL divergence of a student's softmax from a teacher's, at a temperature."""
from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, private_copy
from ._reduction import gradient_scale, reduced, reduction_divisor
from ._registry import LOSSES

__all__ = ["distillation_loss"]


def distillation_loss(student_logits, teacher_logits, *, temperature=1.0, axis=1, reduction="batchmean",
                      return_grad=False, grad_output=None, gradient_out=None):
    """Knowledge-distillation loss: the KL divergence of the student's softmax from the teacher's.

    ``T**2 * kl_div(log_softmax(student / T), log_softmax(teacher / T), log_target=True)``
    over the class axis, as torch composes it, computed in one pass over both
    arrays.  With ``P = softmax(teacher / T)`` and ``Q = softmax(student / T)``
    every element has the loss ``T**2 P_c (log P_c - log Q_c)``; the gradient
    is with respect to the student's logits, the teacher is not differentiated:
    ``T (Q_c sum_j g_j P_j - g_c P_c)`` for the upstream gradient ``g`` of the
    elements.  As in torch, an element whose teacher logit is -inf has the loss
    NaN (``0 * -inf``) and a finite gradient.

    Parameters
    ----------
    student_logits : array_like
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    teacher_logits : array_like
        Logits of the student's shape; cast to the student's compute dtype.
    temperature : float, optional
        ``T``, finite and above 0 (default 1).
    axis : int, optional
        The class axis (default 1, torch's layout ``(N, C, d1, ..., dK)``);
        ``axis=-1`` takes channels-last data without a transposing copy.  For a
        1-D input ``(C,)`` the class axis is 0 whatever ``axis`` says.
    reduction : {"batchmean", "sum", "mean", "none"}, optional
        As torch's ``kl_div``: "batchmean" (the default, the mathematically
        correct KL divergence) divides the summed loss by ``shape[0]`` (the
        batch size; C for a 1-D input, as torch), "mean" by the number of
        elements, "sum" not at all; "none" returns the loss of every element,
        of the input's shape.
    return_grad : bool, optional
        Also return the gradient with respect to ``student_logits`` from the same pass.
    grad_output : array_like, optional
        The upstream gradient (default 1): a scalar for "batchmean"/"mean"/"sum",
        an array broadcastable to the input's shape for "none".  Needs ``return_grad=True``.
    gradient_out : ndarray, optional
        Where to write the gradient: the student's shape and floating dtype, any
        layout.  Passing ``student_logits`` itself (or ``teacher_logits``, of
        that dtype) computes the gradient in place.  Needs ``return_grad=True``.

    Returns
    -------
    loss : numpy scalar or ndarray
        A scalar of the student's floating dtype (a reduction over no
        element: 0 for "sum", NaN for "mean" and for "batchmean" of a batch of
        0, as torch), or for "none" an array of the input's shape.
    grad : ndarray
        Only with ``return_grad=True``: the gradient of ``sum(grad_output * loss)``
        with respect to ``student_logits``, equal to torch autograd's.

    Raises
    ------
    ValueError
        A 0-d input, arrays of different shapes, a temperature that is not
        finite and above 0, an unknown ``reduction``, an axis out of range,
        ``grad_output``/``gradient_out`` without ``return_grad``, a
        ``grad_output`` of the wrong shape, a read-only ``gradient_out``.
    TypeError
        An input that cannot be a loss (complex, object, str, datetime), a
        temperature that is not a number, or a ``gradient_out`` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> student = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> teacher = np.array([[3.0, 0.5, 0.2], [0.1, 3.0, 1.0]])
    >>> loss, grad = fl.distillation_loss(student, teacher, temperature=2.0, return_grad=True)
    >>> round(float(loss), 6)
    0.133129
    >>> grad.round(4)
    array([[-0.1506,  0.1174,  0.0332],
           [ 0.0699, -0.0361, -0.0339]])
    """
    x, compute, result = _validate.as_input(student_logits, "student_logits")
    if x.ndim == 0:
        raise ValueError("student_logits must have at least one dimension, the class axis")
    teacher, _, _ = _validate.as_input(teacher_logits, "teacher_logits")
    _validate.same_shape(teacher, x.shape, "teacher_logits")
    temperature = _validate.finite_real(temperature, "temperature", 0.0, strict=True)
    axis = _validate.class_axis(axis, x.ndim)
    reduction = _validate.reduction(reduction, _validate.KL_REDUCTIONS)
    _validate.gradient_request(return_grad, grad_output, gradient_out)
    gradient_out = _validate.out_array(gradient_out, x.shape, result, "gradient_out")
    loss_shape = x.shape if reduction == "none" else ()
    upstream = _validate.grad_output(grad_output, loss_shape, reduction, compute)

    # Everything is checked: from here on nothing raises before the kernel writes.
    backend = kernels(x.size)
    layout = ClassLayout.of(x, axis)
    student3 = layout.canonical(x, compute)
    teacher3 = layout.canonical(teacher, compute)
    if reduction == "none":
        normaliser = 1.0
        grad_scale = 1.0
        upstream3 = backend.absent(3, compute) if upstream is None else layout.canonical(upstream, compute)
        loss, loss3 = layout.empty(compute)
    else:
        normaliser = reduction_divisor(reduction, x.shape)
        grad_scale = gradient_scale(upstream, normaliser)
        upstream3 = loss3 = backend.absent(3, compute)
    grad = (Output(layout, compute, result, gradient_out, (student3, teacher3, upstream3),
                   scratch=private_copy(student3, x))
            if return_grad else None)
    grad3 = grad.buffer if grad is not None else backend.absent(3, compute)

    call = LOSSES["distillation_loss"].kernels["logits"]
    options = {"temperature": temperature}
    kernel = getattr(backend, call.name)
    total = kernel(student3, teacher3, *[options[name] for name in call.arguments],
                   grad_scale, upstream3, loss3, grad3)

    if reduction == "none":
        value = loss.astype(result, copy=False)
    else:
        value = reduced(total, normaliser, result)
    return (value, grad.finish()) if return_grad else value
