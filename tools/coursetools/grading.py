"""Grade a class's practicals with nbgrader in one command (a tool for tutors).

Usage, from the course folder (the one holding ``nbgrader_config.py``)::

    make grade
    python -m coursetools.grading [--course-dir DIR] [--assignment NAME] [--student ID]
                                 [--timeout SECONDS] [--max-time SECONDS] [--jobs N]
                                 [--no-feedback] [--csv PATH] [--unsafe-no-sandbox]

Put each student's notebooks in ``submitted/<student>/<assignment>/`` (what
``nbgrader collect`` or ``nbgrader zip_collect`` produce).  The command then

1. makes sure the gradebook knows every assignment that has submissions (it
   runs ``generate_assignment`` into a throw-away folder, so the committed
   ``practicals/`` is never touched);
2. stages a clean copy of each submission (:mod:`coursetools.submission`):
   tampered metadata, edited test cells, copied cells and browser download
   names are repaired and reported by name;
3. runs each copy in its own sandbox (:mod:`coursetools.sandbox`, bubblewrap),
   ``--jobs`` at a time, with the test cells' code removed; a cell that outruns
   ``c.Execute.timeout`` is interrupted, and a wall-clock guard (``--max-time``)
   kills the sandbox of a submission that still does not finish.  Each job is
   a worker process of its own that takes its submissions through steps 2-5
   (only the gradebook writes take turns, under one lock); graded as root, a
   worker forks each notebook's process from a Python that has the course's
   libraries loaded (``sandboxed/zygote.py``);
4. runs the tests in a clean process on the plain values recorded in the
   sandbox (:mod:`coursetools.tester`), and lets nbgrader's own autograde
   steps score the result (so the gradebook and formgrader work as usual);
5. writes feedback to ``feedback/<student>/<assignment>/`` with the hidden
   tests removed (also from the tracebacks of failed hidden tests);
6. updates ``grades.csv`` (assignment, student_id, status, score, max_score,
   reasons) and ``grading-report.json`` beside it (every named event), keeping
   the rows of submissions not graded in this run, and prints one line per
   student and assignment, for example::

       alice  practical1  needs manual grading  10.0 / 14.0  3 manual answers to grade (q3_scatter, ...)
       bob    practical1  graded                 0.0 / 14.0
       dave   practical1  graded                 9.0 / 14.0  interrupted after 120 s: q1_corr
       erin   practical1  needs manual grading   9.0 / 14.0  cell deleted: test cell q1_corr_test deleted ...
       frank  practical1  could not be graded      - / 14.0  the kernel died while running cell q1_corr

The three statuses:

* ``graded`` - every point is settled; the score is final.
* ``needs manual grading`` - written answers wait for the tutor (grade them in
  nbgrader's formgrader, then run the command again; marks of unchanged
  answers are kept, marks of answers changed since marking are cleared), or a
  test/answer cell or notebook is missing from the submission, which nbgrader
  silently scores 0: look at it.
* ``could not be graded`` - the kernel died, a cell ignored the interrupt at
  the timeout, the whole submission outran ``--max-time``, or the notebook is
  unreadable.  grades.csv keeps the last good score of an earlier run (and
  says so) or leaves it empty; the others are graded.

The command exits with status 1 when some submission could not be graded (and
names them on stderr), 2 when no sandbox can be made (it says what to
install), otherwise 0.

This module is not imported by ``mlmhelpers`` (the students' library): it needs nbgrader, which
students do not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
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
    events: list[dict] = field(default_factory=list)
    kept_last_good: bool = False
    timings: dict = field(default_factory=dict)  # seconds per step, for the report and benchmarks

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

    # Student code never runs in nbgrader's own kernel: the Execute step puts in
    # the outputs computed in the sandbox and the verdicts of the clean test run.
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    steps = cfg.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default())
    cfg.Autograde.autograde_preprocessors = [
        _apply_results_class() if p is Execute
        else _writes_in_turn(p) if p in (SaveAutoGrades, AssignLatePenalties) else p for p in steps]
    return cfg


# Seconds this process waited for its turn to write the gradebook.
_TURN_WAIT = [0.0]
_IN_TURN: dict = {}


class _GradebookTurn:
    """This worker's turn to write the gradebook (workers write one at a time).

    SQLite would serialise the writes itself, but two processes that both
    read and then write can make one of them fail at once ("database is
    locked"); taking turns avoids that.  Only nbgrader's steps that write
    (recording the student and submission, saving the scores, late
    penalties) and the manual-mark bookkeeping take a turn; the rest of
    autograde and the feedback run in parallel.
    """

    def __enter__(self):
        self.lock = _WORKER.get("lock")
        if self.lock is not None:
            start = time.perf_counter()
            self.lock.acquire()
            _TURN_WAIT[0] += time.perf_counter() - start
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()
        return False


def _writes_in_turn(cls):
    """The nbgrader preprocessor ``cls``, run in this worker's turn to write the gradebook."""
    if cls not in _IN_TURN:
        class Step(cls):
            def preprocess(self, nb, resources):
                with _GradebookTurn():
                    return super().preprocess(nb, resources)

        Step.__name__ = Step.__qualname__ = cls.__name__
        _IN_TURN[cls] = Step
    return _IN_TURN[cls]


def _autograde_class():
    """nbgrader's Autograde, recording the student and submission in this worker's turn."""
    if "autograde" not in _IN_TURN:
        from nbgrader.converters import Autograde

        class InTurn(Autograde):
            def init_assignment(self, assignment_id, student_id):
                with _GradebookTurn():
                    return super().init_assignment(assignment_id, student_id)

        InTurn.__name__ = InTurn.__qualname__ = "Autograde"
        _IN_TURN["autograde"] = InTurn
    return _IN_TURN["autograde"]


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


_APPLY_CLASS = None
# (student, assignment, notebook) -> executed notebook, filled by the workers.
_EXECUTED: dict[tuple[str, str, str], object] = {}


def _apply_results_class():
    """An nbgrader preprocessor in place of Execute: it inserts the sandbox's results.

    It checks that nbgrader's sanitized notebook is the one that was run (same
    cells, same code) before copying the outputs across.
    """
    global _APPLY_CLASS
    if _APPLY_CLASS is not None:
        return _APPLY_CLASS
    from nbgrader.preprocessors import NbGraderPreprocessor

    class ApplySandboxResults(NbGraderPreprocessor):
        def preprocess(self, nb, resources):
            info = resources["nbgrader"]
            key = (info["student"], info["assignment"], info["notebook"])
            executed = _EXECUTED.get(key)
            if executed is None:
                raise RuntimeError(f"{_MISMATCH}: no sandbox run for {info['notebook']}")
            if len(executed.cells) != len(nb.cells) or any(
                    a.cell_type != b.cell_type or a.source != b.source
                    for a, b in zip(executed.cells, nb.cells)):
                raise RuntimeError(f"{_MISMATCH}: {info['notebook']} changed after it was run")
            for mine, theirs in zip(nb.cells, executed.cells):
                if mine.cell_type == "code":
                    mine.outputs = theirs.outputs
                    mine.execution_count = theirs.execution_count
            return nb, resources

    _APPLY_CLASS = ApplySandboxResults
    return _APPLY_CLASS


_MISMATCH = "coursetools: the notebook graded is not the one run"


_ENGINES: dict = {}
_FEEDBACK_EXPORTER = None


def _reuse_within_worker() -> None:
    """Keep what nbgrader would rebuild for every submission, within one process.

    nbgrader opens a new database engine for each of the dozen gradebook
    sessions of one autograde (so SQLAlchemy compiles every query again), and
    the feedback step parses and compiles nbconvert's HTML templates again
    for every student.  Here one engine per database and process is reused
    (keyed by process id: a forked worker never uses its parent's
    connections), and compiled templates are kept in memory (checked against
    the template's source each time).  The gradebook, its contents and the
    HTML are the same as without this.
    """
    import nbgrader.api as api

    if getattr(api, "_coursetools_reuse", False):
        return
    original = api.create_engine

    def create_engine(url, *args, **kwargs):
        key = (os.getpid(), str(url), repr(args), repr(sorted(kwargs.items())))
        if key not in _ENGINES:
            _ENGINES[key] = original(url, *args, **kwargs)
        return _ENGINES[key]

    api.create_engine = create_engine
    api._coursetools_reuse = True


def _feedback_exporter():
    """nbconvert's HTML exporter with an in-memory cache of compiled templates."""
    global _FEEDBACK_EXPORTER
    if _FEEDBACK_EXPORTER is not None:
        return _FEEDBACK_EXPORTER
    import jinja2
    from nbconvert.exporters import HTMLExporter

    class MemoryBytecodeCache(jinja2.BytecodeCache):
        def __init__(self):
            self.store = {}

        def load_bytecode(self, bucket):
            data = self.store.get(bucket.key)
            if data is not None:
                bucket.bytecode_from_string(data)

        def dump_bytecode(self, bucket):
            self.store[bucket.key] = bucket.bytecode_to_string()

    cache = MemoryBytecodeCache()

    class FeedbackHTMLExporter(HTMLExporter):
        def _create_environment(self):
            environment = super()._create_environment()
            environment.bytecode_cache = cache
            return environment

    _FEEDBACK_EXPORTER = FeedbackHTMLExporter
    return _FEEDBACK_EXPORTER


def _feedback_config(cfg):
    """Feedback settings: HTML feedback with the hidden tests removed.

    The course's own ``GenerateFeedback.preprocessors`` are kept when they
    already clear hidden tests; otherwise ours are used.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades
    from traitlets.config import Config

    out = Config()
    if "exporter_class" not in cfg.GenerateFeedback:
        out.GenerateFeedback.exporter_class = _feedback_exporter()
    out.HTMLExporter.template_name = "feedback"
    # A student's HTML (in a written answer) is shown as text, not run in the browser.
    out.HTMLExporter.sanitize_html = True
    configured = cfg.GenerateFeedback.get("preprocessors", [])
    if not any(isinstance(p, type) and issubclass(p, ClearHiddenTests) for p in configured):
        out.GenerateFeedback.preprocessors = [
            GetGrades,
            _clear_hidden_tests_class(),
            CSSHTMLHeaderPreprocessor,
        ]
    return out


# ---------------------------------------------------------------------------
# finding submissions and setting up the gradebook
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


def _run_app(app) -> dict:
    from nbgrader.utils import capture_log

    start = time.perf_counter()
    result = capture_log(app)
    result["seconds"] = time.perf_counter() - start
    return result


def _first_error(result: dict) -> str:
    text = result.get("log", "") + "\n" + result.get("error", "")
    for line in text.splitlines():
        if line.startswith("[ERROR]") and "There was an error" not in line and "Traceback" not in line:
            return line[len("[ERROR]"):].strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(" ")]
    return lines[-1].strip() if lines else "unknown error"


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _scores(gb, student: str, assignment: str) -> tuple[float, float, list[str]]:
    """(score, max score, manual answers still to grade) from the gradebook."""
    submission = gb.find_submission(assignment, student)
    pending = []
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.needs_manual_grade and grade.manual_score is None:
                pending.append(grade.name)
    return float(submission.score), float(submission.max_score), sorted(pending, key=_natural)


# ---------------------------------------------------------------------------
# state kept between runs: answers at the time of grading, last good grades
# ---------------------------------------------------------------------------


def _state_dir(course_dir: Path) -> Path:
    return course_dir / ".grading"


def _load_json(path: Path, default):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _stale_manual_marks(gb, student, assignment, answers: dict, state: dict) -> list[str]:
    """Clear manual marks of written answers that changed since they were marked.

    ``state`` holds, per answer cell, a hash of the answer as it was when last
    graded; a tutor's mark applies to that text.  A resubmission with another
    text loses the mark (the cell needs manual grading again); an unchanged
    answer keeps it.  Returns the names of the cleared cells.
    """
    cleared = []
    seen = state.setdefault(assignment, {}).setdefault(student, {})
    for notebook in gb.find_submission(assignment, student).notebooks:
        now = answers.get(notebook.name, {})
        before = seen.get(notebook.name, {})
        for grade in notebook.grades:
            old, new = before.get(grade.name), now.get(grade.name)
            if grade.manual_score is not None and old and new and old != new:
                grade.manual_score = None
                grade.needs_manual_grade = True
                cleared.append(grade.name)
        seen[notebook.name] = now
    gb.db.commit()
    return sorted(cleared, key=_natural)


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
    jobs: int | None = None,
    unsafe_no_sandbox: bool = False,
) -> list[SubmissionResult]:
    """Autograde every submission of a course and write feedback, grades.csv and a report.

    Parameters
    ----------
    course_dir : path
        The nbgrader course folder (holding ``nbgrader_config.py``,
        ``solutions/`` and ``submitted/``).
    assignments, students : list of str, optional
        Grade only these assignments / students (default: everything found
        under ``submitted/``).  Other rows of grades.csv are kept.
    timeout : float, optional
        Seconds a single cell may run before it is interrupted (default: the
        course's ``c.Execute.timeout``).
    max_time : float, optional
        Wall-clock limit for running one whole submission; past it its
        sandbox is killed and the submission is reported as not graded
        (default ``10 * timeout + 60``).
    feedback : bool
        Write HTML feedback (hidden tests removed) to ``feedback/``.
    csv_path : path, optional
        Where to write the grades (default ``<course_dir>/grades.csv``); the
        report ``grading-report.json`` is written beside it.
    echo : callable, optional
        Called with each report line (default: print it at once).
    jobs : int, optional
        Submissions run at once, each in its own sandbox (default: the number
        of CPU cores).
    unsafe_no_sandbox : bool
        Run student code without a sandbox (machines without namespaces
        only); every report line says so.

    Returns
    -------
    list of SubmissionResult
        One per (student, assignment), in the printed order.

    Raises
    ------
    coursetools.sandbox.SandboxUnavailable
        No sandbox can be made here (the message says what to install).

    Examples
    --------
    >>> results = grade_course(".", assignments=["practical1"])  # doctest: +SKIP
    Grading 2 submission(s) of practical1 in /home/tutor/mlm (cells time out after 120 s; 2 at once, each in a sandbox)
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
                             feedback, csv_path, echo, jobs, unsafe_no_sandbox)


def _prepare_support(folder: Path) -> None:
    """Things every sandbox reads: a matplotlib font cache.

    Without it every student kernel would rebuild matplotlib's font list.  It
    is built once (by the grader, never in a sandbox) and kept in the tutor's
    cache folder for later runs.
    """
    import importlib.metadata
    import shutil
    import subprocess

    try:
        version = importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coursetools"
    cached = cache_root / f"mplcache-{version}"
    if not any(cached.glob("fontlist-*.json")):
        build = Path(tempfile.mkdtemp(prefix="mplcache-", dir=folder))
        env = {"PATH": "/usr/bin:/bin", "MPLCONFIGDIR": str(build), "HOME": str(folder)}
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"],
                       env=env, capture_output=True, timeout=300)
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            build.rename(cached)
        except OSError:  # another run was quicker, or no cache folder: use this one
            cached = build
    target = folder / "mplcache"
    shutil.copytree(cached, target, dirs_exist_ok=True)
    for root, dirs, names in os.walk(folder):
        os.chmod(root, 0o755)
        for name in names:
            os.chmod(os.path.join(root, name), 0o644)


