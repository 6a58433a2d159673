"""``python -m fastloss.bench``: fastloss beside torch on the workloads we promise speed for.

Prints one table of times and speed-ups over torch eager (forward + backward of the same loss
on the same float32 arrays, from one run), and beside them each fastloss time over the memory
limit of its workload (``limit``: one read of the inputs and one streamed write of a result of
the input's size, timed in the same run; a ``!`` marks a ratio above its target), and writes a
PNG bar chart of the speed-ups.
Needs the ``bench`` extras (torch, matplotlib).
"""
import argparse
import subprocess
import sys
import time

import numpy as np

import fastloss as fl

# (label, function, shape, required speed-up over torch eager, the most a fastloss time may be
# over the memory limit (None: no target), options: "in_place" and the loss's keywords)
WORKLOADS = [
    ("cross_entropy", "cross_entropy", (8192, 1000), 5, 1.3, {}),
    ("cross_entropy", "cross_entropy", (16, 21, 256, 256), 10, 2.5, {}),
    ("cross_entropy", "cross_entropy", (2048, 32000), 4, 1.8, {}),
    ("cross_entropy, grad in place", "cross_entropy", (2048, 32000), 8, 1.5, {"in_place": True}),
    ("cross_entropy + z_loss", "cross_entropy", (8192, 1000), 5, 1.3, {"z_loss": 1e-4}),
    ("cross_entropy + z_loss", "cross_entropy", (16, 21, 256, 256), 10, 2.5, {"z_loss": 1e-4}),
    ("log_softmax forward", "log_softmax", (8192, 1000), 2, None, {}),
    ("log_softmax forward", "log_softmax", (16, 21, 256, 256), 2, None, {}),
    ("log_softmax forward", "log_softmax", (2048, 32000), 2, None, {}),
    ("bce_with_logits", "binary_cross_entropy_with_logits", (16, 1, 512, 512), 3, 1.5, {}),
    ("bce_with_logits", "binary_cross_entropy_with_logits", (64, 80), 3, None, {}),
    ("sigmoid_focal_loss", "sigmoid_focal_loss", (16, 1, 512, 512), 4, None, {"reduction": "mean"}),
    ("kl_div", "kl_div", (2048, 32000), 1, None, {"reduction": "batchmean"}),
    ("distillation_loss, T = 2", "distillation_loss", (2048, 32000), 5, None, {"temperature": 2.0}),
    ("dice_loss", "dice_loss", (16, 21, 256, 256), 5, None, {}),
    ("cross_entropy, whole call", "cross_entropy", (32, 10), 1, None, {}),
]


def make_arrays(name, shape, rng):
    """The workload's input and target (None for log_softmax), float32."""
    x = rng.standard_normal(shape, dtype=np.float32)
    if name in ("cross_entropy", "dice_loss"):
        target = rng.integers(0, shape[1], shape[:1] + shape[2:])
    elif name == "distillation_loss":  # the teacher's logits
        target = rng.standard_normal(shape, dtype=np.float32)
    elif name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        target = (rng.random(shape) < 0.5).astype(np.float32)
    elif name == "kl_div":  # log-probabilities against probabilities, along the last axis
        x -= np.log(np.exp(x).sum(axis=-1, keepdims=True))
        target = rng.random(shape, dtype=np.float32)
        target /= target.sum(axis=-1, keepdims=True)
    else:
        target = None
    return x, target


def fastloss_call(name, x, target, in_place=False, **keywords):
    if name == "log_softmax":
        axis = 1 if x.ndim > 2 else -1
        return lambda: fl.log_softmax(x, axis=axis)
    func = getattr(fl, name)
    if in_place:
        scratch = x.copy()

        def run():  # later runs read the previous gradient: the same work on finite values
            func(scratch, target, return_grad=True, gradient_out=scratch, **keywords)
        return run
    return lambda: func(x, target, return_grad=True, **keywords)


