"""nbgrader glue: the course's configuration, the apps, the gradebook and the feedback settings.

Public seams used by the worker, the command and the tests:
:func:`nbgrader_config`, :func:`course_directory`, :func:`run_app`,
:func:`first_error`, :func:`ensure_in_gradebook`, :func:`feedback_config`,
:func:`venv_on_path`, :func:`logger`.  The steps that depend on one worker's
state (its sandbox results, its turn to write the gradebook, its template
cache) are made by :class:`~.worker.Worker` from the factories here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from ..markers import Markers, from_config

__all__ = ["nbgrader_config", "course_directory", "run_app", "first_error", "ensure_in_gradebook",
           "feedback_config", "venv_on_path", "logger", "course_markers_of", "GradebookTurn",
           "apply_results_step", "in_turn", "MISMATCH", "EngineCache", "SchemaCache"]

MISMATCH = "coursetools: the notebook graded is not the one run"


def nbgrader_config(course_dir, timeout: float | None = None):
    """The course's nbgrader configuration (``nbgrader_config.py``) with what grading overrides."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir)
    cfg = Config()
    config_file = course_dir / "nbgrader_config.py"
    if config_file.exists():
        cfg.merge(PyFileConfigLoader(config_file.name, str(course_dir)).load_config())
    override = Config()
    override.CourseDirectory.root = str(course_dir)
    if timeout is not None:
        override.Execute.timeout = int(timeout)
    override.Execute.interrupt_on_timeout = True
    cfg.merge(override)
    return cfg


def course_markers_of(cfg) -> Markers:
    """nbgrader's region markers of a configuration (:mod:`coursetools.markers`)."""
    return from_config(cfg)


def course_directory(cfg):
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=cfg)


def logger(name: str = "coursetools.grading"):
    import logging

    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def venv_on_path() -> None:
    """Put this Python's scripts folder on PATH.

    nbgrader creates a new gradebook by running the ``alembic`` script found
    on PATH, which fails when the venv's Python is called directly (as
    ``make grade`` does) without the venv being activated.
    """
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path


def run_app(app) -> dict:
    """Run an nbgrader app, capturing its log: ``success``, ``log``, ``error`` and ``seconds``."""
    from nbgrader.utils import capture_log

    start = time.perf_counter()
    result = capture_log(app)
    result["seconds"] = time.perf_counter() - start
    return result


def first_error(result: dict) -> str:
    """The first error line of an app's log (what the report shows)."""
    text = result.get("log", "") + "\n" + result.get("error", "")
    for line in text.splitlines():
        if line.startswith("[ERROR]") and "There was an error" not in line and "Traceback" not in line:
            return line[len("[ERROR]"):].strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(" ")]
    return lines[-1].strip() if lines else "unknown error"


def ensure_in_gradebook(coursedir, cfg, assignment: str) -> str | None:
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
            app = GenerateAssignment(coursedir=coursedir, config=cfg, log=logger())
            app.force = True
            app.create_assignment = True
            result = run_app(app)
    if result["success"]:
        return None
    return "generate_assignment failed: " + first_error(result)


