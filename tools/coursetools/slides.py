"""Render the lecture notebooks as reveal.js slideshows (``make slides``).

Usage::

    python -m coursetools.slides course build/slides

Every ``*.ipynb`` in the source folder becomes ``<name>.slides.html`` in the
target folder.  The notebooks are rendered as committed (already executed);
nothing is run.  Each cell's ``metadata.slideshow.slide_type`` decides where
a new slide starts.  The HTML loads reveal.js from a CDN by default, so
showing the slides needs a network connection unless ``--reveal-prefix``
points at a local copy of reveal.js.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["build_slides", "main"]


def build_slides(source="course", target="build/slides", reveal_url_prefix=None, theme="simple"):
    """Render every notebook in ``source`` to a reveal.js slideshow in ``target``.

    Parameters
    ----------
    source : str or Path
        A folder of notebooks (``*.ipynb``, rendered in name order) or a
        single notebook file.
    target : str or Path
        Output folder; created if missing.  Existing slideshows are replaced.
    reveal_url_prefix : str, optional
        Where the HTML loads reveal.js from (nbconvert's default is a CDN).
    theme : str
        reveal.js theme name.

    Returns
    -------
    list of pathlib.Path
        The HTML files written.

    Examples
    --------
    >>> import tempfile, nbformat
    >>> folder = Path(tempfile.mkdtemp())
    >>> demo = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hello")])
    >>> nbformat.write(demo, folder / "demo.ipynb")
    >>> [path.name for path in build_slides(folder, folder / "slides")]
    ['demo.slides.html']
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

    exporter = SlidesExporter()
    exporter.reveal_theme = theme
    exporter.reveal_scroll = True
    exporter.reveal_number = "c/t"
    if reveal_url_prefix:
        exporter.reveal_url_prefix = reveal_url_prefix

    target.mkdir(parents=True, exist_ok=True)
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
        description="Render lecture notebooks as reveal.js slideshows.",
    )
    parser.add_argument("source", nargs="?", default="course", help="folder of notebooks or one notebook")
    parser.add_argument("target", nargs="?", default="build/slides", help="output folder")
    parser.add_argument("--reveal-prefix", default=None,
                        help="URL or relative path of reveal.js (default: nbconvert's CDN)")
    parser.add_argument("--theme", default="simple", help="reveal.js theme (default: simple)")
    args = parser.parse_args(argv)
    try:
        written = build_slides(args.source, args.target, args.reveal_prefix, args.theme)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