def torch_losses():
    """The torch reference of each loss: a function of (input, target, **keywords)."""
    import torch
    import torch.nn.functional as F

    def cross_entropy(x, t, z_loss=0.0):
        loss = F.cross_entropy(x, t)
        if z_loss:
            loss = loss + z_loss * (torch.logsumexp(x, 1) ** 2).mean()
        return loss

    def sigmoid_focal_loss(x, t, reduction="none"):  # torchvision.ops.sigmoid_focal_loss's lines
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = (0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2
        return loss.mean() if reduction == "mean" else loss

    def distillation_loss(student, teacher, temperature=1.0):
        return temperature ** 2 * F.kl_div(F.log_softmax(student / temperature, 1),
                                           F.log_softmax(teacher / temperature, 1),
                                           reduction="batchmean", log_target=True)

    def dice_loss(x, t, smooth=1e-5):  # MONAI's DiceLoss(softmax=True, to_onehot_y=True)
        p = torch.softmax(x, 1)
        onehot = torch.movedim(F.one_hot(t, x.shape[1]), -1, 1).to(p.dtype)
        spatial = tuple(range(2, x.dim()))
        intersection = (onehot * p).sum(spatial)
        denominator = onehot.sum(spatial) + p.sum(spatial)
        return (1 - (2 * intersection + smooth) / (denominator + smooth)).mean()

    return {"cross_entropy": cross_entropy, "sigmoid_focal_loss": sigmoid_focal_loss,
            "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits, "kl_div": F.kl_div,
            "distillation_loss": distillation_loss, "dice_loss": dice_loss}


def torch_call(name, x, target, compiled=False, **keywords):
    import torch

    xt = torch.from_numpy(x).requires_grad_(name != "log_softmax")
    if name == "log_softmax":
        dim = 1 if x.ndim > 2 else -1
        return lambda: torch.log_softmax(xt, dim)
    tt = torch.from_numpy(target)
    loss = torch_losses()[name]
    if compiled:
        loss = torch.compile(loss)

    def run():
        xt.grad = None
        loss(xt, tt, **keywords).backward()
    return run


def limit_call(x, target, in_place=False):
    """The memory limit of a workload: one read of its inputs and one streamed write of a
    result of the input's size, on the same threads (``fastloss._cython.bandwidth``)."""
    from fastloss._cython.bandwidth import limit_pass

    a = x.reshape(-1)
    out = a if in_place else np.empty_like(a)
    none = np.empty(0, np.float32)
    if target is None:
        b, extra = none, np.empty(0, np.int8)
    elif target.dtype == np.float32:
        b, extra = target.reshape(-1), np.empty(0, np.int8)
    else:  # class targets: not of the result's size, read as bytes
        b, extra = none, target.reshape(-1).view(np.int8)
    return lambda: limit_pass(a, b, out, extra)


def use_fastloss_threads():
    """Give the limit pass (an OpenMP loop of the calling thread) fastloss's thread count."""
    from fastloss._cython.threads import set_num_threads

    set_num_threads(fl.get_num_threads())


def best_times(calls, repeat):
    """Best time of each call, the calls taking turns so that drift in machine load hits all alike.

    ``calls`` maps a name to ``(prepare, call)``; only ``call`` is timed (``prepare``
    picks the fastloss backend, as a user does once, not per call).  Each timed call
    follows an untimed call of itself, as in a training loop: it finds its own
    threads and caches as its last call left them, not another library's OpenMP
    threads still spinning (which slowed whichever call came next by 10-20 %; with
    plain turns the penalty fell unevenly).  The turn order also rotates every round.
    """
    for prepare, call in calls.values():
        prepare()
        call()  # warm-up: compilation, caches, first-touch of buffers
    best = dict.fromkeys(calls, float("inf"))
    names = list(calls)
    for round_ in range(repeat):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            prepare, call = calls[name]
            prepare()
            call()
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _nothing():
    pass


def _use_backend(backend_name):
    return lambda: fl.set_backend(backend_name)


def measure(repeat, compiled):
    import torch

    torch.set_num_threads(fl.get_num_threads())
    chosen = fl.get_backend()
    try:
        return [_measure_workload(repeat, compiled, *workload) for workload in WORKLOADS]
    finally:
        fl.set_backend(chosen)


def _measure_workload(repeat, compiled, label, name, shape, required, limit_ratio, options):
    x, target = make_arrays(name, shape, np.random.default_rng(0))
    keywords = {key: value for key, value in options.items() if key != "in_place"}
    in_place = options.get("in_place", False)
    calls = {"torch": (_nothing, torch_call(name, x, target, **keywords))}
    for backend_name in ("numba", "cython"):
        calls[backend_name] = (_use_backend(backend_name), fastloss_call(name, x, target, **options))
    if limit_ratio is not None or x.size >= 100_000:
        calls["limit"] = (use_fastloss_threads, limit_call(x.copy(), target, in_place))
    rounds = repeat * 20 if x.size < 100_000 else repeat
    row = {"label": label, "shape": shape, "required": required, "limit_ratio": limit_ratio,
           **best_times(calls, rounds)}
    if compiled and name == "cross_entropy" and not options:
        # Timed on its own: inductor's OpenMP threads keep spinning after a call and
        # would slow whichever call follows them.
        row.update(best_times({"torch.compile": (_nothing, torch_call(name, x, target, compiled=True))},
                              rounds))
    print_row(row)
    return row


def print_header():
    print(f"{'workload':<30} {'shape':<20} {'torch':>9} {'compile':>9} {'numba':>9} {'cython':>9} "
          f"{'numba x':>8} {'cython x':>8} {'needed':>7} {'limit':>9} {'numba/l':>8} {'cython/l':>8} "
          f"{'at most':>7}")


def _duration(seconds):
    """Nine characters: milliseconds, or microseconds below one millisecond."""
    return f"{seconds * 1e3:7.2f}ms" if seconds >= 1e-3 else f"{seconds * 1e6:7.1f}us"


def print_row(row):
    compiled = _duration(row["torch.compile"]) if "torch.compile" in row else f"{'-':>9}"
    speedups = [row["torch"] / row[b] for b in ("numba", "cython")]
    marks = ["" if s >= row["required"] else "!" for s in speedups]
    limit = ""
    if "limit" in row:
        over = [row[b] / row["limit"] for b in ("numba", "cython")]
        most = row["limit_ratio"]
        over_marks = ["!" if most is not None and o > most else "" for o in over]
        limit = (f" {_duration(row['limit'])} {over[0]:7.2f}{over_marks[0]:1} {over[1]:7.2f}{over_marks[1]:1}"
                 f" {most if most is not None else '-':>6}{'x' if most is not None else ' '}")
    print(f"{row['label']:<30} {str(row['shape']):<20} {_duration(row['torch'])} {compiled} "
          f"{_duration(row['numba'])} {_duration(row['cython'])} "
          f"{speedups[0]:7.1f}{marks[0]:1} {speedups[1]:7.1f}{marks[1]:1} {row['required']:6}x{limit}")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['label']}\n{r['shape']}" for r in rows]
    positions = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for offset, backend_name in ((-0.2, "numba"), (0.2, "cython")):
        ax.bar(positions + offset, [r["torch"] / r[backend_name] for r in rows], 0.4, label=f"fastloss ({backend_name})")
    ax.scatter(positions, [r["required"] for r in rows], marker="_", s=900, color="black", zorder=3,
               label="required")
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("speed-up over torch eager (forward + backward)")
    ax.set_xticks(positions, labels, rotation=35, ha="right", fontsize=8)
    ax.set_title(f"fastloss vs torch eager, float32, {fl.get_num_threads()} threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


COLD_START = """
import time
start = time.perf_counter()
import numpy as np, fastloss as fl
imported = time.perf_counter()
fl.set_backend({backend!r})
fl.cross_entropy(np.zeros((64, 10), np.float32), np.zeros(64, np.int64), return_grad=True)
print(imported - start, time.perf_counter() - imported)
"""


def cold_start(runs=3):
    """Import time, and the first cross_entropy call's time, in fresh interpreters.

    The first run of each backend fills Numba's on-disk cache (cache=True) and is not
    counted: the figures are for a warm cache, as a user sees them from the second run on.
    """
    print(f"{'backend':<8} {'import fastloss':>16} {'first call':>12}   (fresh interpreter, best of {runs})")
    for backend_name in ("cython", "numba"):
        timings = []
        for _ in range(runs + 1):
            out = subprocess.run([sys.executable, "-c", COLD_START.format(backend=backend_name)],
                                 capture_output=True, text=True, check=True).stdout
            timings.append([float(v) for v in out.split()])
        imported, first_call = (min(column) for column in zip(*timings[1:]))
        print(f"{backend_name:<8} {imported * 1e3:14.0f}ms {first_call * 1e3:10.1f}ms")


SMALL_CALLS = ("torch F.cross_entropy", "fastloss numba", "fastloss cython", "fastloss.torch")


def small_call_times(repeat=15, calls=3000, shape=(32, 10)):
    """Seconds per call of the loss-only mean cross-entropy of a small float32 batch, side by side:
    torch's ``F.cross_entropy``, ``fastloss.cross_entropy`` on each backend, and
    ``fastloss.torch.cross_entropy``, each timed over ``calls`` calls, the best of ``repeat``
    rounds (`best_times`).  Needs torch.

    Examples
    --------
    >>> from fastloss.bench import SMALL_CALLS, small_call_times
    >>> times = small_call_times(repeat=1, calls=10)
    >>> list(times) == list(SMALL_CALLS) and all(t > 0 for t in times.values())
    True
    """
    import torch
    import torch.nn.functional as F

    import fastloss.torch as flt

    torch.set_num_threads(fl.get_num_threads())
    x, target = make_arrays("cross_entropy", shape, np.random.default_rng(0))
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)

    def repeated(call):
        def run():
            for _ in range(calls):
                call()
        return run

    numpy_call = repeated(lambda: fl.cross_entropy(x, target))
    timed = {"torch F.cross_entropy": (_nothing, repeated(lambda: F.cross_entropy(xt, tt))),
             "fastloss numba": (_use_backend("numba"), numpy_call),
             "fastloss cython": (_use_backend("cython"), numpy_call),
             "fastloss.torch": (_nothing, repeated(lambda: flt.cross_entropy(xt, tt)))}
    chosen = fl.get_backend()
    try:
        best = best_times(timed, repeat)
    finally:
        fl.set_backend(chosen)
    return {name: best[name] / calls for name in SMALL_CALLS}


