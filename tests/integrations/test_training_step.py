"""Training steps with fastloss.torch's loss equal torch's; small calls keep to the calling thread."""
import pytest
import torch

from conftest import assert_docstring_examples_run
import fastloss as fl
from fastloss._bench_training import TrainingStep, format_rows, training_rows

# The training benchmark's two heads, small: a linear classifier, a 1x1-convolution segmentation head.
SMALL_WORKLOADS = [("linear head", "linear", (64, 16), 10, 4, None),
                   ("segmentation head", "conv1x1", (2, 8, 6, 5), 5, 4, 1.5)]


@pytest.mark.parametrize("name, kind, shape, classes", [w[:4] for w in SMALL_WORKLOADS])
def test_step_updates_the_model_as_torch_does(backend, name, kind, shape, classes):
    reference = TrainingStep(kind, shape, classes, "torch")
    ours = TrainingStep(kind, shape, classes, f"fastloss-{backend}")
    for _ in range(3):
        reference.run()
        ours.run()
    for expected, got in zip(reference.model.parameters(), ours.model.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_training_rows_compare_every_implementation_with_torch():
    rows = training_rows(rounds=1, warm_up=0, threads=1, workloads=SMALL_WORKLOADS)
    assert [(r["workload"], r["implementation"]) for r in rows] == [
        (w[0], impl) for w in SMALL_WORKLOADS for impl in ("torch", "fastloss-numba", "fastloss-cython")]
    for row in rows:
        assert 0 < row["loss"] < row["step"]
        is_torch = row["implementation"] == "torch"
        assert (row["loss speed-up"] is None) == is_torch
        assert row["loss speed-up"] is None or row["loss speed-up"] == pytest.approx(
            next(r["loss"] for r in rows if r["workload"] == row["workload"] and r["implementation"] == "torch")
            / row["loss"])
    assert len(format_rows(rows).splitlines()) == len(rows) + 1


def test_docstring_examples(backend):
    """The Examples in fastloss._bench_training's docstrings run, under each backend."""
    import fastloss._bench_training
    assert_docstring_examples_run(fastloss._bench_training)


def test_small_call_bench_times_every_implementation(backend):
    """``python -m fastloss.bench --small-call``: its docstring's example runs, the backend the
    caller chose survives it, and its fastloss rows are the NumPy call's on each backend."""
    import fastloss.bench
    assert_docstring_examples_run(fastloss.bench)
    assert fl.get_backend() == backend
    times = fastloss.bench.small_call_times(repeat=1, calls=5, shape=(3, 4))
    assert list(times) == list(fastloss.bench.SMALL_CALLS)

