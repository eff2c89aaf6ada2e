"""Sphinx configuration of the course website (``make site``; docs/maintainers/03-website.md).

The site is built from the repository root as source folder, with this folder as the
configuration folder (``sphinx-build -c docs . build/site``), so the committed notebooks are
read where they are: ``index.ipynb`` (the landing page), ``course/`` (lectures, R bridge,
glossary), ``practicals/`` (the student versions), ``data/README.md`` (the codebook) and the
pages under ``docs/``.  Notebooks are never executed (``nb_execution_mode = "off"``): the site
shows the outputs committed with them.  Nothing is fetched at build time or when a page is read:
MathJax 3 is copied from ``tools/site/node_modules`` (``npm ci``, pinned in its
``package-lock.json``) and the theme's assets are bundled with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(REPO / "helpers"))

project = "Introduction to Multilevel Modelling"
author = "the course's authors"
copyright = "the course's authors; after Troncoso and Morales-Gómez, SGSSS 2022"
language = "en"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx.ext.mathjax",
    "course_site",
]

root_doc = "index"
# Only the course's pages; everything else in the repository is not part of the site.
include_patterns = [
    "index.ipynb",
    "course/*.ipynb",
    "course/*.md",
    "practicals/*/*.ipynb",
    "data/README.md",
    "docs/**.md",
]
exclude_patterns = [
    ".venv", ".git", "build", "**/node_modules", "**/.ipynb_checkpoints", "solutions", "tests",
    "hub", "benchmarks", "test-artifacts", "tools", "helpers", "submitted", "autograded",
    "feedback", "docs/_ext", "docs/_templates", "README.md",
]

# ---------------------------------------------------------------- notebooks and MyST
nb_execution_mode = "off"
# A lecture's widget is saved with a still picture of its output: show the picture, load no
# widget JavaScript (it would come from a CDN).
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# ---------------------------------------------------------------- API reference
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# ---------------------------------------------------------------- maths, offline
mathjax_path = "mathjax/tex-chtml.js"
# MathJax's menu stays on: it makes every formula focusable (tabindex 0), so a wide displayed
# equation that scrolls sideways on a phone can be scrolled with the keyboard too.
mathjax3_config = {
    "loader": {"load": []},
}

# ---------------------------------------------------------------- HTML
html_theme = "sphinx_book_theme"
html_title = "Introduction to Multilevel Modelling"
html_static_path = []
templates_path = ["_templates"]
html_sourcelink_suffix = ""  # "download notebook" gives the .ipynb itself
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": "https://github.com/GITHUB-USER/REPOSITORY",
    "repository_branch": "student",
    "path_to_docs": "",
    "use_download_button": True,
    "use_repository_button": False,
    "use_source_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "use_fullscreen_button": False,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}

import course_site  # noqa: E402  (this folder's _ext, put on the path above)

html_theme_options["repository_url"] = course_site.repository_url(REPO)