def print_small_call(repeat):
    times = small_call_times(repeat)
    print(f"loss-only mean cross-entropy of a (32, 10) float32 batch, per call, best of {repeat} rounds")
    for name, seconds in times.items():
        print(f"{name:<24}{seconds * 1e6:8.2f}us {seconds / times['torch F.cross_entropy']:6.2f}x torch's time")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastloss.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    parser.add_argument("--png", default="speedups.png")
    parser.add_argument("--cold-start", action="store_true",
                        help="only measure import and first-call times in fresh interpreters")
    parser.add_argument("--training", action="store_true",
                        help="only whole torch training steps, torch's loss against fastloss.torch's")
    parser.add_argument("--jax", action="store_true",
                        help="only fastloss.jax against optax, both under jax.jit(jax.value_and_grad)")
    parser.add_argument("--dask", action="store_true",
                        help="only fastloss.dask on a local cluster against in-memory fastloss and dask.array")
    parser.add_argument("--small-call", action="store_true",
                        help="only the loss-only call on a (32, 10) batch: fastloss, fastloss.torch and torch")
    args = parser.parse_args(argv)
    if args.cold_start:
        cold_start()
        return
    if args.training:
        from ._bench_training import main as training_main
        return training_main([])
    if args.jax:
        from ._bench_jax import main as jax_main
        return jax_main(["--repeat", str(args.repeat)])
    if args.dask:
        from ._bench_dask import main as dask_main
        return dask_main([])
    if args.small_call:
        print_small_call(max(args.repeat, 15))
        return
    print_header()
    rows = measure(args.repeat, not args.no_compile)
    plot(rows, args.png)


if __name__ == "__main__":
    main()
