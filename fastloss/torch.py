"""PyTorch drop-in: ``torch.nn.functional``'s losses on fastloss's fused CPU kernels.

Every function here takes ``torch.nn.functional``'s signature and defaults and
returns what torch returns, differentiable by autograd and traceable by
``torch.compile`` (``fullgraph=True`` included): each kernel call is a
``torch.library.custom_op`` of the ``fastloss`` namespace (``torch.ops.fastloss.*``)
with a fake (meta) implementation and an autograd formula.  The modules
(``CrossEntropyLoss`` ...) are torch.nn's, with ``forward`` calling these
functions.  fastloss's own losses come as well: ``sigmoid_focal_loss``
(torchvision's signature), ``distillation_loss``, ``dice_loss``, and the
``z_loss`` keyword of ``cross_entropy``.

How a call runs: a CPU float32/float64 tensor reaches the kernel as a NumPy
view of its memory (``tensor.detach().numpy()``, no copy for any strided
layout: transposed, sliced, channels-last), and the results come back with
``torch.from_numpy`` (no copy).  When the input requires grad, the forward
pass computes the gradient in the same fused pass and saves it; the backward
pass multiplies it by the incoming gradient (for ``reduction="none"``, by each
position's upstream value: a position's loss depends on its own row only), or,
for an upstream gradient of exactly 1 outside ``torch.compile`` (``loss.backward()``),
hands it on as it is.
``distillation_loss`` and ``dice_loss`` with ``reduction="none"`` are the
exception: an element's gradient mixes every upstream value of its row (of its
sample, for Dice), so their backward pass calls the kernel with ``grad_output``.

What falls back to torch's own function (same result as calling torch's; for
the fastloss-only losses, their formula written with torch ops):

- tensors not on the CPU (CUDA, MPS, ...) and dtypes other than float32 and
  float64 (bfloat16, float16: torch's own CPU kernels serve them);
- a target (or ``weight``, ``pos_weight``) that requires grad: torch
  differentiates with respect to it, the kernels only with respect to
  ``input`` (the probability targets of ``cross_entropy``, ``kl_div``'s target,
  ``distillation_loss``'s teacher);
- higher derivatives: a backward pass run with ``create_graph=True`` computes
  the gradient by differentiating torch's function, so double backward gives
  torch's answer;
- small inputs: an input of fewer elements than ``SMALL_INPUT[name]`` goes to
  torch's own function.  A custom op's call costs far more than torch's own
  loss on a small input (its autograd layer and dispatch run in Python), so
  below some size torch is the faster choice.  The values are the crossovers
  measured for forward and backward on ``(N, 100)`` float32 input, one thread
  (2**18 elements for ``cross_entropy``, 2**10 for ``sigmoid_focal_loss``);
  ``nll_loss``, slower than torch at every size measured (up to 6.5M
  elements), goes to torch below 2**23.  Set ``SMALL_INPUT[name] = 0`` to send
  every call of a function to the kernels.

Legacy arguments: ``size_average`` and ``reduce`` are accepted where torch
takes them and mapped to ``reduction`` as torch does (deprecated in torch).

Importing this module needs PyTorch (``pip install "fastloss[torch]"``);
``import fastloss`` never imports torch.
"""
try:
    import torch
except ImportError as error:
    raise ImportError('fastloss.torch needs PyTorch: pip install "fastloss[torch]"') from error

from typing import Optional

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torch.nn import _reduction
from torch.overrides import has_torch_function_variadic

import fastloss as fl

__all__ = [
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "softmax",
    "log_softmax", "kl_div", "sigmoid_focal_loss", "distillation_loss", "dice_loss",
    "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "SigmoidFocalLoss",
    "DistillationLoss", "DiceLoss", "SMALL_INPUT",
]

#: Per function, the number of input elements below which a call goes to torch's own function
#: (see the module docstring); set a value to 0 to send every call of that function to the kernels.
SMALL_INPUT = {
    "cross_entropy": 2 ** 18, "nll_loss": 2 ** 23, "binary_cross_entropy": 2 ** 14,
    "binary_cross_entropy_with_logits": 2 ** 17, "kl_div": 2 ** 15, "sigmoid_focal_loss": 2 ** 10,
    "distillation_loss": 2 ** 15, "dice_loss": 2 ** 22, "softmax": 2 ** 20, "log_softmax": 2 ** 20,
}

_KERNEL_DTYPES = (torch.float32, torch.float64)
# torch.nn._reduction.get_enum's codes of the reductions, for the ATen loss ops.
_ATEN_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _kernels_take(name, input, others):
    """Whether the fastloss kernels serve this call of ``name`` (else torch's function does)."""
    if input.numel() < SMALL_INPUT[name] or not input.is_cpu or input.dtype not in _KERNEL_DTYPES:
        return False
    for tensor in others:
        if tensor is not None and tensor.requires_grad:
            return False
    return True