def _grade_course(course_dir, assignments, students, timeout, max_time, feedback, csv_path, echo,
                  jobs, unsafe):
    import multiprocessing

    from nbgrader.api import Gradebook

    from . import sandbox, submission

    _venv_on_path()
    echo = echo or (lambda line: print(line, flush=True))
    course_dir = Path(course_dir).resolve()
    cfg = _config(course_dir, timeout)
    coursedir = _coursedir(cfg)
    cell_timeout = float(timeout if timeout is not None else cfg.Execute.get("timeout", 30))
    if max_time is None:
        max_time = 10 * cell_timeout + 60
    pairs = _find_submissions(coursedir, assignments, students)
    if not pairs:
        echo(f"No submissions found under {course_dir / coursedir.submitted_directory}/<student>/<assignment>/")
        return []
    if not unsafe:
        sandbox.check_sandbox()
    jobs = max(1, min(int(jobs or os.cpu_count() or 1), len(pairs)))

    setup_errors, infos = {}, {}
    for assignment in sorted({a for _, a in pairs}):
        error = _ensure_in_gradebook(coursedir, cfg, assignment)
        if error:
            setup_errors[assignment] = error
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for assignment in sorted({a for _, a in pairs}):
            if assignment not in setup_errors:
                infos[assignment] = submission.assignment_info(gb, coursedir, assignment)

    state_dir = _state_dir(course_dir)
    state_dir.mkdir(exist_ok=True)
    staging = state_dir / "staged"
    csv_file = Path(csv_path) if csv_path else course_dir / "grades.csv"
    report_file = csv_file.parent / "grading-report.json"
    previous = _read_csv(csv_file)
    answer_state = _load_json(state_dir / "answers.json", {})

    mode = "WITHOUT A SANDBOX (--unsafe-no-sandbox)" if unsafe else "each in a sandbox"
    echo(f"Grading {len(pairs)} submission(s) of {', '.join(sorted({a for _, a in pairs}))} "
         f"in {course_dir} (cells time out after {cell_timeout:g} s; {jobs} at once, {mode})")
    if unsafe:
        echo("WARNING: student code runs with your rights and can read solutions/, the gradebook "
             "and other submissions. Use this only for trusted notebooks.")

    width_s = max([10] + [len(s) for s, _ in pairs])
    width_a = max([12] + [len(a) for _, a in pairs])
    results = []
    with tempfile.TemporaryDirectory(prefix="coursetools-support-") as support:
        support = Path(support)
        os.chmod(support, 0o755)
        _prepare_support(support)
        settings = submission.Settings(timeout=cell_timeout, max_time=float(max_time),
                                       unsafe=unsafe, support_dir=support)
        setup = dict(course_dir=str(course_dir), timeout=timeout, settings=settings,
                     staging=str(staging), feedback=feedback)
        tasks = []
        for student, assignment in pairs:
            submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
            seen = answer_state.get(assignment, {}).get(student, {})
            tasks.append(dict(student=student, assignment=assignment, submitted=str(submitted),
                              info=infos.get(assignment), setup_error=setup_errors.get(assignment),
                              previous=previous.get((assignment, student)), seen=seen))

        def finish(task, outcome):
            result, seen = outcome
            if seen is not None:
                answer_state.setdefault(task["assignment"], {})[task["student"]] = seen
            if unsafe:
                result.events.append({"kind": submission.UNSAFE, "cell": None,
                                      "detail": "graded without a sandbox (--unsafe-no-sandbox)"})
                result.reasons.append("graded WITHOUT a sandbox")
            results.append(result)
            echo(result.line(width_s, width_a))
            _write_json(state_dir / "answers.json", answer_state)

        if jobs == 1:
            # One job: no worker process to start; everything runs here, in order.
            _worker_start(setup, None, None)
            try:
                for task in tasks:
                    finish(task, _worker_grade(task))
            finally:
                _worker_stop()
        else:
            # Each worker process runs whole submissions: staging, its sandbox, the
            # clean tests, nbgrader's autograde and feedback.  Only the gradebook
            # writes take turns (one lock: _GradebookTurn).
            from concurrent.futures import ProcessPoolExecutor

            # Forked, the workers start at once with nbgrader already imported (and
            # a grading script needs no ``if __name__ == "__main__"`` guard).
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            slots = context.Queue()
            for slot in range(1, jobs + 1):
                slots.put(slot)
            lock = context.Lock()
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start,
                                     initargs=(setup, lock, slots)) as pool:
                futures = [pool.submit(_worker_grade, task) for task in tasks]
                for task, future in zip(tasks, futures):
                    try:
                        outcome = future.result()
                    except Exception as err:  # noqa: BLE001 - a lost worker fails its submission only
                        outcome = (_failed(task, f"grading error: {type(err).__name__}: {err}"), None)
                    finish(task, outcome)

    _write_csv(results, csv_file, previous)
    _write_report(results, report_file, unsafe)
    counts = {status: sum(r.status == status for r in results) for status in (GRADED, NEEDS_MANUAL, FAILED)}
    echo(f"{counts[GRADED]} graded, {counts[NEEDS_MANUAL]} need manual grading, "
         f"{counts[FAILED]} could not be graded. Grades: {csv_file}; report: {report_file}"
         + (f"; feedback: {course_dir / coursedir.feedback_directory}" if feedback else ""))
    return results


