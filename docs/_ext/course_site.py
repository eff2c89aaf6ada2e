"""What the course website adds to the committed sources while Sphinx reads them.

Nothing here changes a file of the repository: every change is made to the text Sphinx has
just read (the ``source-read`` event), so students still open the notebooks as committed.

* the landing page ``index.ipynb`` gets the site's navigation (hidden toctrees), with the
  tutors' and maintainers' pages taken by glob, so a new page under ``docs/tutors/`` appears
  without editing anything;
* every lecture gets, at its top, a "download this notebook" link and an "open in Binder"
  link to the same notebook in the student edition, and every figure gets the text of its
  ``*Figure:*`` caption (the Markdown cell under it) as its alt text;
* ``docs/reference/api.md`` gets one entry per name of ``mlmhelpers.__all__``, documented
  from its docstring by autodoc and numpydoc;
* ``docs/further-reading.md`` gets the reading list of Part 7 ("Where to learn more" and
  "Applications in the social sciences"), so there is one list to keep;
* after the build, MathJax 3 is copied into ``_static/mathjax`` from
  ``tools/site/node_modules`` (pinned with npm), so formulas are typeset offline.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "GITHUB-USER/REPOSITORY"
MATHJAX = REPO / "tools" / "site" / "node_modules" / "mathjax" / "es5"

#: The course in the order of the day (the landing page's table).
COURSE = [
    "course/01-linear-regression",
    "course/02-multilevel-data",
    "course/03-variance-components",
    "practicals/practical1/practical1",
    "course/04-random-intercepts",
    "practicals/practical2/practical2",
    "course/05-binary-responses",
    "practicals/practical3/practical3",
    "course/06-random-slopes",
    "practicals/practical4/practical4",
    "course/07-going-further",
]
REFERENCE = [
    "course/r-bridge",
    "course/glossary",
    "data/README",
    "docs/further-reading",
    "docs/reference/library",
    "docs/reference/api",
    "docs/reference/fitting",
]
#: Under the landing page's welcome: the page says what to do in JupyterLab, the site is read.
SITE_NOTE = """```{note}
You are reading the course's website: every lecture and practical is here to read, on any
device. To run one, use *Open it in Binder* under its title (nothing to install; nothing is
kept), or *Download this notebook* and open it in your own JupyterLab.
```
"""

#: The sections of Part 7 that make the further-reading page.
READING_SECTIONS = ("## Where to learn more", "## Applications in the social sciences")


def repository_url(repo: Path = REPO) -> str:
    """The GitHub address of ``origin``, or the README's placeholder until there is one."""
    try:
        url = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        url = ""
    match = re.match(r"^(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?$", url)
    return f"https://github.com/{match.group(1) if match else PLACEHOLDER}"


def binder_url(repo_url: str, path: str) -> str:
    """mybinder.org's address that opens ``path`` of the student edition in JupyterLab."""
    slug = repo_url.removeprefix("https://github.com/")
    return f"https://mybinder.org/v2/gh/{slug}/student?urlpath=lab/tree/{path}"


# --------------------------------------------------------------------------- notebooks