def _array(tensor):
    """A NumPy view of a CPU tensor's memory (None stays None)."""
    return None if tensor is None else tensor.detach().numpy()


def _result(value):
    """A fastloss result as a tensor sharing its memory; "none" losses contiguous, as the fakes say."""
    return torch.from_numpy(np.asarray(value)).contiguous()


def _output_like(input):
    """Where the kernel writes a result of a non-contiguous input's shape (a gradient, a softmax):
    torch's ``empty_like``, whose strides the fakes promise.  None for a contiguous input, whose
    result fastloss makes in C order, as ``empty_like`` would."""
    return None if input.is_contiguous() else torch.empty_like(input)


def _run(loss_function, input, arrays, options, need_grad, grad_output=None):
    """Call the NumPy-level loss on tensors; ``(loss, gradient)``, the gradient empty unless
    ``need_grad``."""
    x = input.detach().numpy()
    if not need_grad:
        return _result(loss_function(x, *arrays, **options)), input.new_empty(0)
    buffer = _output_like(input)
    loss, grad = loss_function(x, *arrays, **options, return_grad=True,
                               grad_output=_array(grad_output),
                               gradient_out=None if buffer is None else buffer.numpy())
    return _result(loss), torch.from_numpy(grad) if buffer is None else buffer


def _position_shape(input, options):
    """The loss's shape of class-axis losses: for "none" (``options[0]``), the input's without dim 1."""
    if options[0] != "none":
        return ()
    return input.shape[:1] + input.shape[2:] if input.dim() > 1 else ()


def _element_shape(input, options):
    """The loss's shape of elementwise losses: for "none", the input's."""
    return input.shape if options[0] == "none" else ()


# ---------------------------------------------------------------------------------------------
# torch's functions (and the fastloss-only losses as torch ops), argument order of the ops.

def _torch_cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing, z_loss):
    if not z_loss:
        return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    losses = F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction="none",
                             label_smoothing=label_smoothing)
    lse = torch.logsumexp(input, dim=1 if input.dim() > 1 else 0)
    if target.is_floating_point():
        position_weight = torch.ones_like(lse)
        losses = losses + z_loss * lse ** 2
    else:
        kept = target != ignore_index
        position_weight = (kept.to(input.dtype) if weight is None
                           else torch.where(kept, weight[target.clamp(min=0)], 0))
        # An ignored position has no z-term, even where its log-sum-exp is not finite.
        losses = losses + torch.where(kept, z_loss * position_weight * lse ** 2, 0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (losses.numel() if target.is_floating_point() else position_weight.sum())


def _torch_nll_loss(input, target, weight, reduction, ignore_index):
    return F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction=reduction)


def _torch_binary_cross_entropy(input, target, weight, reduction):
    return F.binary_cross_entropy(input, target, weight, reduction=reduction)


def _torch_binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction):
    return F.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction, pos_weight=pos_weight)


def _torch_kl_div(input, target, reduction, log_target):
    return F.kl_div(input, target, reduction=reduction, log_target=log_target)


