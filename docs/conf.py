"""Sphinx configuration for the sxdiff documentation."""

import os
from importlib.metadata import version as _version

project = "sxdiff"
author = "sxdiff developers"
copyright = "2026, sxdiff developers"
release = _version("sxdiff")

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
]
autosummary_generate = True
templates_path = ["_templates"]
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # torch and scvi-tools base classes use docstring styles we do not parse
napoleon_google_docstring = False
napoleon_numpy_docstring = True
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "colon_fence"]
# Offline builds (CI has no internet) skip the cross-project inventories: SXDIFF_DOCS_OFFLINE=1
intersphinx_mapping = {} if os.environ.get("SXDIFF_DOCS_OFFLINE") else {
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
}
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_title = "sxdiff"
exclude_patterns = ["_build"]