# The state of one grading worker (a process of its own, or the main process
# with one job): its configuration, sandbox slot and gradebook lock.
_WORKER: dict = {}


def _worker_start(setup: dict, lock, slots) -> None:
    """Set up a worker: nbgrader's configuration and its own sandbox slot."""
    import warnings

    warnings.filterwarnings("ignore", message=".*not in session.*")
    _venv_on_path()
    _reuse_within_worker()
    cfg = _config(Path(setup["course_dir"]), setup["timeout"])
    _WORKER.clear()
    _WORKER.update(setup, cfg=cfg, coursedir=_coursedir(cfg), lock=lock,
                   slot=1 if slots is None else slots.get())


def _worker_stop() -> None:
    from . import submission

    submission.shutdown_worker()
    _WORKER.clear()


def _failed(task: dict, reason: str) -> SubmissionResult:
    result = SubmissionResult(task["student"], task["assignment"], FAILED, reasons=[reason])
    _keep_last_good(result, {(task["assignment"], task["student"]): task["previous"]}
                    if task["previous"] else {})
    return result


def _worker_grade(task: dict):
    """Grade one submission from start to end; return (result, its answers' hashes or None)."""
    from . import submission

    student, assignment = task["student"], task["assignment"]
    previous = {(assignment, student): task["previous"]} if task["previous"] else {}
    timings = {}
    start = time.perf_counter()
    try:
        if task["setup_error"]:
            staged, runs = None, {}
        else:
            staged = submission.stage(Path(task["submitted"]), Path(_WORKER["staging"]) / student / assignment,
                                      student, task["info"])
            timings["staging"] = time.perf_counter() - start
            runs = {}
            if not staged.fatal:
                for name, nb in staged.notebooks.items():
                    runs[name] = submission.execute(nb, task["info"], _WORKER["settings"],
                                                    _WORKER["slot"], student)
                    if runs[name].failure:
                        break
        state = {assignment: {student: dict(task["seen"])}}
        result = _grade_one(_WORKER["coursedir"], _WORKER["cfg"], student, assignment, task["setup_error"],
                            staged, runs, _WORKER["feedback"], previous, state,
                            Path(_WORKER["staging"]))
        result.timings.update(timings)
        seen = state[assignment][student] if result.status != FAILED else None
    except Exception as err:  # noqa: BLE001 - one submission never stops the others
        return _failed(task, f"grading error: {type(err).__name__}: {err}"), None
    return result, seen


