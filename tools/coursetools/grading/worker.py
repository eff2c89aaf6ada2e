"""A grading worker: one process that takes whole submissions from start to end.

:class:`Worker` owns everything one worker needs, and nothing of it is shared
through module globals: the course's nbgrader configuration with the
autograde steps bound to it, its sandbox slot and :class:`~.launch.Launcher`
(preloaded Python, control group), its clean test process, its turn to
write the gradebook, the notebooks it has run (for nbgrader's autograde to
pick up), its compiled templates and database engines.  :meth:`Worker.grade`
grades one :class:`Task`: staging, the sandbox, the clean tests, nbgrader's
autograde and the feedback.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from . import nbgrader_steps as steps
from .assignment import AssignmentInfo
from .execute import Settings, execute
from .launch import Launcher
from .pages import SafeHTMLExporter
from .report import (FAILED, GRADED, NEEDS_MANUAL, SubmissionResult, keep_last_good, scores,
                     stale_manual_marks)
from .staging import stage
from .tester_client import CleanTester

__all__ = ["Task", "Worker", "RunSetup"]


@dataclass
class RunSetup:
    """What every worker of a run shares (plain data: it is sent to forked workers)."""

    course_dir: str
    timeout: float | None
    settings: Settings
    staging: str
    feedback: bool
    run_name: str
    imports: set = field(default_factory=set)  # the course's imports, for the preloaded Python


@dataclass
class Task:
    """One submission to grade."""

    student: str
    assignment: str
    submitted: str
    info: AssignmentInfo | None
    setup_error: str | None
    previous: dict | None  # its row of grades.csv from earlier runs
    seen: dict  # hashes of its written answers when last graded


class _TemplateCache(jinja2.BytecodeCache):
    """nbconvert's compiled templates, kept in memory for the worker's feedback pages."""

    def __init__(self):
        self.store = {}

    def load_bytecode(self, bucket):
        data = self.store.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket):
        self.store[bucket.key] = bucket.bytecode_to_string()


class Worker:
    """One grading worker (a process of its own, or the main process with one job)."""

    def __init__(self, setup: RunSetup, slot: int = 1, lock=None):
        warnings.filterwarnings("ignore", message=".*not in session.*")
        steps.venv_on_path()
        self.setup = setup
        self.slot = slot
        self.turn = steps.GradebookTurn(lock)
        self.executed: dict = {}  # (student, assignment, notebook) -> notebook run in the sandbox
        self.engines = steps.EngineCache()
        self.engines.install()
        self.schemas = steps.SchemaCache()
        self.schemas.install()
        cfg = steps.nbgrader_config(Path(setup.course_dir), setup.timeout)
        self.cfg = steps.grading_steps(cfg, self.executed, self.turn)
        self.coursedir = steps.course_directory(self.cfg)
        self.autograde = steps.autograde_in_turn(self.turn)
        cache = _TemplateCache()
        self.feedback_exporter = type("FeedbackHTMLExporter", (SafeHTMLExporter,),
                                      {"bytecode_cache": cache})
        self.launcher = Launcher(setup.settings, slot, setup.run_name)
        self.tester = CleanTester()
        self.log = steps.logger()

    @classmethod
    def started(cls, setup: RunSetup, slot: int = 1, lock=None) -> "Worker":
        """A worker whose preloaded Python and test process are already loading."""
        worker = cls(setup, slot, lock)
        worker.launcher.preload(setup.imports)
        worker.tester.start(setup.settings)
        return worker

    def stop(self) -> None:
        self.tester.stop()
        self.launcher.stop()

    # ------------------------------------------------------------------ one submission

    def failed(self, task: Task, reason: str) -> SubmissionResult:
        result = SubmissionResult(task.student, task.assignment, FAILED, reasons=[reason])
        keep_last_good(result, task.previous)
        return result

    def grade(self, task: Task):
        """Grade one submission; return (result, its answers' hashes or None)."""
        timings = {}
        start = time.perf_counter()
        try:
            if task.setup_error:
                staged, runs = None, {}
            else:
                staged = stage(Path(task.submitted),
                               Path(self.setup.staging) / task.student / task.assignment,
                               task.student, task.info)
                timings["staging"] = time.perf_counter() - start
                runs = {}
                if not staged.fatal:
                    for name, nb in staged.notebooks.items():
                        runs[name] = execute(nb, task.info, self.setup.settings, self.launcher,
                                             self.tester)
                        if runs[name].failure:
                            break
            state = {task.assignment: {task.student: dict(task.seen)}}
            result = self._score(task, staged, runs, state)
            result.timings.update(timings)
            seen = state[task.assignment][task.student] if result.status != FAILED else None
        except Exception as err:  # noqa: BLE001 - one submission never stops the others
            return self.failed(task, f"grading error: {type(err).__name__}: {err}"), None
        return result, seen

    def _score(self, task: Task, staged, runs: dict, answer_state: dict) -> SubmissionResult:
        from nbgrader.api import Gradebook
        from nbgrader.utils import temp_attrs

        student, assignment, coursedir = task.student, task.assignment, self.coursedir
        result = SubmissionResult(student, assignment, FAILED)
        if task.setup_error:
            result.reasons.append(task.setup_error)
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
                result.timings[key] = result.timings.get(key, 0.0) + value
        failures = [r.failure for r in runs.values() if r.failure]
        if staged.fatal or failures:
            result.reasons.extend(staged.fatal + failures
                                  + [n for n in notes if n.split(": ", 1)[1] not in failures])
            keep_last_good(result, task.previous)
            return result

        for name, run in runs.items():
            self.executed[(student, assignment, name)] = run.notebook
        waited = self.turn.waited
        try:
            with temp_attrs(coursedir, assignment_id=assignment, student_id=student,
                            submitted_directory=str(self.setup.staging)):
                app = self.autograde(coursedir=coursedir, config=self.cfg, log=self.log)
                app.force = True
                app.create_student = True
                out = steps.run_app(app)
        finally:
            for name in runs:
                self.executed.pop((student, assignment, name), None)
        result.autograde_seconds += out["seconds"]
        if not out["success"]:
            result.reasons.append("nbgrader could not autograde it: " + steps.first_error(out))
            result.reasons.extend(notes)
            keep_last_good(result, task.previous)
            return result
        with self.turn, Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            cleared = stale_manual_marks(gb, student, assignment, staged.answers, answer_state)
            result.score, result.max_score, pending = scores(gb, student, assignment)
        result.timings["waiting for the gradebook"] = self.turn.waited - waited
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
            result.reasons.append(f"interrupted after {float(self.cfg.Execute.timeout):g} s: "
                                  f"{', '.join(timed_out)}")
        if self.setup.feedback:
            self._feedback(result)
        return result

    def _feedback(self, result: SubmissionResult) -> None:
        from nbgrader.converters import GenerateFeedback
        from nbgrader.utils import temp_attrs
        from traitlets.config import Config

        coursedir = self.coursedir
        fb_cfg = Config(self.cfg)
        fb_cfg.merge(steps.feedback_config(self.cfg, self.feedback_exporter))
        with temp_attrs(coursedir, assignment_id=result.assignment, student_id=result.student):
            app = GenerateFeedback(coursedir=coursedir, config=fb_cfg, log=self.log)
            app.force = True
            fb = steps.run_app(app)
        result.feedback_seconds = fb["seconds"]
        result.timings["feedback"] = fb["seconds"]
        if fb["success"]:
            folder = Path(coursedir.format_path(coursedir.feedback_directory, result.student,
                                                result.assignment))
            result.feedback_files = [str(p) for p in sorted(folder.glob("*.html"))]
        else:
            result.reasons.append("feedback not written: " + steps.first_error(fb))
