"""fastloss.jax beside optax: ``jax.jit(jax.value_and_grad(mean cross-entropy))`` on float32 arrays.

The jitted functions are `fastloss._bench_jax.loss_functions()`'s, the ones
``python -m fastloss.bench --jax`` times; optax's moves the class axis last inside its
jitted function, as a user would.  Skips (NotImplementedError in setup) without JAX or optax.
"""
import numpy as np

import fastloss as fl

from .common import FASTLOSS, THREADS, class_targets, fastloss_backend, logits, warm_up


class CrossEntropyValueAndGrad:
    params = ([(8192, 1000), (16, 21, 256, 256), (2048, 32000)], FASTLOSS + ["optax"])
    param_names = ["shape", "implementation"]
    timeout = 240

    def setup(self, shape, implementation):
        try:
            import jax

            from fastloss._bench_jax import loss_functions
            functions = loss_functions()
        except ImportError as error:
            raise NotImplementedError(f"JAX or optax is not installed: {error}") from None
        x = jax.numpy.asarray(logits(shape))
        target = jax.numpy.asarray(class_targets(shape).astype(np.int32))
        if implementation in FASTLOSS:
            fl.set_num_threads(THREADS)
            fl.set_backend(fastloss_backend(implementation))
            function = functions["fastloss"]
        else:
            function = functions["optax"]
        self.run = warm_up(lambda: jax.block_until_ready(function(x, target)))

    def time_value_and_grad(self, shape, implementation):
        self.run()

    def peakmem_value_and_grad(self, shape, implementation):
        self.run()
