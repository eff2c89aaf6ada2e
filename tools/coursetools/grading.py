"""Grade a class's practicals with nbgrader in one command (a tool for tutors).

Usage, from the course folder (the one holding ``nbgrader_config.py``)::

    make grade
    python -m coursetools.grading [--course-dir DIR] [--assignment NAME] [--student ID]
                                 [--timeout SECONDS] [--max-time SECONDS] [--no-feedback]

Put each student's notebooks in ``submitted/<student>/<assignment>/`` (what
``nbgrader collect`` or ``nbgrader zip_collect`` produce).  The command then

1. makes sure the gradebook knows every assignment that has submissions (it
   runs ``generate_assignment`` into a throw-away folder, so the committed
   ``practicals/`` is never touched);
2. autogrades every submission; a cell that outruns ``c.Execute.timeout`` is
   interrupted, and a wall-clock guard (``--max-time``) kills the kernel of a
   submission that still does not finish, so one pathological notebook can
   neither stop nor hang the others;
3. writes feedback to ``feedback/<student>/<assignment>/`` with the hidden
   tests removed (also from the tracebacks of failed hidden tests);
4. writes ``grades.csv`` (assignment, student_id, status, score, max_score,
   reasons) and prints one line per student and assignment, for example::

       alice  practical1  needs manual grading  10.0 / 14.0  3 manual answers to grade (q3_scatter, ...)
       bob    practical1  graded                 0.0 / 14.0
       dave   practical1  graded                 9.0 / 14.0  interrupted after 120 s: q1_corr
       erin   practical1  needs manual grading   9.0 / 14.0  test cell q1_corr_test deleted (nbgrader scores it 0 of 1)
       frank  practical1  could not be graded      - / 14.0  the kernel died while running cell q1_corr

The three statuses:

* ``graded`` - every point is settled; the score is final.
* ``needs manual grading`` - written answers wait for the tutor (grade them in
  nbgrader's formgrader, then run the command again to refresh feedback and
  grades.csv; manual scores are kept), or a test/answer cell or notebook is
  missing from the submission, which nbgrader silently scores 0: look at it.
* ``could not be graded`` - the kernel died, a cell ignored the interrupt at
  the timeout, the whole submission outran ``--max-time``, or the notebook is
  unreadable.  grades.csv leaves its score empty; the others are graded.

The command exits with status 1 when some submission could not be graded (and
names them on stderr), otherwise 0.  ``nbgrader autograde`` on the command
line hides such failures in its log, which is why this module drives nbgrader
from Python and inspects the gradebook and the autograded notebooks itself.
Every run regrades all selected submissions.

This module is not imported by ``mlmhelpers`` (the students' library): it needs nbgrader, which
students do not.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SubmissionResult", "grade_course", "main"]

GRADED = "graded"
NEEDS_MANUAL = "needs manual grading"
FAILED = "could not be graded"


@dataclass
class SubmissionResult:
    """The outcome of grading one student's submission of one assignment.

    ``status`` is one of ``"graded"``, ``"needs manual grading"`` or
    ``"could not be graded"``; ``reasons`` says why (and carries notes such as
    a cell that was interrupted after the time limit).  ``score`` is the
    gradebook's total (``None`` when the submission could not be graded).
    """

    student: str
    assignment: str
    status: str
    score: float | None = None
    max_score: float | None = None
    reasons: list[str] = field(default_factory=list)
    autograde_seconds: float | None = None
    feedback_seconds: float | None = None
    feedback_files: list[str] = field(default_factory=list)

    def line(self, width_student: int = 10, width_assignment: int = 12) -> str:
        """One report line: student, assignment, status, score and why."""
        score = "-" if self.score is None else f"{self.score:.1f}"
        top = "-" if self.max_score is None else f"{self.max_score:.1f}"
        text = (
            f"{self.student:<{width_student}} {self.assignment:<{width_assignment}} "
            f"{self.status:<20} {score:>5} / {top:<5}"
        )
        if self.reasons:
            text += "  " + "; ".join(self.reasons)
        return text.rstrip()


# ---------------------------------------------------------------------------
# nbgrader configuration
# ---------------------------------------------------------------------------


def _config(course_dir: Path, timeout: float | None = None):
    """The course's nbgrader configuration with the overrides grading needs."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    cfg = Config()
    config_file = course_dir / "nbgrader_config.py"
    if config_file.exists():
        cfg.merge(PyFileConfigLoader(config_file.name, str(course_dir)).load_config())
    override = Config()
    override.CourseDirectory.root = str(course_dir)
    if timeout is not None:
        override.Execute.timeout = int(timeout)
    # Interrupt a cell that outruns the timeout; the rest of the notebook runs.
    override.Execute.interrupt_on_timeout = True
    override.Execute.raise_on_iopub_timeout = True
    # Nothing of a kernel is kept after grading: stop it without waiting.
    override.Execute.shutdown_kernel = "immediate"
    if "extra_arguments" not in cfg.Execute:
        # Keep the kernel's own start-up warnings out of the tutor's report.
        override.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:",
                                            "--IPKernelApp.log_level=ERROR"]
    cfg.merge(override)
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    steps = cfg.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default())
    cfg.Autograde.autograde_preprocessors = [_execute_class() if p is Execute else p for p in steps]
    return cfg


