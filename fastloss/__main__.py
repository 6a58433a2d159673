"""``python -m fastloss``: a short demo on generated data.

For every public function: its result, its largest difference from a plain
NumPy reference, and its time beside NumPy's (and torch eager's, when torch is
installed), for each backend.  ``python -m fastloss --info`` prints
``fastloss.show_config()`` instead: what to paste into a bug report.
``python -m fastloss warm-up`` compiles every Numba kernel into the on-disk
cache instead (see ``fastloss._warm_up``).
"""
import argparse
import sys
import time

import numpy as np

import fastloss as fl
from fastloss import _numpy_reference as ref

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None


def best_time(func, repeat):
    func()  # warm-up: the Numba backend compiles (or loads its cache) on first use
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def largest_difference(ours, reference):
    """Largest absolute difference over the result, or over (loss, grad) pairs."""
    pairs = zip(ours, reference) if isinstance(ours, tuple) else [(ours, reference)]
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0))
               for a, b in pairs)


def torch_forward_backward(name, x, target, **kwargs):
    """torch's forward and backward of the loss ``name`` (its composition in
    ``fastloss.bench.torch_losses`` where torch has no such function)."""
    from fastloss.bench import torch_losses

    loss = torch_losses().get(name) or getattr(F, name)
    xt = torch.from_numpy(x).requires_grad_(True)
    tt = torch.from_numpy(target)

    def run():
        xt.grad = None
        loss(xt, tt, **kwargs).backward()
    return run


def cases(rng, batch, classes, size):
    logits = rng.standard_normal((batch, classes)).astype(np.float32)
    labels = rng.integers(0, classes, batch)
    maps = rng.standard_normal((2, 21, size, size)).astype(np.float32)
    map_labels = rng.integers(0, 21, (2, size, size))
    probabilities = 1 / (1 + np.exp(-logits))
    binary_targets = (rng.random(logits.shape) < 0.5).astype(np.float32)
    log_probabilities = ref.log_softmax(logits, axis=1)
    teacher = rng.standard_normal((batch, classes)).astype(np.float32)
    yield ("softmax", f"({batch}, {classes})",
           lambda: fl.softmax(logits), lambda: ref.softmax(logits),
           torch and (lambda: torch.softmax(torch.from_numpy(logits), -1)))
    yield ("log_softmax", f"({batch}, {classes})",
           lambda: fl.log_softmax(logits), lambda: ref.log_softmax(logits),
           torch and (lambda: torch.log_softmax(torch.from_numpy(logits), -1)))
    yield ("nll_loss + grad", f"({batch}, {classes})",
           lambda: fl.nll_loss(log_probabilities, labels, return_grad=True),
           lambda: ref.nll_loss(log_probabilities, labels),
           torch and torch_forward_backward("nll_loss", log_probabilities, labels))
    yield ("cross_entropy + grad", f"({batch}, {classes})",
           lambda: fl.cross_entropy(logits, labels, return_grad=True),
           lambda: ref.cross_entropy(logits, labels),
           torch and torch_forward_backward("cross_entropy", logits, labels))
    yield ("cross_entropy + grad", f"(2, 21, {size}, {size})",
           lambda: fl.cross_entropy(maps, map_labels, return_grad=True),
           lambda: ref.cross_entropy(maps, map_labels),
           torch and torch_forward_backward("cross_entropy", maps, map_labels))
    yield ("binary_cross_entropy + grad", f"({batch}, {classes})",
           lambda: fl.binary_cross_entropy(probabilities, binary_targets, return_grad=True),
           lambda: ref.binary_cross_entropy(probabilities, binary_targets),
           torch and torch_forward_backward("binary_cross_entropy", probabilities, binary_targets))
    yield ("bce_with_logits + grad", f"({batch}, {classes})",
           lambda: fl.binary_cross_entropy_with_logits(logits, binary_targets, return_grad=True),
           lambda: ref.binary_cross_entropy_with_logits(logits, binary_targets),
           torch and torch_forward_backward("binary_cross_entropy_with_logits", logits, binary_targets))
    yield ("sigmoid_focal_loss + grad", f"({batch}, {classes})",
           lambda: fl.sigmoid_focal_loss(logits, binary_targets, reduction="mean", return_grad=True),
           lambda: ref.sigmoid_focal_loss(logits, binary_targets),
           torch and torch_forward_backward("sigmoid_focal_loss", logits, binary_targets, reduction="mean"))
    teacher_probabilities = ref.softmax(teacher, axis=1)
    yield ("kl_div + grad", f"({batch}, {classes})",
           lambda: fl.kl_div(log_probabilities, teacher_probabilities, reduction="batchmean", return_grad=True),
           lambda: ref.kl_div(log_probabilities, teacher_probabilities),
           torch and torch_forward_backward("kl_div", log_probabilities, teacher_probabilities,
                                            reduction="batchmean"))
    yield ("distillation_loss + grad", f"({batch}, {classes})",
           lambda: fl.distillation_loss(logits, teacher, temperature=2.0, return_grad=True),
           lambda: ref.distillation_loss(logits, teacher, 2.0),
           torch and torch_forward_backward("distillation_loss", logits, teacher, temperature=2.0))
    yield ("dice_loss + grad", f"(2, 21, {size}, {size})",
           lambda: fl.dice_loss(maps, map_labels, return_grad=True),
           lambda: ref.dice_loss(maps, map_labels),
           torch and torch_forward_backward("dice_loss", maps, map_labels))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["warm-up"]:
        from fastloss import _warm_up
        return _warm_up.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m fastloss", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128, help="height and width of the (2, 21, H, W) maps")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--info", action="store_true",
                        help="print the versions, builds, threads and CPU features fastloss runs on, and exit")
    args = parser.parse_args(argv)
    if args.info:
        fl.show_config()
        return
    if torch is not None:
        torch.set_num_threads(fl.get_num_threads())

    print(f"fastloss {fl.__version__}: {fl.get_num_threads()} threads, float32, "
          f"times are the best of {args.repeat}")
    header = (f"{'function':<28} {'shape':<18} {'backend':<7} {'result':>10} {'max |diff|':>10} "
              f"{'fastloss':>9} {'numpy':>9} {'torch':>9}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for name, shape, ours, numpy_version, torch_version in cases(rng, args.batch, args.classes, args.size):
        expected = numpy_version()
        numpy_ms = best_time(numpy_version, args.repeat) * 1e3
        torch_ms = best_time(torch_version, args.repeat) * 1e3 if torch_version else None
        for backend_name in ("cython", "numba"):
            with fl.backend(backend_name):
                result = ours()
                ours_ms = best_time(ours, args.repeat) * 1e3
            shown = np.asarray(result[0] if isinstance(result, tuple) else result)
            value = f"{float(shown):.6g}" if shown.ndim == 0 else f"{shown.shape}"
            torch_cell = f"{torch_ms:8.2f}ms" if torch_ms is not None else f"{'-':>10}"
            print(f"{name:<28} {shape:<18} {backend_name:<7} {value:>10} "
                  f"{largest_difference(result, expected):10.2e} {ours_ms:7.2f}ms {numpy_ms:7.2f}ms "
                  f"{torch_cell}")
    if torch is None:
        print("(install torch to see its times beside these)")


if __name__ == "__main__":
    main()
