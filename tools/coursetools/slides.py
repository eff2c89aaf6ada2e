"""Render the lecture notebooks as reveal.js slideshows that work offline (``make slides``).

Usage::

    python -m coursetools.slides course build/slides

Every ``*.ipynb`` in the source folder becomes ``<name>.slides.html`` in the
target folder.  The notebooks are rendered as committed (already executed);
nothing is run.  Each cell's ``metadata.slideshow.slide_type`` decides where
a new slide starts.

The decks need no network: reveal.js, MathJax 2, require.js and jQuery are
copied into the target folder (``reveal.js/``, ``mathjax/``, ``lib/``) and the
HTML loads them by relative URLs, so the folder can be moved, zipped or opened
straight from disk (``file://``).  Those files come from the npm packages
pinned in ``tools/slides/package-lock.json``; ``make slides`` installs them
(``npm ci`` in ``tools/slides``) before it renders.  Two things nbconvert
would load from the internet are left out: mermaid diagrams (no lecture has
one) and the Jupyter widgets renderer (a widget output becomes a note that the
control works in the notebook).  Themes that import web fonts get those
imports removed and fall back to the fonts of the computer.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

__all__ = ["ASSETS", "MissingAssetsError", "build_slides", "copy_assets", "main"]

HERE = Path(__file__).resolve().parent
#: Where ``npm ci`` (``make slides``) puts the pinned packages.
ASSETS = HERE.parent / "slides" / "node_modules"
TEMPLATES = HERE / "templates"

# What each deck loads, relative to the target folder.  ``(package, files)``:
# the files (or folders) of the npm package copied into ``target/<dest>``.
_COPY = {
    "reveal.js": ("reveal.js", ["dist/reveal.css", "dist/reveal.js", "dist/theme",
                                "plugin/notes", "LICENSE"]),
    # MathJax 2 with the TeX input and the CommonHTML output only (what
    # nbconvert's configuration TeX-AMS_CHTML-full,Safe uses), not every font.
    "mathjax": ("mathjax", ["MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js",
                            "extensions", "jax/element", "jax/input/TeX",
                            "jax/output/CommonHTML", "fonts/HTML-CSS/TeX/woff", "LICENSE"]),
    "lib/requirejs": ("requirejs", ["require.js"]),
    "lib/jquery": ("jquery", ["dist/jquery.min.js", "LICENSE.txt"]),
}
URLS = {
    "reveal_url_prefix": "reveal.js",
    "mathjax_url": "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    "require_js_url": "lib/requirejs/require.js",
    "jquery_url": "lib/jquery/dist/jquery.min.js",
}
_REMOTE_IMPORT = re.compile(r"""@import\s+url\(\s*['"]?(?:https?:)?//[^)]*\)\s*;?""")


class MissingAssetsError(FileNotFoundError):
    """The npm packages the decks load are not installed."""


def _installed_version(package_dir: Path) -> str:
    return json.loads((package_dir / "package.json").read_text())["version"]


def copy_assets(target, assets=None):
    """Copy reveal.js, MathJax, require.js and jQuery from ``assets`` into ``target``.

    Returns a dict package name -> installed version.  Remote ``@import``
    lines (web fonts) are removed from the reveal.js themes.
    """
    assets = Path(assets) if assets is not None else ASSETS
    target = Path(target)
    missing = [pkg for pkg, _ in _COPY.values() if not (assets / pkg / "package.json").is_file()]
    if missing:
        raise MissingAssetsError(
            f"the slides' JavaScript packages ({', '.join(missing)}) are not installed in {assets}; "
            "run `make slides` (it runs `npm ci` in tools/slides, which needs Node.js and npm)"
        )
    versions = {}
    for dest, (pkg, parts) in _COPY.items():
        versions[pkg] = _installed_version(assets / pkg)
        for part in parts:
            src, out = assets / pkg / part, target / dest / part
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, out, dirs_exist_ok=True)
            else:
                shutil.copy2(src, out)
    for css in (target / "reveal.js" / "dist" / "theme").glob("*.css"):
        text = css.read_text(encoding="utf-8")
        cleaned = _REMOTE_IMPORT.sub("", text)
        if cleaned != text:
            css.write_text(cleaned, encoding="utf-8")
    return versions


def build_slides(source="course", target="build/slides", theme="simple", assets=None):
    """Render every notebook in ``source`` to a reveal.js slideshow in ``target``.

    Parameters
    ----------
    source : str or Path
        A folder of notebooks (``*.ipynb``, rendered in name order) or a
        single notebook file.
    target : str or Path
        Output folder; created if missing.  Existing slideshows are replaced,
        and reveal.js, MathJax, require.js and jQuery are copied into it.
    theme : str
        reveal.js theme name (a file of ``reveal.js/dist/theme``).
    assets : str or Path, optional
        The ``node_modules`` folder holding the pinned npm packages
        (default: ``tools/slides/node_modules``, filled by ``make slides``).

    Returns
    -------
    list of pathlib.Path
        The HTML files written.

    Examples
    --------
    >>> import tempfile, nbformat
    >>> folder = Path(tempfile.mkdtemp())
    >>> demo = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hello $x^2$")])
    >>> nbformat.write(demo, folder / "demo.ipynb")
    >>> [path.name for path in build_slides(folder, folder / "slides")]
    ['demo.slides.html']
    >>> sorted(p.name for p in (folder / "slides").iterdir())
    ['demo.slides.html', 'lib', 'mathjax', 'reveal.js']
    >>> shutil.rmtree(folder)
    """
    import nbformat
    from nbconvert import SlidesExporter

    source, target = Path(source), Path(target)
    if source.is_dir():
        notebooks = sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))
    elif source.suffix == ".ipynb" and source.is_file():
        notebooks = [source]
    else:
        raise FileNotFoundError(
            f"{source} is neither a folder of notebooks nor a .ipynb file; "
            "run from the repository root: python -m coursetools.slides course build/slides"
        )
    if not notebooks:
        raise FileNotFoundError(f"no .ipynb files in {source}")

    copy_assets(target, assets)
    if not (target / "reveal.js" / "dist" / "theme" / f"{theme}.css").is_file():
        raise ValueError(f"reveal.js has no theme {theme!r}; see {target / 'reveal.js/dist/theme'}")

    exporter = SlidesExporter(template_name="offline_reveal", extra_template_basedirs=[str(TEMPLATES)])
    exporter.reveal_theme = theme
    exporter.reveal_scroll = True
    exporter.reveal_number = "c/t"
    for name, url in URLS.items():
        setattr(exporter, name, url)

    written = []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": path.stem}})
        out = target / f"{path.stem}.slides.html"
        out.write_text(body, encoding="utf-8")
        written.append(out)
    return written


def main(argv=None):
    """Command-line entry point: ``python -m coursetools.slides SOURCE TARGET``."""
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.slides",
        description="Render lecture notebooks as reveal.js slideshows that open without network.",
    )
    parser.add_argument("source", nargs="?", default="course", help="folder of notebooks or one notebook")
    parser.add_argument("target", nargs="?", default="build/slides", help="output folder")
    parser.add_argument("--theme", default="simple", help="reveal.js theme (default: simple)")
    parser.add_argument("--assets", default=None,
                        help="node_modules folder with the pinned packages (default: tools/slides/node_modules)")
    args = parser.parse_args(argv)
    try:
        written = build_slides(args.source, args.target, args.theme, args.assets)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"open {Path(args.target) / written[0].name} in a browser (no network needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
