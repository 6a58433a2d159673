"""Workloads, implementations and baselines shared by the benchmark suites.

An implementation is a parameter: "fastloss-numba", "fastloss-cython", and the
baselines "torch" (eager), "torch.compile" and "numpy"; a baseline that is not
installed or does not apply skips by raising NotImplementedError in setup.
"memory-limit" is the floor a fused loss cannot beat: one read of the inputs and
one streamed write of a result of the input's size (``fastloss.bench.limit_call``).
"""
import numpy as np

try:
    import torch
    import torch.nn.functional as F  # noqa: F401 (the suites' torch baselines use it)
except ImportError:
    torch = None

FASTLOSS = ["fastloss-numba", "fastloss-cython"]
MEMORY_LIMIT = "memory-limit"
THREADS = 2


def fastloss_backend(implementation):
    return implementation.split("-", 1)[1]


def require_torch():
    if torch is None:
        raise NotImplementedError("torch is not installed")
    torch.set_num_threads(THREADS)


def logits(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def class_targets(shape, seed=1):
    return np.random.default_rng(seed).integers(0, shape[1], shape[:1] + shape[2:])


def binary_targets(shape, seed=1):
    return (np.random.default_rng(seed).random(shape) < 0.5).astype(np.float32)


def memory_limit(x, target):
    """The memory-limit pass of a loss on ``x`` and ``target`` (the Cython build's bandwidth kernel)."""
    from fastloss.bench import limit_call, use_fastloss_threads

    use_fastloss_threads()
    return limit_call(x.copy(), target)


def warm_up(func):
    """First calls compile (Numba) or load the compiled cache: keep them out of the timings."""
    func()
    return func
