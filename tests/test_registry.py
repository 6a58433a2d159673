"""The loss registry names what each backend serves."""
import importlib

import pytest

import fastloss as fl
from conftest import BACKENDS
from fastloss._registry import LOSSES


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_is_public(name):
    assert name in fl.__all__
    assert callable(getattr(fl, name))


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_both_backends_export_every_registered_kernel(name, backend_name):
    module = importlib.import_module(f"fastloss._{backend_name}")
    for call in LOSSES[name].kernels.values():
        assert call.name in module.__all__
        assert callable(getattr(module, call.name))


def test_every_spec_names_its_driver_and_input():
    for spec in LOSSES.values():
        assert spec.kind in ("elementwise", "class_axis", "class_pair", "class_sums")
        assert spec.input in ("logits", "probabilities", "log_probabilities")
        assert spec.kernels and set(spec.kernels) <= {"elements", "classes", "probabilities", "log_probabilities",
                                                      "logits"}