def _keep_last_good(result: SubmissionResult, previous: dict) -> None:
    row = previous.get((result.assignment, result.student))
    if row and row.get("status") in (GRADED, NEEDS_MANUAL) and row.get("score"):
        result.score = float(row["score"])
        if row.get("max_score"):
            result.max_score = float(row["max_score"])
        result.kept_last_good = True
        result.reasons.append(f"kept the last good grade ({result.score:g}, {row['status']})")


def _grade_one(coursedir, cfg, student, assignment, setup_error, staged, runs, feedback,
               previous, answer_state, staging) -> SubmissionResult:
    from nbgrader.api import Gradebook
    from nbgrader.converters import GenerateFeedback
    from nbgrader.utils import temp_attrs
    from traitlets.config import Config

    result = SubmissionResult(student, assignment, FAILED)
    if setup_error:
        result.reasons.append(setup_error)
        return result
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        result.max_score = float(gb.find_assignment(assignment).max_score)
    events = list(staged.events)
    for run in runs.values():
        events.extend(run.events)
    result.events = [e.as_dict() for e in events]
    notes = [f"{e.kind}: {e.detail}" for e in events]
    result.autograde_seconds = sum(r.seconds for r in runs.values())
    for run in runs.values():
        for key, value in run.timing.items():
            if not key.startswith("cell "):
                result.timings[key] = result.timings.get(key, 0.0) + value
    failures = [r.failure for r in runs.values() if r.failure]
    if staged.fatal or failures:
        result.reasons.extend(staged.fatal + failures + notes)
        _keep_last_good(result, previous)
        return result

    log = _logger()
    for name, run in runs.items():
        _EXECUTED[(student, assignment, name)] = run.notebook
    waited = _TURN_WAIT[0]
    try:
        with temp_attrs(coursedir, assignment_id=assignment, student_id=student,
                        submitted_directory=str(staging)):
            app = _autograde_class()(coursedir=coursedir, config=cfg, log=log)
            app.force = True
            app.create_student = True
            out = _run_app(app)
    finally:
        for name in runs:
            _EXECUTED.pop((student, assignment, name), None)
    result.autograde_seconds += out["seconds"]
    if not out["success"]:
        result.reasons.append("nbgrader could not autograde it: " + _first_error(out))
        result.reasons.extend(notes)
        _keep_last_good(result, previous)
        return result
    with _GradebookTurn(), Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        cleared = _stale_manual_marks(gb, student, assignment, staged.answers, answer_state)
        result.score, result.max_score, pending = _scores(gb, student, assignment)
    result.timings["waiting for the gradebook"] = _TURN_WAIT[0] - waited
    result.timings["nbgrader autograde"] = out["seconds"] - result.timings["waiting for the gradebook"]
    manual = [f"{e.kind}: {e.detail}" for e in events if e.manual]
    for name in cleared:
        result.events.append({"kind": "answer changed after marking", "cell": name,
                              "detail": f"{name} was changed since it was marked; its mark was cleared"})
    if cleared:
        manual.append(f"answer changed after marking: {', '.join(cleared)} (marks cleared)")
    deleted = {e.cell for e in events if e.kind == "cell deleted"}
    pending = [name for name in pending if name not in deleted]
    if pending:
        manual.append(f"{len(pending)} manual answer{'s' if len(pending) > 1 else ''} "
                      f"to grade ({', '.join(pending)})")
    result.status = NEEDS_MANUAL if manual else GRADED
    result.reasons.extend(manual)
    result.reasons.extend(f"{e.kind}: {e.detail}" for e in events if not e.manual)
    timed_out = [name for run in runs.values() for name in run.timed_out]
    if timed_out:
        result.reasons.append(f"interrupted after {float(cfg.Execute.timeout):g} s: {', '.join(timed_out)}")

    if feedback:
        fb_cfg = Config(cfg)
        fb_cfg.merge(_feedback_config(cfg))
        with temp_attrs(coursedir, assignment_id=assignment, student_id=student):
            app = GenerateFeedback(coursedir=coursedir, config=fb_cfg, log=log)
            app.force = True
            fb = _run_app(app)
        result.feedback_seconds = fb["seconds"]
        result.timings["feedback"] = fb["seconds"]
        if fb["success"]:
            folder = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment))
            result.feedback_files = [str(p) for p in sorted(folder.glob("*.html"))]
        else:
            result.reasons.append("feedback not written: " + _first_error(fb))
    return result


