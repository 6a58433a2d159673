"""The Examples in the docstrings run, under each backend."""
import doctest

import pytest

import fastloss._backends
import fastloss._config
import fastloss._elementwise_losses
import fastloss._class_losses
import fastloss._dice
import fastloss._distillation
import fastloss._normalisers

MODULES = [fastloss._backends, fastloss._config, fastloss._elementwise_losses, fastloss._class_losses,
           fastloss._normalisers, fastloss._dice, fastloss._distillation]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples(backend, module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
