"""Whole CPU training steps with torch's loss and with ``fastloss.torch``'s, side by side.

A step is ``zero_grad``, the model's forward, the loss, ``backward`` and an SGD step, on the
same model (the same initial weights for every implementation) and the same data.  The
implementations alternate step by step in one process, the order rotating every round, so each
sees the others' threads and memory as a training loop would.

The loss part of a step is the loss's forward call plus its share of the backward pass: a hook
on the logits fires as soon as their gradient exists, i.e. when the loss's backward is done and
before the model's backward starts (CPU autograd runs on the calling thread), so::

    loss part = (end of loss call - end of model forward) + (logits hook - start of backward)

Needs torch (the ``bench`` extras).  ``python -m fastloss._bench_training`` prints the table.
"""
import argparse
import contextlib
import statistics
import time

import fastloss as fl

# (name, model, input shape, class count, the loss part's and the whole step's required
# speed-ups over torch; None: no target)
WORKLOADS = [
    ("linear head", "linear", (8192, 512), 1000, 4, None),
    ("segmentation head", "conv1x1", (4, 64, 256, 256), 21, 4, 1.5),
]
IMPLEMENTATIONS = ("torch", "fastloss-numba", "fastloss-cython")


def _model(kind, features, classes, seed=0):
    import torch

    torch.manual_seed(seed)
    if kind == "linear":
        return torch.nn.Linear(features, classes)
    return torch.nn.Conv2d(features, classes, kernel_size=1)


class TrainingStep:
    """One workload's training step for one implementation; :meth:`run` times its phases.

    Parameters
    ----------
    kind : {"linear", "conv1x1"}
        The model: ``torch.nn.Linear(shape[1], classes)`` or a 1x1 ``torch.nn.Conv2d``.
    shape : tuple of int
        The features' shape, ``(N, features)`` or ``(N, channels, H, W)``.
    classes : int
        The class count; the targets are random class indices.
    implementation : {"torch", "fastloss-numba", "fastloss-cython"}
        Whose cross-entropy the step calls: ``torch.nn.functional``'s, or
        ``fastloss.torch``'s on that backend.
    learning_rate : float, optional
        The SGD step size.

    Examples
    --------
    >>> from fastloss._bench_training import TrainingStep
    >>> step = TrainingStep("linear", (16, 8), 5, "fastloss-cython")
    >>> loss_part, whole_step = step.run()
    >>> 0 < loss_part < whole_step
    True
    """

    def __init__(self, kind, shape, classes, implementation, learning_rate=0.1):
        import torch
        import torch.nn.functional as F

        generator = torch.Generator().manual_seed(1)
        self.features = torch.randn(shape, generator=generator)
        target_shape = shape[:1] + shape[2:]
        self.target = torch.randint(0, classes, target_shape, generator=generator)
        self.model = _model(kind, shape[1], classes)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=learning_rate)
        backend = implementation.partition("-")[2]
        if backend:
            import fastloss.torch

            self.loss = fastloss.torch.cross_entropy
            self._scope = lambda: fl.backend(backend)
        else:
            self.loss = F.cross_entropy
            self._scope = contextlib.nullcontext
        self._hook_time = None

    def _mark_gradient(self, grad):
        self._hook_time = time.perf_counter()

    def run(self):
        """One step; returns ``(loss part, whole step)`` in seconds."""
        with self._scope():
            start = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(self.features)
            logits.register_hook(self._mark_gradient)
            forward_done = time.perf_counter()
            loss = self.loss(logits, self.target)
            loss_done = time.perf_counter()
            loss.backward()
            self.optimizer.step()
            end = time.perf_counter()
        return (loss_done - forward_done) + (self._hook_time - loss_done), end - start


