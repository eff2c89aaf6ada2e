"""Execute lecture notebooks for committing (``python -m coursetools.lectures course/03-*.ipynb``).

The lecture notebooks in ``course/`` are committed executed, so students see
every table and figure before they run anything.  This command runs each
notebook given from the top in a fresh kernel (in ``course/``, as nbval does)
and writes it back, after one clean-up the committed copy needs:

* **Widgets become their still picture.**  An output that shows a live widget
  (``application/vnd.jupyter.widget-view+json``) cannot be drawn in a
  notebook that has not run: JupyterLab shows "Error displaying widget: model
  not found" (or the widget's ``VBox(children=...)`` text).  The course's
  widgets carry an ``image/png`` still and a ``text/plain`` description in
  the same output (see ``mlmhelpers.variance_explorer``); the committed copy
  keeps only those, and no saved widget state.  Running the cell again shows
  the live widget.  A widget output without a still is an error here.

Usage::

    python -m coursetools.lectures course/03-variance-components.ipynb [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

__all__ = ["freeze_widgets", "execute", "main", "WIDGET_VIEW"]


def freeze_widgets(nb):
    """Replace every live-widget output of ``nb`` by its still picture; return how many.

    Raises ``ValueError`` for a widget output without an ``image/png`` still.

    Examples
    --------
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    >>> out = nbformat.v4.new_output("display_data", data={
    ...     WIDGET_VIEW: {"model_id": "x"}, "image/png": "iVBOR", "text/plain": "a picture"})
    >>> nb.cells.append(nbformat.v4.new_code_cell("w", outputs=[out]))
    >>> freeze_widgets(nb), sorted(nb.cells[0].outputs[0].data), "widgets" in nb.metadata
    (1, ['image/png', 'text/plain'], False)
    """
    frozen = 0
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            if "image/png" not in data:
                raise ValueError(
                    f"cell {index} shows a widget without a still picture, which a notebook "
                    "that has not run cannot draw; give the widget an image/png in its "
                    "_repr_mimebundle_ (as mlmhelpers.variance_explorer does)")
            del data[WIDGET_VIEW]
            frozen += 1
    nb.metadata.pop("widgets", None)
    return frozen


def execute(path, timeout: int = 600):
    """Run the notebook at ``path`` top to bottom in a fresh kernel, freeze its widgets, save it."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    frozen = freeze_widgets(nb)
    nbformat.write(nb, path)
    return frozen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute lecture notebooks for committing.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        frozen = execute(path)
        print(f"{path}: executed" + (f", {frozen} widget output(s) saved as a picture" if frozen else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