def _md(text: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def _toctree(caption: str, entries: list[str], glob: bool = False) -> str:
    options = [":hidden:", f":caption: {caption}", ":maxdepth: 1"] + ([":glob:"] if glob else [])
    return "```{toctree}\n" + "\n".join(options) + "\n\n" + "\n".join("/" + e for e in entries) + "\n```\n"


def navigation(repo: Path = REPO) -> str:
    """The site's sections; the guides for tutors and maintainers when they are there (the
    student edition ships the site without them)."""
    trees = [_toctree("The course", COURSE), _toctree("Reference", REFERENCE)]
    for caption, folder in (("For tutors", "tutors"), ("For maintainers", "maintainers")):
        if any((repo / "docs" / folder).glob("*.md")):
            trees.append(_toctree(caption, [f"docs/{folder}/*"], glob=True))
    return "\n".join(trees)


def caption_text(markdown: str) -> str:
    """The words of a ``*Figure:* ...`` caption, without its label and Markdown marks."""
    text = re.sub(r"^\s*\*Figure[^*]*:\*\s*", "", markdown)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their words
    text = re.sub(r"[*_`$\\]", "", text)
    return " ".join(text.split())


def _has_image(cell: dict) -> bool:
    return any(k.startswith("image/") for o in cell.get("outputs", []) for k in o.get("data", {}))


def add_alt_text(nb: dict) -> int:
    """Give every figure its caption as alt text (myst-nb's cell option ``mystnb.image.alt``)."""
    cells = nb["cells"]
    done = 0
    for cell, below in zip(cells, cells[1:] + [None]):
        if cell["cell_type"] != "code" or not _has_image(cell):
            continue
        source = "".join(below["source"]) if below and below["cell_type"] == "markdown" else ""
        if source.lstrip().startswith("*Figure"):
            alt = caption_text(source)
            cell.setdefault("metadata", {}).setdefault("mystnb", {}).setdefault("image", {})["alt"] = alt
            done += 1
    return done


def lecture_links(docname: str, repo_url: str) -> str:
    """The links under a notebook's title: its file (Sphinx's copy of the source) and Binder."""
    name = docname.rsplit("/", 1)[-1] + ".ipynb"
    source = "../" * docname.count("/") + f"_sources/{docname}.ipynb"
    return (f'<p class="course-links"><a href="{source}" download="{name}">Download this notebook</a>'
            f' · <a href="{binder_url(repo_url, docname + ".ipynb")}">Open it in Binder</a>'
            " (the student edition: run it and change it there; nothing is kept)</p>\n")


def _transform_notebook(docname: str, text: str, repo_url: str) -> str:
    nb = json.loads(text)
    if docname == "index":
        nb["cells"].insert(1, _md(SITE_NOTE, "site-note"))
        nb["cells"].append(_md(navigation(), "site-navigation"))
    if docname.startswith(("course/", "practicals/")):
        add_alt_text(nb)
        # The links go under the notebook's title (its first heading stays the page title).
        first = nb["cells"][0]
        position = 1 if first["cell_type"] == "markdown" and "".join(first["source"]).lstrip().startswith("# ") else 0
        nb["cells"].insert(position, _md(lecture_links(docname, repo_url), "site-links"))
    return json.dumps(nb)


# --------------------------------------------------------------------------- generated pages

#: The reference's sections, each with the public names it documents (in ``__all__``'s order);
#: a name of ``__all__`` in none of them goes under "Other", so none is ever left out.
API_SECTIONS = {
    "Data": {"load_dataset", "dataset_names", "data_dir"},
    "Fitting models": {"fit_mixedlm", "fit_logit_mixed", "fit_glmm", "from_statsmodels",
                       "SingularFitWarning", "ConvergenceWarning", "ColumnNotFoundError"},
    "Results": {"MixedResults", "LinearMixedResults", "GlmmResults", "LogitMixedResults"},
    "Tables, tests and effect sizes": {"fixed_effects", "random_effects", "summary", "vpc", "format_p",
                                       "lr_test", "LRTestResult", "compare_models", "group_effects",
                                       "effective_sample_size", "rate_ratios", "overdispersion",
                                       "odds_ratios"},
    "Uncertainty: profile intervals and the bootstrap": {"confint", "vpc_confint", "simulate",
                                                          "bootstrap", "bootstrap_lr_test", "BootstrapResult",
                                                          "BootstrapLRTest"},
    "Plots": {"plot_caterpillar", "plot_group_lines", "plot_residuals", "plot_coefficients",
              "plot_hierarchy", "plot_classification"},
    "Explorers used in the lectures": {"simulate_groups", "population_vpc", "plot_groups",
                                       "variance_explorer"},
    "Figure style": {"PALETTE", "use_course_style"},
}


def _entry(name: str, obj) -> str:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return f".. autoexception:: mlmhelpers.{name}\n"
    if inspect.isclass(obj):
        return f".. autoclass:: mlmhelpers.{name}\n   :members:\n"
    if callable(obj):
        return f".. autofunction:: mlmhelpers.{name}\n"
    return f".. autodata:: mlmhelpers.{name}\n   :no-value:\n"


def api_entries() -> str:
    """One autodoc entry per name of ``mlmhelpers.__all__``, by section."""
    import mlmhelpers

    sections = {title: [] for title in [*API_SECTIONS, "Other"]}
    for name in mlmhelpers.__all__:
        title = next((t for t, names in API_SECTIONS.items() if name in names), "Other")
        sections[title].append(_entry(name, getattr(mlmhelpers, name)))
    parts = []
    for title, entries in sections.items():
        if entries:
            # autodoc writes reStructuredText, so the entries go in an eval-rst block.
            parts.append(f"## {title}\n\n```{{eval-rst}}\n" + "\n".join(entries) + "```\n")
    return "\n".join(parts)


def reading_list() -> str:
    nb = json.loads((REPO / "course" / "07-going-further.ipynb").read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith(READING_SECTIONS):
            # Its links are relative to course/: make them relative to docs/.
            source = re.sub(r"\]\((?!https?:|#|/)([^)]+)\)", r"](../course/\1)", source)
            parts.append(source)
    if len(parts) != len(READING_SECTIONS):
        raise RuntimeError(f"Part 7 has no sections {READING_SECTIONS}: the further-reading page needs them")
    return "\n\n".join(parts)


def on_source_read(app, docname: str, source: list[str]) -> None:
    path = app.env.doc2path(docname)
    if str(path).endswith(".ipynb"):
        source[0] = _transform_notebook(docname, source[0], app.config.html_theme_options["repository_url"])
    elif docname == "docs/reference/api":
        source[0] += "\n" + api_entries()
    elif docname == "docs/further-reading":
        source[0] += "\n" + reading_list()


def on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not (MATHJAX / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax 3 is not in {MATHJAX}: run `make site-js` (npm ci in tools/site)")
    target = Path(app.outdir) / "_static" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    # The component the pages load, the fonts it reads and the TeX extensions it may autoload.
    target.mkdir(parents=True)
    shutil.copy2(MATHJAX / "tex-chtml.js", target / "tex-chtml.js")
    for sub in ("output/chtml/fonts/woff-v2", "input/tex/extensions", "a11y", "ui", "adaptors"):
        if (MATHJAX / sub).is_dir():
            shutil.copytree(MATHJAX / sub, target / sub)


def setup(app):
    app.connect("source-read", on_source_read)
    app.connect("build-finished", on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
