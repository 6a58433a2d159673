"""softmax, log_softmax and their backward passes over one axis."""
import numpy as np

from . import _validate
from ._backends import kernels
from ._layout import ClassLayout, Output, private_copy


def _normalise(kernel_name, x, axis, out):
    x, compute, result = _validate.as_input(x, "x")
    out = _validate.out_array(out, x.shape, result, "out")
    if x.ndim == 0:  # torch allows 0-d input: one position with one class
        _validate.axis(axis, 1)
        flat_out = None if out is None else out.reshape(1)
        result = _normalise(kernel_name, x.reshape(1), 0, flat_out)
        return result.reshape(()) if out is None else out
    axis = _validate.axis(axis, x.ndim)
    layout = ClassLayout.of(x, axis)
    x3 = layout.canonical(x, compute)
    target = Output(layout, compute, result, out, reads=(x3,), scratch=private_copy(x3, x))
    getattr(kernels(x3.size), kernel_name)(x3, target.buffer)
    return target.finish()


def _normalise_backward(kernel_name, grad_output, output, axis, out):
    output, compute, result = _validate.as_input(output, "output")
    grad_output = np.asarray(grad_output)
    _validate.float_dtypes(grad_output, "grad_output")
    _validate.same_shape(grad_output, output.shape, "grad_output")
    out = _validate.out_array(out, output.shape, result, "out")
    if output.ndim == 0:
        _validate.axis(axis, 1)
        flat_out = None if out is None else out.reshape(1)
        result = _normalise_backward(kernel_name, grad_output.reshape(1), output.reshape(1),
                                     0, flat_out)
        return result.reshape(()) if out is None else out
    axis = _validate.axis(axis, output.ndim)
    layout = ClassLayout.of(output, axis)
    gy3 = layout.canonical(grad_output, compute)
    y3 = layout.canonical(output, compute)
    target = Output(layout, compute, result, out, reads=(gy3, y3),
                    scratch=private_copy(gy3, grad_output))
    getattr(kernels(y3.size), kernel_name)(gy3, y3, target.buffer)
    return target.finish()


def softmax(x, axis=-1, *, out=None):
    """Softmax of ``x`` along ``axis``: ``exp(x) / sum(exp(x), axis)``, computed stably.

    Parameters
    ----------
    x : array_like
        Logits, any shape (0-d included) and memory layout.
    axis : int, optional
        The axis to normalise over (default: the last, as NumPy/SciPy/JAX).
    out : ndarray, optional
        Where to write the result: the input's shape and floating dtype, any
        layout.  ``out`` may be ``x`` itself (in place).

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape and floating dtype (``out`` if given).

    Raises
    ------
    TypeError
        If ``x`` is complex, object, str or datetime, or ``out`` has the wrong dtype.
    ValueError
        If ``out`` has the wrong shape or is read-only.
    numpy.exceptions.AxisError
        If ``axis`` is out of range (an IndexError and ValueError; ``numpy.AxisError``
        before NumPy 1.25).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    """
    return _normalise("softmax", x, axis, out)


def log_softmax(x, axis=-1, *, out=None):
    """Logarithm of :func:`softmax`: ``x - logsumexp(x, axis)``.

    Parameters, returns and errors as :func:`softmax`.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.log_softmax(np.array([[-1.0, -3.0, 4.0]]), axis=1).round(4)
    array([[-5.0076, -7.0076, -0.0076]])
    """
    return _normalise("log_softmax", x, axis, out)


def softmax_backward(grad_output, output, axis=-1, *, out=None):
    """Gradient of a loss with respect to ``x`` through ``output = softmax(x, axis)``.

    ``grad_input = output * (grad_output - sum(grad_output * output, axis))``, as
    ``torch.ops.aten._softmax_backward_data``.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the loss with respect to ``output``; ``output``'s shape.
    output : array_like
        The softmax that was computed in the forward pass.
    axis : int, optional
        The axis the forward pass normalised over.
    out : ndarray, optional
        Where to write the gradient; may be ``grad_output`` or ``output`` itself.

    Returns
    -------
    ndarray
        The gradient, of ``output``'s shape and floating dtype.

    Raises
    ------
    ValueError
        If the shapes differ, or ``out`` has the wrong shape or is read-only.
    TypeError
        For dtypes that cannot be losses, or an ``out`` of the wrong dtype.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> y = fl.softmax(np.array([0.0, 0.0]))
    >>> fl.softmax_backward(np.array([1.0, 0.0]), y)
    array([ 0.25, -0.25])
    """
    return _normalise_backward("softmax_backward", grad_output, output, axis, out)


def log_softmax_backward(grad_output, output, axis=-1, *, out=None):
    """Gradient of a loss with respect to ``x`` through ``output = log_softmax(x, axis)``.

    ``grad_input = grad_output - exp(output) * sum(grad_output, axis)``, as
    ``torch.ops.aten._log_softmax_backward_data``.  Parameters, returns and
    errors as :func:`softmax_backward`.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> y = fl.log_softmax(np.array([0.0, 0.0]))
    >>> fl.log_softmax_backward(np.array([1.0, 0.0]), y)
    array([ 0.5, -0.5])
    """
    return _normalise_backward("log_softmax_backward", grad_output, output, axis, out)
