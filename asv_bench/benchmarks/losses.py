"""Loss + gradient (fastloss ``return_grad=True``; torch forward + backward) on float32 arrays."""
import numpy as np

import fastloss as fl
from fastloss import _numpy_reference as numpy_reference

from .common import (FASTLOSS, MEMORY_LIMIT, THREADS, F, binary_targets, class_targets,
                     fastloss_backend, logits, memory_limit, require_torch, torch, warm_up)


class _LossGradient:
    """Time and peak memory of one loss with its gradient; subclasses fill in the workload."""

    function = None
    shapes = []
    baselines = ["torch", "numpy"]
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
            self.run = warm_up(lambda: kernel(self.x, self.target, return_grad=True))
        elif implementation == "numpy":
            reference = getattr(numpy_reference, self.function)
            self.run = warm_up(lambda: reference(self.x, self.target))
        elif implementation == MEMORY_LIMIT:
            fl.set_num_threads(THREADS)
            self.run = warm_up(memory_limit(self.x, self.target))
        else:
            require_torch()
            loss = getattr(F, self.function)
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