def _venv_on_path() -> None:
    """Put this Python's scripts folder on PATH.

    nbgrader creates a new gradebook by running the ``alembic`` script found
    on PATH, which fails when the venv's Python is called directly (as
    ``make grade`` does) without the venv being activated.
    """
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path


def _coursedir(cfg):
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=cfg)


def _logger(name: str = "coursetools.grading"):
    import logging

    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def _clear_hidden_tests_class():
    """The preprocessor that keeps hidden tests out of feedback.

    The same one the course's ``nbgrader_config.py`` uses
    (:class:`coursetools.practicals.ClearHiddenTestsForFeedback`): it removes
    the hidden regions and cuts the tracebacks of test cells that had one to
    the error's name and message, so no reference value is shown.
    """
    from .practicals import ClearHiddenTestsForFeedback

    return ClearHiddenTestsForFeedback


_EXECUTE_CLASS = None
_FAILED_CELL = "coursetools: execution stopped in cell"


def _execute_class():
    """nbgrader's Execute preprocessor, logging the cell where execution stopped.

    When a kernel dies, or a cell ignores the interrupt at the timeout, nbgrader
    only logs the exception; this subclass also logs which cell it was, so the
    tutor's report can name it.
    """
    global _EXECUTE_CLASS
    if _EXECUTE_CLASS is not None:
        return _EXECUTE_CLASS
    from nbgrader.preprocessors import Execute

    class ExecuteNamingFailedCell(Execute):
        def preprocess_cell(self, cell, resources, cell_index):
            try:
                return super().preprocess_cell(cell, resources, cell_index)
            except Exception:
                name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                self.log.error("%s %s", _FAILED_CELL, name or f"number {cell_index + 1}")
                raise

    _EXECUTE_CLASS = ExecuteNamingFailedCell
    return _EXECUTE_CLASS


def _feedback_config(cfg):
    """Feedback settings: HTML feedback with the hidden tests removed.

    The course's own ``GenerateFeedback.preprocessors`` are kept when they
    already clear hidden tests; otherwise ours are used.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades
    from traitlets.config import Config

    out = Config()
    out.HTMLExporter.template_name = "feedback"
    configured = cfg.GenerateFeedback.get("preprocessors", [])
    if not any(isinstance(p, type) and issubclass(p, ClearHiddenTests) for p in configured):
        out.GenerateFeedback.preprocessors = [
            GetGrades,
            _clear_hidden_tests_class(),
            CSSHTMLHeaderPreprocessor,
        ]
    return out


# ---------------------------------------------------------------------------
# autograding one submission, with a wall-clock guard
# ---------------------------------------------------------------------------


def _run_app(app) -> dict:
    from nbgrader.utils import capture_log

    start = time.perf_counter()
    result = capture_log(app)
    result["seconds"] = time.perf_counter() - start
    return result


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid``, parents before children (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class _Guard:
    """Kill the kernels started after entry once ``seconds`` have passed.

    The student's code runs in a kernel process, never in this one, so
    killing the kernels is enough to stop any submission: nbclient then sees
    a dead kernel and nbgrader gives up on that submission alone.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.fired = threading.Event()

    def _fire(self) -> None:
        self.fired.set()
        for pid in reversed(_descendants(os.getpid())):
            if pid not in self._before:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def __enter__(self):
        self._before = set(_descendants(os.getpid()))
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False


