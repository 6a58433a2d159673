"""The Examples in the docstrings run, under each backend."""
import pytest

import fastloss._backends
import fastloss._config
import fastloss._elementwise_losses
import fastloss._class_losses
import fastloss._dice
import fastloss._distillation
import fastloss._normalisers
from conftest import assert_docstring_examples_run

MODULES = [fastloss._backends, fastloss._config, fastloss._elementwise_losses, fastloss._class_losses,
           fastloss._normalisers, fastloss._dice, fastloss._distillation]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples(backend, module):
    assert_docstring_examples_run(module)
