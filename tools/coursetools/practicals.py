"""Build the student versions of the practicals with nbgrader.

The source of every practical, with model answers, hidden tests and marking
rubrics, is ``solutions/practicalN/practicalN.ipynb``.  The student version in
``practicals/practicalN/practicalN.ipynb`` is generated from it by nbgrader's
``generate_assignment`` step and must never be edited by hand.  After changing
a solution, regenerate the student versions from the repository root with::

    python -m coursetools.practicals [--mode practice|assessed]

The generation runs in a temporary copy of the course, so it leaves no
``gradebook.db`` or other nbgrader files behind.

Next to each student notebook it writes ``answer-checks.json``, which the check
cells read through :func:`mlmhelpers.practice.check_answer`.  The tutor picks
one of two modes (:data:`MODES`):

* ``practice`` (the default): every number a hidden test checks is also
  checked in the student's own notebook, against a salted hash of the answer
  rounded on a grid finer than the hidden test's tolerance, so a check says
  "right" only for a number the hidden test accepts.  Likely mistakes listed in
  the solution's test cell (cell metadata ``practice.mistakes``: a value, or a
  ``transform`` of :data:`mlmhelpers.practice.TRANSFORMS` that undoes the
  mistake, each with a message) get their own message.
* ``assessed``: the file holds no hashes; the checks test the form only and the
  notebook says that passing them is not a mark.

In both modes the file also names, for every variable the practical defines,
the cell that defines it, so that a ``NameError`` says which cell to run.

The student notebook is also made to open unmodified in JupyterLab:
JupyterLab replaces the notebook's ``language_info`` by the running kernel's
(which includes the Python version) as soon as the kernel starts, and marks the
notebook as changed if it differs.  The generated notebook therefore records the
``language_info`` of the Python that generates it; generate with the Python
release the students run (the course's environment) and they open clean.

This module also holds :class:`ClearHiddenTestsForFeedback`, the nbgrader
preprocessor that ``nbgrader_config.py`` adds to feedback generation.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path

ASSIGNMENTS = ("practical1", "practical2", "practical3", "practical4")
#: The two kinds of student version: answer checks against hashes, or form checks only.
MODES = ("practice", "assessed")
#: What an unanswered code cell says when it is run (nbgrader's stub, with a message).
CODE_STUB = ('# YOUR CODE HERE\nraise NotImplementedError("not answered yet: replace this line and '
             'the one above with your answer, then run the cell")')
#: The line of a solution's introduction that the student version replaces by the mode's text.
MODE_MARK = re.compile(r"^<!-- answer checks[^\n]*-->$", re.M)
MODE_TEXT = {
    "practice": (
        "* The cell after each answer checks it. Run it: it prints **right** (\N{CHECK MARK}) when "
        "your number is the\n  right one, and otherwise stops with a message that says it is not "
        "right, often with the\n  kind of mistake it looks like. The answers are not in the "
        "notebook: the check compares a\n  scrambled (hashed) form of your rounded number with "
        "that of the answer. **Validate** runs\n  every check; it says *Success* only when every "
        "number is right and every written answer is\n  filled in."),
    "assessed": (
        "* The cell after each answer checks only the **form** of your answer (one number, a "
        "sensible range).\n  **Passing checks are not marks**: this practical is assessed, and "
        "your tutor's tests check the\n  values when grading. A check that passes, or a *Success* "
        "from **Validate**, does not mean\n  that the number is right."),
}

__all__ = [
    "ASSIGNMENTS",
    "MODES",
    "course_root",
    "load_config",
    "generate_practicals",
    "answer_checks",
    "committed_mode",
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


def generate_practicals(root=None, output=None, assignments=ASSIGNMENTS, mode="practice"):
    """Generate the student versions of the practicals from ``solutions/``.

    nbgrader's ``generate_assignment`` runs in a temporary copy of the course
    (source notebooks and ``nbgrader_config.py``), so no gradebook or log is
    written to the repository.  Each ``output/<assignment>/`` folder is then
    replaced by the freshly generated one, finished by :func:`_finish` (the
    mode's text, ``answer-checks.json``, the running Python's ``language_info``).

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The course root (default: this repository).
    output : str or pathlib.Path, optional
        Where the student versions go (default: ``root/practicals``).
    assignments : sequence of str
        Which practicals to generate (default: all four).
    mode : {"practice", "assessed"}
        Answer checks against hashes (practice) or form checks only (assessed).

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

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
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
        config.ClearSolutions.code_stub = {"python": CODE_STUB}
        coursedir = CourseDirectory(config=config)
        api = NbGraderAPI(coursedir=coursedir, config=config)
        for name in assignments:
            result = api.generate_assignment(name, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(
                    f"nbgrader could not generate {name}:\n{result.get('log') or result.get('error')}"
                )
            made = tmp / "practicals" / name
            _finish(made / f"{name}.ipynb", root / "solutions" / name / f"{name}.ipynb", name, mode)
            target = output / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(made, target)
            generated.extend(sorted(target.glob("*.ipynb")))
    return generated


# ---------------------------------------------------------------------------
# finishing a student version: mode text, answer checks, language_info
# ---------------------------------------------------------------------------



def _markers_of(solution):
    """nbgrader's markers (:mod:`coursetools.markers`) of the course a solution belongs to."""
    from .markers import course_markers

    if not hasattr(solution, "cells"):
        for parent in Path(solution).resolve().parents:
            if (parent / "nbgrader_config.py").exists():
                return course_markers(parent)
    return course_markers()


def _number(node) -> float:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(node.operand)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    raise ValueError(f"not a literal number: {ast.unparse(node)}")


def _hidden_tests(source: str, markers) -> list[tuple[str, dict]]:
    """(variable, how the grader checks it) for each assert of a hidden-test region."""
    bodies = [body for kind, body in markers.regions(source) if kind == "HIDDEN TESTS"]
    if not bodies:
        return []
    found = []
    for stmt in ast.parse(bodies[0]).body:
        test = stmt.test if isinstance(stmt, ast.Assert) else None
        if isinstance(test, ast.Call) and ast.unparse(test.func) == "np.isclose" \
                and isinstance(test.args[0], ast.Name):
            kw = {k.arg: _number(k.value) for k in test.keywords}
            value = _number(test.args[1])
            atol, rtol = kw.get("atol", 1e-8), kw.get("rtol", 1e-5)
            # The check's grid comes from atol alone: with rtol * |value| in it, the grid's
            # step would give the value away.  atol alone is stricter than the grader.
            how = ({"value": value, "relative": rtol} if atol == 0
                   else {"value": value, "tolerance": atol})
            found.append((test.args[0].id, how))
        elif (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Lt)
              and isinstance(test.left, ast.Name)):
            found.append((test.left.id, {"value": 0.0, "below": _number(test.comparators[0])}))
        else:
            raise ValueError("a hidden test the answer checks cannot mirror (use "
                             f"np.isclose(name, value, ...) or name < value): {ast.unparse(stmt)}")
    return found


