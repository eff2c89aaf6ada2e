"""Build the student versions of the practicals with nbgrader.

The source of every practical, with model answers, hidden tests and marking
rubrics, is ``solutions/practicalN/practicalN.ipynb``.  The student version in
``practicals/practicalN/practicalN.ipynb`` is generated from it by nbgrader's
``generate_assignment`` step and must never be edited by hand.  After changing
a solution, regenerate the student versions from the repository root with::

    python -m coursetools.practicals

The generation runs in a temporary copy of the course, so it leaves no
``gradebook.db`` or other nbgrader files behind.

This module also holds :class:`ClearHiddenTestsForFeedback`, the nbgrader
preprocessor that ``nbgrader_config.py`` adds to feedback generation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

ASSIGNMENTS = ("practical1", "practical2", "practical3", "practical4")

__all__ = [
    "ASSIGNMENTS",
    "course_root",
    "load_config",
    "generate_practicals",
    "nbgrader_environment",
    "ClearHiddenTestsForFeedback",
]


def course_root() -> Path:
    """The repository root: the folder holding ``nbgrader_config.py``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> from coursetools.practicals import course_root
    >>> (course_root() / "nbgrader_config.py").exists()
    True
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "nbgrader_config.py").exists() and (parent / "solutions").is_dir():
            return parent
    raise FileNotFoundError(
        "Could not find the course root (a folder with nbgrader_config.py and "
        "solutions/) above " + str(here) + ". Pass root= explicitly."
    )


def load_config(root):
    """Read ``root/nbgrader_config.py`` into a traitlets ``Config``.

    Parameters
    ----------
    root : str or pathlib.Path
        A course folder holding ``nbgrader_config.py``.

    Returns
    -------
    traitlets.config.Config

    Examples
    --------
    >>> from coursetools.practicals import course_root, load_config
    >>> load_config(course_root()).CourseDirectory.source_directory
    'solutions'
    """
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    if not (root / "nbgrader_config.py").exists():
        raise FileNotFoundError(f"{root} has no nbgrader_config.py; pass the course root.")
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


@contextlib.contextmanager
def nbgrader_environment():
    """Put this Python's ``bin/`` folder on ``PATH`` while nbgrader runs.

    nbgrader's gradebook runs the ``alembic`` command found on ``PATH``; when
    Python is started as ``.venv/bin/python`` without activating the
    environment, that command is not found and every gradebook operation
    fails.  Use this around any call into nbgrader's Python API.

    Examples
    --------
    >>> import shutil
    >>> from coursetools.practicals import nbgrader_environment
    >>> with nbgrader_environment():
    ...     shutil.which("alembic") is not None
    True
    """
    bindir = str(Path(sys.executable).parent)
    old = os.environ.get("PATH", "")
    if bindir in old.split(os.pathsep):
        yield
        return
    os.environ["PATH"] = bindir + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def generate_practicals(root=None, output=None, assignments=ASSIGNMENTS):
    """Generate the student versions of the practicals from ``solutions/``.

    nbgrader's ``generate_assignment`` runs in a temporary copy of the course
    (source notebooks and ``nbgrader_config.py``), so no gradebook or log is
    written to the repository.  Each ``output/<assignment>/`` folder is then
    replaced by the freshly generated one.

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The course root (default: this repository).
    output : str or pathlib.Path, optional
        Where the student versions go (default: ``root/practicals``).
    assignments : sequence of str
        Which practicals to generate (default: all four).

    Returns
    -------
    list of pathlib.Path
        The generated notebooks.

    Examples
    --------
    >>> import tempfile
    >>> from coursetools.practicals import generate_practicals
    >>> out = tempfile.mkdtemp()
    >>> [p.name for p in generate_practicals(output=out, assignments=["practical1"])]
    ['practical1.ipynb']
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = Path(root) if root is not None else course_root()
    output = Path(output) if output is not None else root / "practicals"
    unknown = [a for a in assignments if not (root / "solutions" / a).is_dir()]
    if unknown:
        raise ValueError(
            f"No source folder solutions/<name> for {unknown}; "
            f"the practicals are {list(ASSIGNMENTS)}."
        )

    generated = []
    with tempfile.TemporaryDirectory(prefix="mlm-generate-") as tmp, nbgrader_environment():
        tmp = Path(tmp)
        shutil.copy2(root / "nbgrader_config.py", tmp / "nbgrader_config.py")
        for name in assignments:
            shutil.copytree(
                root / "solutions" / name,
                tmp / "solutions" / name,
                ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
            )
        config = load_config(tmp)
        config.CourseDirectory.root = str(tmp)
        config.CourseDirectory.db_url = f"sqlite:///{tmp / 'gradebook.db'}"
        config.Exchange.root = str(tmp / ".exchange")
        coursedir = CourseDirectory(config=config)
        api = NbGraderAPI(coursedir=coursedir, config=config)
        for name in assignments:
            result = api.generate_assignment(name, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(
                    f"nbgrader could not generate {name}:\n{result.get('log') or result.get('error')}"
                )
            made = tmp / "practicals" / name
            target = output / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(made, target)
            generated.extend(sorted(target.glob("*.ipynb")))
    return generated


def _make_feedback_preprocessor():
    from nbgrader.preprocessors import ClearHiddenTests

    class ClearHiddenTestsForFeedback(ClearHiddenTests):
        """Remove hidden tests from feedback, including from error tracebacks.

        nbgrader's feedback is rendered from the autograded notebook, in which
        the hidden tests are back in place.  This preprocessor deletes the
        ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` regions and,
        in the test cells that had one, replaces each error traceback (which
        would quote the failing line, reference value included) by the error's
        name and message only.
        """

        def preprocess_cell(self, cell, resources, cell_index):
            had_hidden = (
                cell.cell_type == "code" and self.begin_test_delimeter in cell.source
            )
            cell, resources = super().preprocess_cell(cell, resources, cell_index)
            if had_hidden:
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
            return cell, resources

    return ClearHiddenTestsForFeedback


def __getattr__(name):
    # nbgrader is imported only when the preprocessor is asked for, so that
    # ``import mlmhelpers`` stays light.
    if name == "ClearHiddenTestsForFeedback":
        cls = _make_feedback_preprocessor()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.practicals",
        description="Regenerate practicals/ (student versions) from solutions/ with nbgrader.",
    )
    parser.add_argument("assignments", nargs="*", default=list(ASSIGNMENTS),
                        help="practicals to generate (default: all)")
    args = parser.parse_args(argv)
    for path in generate_practicals(assignments=args.assignments):
        print(f"generated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
