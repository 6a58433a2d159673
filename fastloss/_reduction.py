"""The "mean"/"sum" reduction shared by every loss: the kernels return float64 sums."""
import numpy as np


def _divide(a, b):
    """``a / b`` in float64, IEEE style (inf or NaN for b == 0); plain floats unless b is 0,
    as an errstate block would cost a small call more than its kernel."""
    if b:
        return float(a) / b
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / b)


def reduction_divisor(reduction, shape):
    """The divisor of a reduction of elementwise losses: the element count for "mean", the
    batch size (``shape[0]``; 1 for 0-d input, as torch) for "batchmean", else 1."""
    if reduction == "mean":
        return float(np.prod(shape, dtype=np.float64))
    if reduction == "batchmean" and shape:
        return float(shape[0])
    return 1.0


def gradient_scale(upstream, normaliser):
    """Every position's gradient scale, ``grad_output / normaliser`` (inf for a zero normaliser,
    which the kernels only apply to positions that have a weight, as torch does)."""
    return _divide(1.0 if upstream is None else upstream, normaliser)


def reduced(total, normaliser, result_dtype):
    """``total / normaliser`` as a NumPy scalar of the result dtype (NaN for a mean over nothing)."""
    return result_dtype.type(_divide(total, normaliser))
