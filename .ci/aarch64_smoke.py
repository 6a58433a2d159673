"""Smoke test of both fastloss backends, run by .ci/aarch64 under qemu-user (also runs natively).

Every public function, on a batched (N, C) and a spatial (N, C, d1, d2) input, in
float32 and float64, the losses with their gradients (return_grad=True), compared with
fastloss._numpy_reference (the backward passes with their formulas on its softmax and
log_softmax), computed in float64, at the test suite's tolerance for the dtype.  One
line per case, with its time, then fastloss.show_config(); exits 1 on any mismatch,
on an error, or when a machine that is not x86-64 loads a Cython build other than
the baseline one (no other is built there) or compiles a Numba path of x86-64's
(streaming stores, sfence, the AVX-512 table exp).

The shapes are small and odd (vector remainders taken): the batch takes the kernels'
row paths, the spatial map their tile paths.  Under emulation the time is Numba's
compilation, on the first call of each path and dtype; the probability targets and
streamed gradients of ``python -m fastloss warm-up`` are left out.
``--numba-dtypes`` and ``--numba-layouts`` narrow the Numba cases (every function
still runs) when emulated compilation must fit a time budget, as in .ci/run; the
Cython cases always all run.
"""
import argparse
import os
import platform
import sys
import time
import traceback

import numba
import numpy as np

import fastloss as fl
import fastloss._cython
import fastloss._numba
from fastloss import _numpy_reference as ref
from fastloss._numba import machine

SHAPES = {"batched": (5, 37), "spatial": (2, 19, 3, 5)}
DTYPES = (np.float32, np.float64)
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def softmax_backward(g, y):
    return y * (g - (g * y).sum(axis=1, keepdims=True))


def log_softmax_backward(g, y):
    return g - np.exp(y) * g.sum(axis=1, keepdims=True)


def cross_entropy_z_loss(x, target, z_loss):
    """Mean cross-entropy plus ``z_loss * logsumexp**2``, and its gradient."""
    loss, grad = ref.cross_entropy(x, target)
    m = x.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    return (loss + z_loss * np.mean(lse ** 2),
            grad + 2 * z_loss * lse * ref.softmax(x, axis=1) / target.size)


def cases(shape, dtype, rng):
    """(name, fastloss call, reference results) of every public function on inputs of ``shape``."""
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    p = rng.uniform(0.02, 0.98, shape).astype(dtype)
    y = rng.uniform(0, 1, shape).astype(dtype)
    binary = (rng.random(shape) < 0.5).astype(dtype)
    teacher = rng.standard_normal(shape).astype(dtype)
    x64, g64, p64, y64 = (a.astype(np.float64) for a in (x, g, p, y))
    # The forward results the backward passes and nll_loss take, rounded to the dtype.
    sm, lsm = ref.softmax(x64, axis=1).astype(dtype), ref.log_softmax(x64, axis=1).astype(dtype)
    sm64, lsm64 = sm.astype(np.float64), lsm.astype(np.float64)
    return [
        ("softmax", lambda: fl.softmax(x, axis=1), ref.softmax(x64, axis=1)),
        ("log_softmax", lambda: fl.log_softmax(x, axis=1), ref.log_softmax(x64, axis=1)),
        ("softmax_backward", lambda: fl.softmax_backward(g, sm, axis=1), softmax_backward(g64, sm64)),
        ("log_softmax_backward", lambda: fl.log_softmax_backward(g, lsm, axis=1),
         log_softmax_backward(g64, lsm64)),
        ("nll_loss", lambda: fl.nll_loss(lsm, target, return_grad=True), ref.nll_loss(lsm64, target)),
        ("cross_entropy", lambda: fl.cross_entropy(x, target, return_grad=True), ref.cross_entropy(x64, target)),
        ("binary_cross_entropy", lambda: fl.binary_cross_entropy(p, y, return_grad=True),
         ref.binary_cross_entropy(p64, y64)),
        ("binary_cross_entropy_with_logits",
         lambda: fl.binary_cross_entropy_with_logits(x, y, return_grad=True),
         ref.binary_cross_entropy_with_logits(x64, y64)),
        ("cross_entropy, z_loss", lambda: fl.cross_entropy(x, target, z_loss=0.01, return_grad=True),
         cross_entropy_z_loss(x64, target, 0.01)),
        ("sigmoid_focal_loss", lambda: fl.sigmoid_focal_loss(x, binary, reduction="mean", return_grad=True),
         ref.sigmoid_focal_loss(x64, binary.astype(np.float64))),
        ("kl_div", lambda: fl.kl_div(lsm, sm, reduction="batchmean", return_grad=True), ref.kl_div(lsm64, sm64)),
        ("distillation_loss", lambda: fl.distillation_loss(x, teacher, temperature=2.0, return_grad=True),
         ref.distillation_loss(x64, teacher.astype(np.float64), 2.0)),
        ("dice_loss", lambda: fl.dice_loss(x, target, return_grad=True), ref.dice_loss(x64, target)),
    ]


