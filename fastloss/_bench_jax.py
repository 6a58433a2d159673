"""``python -m fastloss.bench --jax``: `fastloss.jax` beside optax, loss and gradient under ``jax.jit``.

Each workload times ``jax.jit(jax.value_and_grad(loss))`` of fastloss's cross-entropy
(one fused kernel call in a host callback, on XLA's buffers) and of optax's
``softmax_cross_entropy_with_integer_labels`` followed by a mean (XLA's own code),
on the same float32 arrays, blocking on the results; the calls take turns in one
process (`fastloss.bench.best_times`).  Needs JAX and optax (``pip install "fastloss[jax]" optax``).
"""
import argparse

import numpy as np

import fastloss as fl
from fastloss.bench import best_times

# (shape, the speed-up over optax fastloss aims at (None: no target))
WORKLOADS = [((8192, 1000), None), ((16, 21, 256, 256), 4), ((2048, 32000), 4)]


def loss_functions():
    """The jitted value-and-gradient of fastloss's and optax's mean cross-entropy, by name.

    optax wants the class axis last: for ``(N, C, d1, ...)`` logits its version moves it
    there inside the jitted function, as a user would.
    """
    import jax
    import jax.numpy as jnp
    import optax

    import fastloss.jax as flj

    def optax_loss(x, target):
        return optax.softmax_cross_entropy_with_integer_labels(jnp.moveaxis(x, 1, -1), target).mean()

    return {"fastloss": jax.jit(jax.value_and_grad(flj.cross_entropy)),
            "optax": jax.jit(jax.value_and_grad(optax_loss))}


def measure(repeat=5):
    """One row per workload: its shape, the best time of each implementation, the target."""
    import jax

    functions = loss_functions()
    chosen = fl.get_backend()
    rows = []
    try:
        for shape, required in WORKLOADS:
            rng = np.random.default_rng(0)
            x = jax.numpy.asarray(rng.standard_normal(shape, dtype=np.float32))
            target = jax.numpy.asarray(rng.integers(0, shape[1], shape[:1] + shape[2:]).astype(np.int32))

            def timed(name):
                return lambda: jax.block_until_ready(functions[name](x, target))

            calls = {"optax": (_nothing, timed("optax"))}
            for backend_name in ("numba", "cython"):
                calls[backend_name] = (_use_backend(backend_name), timed("fastloss"))
            row = {"shape": shape, "required": required, **best_times(calls, repeat)}
            print_row(row)
            rows.append(row)
    finally:
        fl.set_backend(chosen)
    return rows


def _nothing():
    pass


def _use_backend(backend_name):
    return lambda: fl.set_backend(backend_name)


def print_header():
    print(f"{'jax.jit(jax.value_and_grad(cross_entropy))':<44} {'optax':>9} {'numba':>9} {'cython':>9} "
          f"{'numba x':>8} {'cython x':>8} {'needed':>7}")


def print_row(row):
    speedups = [row["optax"] / row[b] for b in ("numba", "cython")]
    required = row["required"]
    marks = ["!" if required is not None and s < required else "" for s in speedups]
    print(f"{str(row['shape']):<44} {row['optax'] * 1e3:7.2f}ms {row['numba'] * 1e3:7.2f}ms "
          f"{row['cython'] * 1e3:7.2f}ms {speedups[0]:7.2f}{marks[0]:1} {speedups[1]:7.2f}{marks[1]:1} "
          f"{required if required is not None else '-':>6}{'x' if required is not None else ' '}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastloss._bench_jax", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print_header()
    return measure(args.repeat)


if __name__ == "__main__":
    main()