def _torch_sigmoid_focal_loss(input, target, reduction, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss's formula."""
    p = torch.sigmoid(input)
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()


def _torch_distillation_loss(student_logits, teacher_logits, reduction, temperature, dim):
    if student_logits.dim() == 1:
        dim = 0
    return temperature ** 2 * F.kl_div(F.log_softmax(student_logits / temperature, dim),
                                       F.log_softmax(teacher_logits / temperature, dim),
                                       reduction=reduction, log_target=True)


def _torch_dice_loss(input, target, weight, reduction, dim, activation, smooth):
    """MONAI's DiceLoss (see `dice_loss`) with torch ops: classes moved to dim 1, the
    batch first, and a spatial axis of size 1 for ``(N, C)`` input."""
    dim = dim % input.dim()
    p = torch.movedim(input, dim, 1)
    if activation == "softmax":
        p = torch.softmax(p, 1)
    elif activation == "sigmoid":
        p = torch.sigmoid(p)
    if target.shape == input.shape:
        t = torch.movedim(target, dim, 1).to(p.dtype)
    else:
        t = torch.movedim(F.one_hot(target.long(), p.shape[1]), -1, 1).to(p.dtype)
    if p.dim() == 2:
        p, t = p[..., None], t[..., None]
    spatial = list(range(2, p.dim()))
    intersection = (p * t).sum(spatial)
    loss = 1 - (2 * intersection + smooth) / (t.sum(spatial) + p.sum(spatial) + smooth)
    if weight is not None:
        loss = loss * weight
    return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()


# ---------------------------------------------------------------------------------------------
# The custom ops: tensors first, then the reduction and the other options, then need_grad.

@torch.library.custom_op("fastloss::cross_entropy", mutates_args=())
def _cross_entropy_op(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                      ignore_index: int, label_smoothing: float, z_loss: float,
                      need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.cross_entropy, input, (_array(target), _array(weight)),
                {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": label_smoothing,
                 "z_loss": z_loss}, need_grad)


@torch.library.custom_op("fastloss::nll_loss", mutates_args=())
def _nll_loss_op(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str, ignore_index: int,
                 need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.nll_loss, input, (_array(target), _array(weight)),
                {"ignore_index": ignore_index, "reduction": reduction}, need_grad)


@torch.library.custom_op("fastloss::binary_cross_entropy", mutates_args=())
def _binary_cross_entropy_op(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                             need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.binary_cross_entropy, input, (_array(target), _array(weight)), {"reduction": reduction},
                need_grad)


@torch.library.custom_op("fastloss::binary_cross_entropy_with_logits", mutates_args=())
def _binary_cross_entropy_with_logits_op(input: Tensor, target: Tensor, weight: Optional[Tensor],
                                         pos_weight: Optional[Tensor], reduction: str,
                                         need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.binary_cross_entropy_with_logits, input, (_array(target), _array(weight)),
                {"pos_weight": _array(pos_weight), "reduction": reduction}, need_grad)


@torch.library.custom_op("fastloss::kl_div", mutates_args=())
def _kl_div_op(input: Tensor, target: Tensor, reduction: str, log_target: bool,
               need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.kl_div, input, (_array(target),), {"reduction": reduction, "log_target": log_target},
                need_grad)


@torch.library.custom_op("fastloss::sigmoid_focal_loss", mutates_args=())
def _sigmoid_focal_loss_op(input: Tensor, target: Tensor, reduction: str, alpha: float, gamma: float,
                           need_grad: bool) -> tuple[Tensor, Tensor]:
    return _run(fl.sigmoid_focal_loss, input, (_array(target),),
                {"reduction": reduction, "alpha": alpha, "gamma": gamma}, need_grad)


@torch.library.custom_op("fastloss::distillation_loss", mutates_args=())
def _distillation_loss_op(student_logits: Tensor, teacher_logits: Tensor, reduction: str, temperature: float,
                          dim: int, need_grad: bool,
                          grad_output: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    return _run(fl.distillation_loss, student_logits, (_array(teacher_logits),),
                {"reduction": reduction, "temperature": temperature, "axis": dim}, need_grad, grad_output)


@torch.library.custom_op("fastloss::dice_loss", mutates_args=())
def _dice_loss_op(input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str, dim: int,
                  activation: Optional[str], smooth: float, need_grad: bool,
                  grad_output: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    return _run(fl.dice_loss, input, (_array(target),),
                {"weight": _array(weight), "reduction": reduction, "axis": dim, "activation": activation,
                 "smooth": smooth}, need_grad, grad_output)


def _dice_shape(input, options):
    """Dice's loss shape: (N, C) for "none", the batch being the first dim other than ``dim``."""
    reduction, dim = options[:2]
    if reduction != "none":
        return ()
    dim %= max(input.dim(), 1)
    return input.shape[1 if dim == 0 else 0], input.shape[dim]


def _differentiable_gradient(reference, input, arguments, grad_loss):
    """The gradient of ``reference(input, *arguments)`` by autograd through torch's function,
    itself differentiable (the backward pass of a ``create_graph=True`` call)."""
    with torch.enable_grad():
        value = reference(input, *arguments)
        return torch.autograd.grad(value, input, grad_loss, create_graph=True)[0]


def _is_one(grad_loss):
    """Whether a reduced loss's upstream gradient is a plain tensor holding exactly 1 (what
    ``loss.backward()`` passes): then the fused gradient is the answer as it is, and multiplying
    by 1 would only read and write it again.  A traced backward pass (``torch.compile``'s fake
    and functional tensors, torch.func's wrapped ones) has no value to look at: it multiplies."""
    return (type(grad_loss) is torch.Tensor and not torch._C._functorch.is_functorch_wrapped_tensor(grad_loss)
            and grad_loss.item() == 1)


def _register_loss(op, reference, tensors, options, loss_shape, rescaled_by_kernel=False):
    """The fake and the autograd formula of a loss op whose arguments are ``tensors`` tensors,
    then ``options`` others (the reduction first), then ``need_grad``.

    The fake returns a loss of ``loss_shape(input, options)`` and a gradient like the input
    (what ``_run`` returns).  The backward pass scales the forward pass's fused gradient
    (for upstream 1) by the incoming gradient: a scalar for the reductions; for "none",
    each position's value, broadcast over the class dimension of class-axis losses (whose
    loss has ``_position_shape``).  ``rescaled_by_kernel`` losses have no fused gradient for
    "none": their backward pass calls the kernel with ``grad_output``.
    """
    def fake(*inputs):
        input, need_grad = inputs[0], inputs[tensors + options]
        return (input.new_empty(loss_shape(input, inputs[tensors:tensors + options])),
                torch.empty_like(input) if need_grad else input.new_empty(0))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:tensors], output[1])
        ctx.options = inputs[tensors:tensors + options]
        # The fused gradient is no function of the input autograd should follow; and without
        # this, autograd would build a zero upstream gradient of the input's size for it.
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_loss, _):
        input, *others, grad = ctx.saved_tensors
        no_grads = (None,) * (len(others) + options + 1 + rescaled_by_kernel)
        if grad_loss is None:  # the loss took no part in what is differentiated
            return (None, *no_grads)
        if torch.is_grad_enabled():
            return (_differentiable_gradient(reference, input, (*others, *ctx.options), grad_loss), *no_grads)
        if ctx.options[0] == "none":
            if rescaled_by_kernel:
                return (op(input, *others, *ctx.options, True, grad_loss)[1], *no_grads)
            if loss_shape is _position_shape and input.dim() > 1:
                grad_loss = grad_loss.unsqueeze(1)
        elif _is_one(grad_loss):
            return (grad, *no_grads)
        return (grad * grad_loss, *no_grads)

    op.register_fake(fake)
    op.register_autograd(backward, setup_context=setup_context)


