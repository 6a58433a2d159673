"""The "mean"/"sum" reduction shared by every loss: the kernels return float64 sums."""
import numpy as np


def gradient_scale(upstream, normaliser):
    """Every position's gradient scale, ``grad_output / normaliser`` (inf for a zero normaliser,
    which the kernels only apply to positions that have a weight, as torch does)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(1.0 if upstream is None else upstream) / normaliser)


def reduced(total, normaliser, result_dtype):
    """``total / normaliser`` as a NumPy scalar of the result dtype (NaN for a mean over nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return result_dtype.type(np.float64(total) / normaliser)