def training_rows(rounds=20, warm_up=3, threads=2, implementations=IMPLEMENTATIONS, workloads=WORKLOADS):
    """Median loss part and whole step of every workload and implementation, one dict per row.

    Parameters
    ----------
    rounds : int, optional
        Timed steps per implementation; each round runs one step of each, in rotating order.
    warm_up : int, optional
        Untimed rounds first (Numba compiles, the allocator settles).
    threads : int, optional
        Threads of torch and of fastloss.
    implementations : tuple of str, optional
        A subset of `IMPLEMENTATIONS`; speed-ups need "torch" among them.
    workloads : list of tuple, optional
        Entries shaped as those of `WORKLOADS`.

    Returns
    -------
    list of dict
        Each row: ``workload``, ``shape``, ``implementation``, ``loss`` and ``step`` (seconds),
        ``loss speed-up`` and ``step speed-up`` over torch's (None for torch itself or without
        torch), ``loss needed`` and ``step needed`` (the targets, None where there is none).

    Examples
    --------
    >>> from fastloss._bench_training import training_rows
    >>> rows = training_rows(rounds=1, warm_up=0, threads=1,
    ...                      workloads=[("tiny head", "linear", (16, 8), 5, 4, None)])
    >>> [row["implementation"] for row in rows]
    ['torch', 'fastloss-numba', 'fastloss-cython']
    >>> rows[0]["loss speed-up"] is None and rows[1]["loss speed-up"] > 0
    True
    """
    import torch

    torch.set_num_threads(threads)
    fl.set_num_threads(threads)
    rows = []
    for name, kind, shape, classes, loss_needed, step_needed in workloads:
        steps = {impl: TrainingStep(kind, shape, classes, impl) for impl in implementations}
        times = {impl: [] for impl in implementations}
        order = list(implementations)
        for k in range(warm_up + rounds):
            for impl in order:
                timing = steps[impl].run()
                if k >= warm_up:
                    times[impl].append(timing)
            order = order[1:] + order[:1]
        medians = {impl: tuple(statistics.median(phase) for phase in zip(*times[impl]))
                   for impl in implementations}
        base = medians.get("torch")
        for impl in implementations:
            loss, step = medians[impl]
            compared = base is not None and impl != "torch"
            rows.append({
                "workload": name, "shape": shape, "implementation": impl, "loss": loss, "step": step,
                "loss speed-up": base[0] / loss if compared else None,
                "step speed-up": base[1] / step if compared else None,
                "loss needed": loss_needed if compared else None,
                "step needed": step_needed if compared else None,
            })
    return rows


def _ms(seconds):
    return f"{seconds * 1e3:8.2f}ms"


def _ratio(value, needed):
    if value is None:
        return "      -"
    mark = "!" if needed is not None and value < needed else " "
    return f"{value:6.2f}{mark}"


def format_rows(rows):
    """The rows of `training_rows` as a text table; ``!`` marks a speed-up below its target.

    Examples
    --------
    >>> from fastloss._bench_training import format_rows
    >>> row = {"workload": "tiny head", "shape": (16, 8), "implementation": "fastloss-cython",
    ...        "loss": 1e-3, "step": 4e-3, "loss speed-up": 3.0, "step speed-up": 1.2,
    ...        "loss needed": 4, "step needed": None}
    >>> print(format_rows([row]).splitlines()[1])  # doctest: +NORMALIZE_WHITESPACE
    tiny head            (16, 8)              fastloss-cython      1.00ms     4.00ms   3.00!   1.20       4x / -x
    """
    lines = [f"{'workload':20s} {'shape':20s} {'implementation':16s} {'loss part':>10s} {'step':>10s} "
             f"{'loss x':>7s} {'step x':>7s} {'needed':>11s}"]
    for row in rows:
        needed = ("" if row["loss needed"] is None else
                  f"{row['loss needed']}x / {row['step needed'] or '-'}x")
        lines.append(f"{row['workload']:20s} {str(row['shape']):20s} {row['implementation']:16s} "
                     f"{_ms(row['loss']):>10s} {_ms(row['step']):>10s} "
                     f"{_ratio(row['loss speed-up'], row['loss needed'])} "
                     f"{_ratio(row['step speed-up'], row['step needed'])} {needed:>11s}")
    return "\n".join(lines)


def main(argv=None):
    """Print the training-step table (``--rounds`` timed steps per implementation, medians).

    Parameters
    ----------
    argv : list of str, optional
        The command line (default ``sys.argv[1:]``); ``--help`` lists the options.

    Returns
    -------
    list of dict
        The rows of `training_rows`.

    Examples
    --------
    >>> from fastloss._bench_training import main
    >>> rows = main(["--rounds", "1", "--warm-up", "0", "--workloads", "linear head",
    ...              "--implementations", "torch", "fastloss-cython"])  # doctest: +ELLIPSIS
    workload ...
    >>> len(rows)
    2
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per implementation (default 20)")
    parser.add_argument("--warm-up", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads of torch and fastloss (default 2)")
    parser.add_argument("--implementations", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS))
    parser.add_argument("--workloads", nargs="+", choices=[w[0] for w in WORKLOADS],
                        default=[w[0] for w in WORKLOADS])
    args = parser.parse_args(argv)
    chosen = [w for w in WORKLOADS if w[0] in args.workloads]
    rows = training_rows(args.rounds, args.warm_up, args.threads, tuple(args.implementations), chosen)
    print(format_rows(rows))
    return rows


if __name__ == "__main__":
    main()