_register_loss(_cross_entropy_op, _torch_cross_entropy, 3, 4, _position_shape)
_register_loss(_nll_loss_op, _torch_nll_loss, 3, 2, _position_shape)
_register_loss(_binary_cross_entropy_op, _torch_binary_cross_entropy, 3, 1, _element_shape)
_register_loss(_binary_cross_entropy_with_logits_op, _torch_binary_cross_entropy_with_logits, 4, 1, _element_shape)
_register_loss(_kl_div_op, _torch_kl_div, 2, 2, _element_shape)
_register_loss(_sigmoid_focal_loss_op, _torch_sigmoid_focal_loss, 2, 3, _element_shape)
_register_loss(_distillation_loss_op, _torch_distillation_loss, 2, 3, _element_shape, rescaled_by_kernel=True)
_register_loss(_dice_loss_op, _torch_dice_loss, 3, 4, _dice_shape, rescaled_by_kernel=True)


# softmax and log_softmax: the forward op, and a backward op from the saved output.

@torch.library.custom_op("fastloss::softmax", mutates_args=())
def _softmax_op(input: Tensor, dim: int) -> Tensor:
    return torch.from_numpy(fl.softmax(input.detach().numpy(), dim, out=_array(_output_like(input))))


@torch.library.custom_op("fastloss::log_softmax", mutates_args=())
def _log_softmax_op(input: Tensor, dim: int) -> Tensor:
    return torch.from_numpy(fl.log_softmax(input.detach().numpy(), dim, out=_array(_output_like(input))))


@torch.library.custom_op("fastloss::softmax_backward", mutates_args=())
def _softmax_backward_op(grad_output: Tensor, output: Tensor, dim: int) -> Tensor:
    return torch.from_numpy(fl.softmax_backward(grad_output.detach().numpy(), output.detach().numpy(), dim,
                                                out=_array(_output_like(output))))


@torch.library.custom_op("fastloss::log_softmax_backward", mutates_args=())
def _log_softmax_backward_op(grad_output: Tensor, output: Tensor, dim: int) -> Tensor:
    return torch.from_numpy(fl.log_softmax_backward(grad_output.detach().numpy(), output.detach().numpy(), dim,
                                                    out=_array(_output_like(output))))


for _op in (_softmax_op, _log_softmax_op):
    _op.register_fake(lambda input, dim: torch.empty_like(input))
for _op in (_softmax_backward_op, _log_softmax_backward_op):
    _op.register_fake(lambda grad_output, output, dim: torch.empty_like(output))


def _torch_softmax_backward(grad_output, output, dim):
    return output * (grad_output - (grad_output * output).sum(dim, keepdim=True))


def _torch_log_softmax_backward(grad_output, output, dim):
    return grad_output - output.exp() * grad_output.sum(dim, keepdim=True)


