"""Loss + gradient (fastloss ``return_grad=True``; torch forward + backward) on float32 arrays."""
import numpy as np

import fastloss as fl
from fastloss import _numpy_reference as numpy_reference
from fastloss.bench import torch_losses

from .common import (FASTLOSS, MEMORY_LIMIT, THREADS, F, binary_targets, class_targets,
                     fastloss_backend, logits, memory_limit, require_torch, torch, warm_up)


class _LossGradient:
    """Time and peak memory of one loss with its gradient; subclasses fill in the workload.

    The torch baseline is ``fastloss.bench.torch_losses()``'s reference of the loss
    where it has one (the composed losses: focal, distillation, Dice, the z-loss),
    else ``torch.nn.functional``'s function of the same name; ``keywords`` go to
    fastloss and torch alike.
    """

    function = None
    keywords = {}
    make_input = staticmethod(logits)
    make_target = staticmethod(class_targets)
    timeout = 240

    def setup(self, shape, implementation):
        self.x = self.make_input(shape)
        self.target = self.make_target(shape)
        if implementation in FASTLOSS:
            fl.set_num_threads(THREADS)
            fl.set_backend(fastloss_backend(implementation))  # once, as a user does
            kernel = getattr(fl, self.function)
            self.run = warm_up(lambda: kernel(self.x, self.target, return_grad=True, **self.keywords))
        elif implementation == "numpy":
            reference = getattr(numpy_reference, self.function)
            self.run = warm_up(lambda: reference(self.x, self.target))  # written for the keywords above
        elif implementation == MEMORY_LIMIT:
            fl.set_num_threads(THREADS)
            self.run = warm_up(memory_limit(self.x, self.target))
        else:
            require_torch()
            reference = torch_losses().get(self.function) or getattr(F, self.function)

            def loss(x, target):
                return reference(x, target, **self.keywords)
            if implementation == "torch.compile":
                loss = torch.compile(loss)
            xt = torch.from_numpy(self.x).requires_grad_(True)
            tt = torch.from_numpy(self.target)

            def run():
                xt.grad = None
                loss(xt, tt).backward()
            self.run = warm_up(run)

    def time_loss_and_gradient(self, shape, implementation):
        self.run()

    def peakmem_loss_and_gradient(self, shape, implementation):
        self.run()


class CrossEntropy(_LossGradient):
    function = "cross_entropy"
    params = ([(32, 10), (8192, 1000), (16, 21, 256, 256), (2048, 32000)],
              FASTLOSS + ["torch", "torch.compile", "numpy", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]


class CrossEntropyInPlace:
    """The gradient written over the logits: no buffer of the input's size is allocated."""

    params = ([(8192, 1000), (2048, 32000)], FASTLOSS)
    param_names = ["shape", "implementation"]

    def setup(self, shape, implementation):
        fl.set_num_threads(THREADS)
        fl.set_backend(fastloss_backend(implementation))
        self.x = logits(shape)
        self.target = class_targets(shape)
        fl.cross_entropy(self.x, self.target, return_grad=True, gradient_out=self.x)

    def time_loss_and_gradient_in_place(self, shape, implementation):
        fl.cross_entropy(self.x, self.target, return_grad=True, gradient_out=self.x)

    def peakmem_loss_and_gradient_in_place(self, shape, implementation):
        fl.cross_entropy(self.x, self.target, return_grad=True, gradient_out=self.x)


class NLLLoss(_LossGradient):
    function = "nll_loss"
    params = ([(8192, 1000), (16, 21, 256, 256)], FASTLOSS + ["torch", "numpy"])
    param_names = ["shape", "implementation"]


class BinaryCrossEntropyWithLogits(_LossGradient):
    function = "binary_cross_entropy_with_logits"
    params = ([(64, 80), (16, 1, 512, 512)], FASTLOSS + ["torch", "numpy", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]
    make_target = staticmethod(binary_targets)


class BinaryCrossEntropy(_LossGradient):
    function = "binary_cross_entropy"
    params = ([(64, 80), (16, 1, 512, 512)], FASTLOSS + ["torch", "numpy"])
    param_names = ["shape", "implementation"]
    make_target = staticmethod(binary_targets)

    @staticmethod
    def make_input(shape):
        return (1 / (1 + np.exp(-logits(shape)))).astype(np.float32)


class CrossEntropyZLoss(_LossGradient):
    """cross_entropy with ``z_loss``: within 10 % of `CrossEntropy`'s time is the target."""

    function = "cross_entropy"
    keywords = {"z_loss": 1e-4}
    params = ([(8192, 1000), (16, 21, 256, 256)], FASTLOSS + ["torch"])
    param_names = ["shape", "implementation"]


class SigmoidFocalLoss(_LossGradient):
    function = "sigmoid_focal_loss"
    keywords = {"reduction": "mean"}
    params = ([(64, 80), (16, 1, 512, 512)], FASTLOSS + ["torch", "numpy", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]
    make_target = staticmethod(binary_targets)


class KLDiv(_LossGradient):
    function = "kl_div"
    keywords = {"reduction": "batchmean"}
    params = ([(8192, 1000), (2048, 32000)], FASTLOSS + ["torch", "numpy", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]

    @staticmethod
    def make_input(shape):
        return numpy_reference.log_softmax(logits(shape))

    @staticmethod
    def make_target(shape):
        return numpy_reference.softmax(logits(shape, seed=1))


class DistillationLoss(_LossGradient):
    """The gradient with respect to the student; the teacher's logits are the target."""

    function = "distillation_loss"
    keywords = {"temperature": 2.0}
    params = ([(8192, 1000), (16, 21, 256, 256), (2048, 32000)],
              FASTLOSS + ["torch", "torch.compile", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]

    @staticmethod
    def make_target(shape):
        return logits(shape, seed=1)


class DiceLoss(_LossGradient):
    """Softmax and class-index targets; the torch baseline is MONAI's DiceLoss in torch ops."""

    function = "dice_loss"
    params = ([(8, 4, 64, 64), (16, 21, 256, 256), (2, 3, 64, 128, 128)],
              FASTLOSS + ["torch", "torch.compile", MEMORY_LIMIT])
    param_names = ["shape", "implementation"]


class DistillationLossInPlace:
    """The gradient written over the student's logits: no buffer of the input's size is allocated."""

    params = ([(2048, 32000)], FASTLOSS)
    param_names = ["shape", "implementation"]

    def setup(self, shape, implementation):
        fl.set_num_threads(THREADS)
        fl.set_backend(fastloss_backend(implementation))
        self.student = logits(shape)
        self.teacher = logits(shape, seed=1)
        self.time_loss_and_gradient_in_place(shape, implementation)

    def time_loss_and_gradient_in_place(self, shape, implementation):
        fl.distillation_loss(self.student, self.teacher, temperature=2.0, return_grad=True,
                             gradient_out=self.student)

    def peakmem_loss_and_gradient_in_place(self, shape, implementation):
        self.time_loss_and_gradient_in_place(shape, implementation)
