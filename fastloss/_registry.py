"""The registry of losses: what the front layer needs to know about each, by name.

A loss is one of four kinds, each served by one driver in both backends:

``elementwise``
    every element of the input is a position with its own loss (the binary
    cross-entropies, sigmoid focal loss, the pointwise KL divergence).  The driver is
    ``fastloss/_numba/elementwise.py`` / ``fastloss/_cython/elementwise.pyx``.
``class_axis``
    a position's loss depends on its whole row of C classes (cross-entropy,
    nll): rows when ``inner == 1``, tiles when ``inner > 1``.
``class_sums``
    the loss of each (sample, class) is a function of sums over the sample's
    positions (the Dice loss): a pass for the sums, then one for the gradient,
    in ``fastloss/_numba/dice.py`` / ``fastloss/_cython/dice.pyx``.
``class_pair``
    the loss of each element depends on two rows of C logits at its position,
    the input's and the target's (the distillation loss, whose target is the
    teacher's ``"logits"``), in ``fastloss/_numba/distillation.py`` /
    ``fastloss/_cython/distillation.pyx``.  Its kernel takes no ``weight``:
    ``name(x, target, *arguments, grad_scale, grad_output, loss_out, grad_out)``,
    called by its front layer (``fastloss/_distillation.py``).

The front layer reads a loss's spec here instead of passing booleans down:
which input it takes (``"probabilities"`` are checked to lie in [0, 1];
``"log_probabilities"`` are not checked), which backend kernel serves
each kind of target, and the arguments that kernel takes between ``weight``
and ``grad_scale``, by name, in order (the names of the front layer's
prepared values: per-element factors such as ``pos_weight``, scalar options
such as ``ignore_index``).  ``docs/architecture.md`` shows how a new loss joins.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LossSpec:
    """One loss: its name, its driver, its input and its backend kernels."""

    name: str
    kind: str                 # "elementwise", "class_axis", "class_sums" or "class_pair"
    input: str                # "logits", "probabilities" or "log_probabilities"
    # Backend kernel by target kind: "elements" (an elementwise loss's targets),
    # "classes" (class-index targets), "probabilities" (class-probability
    # targets; kl_div's plain targets) or "log_probabilities" (kl_div's with
    # log_target=True); "logits" (the distillation loss's teacher logits).
    kernels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class KernelCall:
    """A backend kernel's name, and the names of its arguments between ``weight`` and ``grad_scale``."""

    name: str
    arguments: tuple = ()


def run_kernel(backend, call, x, target, weight, values, grad_scale, grad_output, loss_out, grad_out):
    """``backend``'s kernel ``call`` on canonical views; ``values`` maps argument names to values."""
    arguments = [x, target, weight]
    for name in call.arguments:  # a plain loop: the call's fixed cost matters for small inputs
        arguments.append(values[name])
    arguments += (grad_scale, grad_output, loss_out, grad_out)
    return getattr(backend, call.name)(*arguments)


LOSSES = {
    spec.name: spec for spec in (
        LossSpec("binary_cross_entropy", "elementwise", "probabilities",
                 {"elements": KernelCall("binary_cross_entropy")}),
        LossSpec("binary_cross_entropy_with_logits", "elementwise", "logits",
                 {"elements": KernelCall("binary_cross_entropy_with_logits", ("pos_weight",))}),
        LossSpec("sigmoid_focal_loss", "elementwise", "logits",
                 {"elements": KernelCall("sigmoid_focal_loss", ("alpha", "gamma"))}),
        LossSpec("kl_div", "elementwise", "log_probabilities",
                 {"probabilities": KernelCall("kl_div"),
                  "log_probabilities": KernelCall("kl_div_log_target")}),
        LossSpec("nll_loss", "class_axis", "log_probabilities",
                 {"classes": KernelCall("nll_loss", ("ignore_index",))}),
        LossSpec("cross_entropy", "class_axis", "logits",
                 {"classes": KernelCall("cross_entropy_class", ("ignore_index", "label_smoothing", "z_loss")),
                  "probabilities": KernelCall("cross_entropy_prob", ("label_smoothing", "z_loss"))}),
        LossSpec("dice_loss", "class_sums", "logits",
                 {"classes": KernelCall("dice_class", ("activation", "smooth", "samples")),
                  "probabilities": KernelCall("dice_prob", ("activation", "smooth", "samples"))}),
        LossSpec("distillation_loss", "class_pair", "logits",
                 {"logits": KernelCall("distillation_loss", ("temperature",))}),
    )
}