def check(call, expected, dtype):
    """The largest error of ``call()``'s results relative to the tolerance (<= 1 passes)."""
    got = call()
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    worst = 0.0
    for value, reference in zip(got, expected, strict=True):
        value = np.asarray(value)
        if value.dtype != dtype or value.shape != np.shape(reference):
            raise AssertionError(f"got {value.dtype} {value.shape}, expected {np.dtype(dtype)} {np.shape(reference)}")
        tol = TOLERANCE[dtype]
        bound = tol["atol"] + tol["rtol"] * np.abs(reference)
        worst = max(worst, float(np.max(np.abs(value - reference) / bound)))
    return worst


def parse_arguments():
    parser = argparse.ArgumentParser(description="Smoke test of both fastloss backends.")
    parser.add_argument("--numba-dtypes", nargs="+", choices=[np.dtype(d).name for d in DTYPES],
                        default=[np.dtype(d).name for d in DTYPES], help="the dtypes of the Numba cases")
    parser.add_argument("--numba-layouts", nargs="+", choices=list(SHAPES), default=list(SHAPES),
                        help="the layouts of the Numba cases")
    return parser.parse_args()


def main():
    arguments = parse_arguments()
    selected = {"cython": (list(SHAPES), [np.dtype(d).name for d in DTYPES]),
                "numba": (arguments.numba_layouts, arguments.numba_dtypes)}
    print(f"machine {platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}, "
          f"Numba {numba.__version__}, fastloss from {os.path.dirname(fl.__file__)}")
    x86 = platform.machine() in ("x86_64", "AMD64")
    build = fastloss._cython.BUILD
    build_ok = x86 or build == "fastloss._cython"
    print(f"Cython build {build}{'' if build_ok else ': FAIL, expected fastloss._cython (baseline)'}, "
          f"{fl.get_num_threads()} threads")
    # Streaming stores, sfence and the AVX-512 table exp exist on x86-64 alone.
    paths_ok = x86 or not (machine.STREAMING or machine.TABLE_EXP)
    print(f"Numba compiles for {machine.TRIPLE}, CPU {machine.CPU_NAME}: streaming stores {machine.STREAMING}, "
          f"table exp {machine.TABLE_EXP}{'' if paths_ok else ': FAIL, x86-64 paths on another machine'}")
    passed = failed = 0
    rng = np.random.default_rng(16)
    for name in ("cython", "numba"):
        fl.set_backend(name)
        start = time.perf_counter()
        layouts, dtypes = selected[name]
        print(f"{name} cases: layouts {', '.join(layouts)}; dtypes {', '.join(dtypes)}")
        for layout, shape in SHAPES.items():
            for dtype in DTYPES:
                if layout not in layouts or np.dtype(dtype).name not in dtypes:
                    continue
                for function, call, expected in cases(shape, dtype, rng):
                    case = f"{name:6} {np.dtype(dtype).name:7} {layout:7} {function:33}"
                    case_start = time.perf_counter()
                    try:
                        worst = check(call, expected, dtype)
                    except Exception:
                        failed += 1
                        print(f"{case} ERROR")
                        traceback.print_exc(file=sys.stdout)
                        continue
                    passed += worst <= 1
                    failed += not worst <= 1
                    print(f"{case} {'ok' if worst <= 1 else 'FAIL'}  error {worst:.2g} of the tolerance, "
                          f"{time.perf_counter() - case_start:.1f} s", flush=True)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    print(f"Numba threading layer: {numba.threading_layer()} (fastloss._numba.THREADING_LAYER "
          f"{fastloss._numba.THREADING_LAYER!r})")
    fl.show_config()
    print(f"smoke test: {passed} passed, {failed} failed")
    return 0 if build_ok and paths_ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