def _register_normaliser_autograd(op, backward_op, reference):
    """softmax/log_softmax: the backward op from the saved output; with ``create_graph``,
    autograd through torch's function of the saved input."""
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)
        ctx.dim = inputs[1]

    def backward(ctx, grad_output):
        input, output = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _differentiable_gradient(reference, input, (ctx.dim,), grad_output), None
        return backward_op(grad_output, output, ctx.dim), None

    op.register_autograd(backward, setup_context=setup_context)


def _register_normaliser_backward_autograd(op, reference):
    """The backward ops' own derivatives (with respect to both arguments), by autograd
    through their formula in torch ops."""
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.dim = inputs[2]

    def backward(ctx, grad):
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            leaves = [t if create_graph and t.requires_grad else t.detach().requires_grad_()
                      for t in ctx.saved_tensors]
            value = reference(*leaves, ctx.dim)
            grads = torch.autograd.grad(value, leaves, grad, create_graph=create_graph)
        return (*grads, None)

    op.register_autograd(backward, setup_context=setup_context)


_register_normaliser_autograd(_softmax_op, _softmax_backward_op, torch.softmax)
_register_normaliser_autograd(_log_softmax_op, _log_softmax_backward_op, torch.log_softmax)
_register_normaliser_backward_autograd(_softmax_backward_op, _torch_softmax_backward)
_register_normaliser_backward_autograd(_log_softmax_backward_op, _torch_log_softmax_backward)


# ---------------------------------------------------------------------------------------------
# The functions.

