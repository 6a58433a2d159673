"""``python -m fastloss.bench --dask``: throughput of ``fastloss.dask.cross_entropy`` on a LocalCluster.

Three ways to score the same float32 segmentation logits (mean cross-entropy of uint8 class targets):

* ``fastloss.dask`` on a ``dask.distributed.LocalCluster`` (one worker process with a thread
  per core by default), the inputs already in the workers' memory (persisted), so that only
  the loss is timed;
* the single in-memory ``fastloss.cross_entropy`` call on the same data, all cores;
* the same loss written with dask.array's NumPy-style operations (a stable log-softmax and a
  one-hot gather), as a dask user would write it, on the same cluster and persisted inputs.

Each time is the best of ``--repeat`` runs, the implementations taking turns
(``fastloss.bench.best_times``).  Needs the ``dask`` extra (dask, distributed).
"""
import argparse

import numpy as np

import fastloss as fl
from fastloss._backends import _available_cores
from fastloss.bench import best_times

IMPLEMENTATIONS = ("fastloss.dask", "fastloss in memory", "dask.array NumPy-style")


def dask_array_cross_entropy(logits, target):
    """Mean cross-entropy of class targets with dask.array's own operations (classes on axis 1)."""
    import dask.array as da

    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - da.log(da.exp(shifted).sum(axis=1, keepdims=True))
    classes = da.arange(logits.shape[1], chunks=-1).reshape((1, -1) + (1,) * (logits.ndim - 2))
    return -da.where(target[:, None] == classes, log_p, 0).sum(axis=1).mean()


def _nothing():
    pass


def start_cluster(workers=1):
    """A LocalCluster of ``workers`` processes sharing the cores' threads, and its client.

    One process by default: persisted chunks stay where the scheduler made them, often all on
    one of several workers, which then does all the work; one process of several threads
    avoids that, and its tasks share its threads (``fastloss.dask`` gives each running task
    ``threads // running`` kernel threads)."""
    from distributed import Client, LocalCluster

    threads = max(1, _available_cores() // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None)
    return cluster, Client(cluster)


def runs(client, shape=(256, 21, 256, 256), samples_per_chunk=16):
    """A function running each implementation on the same logits and targets (those of the dask
    ones persisted in the workers' memory, so that only the loss is timed)."""
    import dask
    import dask.array as da

    import fastloss.dask as fld

    chunks = (samples_per_chunk,) + tuple(shape[1:])
    logits = da.random.default_rng(0).standard_normal(shape, dtype=np.float32, chunks=chunks)
    target = da.random.default_rng(1).integers(0, shape[1], shape[:1] + shape[2:], dtype=np.uint8,
                                                chunks=chunks[:1] + chunks[2:])  # masks are stored as bytes
    logits, target = client.persist([logits, target])
    in_memory_logits, in_memory_target = dask.compute(logits, target)
    on_cluster = {"fastloss.dask": fld.cross_entropy(logits, target),
                  "dask.array NumPy-style": dask_array_cross_entropy(logits, target)}
    return {
        "fastloss.dask": lambda: float(on_cluster["fastloss.dask"].compute()),
        "fastloss in memory": lambda: float(fl.cross_entropy(in_memory_logits, in_memory_target)),
        "dask.array NumPy-style": lambda: float(on_cluster["dask.array NumPy-style"].compute()),
    }


def measure(shape=(256, 21, 256, 256), samples_per_chunk=16, repeat=10, workers=1):
    """Time the three implementations; return rows ``(implementation, seconds, logits per second,
    fastloss.dask's throughput over this one's)`` and the three loss values."""
    cluster, client = start_cluster(workers)
    with cluster, client:
        implementations = runs(client, shape, samples_per_chunk)
        values = {name: run() for name, run in implementations.items()}
        seconds = best_times({name: (_nothing, run) for name, run in implementations.items()}, repeat)
    count = float(np.prod(shape))
    rows = [(name, seconds[name], count / seconds[name], seconds[name] / seconds["fastloss.dask"])
            for name in IMPLEMENTATIONS]
    return rows, values


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastloss.bench --dask", description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[256, 21, 256, 256],
                        help="logits shape (N, C, H, W); float32")
    parser.add_argument("--samples-per-chunk", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the cores (default 1)")
    args = parser.parse_args(argv)
    rows, values = measure(tuple(args.shape), args.samples_per_chunk, args.repeat, args.workers)
    print(f"mean cross-entropy of float32 logits {tuple(args.shape)}, {args.samples_per_chunk} samples a chunk, "
          f"backend {fl.get_backend()}, best of {args.repeat}")
    print(f"{'implementation':<26}{'seconds':>10}{'logits/s':>12}{'fastloss.dask / it':>20}")
    for name, seconds, rate, relative in rows:
        print(f"{name:<26}{seconds:>10.4f}{rate:>12.3g}{relative:>19.2f}x")
    spread = max(values.values()) - min(values.values())
    print(f"loss values agree to {spread:.2g} ({', '.join(f'{v:.7g}' for v in values.values())})")
    return rows


if __name__ == "__main__":
    main()
