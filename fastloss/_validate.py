"""Argument checks: every documented error is raised here, before any kernel writes.

Each function takes what the caller passed and returns it in the form the
layout layer needs (an ndarray of the compute dtype, a normalised axis, ...).
"""
import math
import numbers
import operator

import numpy as np

try:
    from numpy.lib.array_utils import normalize_axis_index  # NumPy 2
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import normalize_axis_index

REDUCTIONS = ("mean", "sum", "none")
# The KL losses' reductions: torch's three and "batchmean".
KL_REDUCTIONS = (*REDUCTIONS, "batchmean")


# Dtypes the kernels compute in, as a set of dtype objects: a lookup, not a conversion per call.
_OWN_PRECISION = frozenset(map(np.dtype, (np.float32, np.float64)))


def float_dtypes(arr, name):
    """Return ``(compute_dtype, result_dtype)`` for an input array.

    float32/float64 compute in their own precision; float16 computes in float32
    and returns float16; integers and bool are promoted to float64 as NumPy
    ufuncs do; longdouble computes in float64 and returns longdouble.
    """
    dtype = arr.dtype
    if dtype in _OWN_PRECISION:
        return dtype, dtype
    if dtype == np.float16:
        return np.dtype(np.float32), dtype
    if dtype.kind == "f":
        return np.dtype(np.float64), dtype
    if dtype.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(
        f"{name} has dtype {dtype}, which cannot be a loss input; "
        "expected a floating, integer or bool array"
    )


def as_input(x, name="input"):
    """``np.asarray(x)`` with its compute and result dtypes; TypeError for complex/object/str/datetime."""
    arr = np.asarray(x)
    compute, result = float_dtypes(arr, name)
    return arr, compute, result


def axis(value, ndim):
    """Normalise an axis as NumPy does (AxisError, an IndexError and ValueError, if out of range)."""
    return normalize_axis_index(operator.index(value), ndim)


def class_axis(value, ndim):
    """Normalise the class axis; a 1-D ``(C,)`` input always has its classes on axis 0."""
    if ndim == 1:
        operator.index(value)
        return 0
    return axis(value, ndim)


def reduction(value, allowed=REDUCTIONS):
    """A reduction name, one of ``allowed`` (torch's three; the KL losses add "batchmean")."""
    if value not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {value!r}")
    return value


def finite_real(value, name, lowest=-math.inf, strict=False):
    """A scalar option as a float: a real number (else TypeError), finite and at least
    ``lowest`` (above it with ``strict``; else ValueError)."""
    # Plain floats and ints skip the ABC check, which costs a small call microseconds.
    if type(value) not in (float, int) and not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and (value > lowest or value == lowest and not strict)):
        bound = "" if lowest == -math.inf else f" and {'above' if strict else 'at least'} {lowest:g}"
        raise ValueError(f"{name} must be finite{bound}, got {value}")
    return value


def focal_parameters(alpha, gamma):
    """The sigmoid focal loss's ``alpha`` (finite; negative turns the alpha factor off, as in
    torchvision) and ``gamma`` (finite, at least 0), as floats."""
    return finite_real(alpha, "alpha"), finite_real(gamma, "gamma", 0.0)


def label_smoothing(value):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {value}")
    return value


def z_loss(value):
    """cross_entropy's z-loss factor: a finite real number, at least 0."""
    return finite_real(value, "z_loss", 0.0)


def ignore_index(value):
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"ignore_index must be an integer, got {value!r}") from None


def class_weight(weight, num_classes, dtype):
    """A length-C weight vector in the compute dtype, or None."""
    if weight is None:
        return None
    weight = np.asarray(weight)
    float_dtypes(weight, "weight")
    if weight.shape != (num_classes,):
        raise ValueError(
            f"weight must have shape ({num_classes},), one value per class, got {weight.shape}"
        )
    return weight.astype(dtype, copy=False)


# The unsigned dtype of each integer dtype, by dtype: spelling it out costs a small call.
_UNSIGNED = {np.dtype(code): np.dtype(code.replace("i", "u"))
             for code in (f"{order}{kind}{size}" for order in "<>" for kind in "iu" for size in (1, 2, 4, 8))}


def class_target_dtype(target):
    """Class targets must be integers (ValueError otherwise)."""
    if target.dtype.kind not in "iu":
        raise ValueError(
            f"class targets must be integers, got dtype {target.dtype}; "
            "float targets of the input's shape are class probabilities"
        )


def class_target(target, num_classes, ignore):
    """Check integer class targets: each in ``[0, C)`` or equal to ``ignore_index``
    (the IndexError names the first that is not).

    Returns whether every target lies in ``[0, C)``.  The NumPy-level check of the
    dask and JAX front ends, and the one that names a bad target for the kernels'
    front layer (whose backends' ``ignored_targets`` find that there is one).
    """
    class_target_dtype(target)
    # One reduction settles the common case without the full mask's temporaries:
    # read as unsigned, a negative target is above any class.
    if target.size == 0 or target.view(_UNSIGNED[target.dtype]).max() < num_classes:
        return True
    # NumPy 2 compares integer arrays with out-of-range Python ints correctly,
    # so uint8 targets against ignore_index=-100 need no cast.
    bad = (target != ignore) & ((target < 0) | (target >= num_classes))
    if bad.any():
        value = target[bad].flat[0]
        raise IndexError(
            f"class target {value} is out of range: targets must lie in [0, {num_classes}) "
            f"or equal ignore_index ({ignore})"
        )
    return False


def probability_target(target, compute_dtype, ignore):
    if target.dtype.kind != "f":
        raise ValueError(
            f"a target of the input's shape holds class probabilities and must be floating, "
            f"got dtype {target.dtype}"
        )
    if ignore >= 0:
        raise ValueError("ignore_index is not supported with class-probability targets")
    return target.astype(compute_dtype, copy=False)


def binary_probabilities(p):
    """BCE input must lie in [0, 1] (NaN fails too, as in torch)."""
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        raise ValueError("binary_cross_entropy input must be probabilities in [0, 1]")


def same_shape(target, shape, what):
    if target.shape != shape:
        raise ValueError(f"{what} must have the input's shape {shape}, got {target.shape}")


def grad_output(value, loss_shape, reduction_name, dtype):
    """The upstream gradient: a scalar for "mean"/"sum", broadcastable to the loss for "none"."""
    if value is None:
        return None
    value = np.asarray(value)
    float_dtypes(value, "grad_output")
    if reduction_name == "none":
        try:
            return np.broadcast_to(value, loss_shape).astype(dtype, copy=False)
        except ValueError:
            raise ValueError(
                f"grad_output of shape {value.shape} does not broadcast to the loss shape {loss_shape}"
            ) from None
    if value.size != 1:
        raise ValueError(
            f"grad_output must be a scalar for reduction={reduction_name!r}, got shape {value.shape}"
        )
    return float(value.reshape(()))


def out_array(out, shape, dtype, name):
    """Check a caller's output buffer: an ndarray of the right shape and dtype, writable."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def gradient_request(return_grad, grad_output_value, gradient_out):
    if not return_grad and (grad_output_value is not None or gradient_out is not None):
        raise ValueError("grad_output and gradient_out need return_grad=True")
