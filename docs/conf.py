"""Sphinx configuration of the fastloss documentation.

Build (warnings are errors) and run every example of the pages as a doctest::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

``.ci/docs`` runs both and checks the rendered pages in headless Chromium.  The
site needs no internet to build or to view: no intersphinx, no CDN assets, no
analytics, no external icon links (the contributor page says why).
"""
import doctest
import re
from pathlib import Path

import fastloss

project = "fastloss"
author = "the fastloss developers"
copyright = "the fastloss developers, BSD-3-Clause"
release = version = fastloss.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
root_doc = "index"

# API pages: one page per public name, generated from the docstrings at every
# build into api/generated/ (not committed).  A module's members are its __all__.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False  # the class template lists what a class defines
numpydoc_class_members_toctree = False

# Every `>>>` block of every page (the API pages' docstring examples included)
# runs under `-b doctest`: Sphinx's default flags, and NORMALIZE_WHITESPACE as in
# tests/test_docstrings.py.
doctest_default_flags = (doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
                         | doctest.DONT_ACCEPT_TRUE_FOR_1 | doctest.NORMALIZE_WHITESPACE)

myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"fastloss {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    # Nothing that reaches outside the built site: no icon links, analytics,
    # version switcher or "edit this page" button.
    "icon_links": [],
    "analytics": {},
    "use_edit_page_button": False,
    "navbar_end": ["theme-switcher"],
    "primary_sidebar_end": [],
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": ["page-toc"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 7,
}
# Pages without sub-pages get no (empty) section navigation.
html_sidebars = {page: [] for page in ("index", "install", "performance", "architecture", "contributing")}


def _check_api_page_lists_every_public_name(app):
    """Fail the build when a name of ``fastloss.__all__`` has no entry on api/fastloss.rst."""
    page = Path(app.srcdir, "api", "fastloss.rst").read_text()
    listed = set(re.findall(r"^\s{3}(\w+)\s*$", page, flags=re.MULTILINE))
    missing = sorted(set(fastloss.__all__) - listed)
    if missing:
        raise RuntimeError(f"docs/api/fastloss.rst lists no page for {missing}: add them to an autosummary")


def setup(app):
    app.connect("builder-inited", _check_api_page_lists_every_public_name)