# ---------------------------------------------------------------------------
# grades.csv and the report
# ---------------------------------------------------------------------------

CSV_COLUMNS = ["assignment", "student_id", "status", "score", "max_score", "reasons"]


def _read_csv(path: Path) -> dict[tuple[str, str], dict]:
    rows = {}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("assignment") and row.get("student_id"):
                    rows[(row["assignment"], row["student_id"])] = row
    except (OSError, csv.Error):
        pass
    return rows


def _write_csv(results: list[SubmissionResult], path: Path, previous: dict | None = None) -> None:
    """Write grades.csv: this run's rows replace theirs, every other row is kept."""
    rows = dict(previous or {})
    for r in results:
        rows[(r.assignment, r.student)] = {
            "assignment": r.assignment, "student_id": r.student, "status": r.status,
            "score": "" if r.score is None else f"{r.score:g}",
            "max_score": "" if r.max_score is None else f"{r.max_score:g}",
            "reasons": "; ".join(r.reasons),
        }
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for key in sorted(rows):
            writer.writerow(rows[key])
    os.replace(tmp, path)


def _write_report(results: list[SubmissionResult], path: Path, unsafe: bool) -> None:
    """grading-report.json: every submission's status, score, reasons and named events."""
    report = _load_json(path, {})
    entries = {(e.get("assignment"), e.get("student_id")): e
               for e in report.get("submissions", []) if isinstance(e, dict)}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        entries[(r.assignment, r.student)] = {
            "assignment": r.assignment, "student_id": r.student, "status": r.status,
            "score": r.score, "max_score": r.max_score, "reasons": r.reasons,
            "events": r.events, "kept_last_good_grade": r.kept_last_good,
            "seconds": {k: round(v, 2) for k, v in r.timings.items()},
            "sandbox": "none (--unsafe-no-sandbox)" if unsafe else "bubblewrap",
            "graded_at": now,
        }
    _write_json(path, {"generated_at": now,
                       "submissions": [entries[k] for k in sorted(entries, key=lambda k: (k[0] or "", k[1] or ""))]})


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from .sandbox import SandboxUnavailable

    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grading",
        description="Autograde every submission under submitted/<student>/<assignment>/ (each in "
        "its own sandbox), write feedback, grades.csv and grading-report.json, and report each "
        "submission.",
    )
    parser.add_argument("--course-dir", default=".", help="course folder (default: current folder)")
    parser.add_argument("--assignment", action="append", help="grade only this assignment (repeatable)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--timeout", type=float, help="seconds one cell may run (default: c.Execute.timeout)")
    parser.add_argument("--max-time", type=float,
                        help="wall-clock seconds for one whole submission (default: 10 x timeout + 60)")
    parser.add_argument("--jobs", "-j", type=int,
                        help="submissions graded at once, one sandbox each (default: number of cores)")
    parser.add_argument("--no-feedback", action="store_true", help="do not write HTML feedback")
    parser.add_argument("--csv", help="where to write the grades (default: <course-dir>/grades.csv)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run student code WITHOUT a sandbox (machines without namespaces only; "
                        "a student can then read solutions/ and change other grades)")
    args = parser.parse_args(argv)

    try:
        results = grade_course(
            args.course_dir, assignments=args.assignment, students=args.student,
            timeout=args.timeout, max_time=args.max_time, feedback=not args.no_feedback,
            csv_path=args.csv, jobs=args.jobs, unsafe_no_sandbox=args.unsafe_no_sandbox,
        )
    except SandboxUnavailable as err:
        print(f"Refusing to grade: {err}", file=sys.stderr)
        return 2
    failed = [r for r in results if r.status == FAILED]
    if failed:
        names = ", ".join(f"{r.student}/{r.assignment}" for r in failed)
        print(f"Could not grade {len(failed)} submission(s): {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
