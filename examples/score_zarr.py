"""Score segmentation logits that do not fit in a worker's memory: zarr + dask + fastloss.dask.

Writes a zarr store of float32 logits ``(N, C, H, W)`` and uint8 class targets ``(N, H, W)``
(255: void pixels, ignored) bigger than a worker's memory limit, then computes, on a
``dask.distributed.LocalCluster``, the mean cross-entropy and the mean loss of the pixels of
each class, with a progress bar; prints the time of each step and the peak memory of the
workers.  Each chunk of the store is read once: both results come from one ``compute``.

    python examples/score_zarr.py                       # 3 GB of logits, 2 workers of 1 GB
    python examples/score_zarr.py --gigabytes 0.2       # a quick run
"""
import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, progress, wait

import fastloss as fl
import fastloss.dask as fld

VOID = 255  # the target of pixels without a label (as in PASCAL VOC)


def write_store(path, samples, classes, height, width, samples_per_chunk):
    """Random logits and targets (1 % void) written chunk by chunk by the workers."""
    rng = da.random.default_rng(0)
    chunks = (samples_per_chunk, classes, height, width)
    logits = rng.standard_normal((samples, classes, height, width), dtype=np.float32, chunks=chunks)
    target = rng.integers(0, classes, (samples, height, width), dtype=np.uint8, chunks=chunks[:1] + chunks[2:])
    target = da.where(rng.random(target.shape, chunks=target.chunks) < 0.01, VOID, target).astype(np.uint8)
    writes = [da.to_zarr(array, str(path), component=name, compute=False, mode="a", compressors=None)
              for name, array in (("logits", logits), ("target", target))]
    futures = Client.current().compute(writes)
    progress(futures)
    wait(futures)


def score(path):
    """The mean cross-entropy and the per-class mean loss of the store at ``path``."""
    logits = da.from_zarr(str(path), component="logits")
    target = da.from_zarr(str(path), component="target")
    classes = logits.shape[1]
    mean = fld.cross_entropy(logits, target, ignore_index=VOID)
    per_pixel = fld.cross_entropy(logits, target, ignore_index=VOID, reduction="none")
    labels = target.ravel()  # chunked along N only: a free reshape
    loss_per_class = da.bincount(labels, weights=per_pixel.ravel(), minlength=VOID + 1)[:classes]
    pixels_per_class = da.bincount(labels, minlength=VOID + 1)[:classes]
    futures = Client.current().compute([mean, loss_per_class, pixels_per_class])
    progress(futures)
    return [future.result() for future in futures]


def peak_worker_memory(client):
    """Each worker process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", type=float, default=3.0, help="size of the logits (default 3)")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=256, help="height and width of each image")
    parser.add_argument("--samples-per-chunk", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GB", help="per worker (default 1GB)")
    parser.add_argument("--store", type=Path, default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args(argv)

    image_bytes = args.classes * args.size * args.size * 4
    samples = max(1, round(args.gigabytes * 1e9 / image_bytes))
    directory = None if args.store else tempfile.mkdtemp(prefix="fastloss-zarr-")
    path = args.store or Path(directory) / "scores.zarr"
    print(f"logits ({samples}, {args.classes}, {args.size}, {args.size}) float32: "
          f"{samples * image_bytes / 1e9:.2f} GB; {args.workers} workers of {args.memory_limit}, "
          f"fastloss backend {fl.get_backend()}")
    try:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=args.memory_limit, dashboard_address=None) as cluster, Client(cluster) as client:
            start = time.perf_counter()
            write_store(path, samples, args.classes, args.size, args.size, args.samples_per_chunk)
            written = time.perf_counter()
            print(f"\nwrote {path} in {written - start:.1f} s")
            mean, loss_per_class, pixels_per_class = score(path)
            scored = time.perf_counter()
            print(f"\nscored in {scored - written:.1f} s "
                  f"({samples * args.classes * args.size ** 2 / (scored - written) / 1e6:.0f} M logits/s)")
            print(f"mean cross-entropy {float(mean):.6f} "
                  f"(from the per-class sums: {loss_per_class.sum() / pixels_per_class.sum():.6f})")
            for label, (loss, pixels) in enumerate(zip(loss_per_class, pixels_per_class)):
                print(f"  class {label:2d}: mean loss {loss / pixels:.6f} over {pixels} pixels")
            peaks = peak_worker_memory(client)
            print("peak worker memory: " + ", ".join(f"{peak / 1e9:.2f} GB" for peak in peaks.values())
                  + f" (limit {args.memory_limit} each)")
    finally:
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