def _assigned(source: str) -> list[str]:
    """Names a cell defines at its top level (assignments, imports, functions)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return names


def answer_checks(solution, assignment: str, mode: str = "practice") -> dict:
    """The content of ``answer-checks.json`` for one practical.

    Parameters
    ----------
    solution : str, pathlib.Path or nbformat.NotebookNode
        The source notebook (``solutions/<assignment>/<assignment>.ipynb``).
    assignment : str
        Its name (part of every hash's salt).
    mode : {"practice", "assessed"}

    Returns
    -------
    dict
        ``mode``, ``answers`` (per variable: its question and, in practice mode,
        the hashed answer and mistakes) and ``names`` (per variable: the cell
        that defines it).

    Examples
    --------
    >>> from coursetools.practicals import answer_checks, course_root
    >>> checks = answer_checks(course_root() / "solutions/practical1/practical1.ipynb", "practical1")
    >>> checks["answers"]["corr_gcse"]["question"], sorted(checks["answers"]["corr_gcse"]["right"])
    ('Question 1', ['hash', 'salt', 'scale', 'step', 'window'])
    >>> print(checks["names"]["chem"])
    made by the cell under 'Set-up' that begins `chem = mlm.load_dataset("chem97")`
    >>> "right" in answer_checks(course_root() / "solutions/practical1/practical1.ipynb",
    ...                          "practical1", "assessed")["answers"]["corr_gcse"]
    False
    """
    import nbformat
    from mlmhelpers.practice import answer_spec

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    nb = solution if hasattr(solution, "cells") else nbformat.read(str(solution), as_version=4)
    markers = _markers_of(solution)
    answers, names = {}, {}
    heading, question, last_markdown = "the top of the notebook", None, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            last_markdown = cell.source
            titles = re.findall(r"^#+\s+(.+?)\s*$", cell.source, re.M)
            if titles:
                heading = titles[-1]
            found = re.findall(r"\*\*Question (\d+)", cell.source)
            if found:
                question = f"Question {found[-1]}"
            continue
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            mistakes = cell.metadata.get("practice", {}).get("mistakes", {})
            tested = _hidden_tests(cell.source, markers)
            visible = markers.visible_part(cell.source)
            for name, how in tested:
                if f'check_answer("{name}", {name})' not in visible:
                    raise ValueError(f"{assignment}/{meta.get('grade_id')}: the visible test must end "
                                     f'with check_answer("{name}", {name})')
                entry = {"question": question or name}
                if mode == "practice":
                    kind = {k: how[k] for k in ("tolerance", "relative", "below") if k in how}
                    entry["right"] = answer_spec(how["value"], salt=f"{assignment}/{name}", **kind)
                    entry["mistakes"] = []
                    for i, mistake in enumerate(mistakes.get(name, [])):
                        if "transform" in mistake:
                            entry["mistakes"].append({"transform": mistake["transform"],
                                                      "message": mistake["message"]})
                        else:
                            spec = answer_spec(mistake["value"], salt=f"{assignment}/{name}/{i}",
                                               **kind)
                            entry["mistakes"].append({**spec, "message": mistake["message"]})
                answers[name] = entry
            unknown = set(mistakes) - {n for n, _ in tested}
            if unknown:
                raise ValueError(f"{assignment}/{meta.get('grade_id')}: mistakes for {sorted(unknown)}, "
                                 "which this cell's hidden tests do not check")
            continue
        first = next((line.strip() for line in cell.source.splitlines()
                      if line.strip() and not line.startswith("#")), "")
        first = first if len(first) <= 60 else first[:57] + "..."
        if meta.get("solution"):
            found = re.findall(r"\*\*Question (\d+)", last_markdown)
            where = (f"your answer to Question {found[-1]}: write it in that question's answer "
                     "cell and run that cell" if found else
                     f"made by the cell you complete under '{heading}'")
        else:
            where = f"made by the cell under '{heading}' that begins `{first}`"
        defined = _assigned(cell.source)
        if meta.get("solution"):
            # only the names the question asks for, not the model answer's helpers
            shown = last_markdown + markers.without_regions(cell.source, ("SOLUTION",))
            defined = [n for n in defined if re.search(rf"\b{re.escape(n)}\b", shown)]
        for name in defined:
            names.setdefault(name, where)
    return {
        "about": (f"Answer checks of {assignment}.ipynb, written by the course's tools in {mode} "
                  "mode; read by mlmhelpers.practice.check_answer. Practice mode holds salted "
                  "hashes of the rounded answers, never the answers. Keep this file next to the "
                  "notebook."),
        "mode": mode,
        "answers": answers,
        "names": names,
    }


def committed_mode(folder=None) -> str:
    """The mode the student versions in ``folder`` (default: ``practicals/``) were generated in.

    Examples
    --------
    >>> from coursetools.practicals import committed_mode
    >>> committed_mode()
    'practice'
    """
    folder = Path(folder) if folder is not None else course_root() / "practicals"
    modes = set()
    for name in ASSIGNMENTS:
        path = folder / name / "answer-checks.json"
        if path.exists():
            modes.add(json.loads(path.read_text(encoding="utf-8")).get("mode"))
    if len(modes) != 1:
        raise ValueError(f"{folder} holds student versions of modes {sorted(map(str, modes))}: "
                         "regenerate them with python -m coursetools.practicals --mode ...")
    return modes.pop()


def _finish(notebook: Path, solution: Path, assignment: str, mode: str) -> None:
    """Turn nbgrader's student version into the course's (see the module's docstring)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    marks = 0
    for cell in nb.cells:
        cell.metadata.pop("practice", None)  # the mistakes' values stay with the tutor
        if cell.cell_type == "markdown" and MODE_MARK.search(cell.source):
            cell.source = MODE_MARK.sub(lambda _: MODE_TEXT[mode], cell.source)
            marks += 1
    if marks != 1:
        raise ValueError(f"{solution}: the introduction needs the line '<!-- answer checks ... -->' "
                         "once (the student version explains the checks there)")
    # JupyterLab sets language_info to the kernel's as it starts; equal, it changes nothing.
    info = nb.metadata.setdefault("language_info", {})
    info.update({"name": "python", "version": platform.python_version(), "mimetype": "text/x-python",
                 "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
                 "pygments_lexer": f"ipython{sys.version_info[0]}", "nbconvert_exporter": "python",
                 "file_extension": ".py"})
    nbformat.write(nb, notebook)
    checks = answer_checks(solution, assignment, mode)
    (notebook.parent / "answer-checks.json").write_text(
        json.dumps(checks, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


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
    parser.add_argument("--mode", choices=MODES, default="practice",
                        help="practice (default): each answer is checked against a hash of the "
                             "right one; assessed: form checks only, and the notebook says that "
                             "passing checks are not marks")
    args = parser.parse_args(argv)
    for path in generate_practicals(assignments=args.assignments, mode=args.mode):
        print(f"generated {path} ({args.mode} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
