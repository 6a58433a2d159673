"""Whole CPU training steps: torch's cross-entropy against ``fastloss.torch``'s.

forward, loss, backward and an SGD step of a linear classifier head and of a 1x1-convolution
segmentation head (`fastloss._bench_training.WORKLOADS`), the same model and data for every
implementation.  ``time_training_step`` times the whole step; ``track_loss_part`` the loss's
forward call and its share of the backward pass (median over ``LOSS_PART_STEPS`` steps, in
milliseconds; how it is measured: `fastloss._bench_training`).
"""
import statistics

import fastloss as fl
from fastloss._bench_training import IMPLEMENTATIONS, WORKLOADS, TrainingStep

from .common import THREADS, require_torch

LOSS_PART_STEPS = 10


class TrainingStepBenchmark:
    params = ([w[0] for w in WORKLOADS], list(IMPLEMENTATIONS))
    param_names = ["workload", "implementation"]
    timeout = 300

    def setup(self, workload, implementation):
        require_torch()
        fl.set_num_threads(THREADS)
        _, kind, shape, classes, _, _ = next(w for w in WORKLOADS if w[0] == workload)
        self.step = TrainingStep(kind, shape, classes, implementation)
        self.step.run()  # the first step compiles (Numba) and allocates the gradients

    def time_training_step(self, workload, implementation):
        self.step.run()

    def track_loss_part(self, workload, implementation):
        return statistics.median(self.step.run()[0] for _ in range(LOSS_PART_STEPS)) * 1e3

    track_loss_part.unit = "ms"

