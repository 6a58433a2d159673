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
