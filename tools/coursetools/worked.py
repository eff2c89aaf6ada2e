"""Worked solutions of the practicals, for students after the deadline.

LEMMA publishes its practicals worked through once students have done them;
this command does the same for the course's four practicals.  From each
solution notebook in ``solutions/`` it writes a notebook (and, by default, an
executed HTML page) that a tutor can hand out::

    python -m coursetools.worked [--out build/worked] [--no-execute] [practical2 ...]

(``make worked`` runs it.)  What a student sees there:

* every model answer, code and written, without nbgrader's markers;
* no check cells: neither their visible asserts nor the hidden tests the
  grader runs, and no answer checks;
* no marking rubric: a written answer's rubric (from ``**Marking rubric``
  to the end of its solution) is the tutor's, not the student's;
* a first cell that says what the page is, and the outputs of running it
  from the top (so the figures and tables are there without Python).

The solutions themselves are not changed, and nothing of this goes into the
student edition (``make release``): publish ``build/worked`` when the
deadline has passed, e.g. on the course page.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

from .markers import HIDDEN, SOLUTION, course_markers
from .practicals import ASSIGNMENTS, MODE_MARK, course_root

__all__ = ["worked_notebook", "write_worked", "main", "DEFAULT_OUT"]

DEFAULT_OUT = Path("build") / "worked"
RUBRIC = re.compile(r"\n*\*\*Marking rubric.*", re.S)
BANNER = (
    "> **Worked solutions.** This is {title} with the course's model answers filled in, run from top "
    "to bottom. A written answer of your own can differ in its words and still be right; what matters "
    "is the reasoning. The checks and the marking scheme are left out."
)


def _is_check(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def worked_notebook(solution, markers=None):
    """The worked-solution version of one solution notebook (a new ``NotebookNode``).

    Parameters
    ----------
    solution : str or pathlib.Path
        ``solutions/practicalN/practicalN.ipynb``.
    markers : coursetools.markers.Markers, optional
        nbgrader's region markers (default: the course's).

    Returns
    -------
    nbformat.NotebookNode

    Examples
    --------
    >>> from coursetools.practicals import course_root
    >>> nb = worked_notebook(course_root() / "solutions/practical1/practical1.ipynb")
    >>> text = "\\n".join(c.source for c in nb.cells)
    >>> "corr_gcse =" in text, "BEGIN SOLUTION" in text, "HIDDEN" in text, "Marking rubric" in text
    (True, False, False, False)
    """
    markers = markers or course_markers()
    nb = nbformat.read(str(solution), as_version=4)
    cells = []
    for cell in nb.cells:
        if _is_check(cell):
            continue
        cell = nbformat.from_dict(dict(cell))
        source = markers.without_regions(cell.source, (HIDDEN,))
        # keep the model answer, drop the marker lines around it
        source = "\n".join(line for line in source.split("\n")
                           if markers.begin_solution not in line and markers.end_solution not in line)
        if cell.cell_type == "markdown":
            source = RUBRIC.sub("", source)
            source = MODE_MARK.sub("", source)
        cell.source = source.strip("\n")
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("course", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    title = cells[0].source.split("\n", 1)[0].lstrip("# ").strip() if cells else "the practical"
    banner = nbformat.v4.new_markdown_cell(BANNER.format(title=title))
    banner["id"] = "worked-banner"
    nb.cells = [cells[0], banner] + cells[1:] if cells else [banner]
    leftover = [c.source for c in nb.cells if any(m in c.source for m in markers.all)]
    if leftover:
        raise ValueError(f"{solution}: nbgrader markers left in the worked solution: {leftover[0][:80]}")
    return nb


def write_worked(out=DEFAULT_OUT, assignments=ASSIGNMENTS, root=None, execute=True, timeout=600):
    """Write ``out/practicalN.ipynb`` (and ``.html`` when ``execute``) for each assignment.

    Returns the list of files written.
    """
    root = Path(root) if root else course_root()
    out = Path(out)
    if not out.is_absolute():
        out = root / out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in assignments:
        solution = root / "solutions" / name / f"{name}.ipynb"
        if not solution.exists():
            raise FileNotFoundError(f"no solution notebook {solution}; assignments are {ASSIGNMENTS}")
        nb = worked_notebook(solution, course_markers(root))
        if execute:
            from nbclient import NotebookClient

            # run where the practical runs, so its data and answer checks are found
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(solution.parent)}}).execute()
        target = out / f"{name}.ipynb"
        nbformat.write(nb, str(target))
        written.append(target)
        if execute:
            from nbconvert import HTMLExporter

            html, _ = HTMLExporter().from_notebook_node(nb)
            page = out / f"{name}.html"
            page.write_text(html, encoding="utf-8")
            written.append(page)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.worked",
        description="Write the practicals' worked solutions (model answers, no checks, no "
                    "rubrics), to publish after the deadline.")
    parser.add_argument("assignments", nargs="*", default=list(ASSIGNMENTS),
                        help=f"which practicals (default: all of {', '.join(ASSIGNMENTS)})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder to write (default: build/worked)")
    parser.add_argument("--no-execute", action="store_true",
                        help="write the notebooks without running them (and no HTML)")
    args = parser.parse_args(argv)
    unknown = [a for a in args.assignments if a not in ASSIGNMENTS]
    if unknown:
        parser.error(f"unknown practical(s) {unknown}: choose from {', '.join(ASSIGNMENTS)}")
    for path in write_worked(args.out, args.assignments, execute=not args.no_execute):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
