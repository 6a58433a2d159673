"""fastloss.dask.cross_entropy on a LocalCluster beside the in-memory call and dask.array's own
operations (``fastloss._bench_dask``): the mean cross-entropy of float32 segmentation logits."""
import numpy as np

SHAPE = (256, 21, 256, 256)
SAMPLES_PER_CHUNK = 16


class MeanCrossEntropy:
    """Time and throughput (logits per second) of each implementation; the dask ones read inputs
    persisted in the workers' memory.  Needs the ``dask`` extra."""

    params = ["fastloss.dask", "fastloss in memory", "dask.array NumPy-style"]
    param_names = ["implementation"]
    timeout = 300

    def setup(self, implementation):
        try:
            import distributed  # noqa: F401 (the dask extra)
        except ImportError:
            raise NotImplementedError("dask.distributed is not installed") from None
        from fastloss import _bench_dask

        self.cluster, self.client = _bench_dask.start_cluster()
        self.run = _bench_dask.runs(self.client, SHAPE, SAMPLES_PER_CHUNK)[implementation]
        self.run()  # workers import fastloss and load its kernels

    def teardown(self, implementation):
        self.client.close()
        self.cluster.close()

    def time_mean_cross_entropy(self, implementation):
        self.run()

    def track_logits_per_second(self, implementation):
        from fastloss.bench import best_times

        return float(np.prod(SHAPE)) / best_times({implementation: (lambda: None, self.run)}, 3)[implementation]

    track_logits_per_second.unit = "logits/s"