def _loss(name, reference, input, others, options, rescaled_by_kernel=False):
    """The loss of the op ``fastloss::<name>`` (or ``reference``'s, torch's, where the kernels
    do not serve the call).  The op's overload is called directly: a CustomOpDef's call is one
    Python frame more."""
    if not _kernels_take(name, input, others):
        return reference(input, *others, *options)
    need_grad = (input.requires_grad and torch.is_grad_enabled()
                 and not (rescaled_by_kernel and options[0] == "none"))
    return getattr(torch.ops.fastloss, name).default(input, *others, *options, need_grad)[0]


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0, *, z_loss=0.0):
    """Cross-entropy of logits, as ``torch.nn.functional.cross_entropy``, plus fastloss's z-loss.

    Parameters
    ----------
    input : Tensor
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``, any strides.
    target : Tensor
        Class indices (integers, the input's shape without dim 1) or class
        probabilities (floating, the input's shape), as in torch.
    weight : Tensor, optional
        A rescaling weight per class, ``(C,)``.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to ``reduction`` as torch does.
    ignore_index : int, optional
        A class target that contributes neither loss nor gradient.
    reduction : {"mean", "sum", "none"}, optional
        torch's, including its weighted mean.
    label_smoothing : float, optional
        In [0, 1], as torch's.
    z_loss : float, optional
        fastloss only (default 0): adds ``z_loss * logsumexp(input)**2`` to each
        position's loss, weighted and reduced as its cross-entropy (see
        ``fastloss.cross_entropy``).

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the target's shape.

    Raises
    ------
    ValueError, IndexError, TypeError
        As ``fastloss.cross_entropy`` for bad arguments on the kernels' path;
        torch's errors where torch's function serves the call.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logits = torch.tensor([[-1.0, -3.0, 4.0], [-3.0, 3.0, -1.0]], dtype=torch.float64, requires_grad=True)
    >>> loss = flt.cross_entropy(logits, torch.tensor([0, 1]))
    >>> round(loss.item(), 4)
    2.5141
    >>> loss.backward()
    >>> logits.grad.round(decimals=3).tolist()
    [[-0.497, 0.0, 0.496], [0.001, -0.01, 0.009]]
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if (not z_loss and input.numel() < SMALL_INPUT["cross_entropy"] and reduction in _ATEN_REDUCTIONS
            and not has_torch_function_variadic(input, target, weight)):
        # A small batch goes to torch: straight to the ATen op F.cross_entropy calls, as its
        # Python layer would be a sizeable part of the call.
        return torch._C._nn.cross_entropy_loss(input, target, weight, _ATEN_REDUCTIONS[reduction], ignore_index,
                                               label_smoothing)
    return _loss("cross_entropy", _torch_cross_entropy, input, (target, weight),
                 (reduction, int(ignore_index), float(label_smoothing), float(z_loss)))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of class targets, as ``torch.nn.functional.nll_loss``.

    Parameters
    ----------
    input : Tensor
        Log-probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : Tensor
        Class indices of the input's shape without dim 1.
    weight : Tensor, optional
        A rescaling weight per class, ``(C,)``.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to ``reduction`` as torch does.
    ignore_index : int, optional
        A class target that contributes neither loss nor gradient.
    reduction : {"mean", "sum", "none"}, optional
        torch's, including its weighted mean.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the target's shape.

    Raises
    ------
    ValueError, IndexError, TypeError
        As ``fastloss.nll_loss`` on the kernels' path; torch's otherwise.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logp = torch.log_softmax(torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), dim=1)
    >>> round(flt.nll_loss(logp, torch.tensor([0, 2])).item(), 4)
    0.1755
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    return _loss("nll_loss", _torch_nll_loss, input, (target, weight), (reduction, int(ignore_index)))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    Parameters
    ----------
    input : Tensor
        Probabilities in [0, 1], any shape.
    target : Tensor
        Targets of the input's shape.
    weight : Tensor, optional
        A rescaling weight that broadcasts against the input.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to ``reduction`` as torch does.
    reduction : {"mean", "sum", "none"}, optional
        torch's.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the input's shape.

    Raises
    ------
    ValueError, TypeError
        As ``fastloss.binary_cross_entropy`` on the kernels' path (an input
        outside [0, 1] included); torch's otherwise.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> p = torch.sigmoid(torch.tensor([[0.2], [-1.0], [2.0]]))
    >>> round(flt.binary_cross_entropy(p, torch.tensor([[1.0], [0.0], [1.0]])).item(), 5)
    0.34611
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    return _loss("binary_cross_entropy", _torch_binary_cross_entropy, input, (target, weight), (reduction,))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    input : Tensor
        Logits, any shape.
    target : Tensor
        Targets of the input's shape.
    weight : Tensor, optional
        A rescaling weight that broadcasts against the input.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to ``reduction`` as torch does.
    reduction : {"mean", "sum", "none"}, optional
        torch's.
    pos_weight : Tensor, optional
        The positive term's weight, broadcasting against the input.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the input's shape.

    Raises
    ------
    ValueError, TypeError
        As ``fastloss.binary_cross_entropy_with_logits`` on the kernels' path;
        torch's otherwise.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logits = torch.tensor([[0.2], [-1.0], [2.0]])
    >>> round(flt.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0], [0.0], [1.0]])).item(), 5)
    0.34611
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    return _loss("binary_cross_entropy_with_logits", _torch_binary_cross_entropy_with_logits, input,
                 (target, weight, pos_weight), (reduction,))


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise KL divergence, as ``torch.nn.functional.kl_div``.

    Parameters
    ----------
    input : Tensor
        Log-probabilities ``log q``, any shape.
    target : Tensor
        Probabilities (log-probabilities with ``log_target=True``) of the
        input's shape.  One that requires grad goes to torch's function, which
        differentiates with respect to it.
    size_average, reduce : bool, optional
        torch's deprecated arguments, mapped to ``reduction`` as torch does.
    reduction : {"mean", "batchmean", "sum", "none"}, optional
        torch's ("batchmean" divides by ``input.size(0)``).
    log_target : bool, optional
        Whether ``target`` holds log-probabilities.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the input's shape.

    Raises
    ------
    ValueError, TypeError
        As ``fastloss.kl_div`` on the kernels' path; torch's otherwise.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> log_q = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    >>> p = torch.tensor([[0.25, 0.25, 0.5], [0.0, 0.2, 0.8]])
    >>> round(flt.kl_div(log_q, p, reduction="batchmean").item(), 6)
    0.155958
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    return _loss("kl_div", _torch_kl_div, input, (target,), (reduction, bool(log_target)))


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """Sigmoid focal loss of logits, as ``torchvision.ops.sigmoid_focal_loss``.

    Parameters
    ----------
    inputs : Tensor
        Logits, any shape.
    targets : Tensor
        Targets of the inputs' shape (usually 0 or 1).
    alpha : float, optional
        The positive term's weight; negative turns the alpha factor off.
    gamma : float, optional
        The focusing exponent, at least 0.
    reduction : {"none", "mean", "sum"}, optional
        torchvision's ("none" by default).

    Returns
    -------
    Tensor
        The loss: of the inputs' shape for "none", else a 0-d tensor.

    Raises
    ------
    ValueError, TypeError
        As ``fastloss.sigmoid_focal_loss`` on the kernels' path (a negative
        ``gamma`` included).

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logits = torch.tensor([[2.0, -1.0], [-3.0, 0.5]], dtype=torch.float64)
    >>> flt.sigmoid_focal_loss(logits, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)).round(decimals=4).tolist()
    [[0.0005, 0.017], [0.6916, 0.2831]]
    """
    return _loss("sigmoid_focal_loss", _torch_sigmoid_focal_loss, inputs, (targets,),
                 (reduction, float(alpha), float(gamma)))


def distillation_loss(student_logits, teacher_logits, temperature=1.0, dim=1, reduction="batchmean"):
    """Knowledge-distillation loss, ``T**2 * KL(softmax(teacher / T) || softmax(student / T))``.

    Equal to ``T**2 * F.kl_div(F.log_softmax(student / T, dim), F.log_softmax(teacher / T, dim),
    reduction=reduction, log_target=True)``, in one pass over both tensors.  The
    teacher is not differentiated: a teacher that requires grad goes to that
    torch expression instead.

    Parameters
    ----------
    student_logits : Tensor
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    teacher_logits : Tensor
        Logits of the student's shape.
    temperature : float, optional
        ``T``, finite and above 0.
    dim : int, optional
        The class dimension.
    reduction : {"batchmean", "sum", "mean", "none"}, optional
        As ``kl_div``'s.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" one of the input's shape.

    Raises
    ------
    ValueError, TypeError
        As ``fastloss.distillation_loss`` on the kernels' path.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> student = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> teacher = torch.tensor([[3.0, 0.5, 0.2], [0.1, 3.0, 1.0]])
    >>> round(flt.distillation_loss(student, teacher, temperature=2.0).item(), 6)
    0.133129
    """
    return _loss("distillation_loss", _torch_distillation_loss, student_logits, (teacher_logits,),
                 (reduction, float(temperature), int(dim)), rescaled_by_kernel=True)


def dice_loss(input, target, dim=1, activation="softmax", smooth=1e-5, weight=None, reduction="mean"):
    """Soft Dice loss of segmentation, as MONAI's ``DiceLoss`` in its common setting.

    See ``fastloss.dice_loss`` for the formula and where it differs from MONAI.

    Parameters
    ----------
    input : Tensor
        Logits (probabilities with ``activation=None``), ``(N, C, d1, ..., dK)``
        or ``(N, C)``.
    target : Tensor
        Class indices (integers, the input's shape without ``dim``) or per-class
        targets (floating, the input's shape).
    dim : int, optional
        The class dimension; the batch is the first of the others.
    activation : {"softmax", "sigmoid", None}, optional
        Applied to ``input`` first.
    smooth : float, optional
        Added to numerator and denominator, at least 0.
    weight : Tensor, optional
        A non-negative weight per class, ``(C,)``.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C losses; "none" returns them, ``(N, C)``.

    Returns
    -------
    Tensor
        The loss: a 0-d tensor, or for "none" an ``(N, C)`` one.

    Raises
    ------
    ValueError, IndexError, TypeError
        As ``fastloss.dice_loss`` on the kernels' path.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logits = torch.tensor([[[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]]])
    >>> round(flt.dice_loss(logits, torch.tensor([[0, 1, 1]])).item(), 4)
    0.2336
    """
    return _loss("dice_loss", _torch_dice_loss, input, (target, weight),
                 (reduction, int(dim), activation, float(smooth)), rescaled_by_kernel=True)


def _normalise(name, reference, input, dim, dtype):
    if dim is None:
        dim = F._get_softmax_dim(name, input.dim(), 4)
    if dtype is not None:
        input = input.to(dtype)
    if not _kernels_take(name, input, ()):
        return reference(input, dim)
    return getattr(torch.ops.fastloss, name).default(input, int(dim))


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Softmax over ``dim``, as ``torch.nn.functional.softmax``.

    Parameters
    ----------
    input : Tensor
        Any shape, any strides.
    dim : int
        The dimension to normalise over.  None picks torch's deprecated
        implicit choice (dim 0 for 0-, 1- and 3-d input, else 1) with torch's warning.
    _stacklevel : int, optional
        Unused; in torch's signature.
    dtype : torch.dtype, optional
        Cast the input to it first, as torch does.

    Returns
    -------
    Tensor
        Probabilities of the input's shape.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> flt.softmax(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), dim=0).round(decimals=4).tolist()
    [0.09, 0.2447, 0.6652]
    """
    return _normalise("softmax", torch.softmax, input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Logarithm of the softmax over ``dim``, as ``torch.nn.functional.log_softmax``.

    Parameters, returns and ``dim=None`` as :func:`softmax`.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> flt.log_softmax(torch.tensor([[-1.0, -3.0, 4.0]], dtype=torch.float64), dim=1).round(decimals=4).tolist()
    [[-5.0076, -7.0076, -0.0076]]
    """
    return _normalise("log_softmax", torch.log_softmax, input, dim, dtype)


# ---------------------------------------------------------------------------------------------
# The modules: torch.nn's, with forward on the functions above.

class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` on :func:`cross_entropy`, with fastloss's ``z_loss``.

    Parameters
    ----------
    weight, size_average, ignore_index, reduce, reduction, label_smoothing
        torch.nn.CrossEntropyLoss's (``weight`` is a buffer, as in torch).
    z_loss : float, optional
        See :func:`cross_entropy`.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> criterion = flt.CrossEntropyLoss(label_smoothing=0.1)
    >>> logits, target = torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([0])
    >>> bool(torch.allclose(criterion(logits, target), torch.nn.CrossEntropyLoss(label_smoothing=0.1)(logits, target)))
    True
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0, *, z_loss=0.0):
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        self.z_loss = z_loss

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing, z_loss=self.z_loss)


class NLLLoss(torch.nn.NLLLoss):
    """``torch.nn.NLLLoss`` on :func:`nll_loss` (constructor arguments as torch's).

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> logp = torch.log_softmax(torch.tensor([[2.0, 0.5, -1.0]]), dim=1)
    >>> round(flt.NLLLoss()(logp, torch.tensor([0])).item(), 4)
    0.2413
    """

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(torch.nn.BCELoss):
    """``torch.nn.BCELoss`` on :func:`binary_cross_entropy` (constructor arguments as torch's).

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> round(flt.BCELoss()(torch.tensor([0.9, 0.2]), torch.tensor([1.0, 0.0])).item(), 4)
    0.1643
    """

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """``torch.nn.BCEWithLogitsLoss`` on :func:`binary_cross_entropy_with_logits` (constructor
    arguments as torch's; ``weight`` and ``pos_weight`` are buffers).

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> criterion = flt.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    >>> round(criterion(torch.tensor([[0.5], [-1.0]]), torch.tensor([[1.0], [0.0]])).item(), 4)
    0.6307
    """

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class KLDivLoss(torch.nn.KLDivLoss):
    """``torch.nn.KLDivLoss`` on :func:`kl_div` (constructor arguments as torch's).

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> log_q = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> round(flt.KLDivLoss(reduction="batchmean")(log_q, torch.tensor([[0.25, 0.75]])).item(), 4)
    0.1308
    """

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _OptionsLoss(torch.nn.Module):
    """A module whose forward is ``function(input, target, *options)``, the options being its
    attributes named in ``option_names``."""

    option_names = ()

    def forward(self, input, target):
        return self.function(input, target, *(getattr(self, name) for name in self.option_names))

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.option_names if name != "weight")


class SigmoidFocalLoss(_OptionsLoss):
    """:func:`sigmoid_focal_loss` as a module.

    Parameters
    ----------
    alpha, gamma, reduction
        As :func:`sigmoid_focal_loss`.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> criterion = flt.SigmoidFocalLoss(reduction="sum")
    >>> round(criterion(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])).item(), 4)
    0.0174
    """

    function = staticmethod(sigmoid_focal_loss)
    option_names = ("alpha", "gamma", "reduction")

    def __init__(self, alpha=0.25, gamma=2.0, reduction="none"):
        super().__init__()
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction


class DistillationLoss(_OptionsLoss):
    """:func:`distillation_loss` as a module; ``forward(student_logits, teacher_logits)``.

    Parameters
    ----------
    temperature, dim, reduction
        As :func:`distillation_loss`.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> criterion = flt.DistillationLoss(temperature=2.0)
    >>> round(criterion(torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([[3.0, 0.5, 0.2]])).item(), 4)
    0.1998
    """

    function = staticmethod(distillation_loss)
    option_names = ("temperature", "dim", "reduction")

    def __init__(self, temperature=1.0, dim=1, reduction="batchmean"):
        super().__init__()
        self.temperature, self.dim, self.reduction = temperature, dim, reduction


class DiceLoss(_OptionsLoss):
    """:func:`dice_loss` as a module; ``weight`` is a buffer.

    Parameters
    ----------
    dim, activation, smooth, weight, reduction
        As :func:`dice_loss`.

    Examples
    --------
    >>> import torch, fastloss.torch as flt
    >>> criterion = flt.DiceLoss()
    >>> round(criterion(torch.tensor([[[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]]]), torch.tensor([[0, 1, 1]])).item(), 4)
    0.2336
    """

    function = staticmethod(dice_loss)
    option_names = ("dim", "activation", "smooth", "weight", "reduction")

    def __init__(self, dim=1, activation="softmax", smooth=1e-5, weight=None, reduction="mean"):
        super().__init__()
        self.dim, self.activation, self.smooth, self.reduction = dim, activation, smooth, reduction
        self.register_buffer("weight", weight)
