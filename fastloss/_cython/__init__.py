"""Cython backend: OpenMP kernels over the canonical views of ``fastloss._backends``.

Build in place with ``python setup.py build_ext --inplace``.
"""
from fastloss._cython.binary import binary_cross_entropy, binary_cross_entropy_with_logits
from fastloss._cython.cross_entropy import cross_entropy_class, cross_entropy_prob
from fastloss._cython.nll import nll_loss
from fastloss._cython.normalisers import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
)
from fastloss._cython.threads import get_num_threads, set_num_threads

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy_class",
    "cross_entropy_prob",
    "get_num_threads",
    "log_softmax",
    "log_softmax_backward",
    "nll_loss",
    "set_num_threads",
    "softmax",
    "softmax_backward",
]
