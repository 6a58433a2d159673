"""fastloss: fused CPU kernels for classification losses, equal to PyTorch.

softmax / log_softmax and their backward passes, nll_loss, cross_entropy
(with label smoothing and z-loss), binary_cross_entropy and
binary_cross_entropy_with_logits, sigmoid_focal_loss, kl_div,
distillation_loss and dice_loss, for NumPy arrays of any layout, with the
loss and its gradient computed in one pass (two for Dice).  Two backends
(Numba and Cython/OpenMP) implement the same kernels.

Results of 32 MiB or more are placed in recycled memory: a dead result's
buffer is reused for the next result of its size instead of faulting in
fresh pages (``FASTLOSS_RECYCLE_MIB``, default 512, caps the idle memory;
0 turns it off).  See ``fastloss._buffers``.
"""
from ._backends import backend, get_backend, get_num_threads, set_backend, set_num_threads
from ._config import show_config
from . import _elementwise_losses
from ._elementwise_losses import *  # noqa: F401,F403 (every elementwise loss)
from ._class_losses import cross_entropy, nll_loss
from ._dice import dice_loss
from ._distillation import distillation_loss
from ._normalisers import log_softmax, log_softmax_backward, softmax, softmax_backward

__version__ = "0.1.0"

__all__ = [
    "softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
    "nll_loss", "cross_entropy", *_elementwise_losses.__all__,
    "dice_loss",
    "distillation_loss",
    "get_backend", "set_backend", "backend", "get_num_threads", "set_num_threads", "show_config",
]