def _autograde(coursedir, cfg, student: str, assignment: str, max_time: float, feedback: bool) -> dict:
    """Autograde one submission and generate its feedback; return the logs."""
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.utils import temp_attrs
    from traitlets.config import Config

    log = _logger()
    out: dict = {}
    with temp_attrs(coursedir, assignment_id=assignment, student_id=student):
        with _Guard(max_time) as guard:
            app = Autograde(coursedir=coursedir, config=cfg, log=log)
            app.force = True
            app.create_student = True
            out["autograde"] = _run_app(app)
        out["killed"] = guard.fired.is_set()
        if out["autograde"]["success"] and not out["killed"] and feedback:
            fb_cfg = Config(cfg)
            fb_cfg.merge(_feedback_config(cfg))
            app = GenerateFeedback(coursedir=coursedir, config=fb_cfg, log=log)
            app.force = True
            out["feedback"] = _run_app(app)
    return out


# ---------------------------------------------------------------------------
# inspecting submissions and results
# ---------------------------------------------------------------------------


def _find_submissions(coursedir, assignments, students) -> list[tuple[str, str]]:
    """(student, assignment) pairs with notebooks under the submitted folder."""
    root = Path(coursedir.root) / coursedir.submitted_directory
    pairs = []
    if not root.is_dir():
        return pairs
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if students and student_dir.name not in students:
            continue
        for assignment_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if assignments and assignment_dir.name not in assignments:
                continue
            if any(assignment_dir.glob("*.ipynb")):
                pairs.append((student_dir.name, assignment_dir.name))
    return pairs


