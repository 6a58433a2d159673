import doctest

import numpy as np
import pytest

import fastloss as fl

BACKENDS = ["numba", "cython"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test under each backend in turn."""
    with fl.backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def assert_docstring_examples_run(module):
    """Run the Examples of ``module``'s docstrings; fail on any that fails, or if there are none."""
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
