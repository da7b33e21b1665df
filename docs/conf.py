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
autodoc_member_order = "bysource"
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
