"""softmax / log_softmax forward and backward along the class axis, float32."""
import fastloss as fl
from fastloss import _numpy_reference as numpy_reference

from .common import FASTLOSS, THREADS, fastloss_backend, logits, require_torch, torch, warm_up

SHAPES = [(8192, 1000), (16, 21, 256, 256), (2048, 32000)]


def class_axis(shape):
    return 1 if len(shape) > 2 else -1


class Forward:
    params = (SHAPES, ["softmax", "log_softmax"], FASTLOSS + ["torch", "numpy"])
    param_names = ["shape", "function", "implementation"]
    timeout = 240

    def setup(self, shape, function, implementation):
        x = logits(shape)
        axis = class_axis(shape)
        if implementation in FASTLOSS:
            fl.set_num_threads(THREADS)
            fl.set_backend(fastloss_backend(implementation))  # once, as a user does
            kernel = getattr(fl, function)
            self.run = warm_up(lambda: kernel(x, axis=axis))
        elif implementation == "numpy":
            reference = getattr(numpy_reference, function)
            self.run = warm_up(lambda: reference(x, axis))
        else:
            require_torch()
            xt, kernel = torch.from_numpy(x), getattr(torch, function)
            self.run = warm_up(lambda: kernel(xt, axis))

    def time_forward(self, shape, function, implementation):
        self.run()

    def peakmem_forward(self, shape, function, implementation):
        self.run()


class Backward:
    params = (SHAPES[:2], ["softmax", "log_softmax"], FASTLOSS + ["torch"])
    param_names = ["shape", "function", "implementation"]
    timeout = 240

    def setup(self, shape, function, implementation):
        x, upstream = logits(shape), logits(shape, seed=1)
        axis = class_axis(shape) % len(shape)
        output = getattr(fl, function)(x, axis=axis)
        if implementation in FASTLOSS:
            fl.set_num_threads(THREADS)
            fl.set_backend(fastloss_backend(implementation))
            kernel = getattr(fl, f"{function}_backward")
            self.run = warm_up(lambda: kernel(upstream, output, axis=axis))
        else:
            require_torch()
            aten = getattr(torch.ops.aten, f"_{function}_backward_data")
            upstream_t, output_t = torch.from_numpy(upstream), torch.from_numpy(output)
            self.run = warm_up(lambda: aten(upstream_t, output_t, axis, torch.float32))

    def time_backward(self, shape, function, implementation):
        self.run()

    def peakmem_backward(self, shape, function, implementation):
        self.run()