def feedback_config(cfg, exporter_class=None):
    """Feedback settings: HTML feedback with the hidden tests removed and student HTML inert.

    The course's own ``GenerateFeedback.preprocessors`` are kept when they
    already clear hidden tests; otherwise ours
    (:class:`coursetools.practicals.ClearHiddenTestsForFeedback`) are used.
    The pages are written by ``exporter_class`` (default
    :class:`~.pages.SafeHTMLExporter`): every piece of HTML sanitised again
    as it is rendered, and a Content-Security-Policy in the page.
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades
    from traitlets.config import Config

    from ..practicals import ClearHiddenTestsForFeedback
    from .pages import SafeHTMLExporter

    out = Config()
    out.GenerateFeedback.exporter_class = exporter_class or SafeHTMLExporter
    out.HTMLExporter.template_name = "feedback"
    out.HTMLExporter.sanitize_html = True
    configured = cfg.GenerateFeedback.get("preprocessors", [])
    if not any(isinstance(p, type) and issubclass(p, ClearHiddenTests) for p in configured):
        out.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTestsForFeedback,
                                              CSSHTMLHeaderPreprocessor]
    return out


class GradebookTurn:
    """A worker's turn to write the gradebook (workers write one at a time).

    SQLite would serialise the writes itself, but two processes that both
    read and then write can make one of them fail at once ("database is
    locked"); taking turns avoids that.  Only nbgrader's steps that write
    (recording the student and submission, saving the scores, late
    penalties) and the manual-mark bookkeeping take a turn; the rest of
    autograde and the feedback run in parallel.  ``waited`` adds up the
    seconds spent waiting for a turn.
    """

    def __init__(self, lock=None):
        self.lock = lock
        self.waited = 0.0

    def __enter__(self):
        if self.lock is not None:
            start = time.perf_counter()
            self.lock.acquire()
            self.waited += time.perf_counter() - start
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()
        return False


def in_turn(cls, turn: GradebookTurn):
    """The nbgrader preprocessor ``cls``, run in ``turn``."""
    class Step(cls):
        def preprocess(self, nb, resources):
            with turn:
                return super().preprocess(nb, resources)

    Step.__name__ = Step.__qualname__ = cls.__name__
    return Step


def autograde_in_turn(turn: GradebookTurn):
    """nbgrader's Autograde, recording the student and submission in ``turn``."""
    from nbgrader.converters import Autograde

    class InTurn(Autograde):
        def init_assignment(self, assignment_id, student_id):
            with turn:
                return super().init_assignment(assignment_id, student_id)

    InTurn.__name__ = InTurn.__qualname__ = "Autograde"
    return InTurn


def apply_results_step(executed: dict):
    """An nbgrader preprocessor in place of Execute: it inserts the sandbox's results.

    ``executed`` maps (student, assignment, notebook) to the executed
    notebook.  It checks that nbgrader's sanitized notebook is the one that
    was run (same cells, same code) before copying the outputs across.
    """
    from nbgrader.preprocessors import NbGraderPreprocessor

    class ApplySandboxResults(NbGraderPreprocessor):
        def preprocess(self, nb, resources):
            info = resources["nbgrader"]
            run = executed.get((info["student"], info["assignment"], info["notebook"]))
            if run is None:
                raise RuntimeError(f"{MISMATCH}: no sandbox run for {info['notebook']}")
            if len(run.cells) != len(nb.cells) or any(
                    a.cell_type != b.cell_type or a.source != b.source
                    for a, b in zip(run.cells, nb.cells)):
                raise RuntimeError(f"{MISMATCH}: {info['notebook']} changed after it was run")
            for mine, theirs in zip(nb.cells, run.cells):
                if mine.cell_type == "code":
                    mine.outputs = theirs.outputs
                    mine.execution_count = theirs.execution_count
            return nb, resources

    return ApplySandboxResults


def grading_steps(cfg, executed: dict, turn: GradebookTurn):
    """``cfg`` with nbgrader's autograde steps bound to one worker.

    Student code never runs in nbgrader's own kernel: its Execute step is
    replaced by one that puts in the outputs computed in the sandbox and the
    verdicts of the clean test run; the steps that write the gradebook run in
    the worker's turn.
    """
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import AssignLatePenalties, Execute, SaveAutoGrades

    steps = cfg.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default())
    cfg.Autograde.autograde_preprocessors = [
        apply_results_step(executed) if p is Execute
        else in_turn(p, turn) if p in (SaveAutoGrades, AssignLatePenalties) else p for p in steps]
    return cfg


class EngineCache:
    """One SQLAlchemy engine per gradebook and process, instead of one per nbgrader session.

    nbgrader opens a new database engine for each of the dozen gradebook
    sessions of one autograde (so SQLAlchemy compiles every query again).
    :meth:`install` makes nbgrader's ``create_engine`` reuse this cache's
    engines (keyed by process id: a forked worker never uses its parent's
    connections).  The gradebook and its contents are the same as without it.
    """

    def __init__(self):
        self.engines: dict = {}

    def install(self) -> None:
        import nbgrader.api as api

        original = getattr(api, "_coursetools_original_create_engine", api.create_engine)
        api._coursetools_original_create_engine = original

        def create_engine(url, *args, **kwargs):
            key = (os.getpid(), str(url), repr(args), repr(sorted(kwargs.items())))
            if key not in self.engines:
                self.engines[key] = original(url, *args, **kwargs)
            return self.engines[key]

        api.create_engine = create_engine


class SchemaCache:
    """nbgrader's metadata checks with each JSON schema compiled once per process.

    nbgrader checks every cell's nbgrader metadata with ``jsonschema.validate``,
    which first checks the schema itself against its meta-schema: a few
    hundred times per submission, about a tenth of a second.  :meth:`install`
    gives nbgrader's format module a ``validate`` that compiles each schema
    once and raises the same error (jsonschema's best match) for the same
    metadata.
    """

    def __init__(self):
        self.validators: dict = {}

    def validate(self, instance, schema, *args, **kwargs):
        import jsonschema

        entry = self.validators.get(id(schema))
        if entry is None or entry[0] is not schema:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            entry = self.validators[id(schema)] = (schema, cls(schema))
        error = jsonschema.exceptions.best_match(entry[1].iter_errors(instance))
        if error is not None:
            raise error

    def install(self) -> None:
        import types

        import jsonschema
        from nbgrader.nbgraderformat import common

        shim = types.SimpleNamespace(**{k: getattr(jsonschema, k) for k in dir(jsonschema)
                                        if not k.startswith("__")})
        shim.validate = self.validate
        common.jsonschema = shim