def _ensure_in_gradebook(coursedir, cfg, assignment: str) -> str | None:
    """Record the assignment's cells in the gradebook; return an error or None.

    ``generate_assignment`` is what puts an assignment's grade cells in the
    gradebook.  It runs here into a temporary release folder so that the
    committed student versions stay untouched.
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.utils import temp_attrs

    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    if not source.is_dir():
        return f"no source folder {source} for this assignment"
    with tempfile.TemporaryDirectory(prefix="mlmrelease-") as tmp:
        with temp_attrs(coursedir, assignment_id=assignment, release_directory=tmp):
            app = GenerateAssignment(coursedir=coursedir, config=cfg, log=_logger())
            app.force = True
            app.create_assignment = True
            result = _run_app(app)
    if result["success"]:
        return None
    return "generate_assignment failed: " + _first_error(result)


def _first_error(result: dict) -> str:
    text = result.get("log", "") + "\n" + result.get("error", "")
    for line in text.splitlines():
        if line.startswith("[ERROR]") and "There was an error" not in line and _FAILED_CELL not in line:
            return line[len("[ERROR]"):].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def _failed_cell(result: dict) -> str | None:
    """The cell in which execution stopped, as logged by our Execute subclass."""
    found = re.search(re.escape(_FAILED_CELL) + r" (.+)", result.get("log", ""))
    return f"cell {found.group(1).strip()}" if found else None


def _failure_reason(result: dict, timeout) -> str:
    """Why nbgrader could not autograde a submission, from its log."""
    text = result.get("log", "") + "\n" + result.get("error", "")
    cell = _failed_cell(result) or "a cell"
    if "DeadKernelError" in text or "Kernel died" in text:
        return f"the kernel died while running {cell}"
    if "Timeout waiting for IOPub output" in text:
        return f"{cell} outran the {timeout:g} s timeout and ignored the interrupt (it catches KeyboardInterrupt)"
    if "CellTimeoutError" in text or "Timeout waiting for execute reply" in text:
        return f"{cell} outran the {timeout:g} s timeout"
    return "nbgrader failed: " + _first_error(result)


def _cell_ids(nb) -> set[str]:
    ids = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") and (meta.get("grade") or meta.get("solution") or meta.get("task")):
            ids.add(meta["grade_id"])
    return ids


def _check_cells(coursedir, gb, student: str, assignment: str) -> tuple[list[str], list[str]]:
    """Compare the submitted notebooks with the gradebook's record of the source.

    Returns (reasons needing a tutor, fatal problems).  nbgrader silently
    gives a deleted test cell 0 points; this is where that is caught.
    """
    import nbformat

    manual, fatal = [], []
    folder = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    for notebook in gb.find_assignment(assignment).notebooks:
        path = folder / f"{notebook.name}.ipynb"
        if not path.exists():
            manual.append(f"notebook {notebook.name}.ipynb not submitted (nbgrader scores it 0)")
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported
            fatal.append(f"{path.name} is not a readable notebook ({type(err).__name__})")
            continue
        present = _cell_ids(nb)
        for cell in notebook.grade_cells:
            if cell.name in present:
                continue
            kind = "test cell" if cell.cell_type == "code" else "answer cell"
            manual.append(f"{kind} {cell.name} deleted (nbgrader scores it 0 of {cell.max_score:g})")
        for cell in notebook.task_cells:
            if cell.name not in present:
                manual.append(f"task cell {cell.name} deleted (nbgrader scores it 0 of {cell.max_score:g})")
    return manual, fatal


def _timed_out_cells(coursedir, student: str, assignment: str) -> list[str]:
    """Cells of the autograded notebooks that were interrupted at the timeout."""
    import nbformat

    folder = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
                name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
                found.append(name)
    return found


def _scores(gb, student: str, assignment: str) -> tuple[float, float, list[str]]:
    """(score, max score, manual answers still to grade) from the gradebook."""
    submission = gb.find_submission(assignment, student)
    pending = []
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.needs_manual_grade and grade.manual_score is None:
                pending.append(grade.name)
    natural = lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]  # noqa: E731
    return float(submission.score), float(submission.max_score), sorted(pending, key=natural)


# ---------------------------------------------------------------------------
# the workflow
# ---------------------------------------------------------------------------


def grade_course(
    course_dir: str | os.PathLike = ".",
    assignments: list[str] | None = None,
    students: list[str] | None = None,
    timeout: float | None = None,
    max_time: float | None = None,
    feedback: bool = True,
    csv_path: str | os.PathLike | None = None,
    echo=None,
) -> list[SubmissionResult]:
    """Autograde every submission of a course and write feedback and grades.csv.

    Parameters
    ----------
    course_dir : path
        The nbgrader course folder (holding ``nbgrader_config.py``,
        ``solutions/`` and ``submitted/``).
    assignments, students : list of str, optional
        Grade only these assignments / students (default: everything found
        under ``submitted/``).
    timeout : float, optional
        Seconds a single cell may run before it is interrupted (default: the
        course's ``c.Execute.timeout``).
    max_time : float, optional
        Wall-clock limit for autograding one whole submission; past it the
        kernel is killed and the submission is reported as not graded
        (default ``10 * timeout + 60``).
    feedback : bool
        Write HTML feedback (hidden tests removed) to ``feedback/``.
    csv_path : path, optional
        Where to write the grades (default ``<course_dir>/grades.csv``).
    echo : callable, optional
        Called with each report line (default: print it at once).

    Returns
    -------
    list of SubmissionResult
        One per (student, assignment), in the printed order.

    Examples
    --------
    >>> results = grade_course(".", assignments=["practical1"])  # doctest: +SKIP
    Grading 2 submission(s) of practical1 in /home/tutor/mlm (cells time out after 120 s)
    alice      practical1   needs manual grading  10.0 / 14.0   3 manual answers to grade (q3_scatter, ...)
    bob        practical1   graded                 0.0 / 14.0
    1 graded, 1 need manual grading, 0 could not be graded. Grades: ...
    >>> [(r.student, r.status, r.score) for r in results]  # doctest: +SKIP
    [('alice', 'needs manual grading', 10.0), ('bob', 'graded', 0.0)]
    """
    import warnings

    with warnings.catch_warnings():
        # nbgrader's own SQLAlchemy warnings say nothing to a tutor.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        return _grade_course(Path(course_dir), assignments, students, timeout, max_time,
                             feedback, csv_path, echo)


def _grade_course(course_dir, assignments, students, timeout, max_time, feedback, csv_path, echo):
    from nbgrader.api import Gradebook

    _venv_on_path()
    echo = echo or (lambda line: print(line, flush=True))
    course_dir = Path(course_dir).resolve()
    cfg = _config(course_dir, timeout)
    coursedir = _coursedir(cfg)
    cell_timeout = timeout if timeout is not None else cfg.Execute.get("timeout", 30)
    if max_time is None:
        max_time = 10 * float(cell_timeout) + 60
    pairs = _find_submissions(coursedir, assignments, students)
    if not pairs:
        echo(f"No submissions found under {course_dir / coursedir.submitted_directory}/<student>/<assignment>/")
        return []
    setup_errors = {}
    for assignment in sorted({a for _, a in pairs}):
        error = _ensure_in_gradebook(coursedir, cfg, assignment)
        if error:
            setup_errors[assignment] = error

    echo(f"Grading {len(pairs)} submission(s) of {', '.join(sorted({a for _, a in pairs}))} "
         f"in {course_dir} (cells time out after {float(cell_timeout):g} s)")
    width_s = max([10] + [len(s) for s, _ in pairs])
    width_a = max([12] + [len(a) for _, a in pairs])
    results = []
    for student, assignment in pairs:
        result = _grade_one(coursedir, cfg, Gradebook, student, assignment,
                            setup_errors.get(assignment), cell_timeout, max_time, feedback)
        results.append(result)
        echo(result.line(width_s, width_a))

    csv_file = Path(csv_path) if csv_path else course_dir / "grades.csv"
    _write_csv(results, csv_file)
    counts = {status: sum(r.status == status for r in results) for status in (GRADED, NEEDS_MANUAL, FAILED)}
    echo(f"{counts[GRADED]} graded, {counts[NEEDS_MANUAL]} need manual grading, "
         f"{counts[FAILED]} could not be graded. Grades: {csv_file}"
         + (f"; feedback: {course_dir / coursedir.feedback_directory}" if feedback else ""))
    return results


def _grade_one(coursedir, cfg, Gradebook, student, assignment, setup_error,
               cell_timeout, max_time, feedback) -> SubmissionResult:
    result = SubmissionResult(student, assignment, FAILED)
    if setup_error:
        result.reasons.append(setup_error)
        return result
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        result.max_score = float(gb.find_assignment(assignment).max_score)
        manual, fatal = _check_cells(coursedir, gb, student, assignment)
    if fatal:
        result.reasons.extend(fatal)
        return result

    out = _autograde(coursedir, cfg, student, assignment, max_time, feedback)
    result.autograde_seconds = out["autograde"]["seconds"]
    if out["killed"]:
        shutil.rmtree(Path(coursedir.format_path(coursedir.autograded_directory, student, assignment)),
                      ignore_errors=True)
        where = _failed_cell(out["autograde"])
        result.reasons.append(f"timeout: autograding took longer than {max_time:g} s and was stopped"
                              + (f" in {where}" if where else ""))
        return result
    if not out["autograde"]["success"]:
        result.reasons.append(_failure_reason(out["autograde"], cell_timeout))
        return result

    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        result.score, result.max_score, pending = _scores(gb, student, assignment)
    timed_out = _timed_out_cells(coursedir, student, assignment)
    pending = [name for name in pending if not any(name in reason for reason in manual)]
    if pending:
        manual.append(f"{len(pending)} manual answer{'s' if len(pending) > 1 else ''} "
                      f"to grade ({', '.join(pending)})")
    result.status = NEEDS_MANUAL if manual else GRADED
    result.reasons.extend(manual)
    if timed_out:
        result.reasons.append(f"interrupted after {cell_timeout:g} s: {', '.join(timed_out)}")

    if "feedback" in out:
        result.feedback_seconds = out["feedback"]["seconds"]
        if out["feedback"]["success"]:
            folder = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
            result.feedback_files = [str(p) for p in sorted(folder.glob("*.html"))]
        else:
            result.reasons.append("feedback not written: " + _first_error(out["feedback"]))
    return result


def _write_csv(results: list[SubmissionResult], path: Path) -> None:
    columns = ["assignment", "student_id", "status", "score", "max_score", "reasons"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in sorted(results, key=lambda r: (r.assignment, r.student)):
            writer.writerow([
                r.assignment, r.student, r.status,
                "" if r.score is None else f"{r.score:g}",
                "" if r.max_score is None else f"{r.max_score:g}",
                "; ".join(r.reasons),
            ])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grading",
        description="Autograde every submission under submitted/<student>/<assignment>/, "
        "write feedback and grades.csv, and report each submission.",
    )
    parser.add_argument("--course-dir", default=".", help="course folder (default: current folder)")
    parser.add_argument("--assignment", action="append", help="grade only this assignment (repeatable)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--timeout", type=float, help="seconds one cell may run (default: c.Execute.timeout)")
    parser.add_argument("--max-time", type=float,
                        help="wall-clock seconds for one whole submission (default: 10 x timeout + 60)")
    parser.add_argument("--no-feedback", action="store_true", help="do not write HTML feedback")
    parser.add_argument("--csv", help="where to write the grades (default: <course-dir>/grades.csv)")
    args = parser.parse_args(argv)

    results = grade_course(
        args.course_dir, assignments=args.assignment, students=args.student,
        timeout=args.timeout, max_time=args.max_time, feedback=not args.no_feedback,
        csv_path=args.csv,
    )
    failed = [r for r in results if r.status == FAILED]
    if failed:
        names = ", ".join(f"{r.student}/{r.assignment}" for r in failed)
        print(f"Could not grade {len(failed)} submission(s): {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
