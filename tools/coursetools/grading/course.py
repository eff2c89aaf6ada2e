"""The run: find the submissions, set up the gradebook, grade them in workers, write the reports."""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import sys
import tempfile
import warnings
from pathlib import Path

from . import nbgrader_steps as steps
from . import sandbox
from .assignment import assignment_info, course_imports
from .events import UNSAFE, shown_name
from .execute import Settings
from .report import (FAILED, GRADED, NEEDS_MANUAL, SubmissionResult, keep_last_good, load_json,
                     read_csv, write_csv, write_json, write_report)
from .worker import RunSetup, Task, Worker

__all__ = ["grade_course", "find_submissions", "prepare_support", "STUDENT_ID"]

#: What a student's folder may be called: nbgrader's ids on a hub or a roster.
#: Anything else (a name with HTML, spaces or control characters a student
#: chose for their exchange folder) is not graded and is named in the report.
STUDENT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,99}")


def find_submissions(coursedir, assignments=None, students=None) -> list[tuple[str, str]]:
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
    limits: sandbox.Limits | None = None,
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
    limits : coursetools.grading.sandbox.Limits, optional
        Resource limits of each submission (default: ``Limits()``: 4 GB of
        memory for the whole submission and per process, 256 processes,
        1 GB of disk).

    Returns
    -------
    list of SubmissionResult
        One per (student, assignment), in the printed order.

    Raises
    ------
    coursetools.grading.sandbox.SandboxUnavailable
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
    with warnings.catch_warnings():
        # nbgrader's own SQLAlchemy warnings say nothing to a tutor.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        return _Run(Path(course_dir), timeout, max_time, feedback, csv_path, echo, jobs,
                    unsafe_no_sandbox, limits or sandbox.Limits()).grade(assignments, students)


def prepare_support(folder: Path) -> None:
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



class _Run:
    """One run of the command: its settings, its submissions, its workers and its reports."""

    def __init__(self, course_dir, timeout, max_time, feedback, csv_path, echo, jobs, unsafe, limits):
        steps.venv_on_path()
        self.echo = echo or (lambda line: print(line, flush=True))
        self.course_dir = Path(course_dir).resolve()
        self.timeout = timeout
        self.cfg = steps.nbgrader_config(self.course_dir, timeout)
        self.coursedir = steps.course_directory(self.cfg)
        self.cell_timeout = float(timeout if timeout is not None else self.cfg.Execute.get("timeout", 30))
        self.max_time = float(max_time if max_time is not None else 10 * self.cell_timeout + 60)
        self.feedback = feedback
        self.unsafe = unsafe
        self.limits = limits
        self.jobs = jobs
        self.csv_file = Path(csv_path) if csv_path else self.course_dir / "grades.csv"
        self.report_file = self.csv_file.parent / "grading-report.json"
        self.state_dir = self.course_dir / ".grading"

    def grade(self, assignments, students) -> list[SubmissionResult]:
        pairs = find_submissions(self.coursedir, assignments, students)
        if not pairs:
            self.echo(f"No submissions found under "
                      f"{self.course_dir / self.coursedir.submitted_directory}/<student>/<assignment>/")
            return []
        if not self.unsafe:
            sandbox.check_sandbox()
        jobs = max(1, min(int(self.jobs or os.cpu_count() or 1), len(pairs)))
        names = sorted({a for _, a in pairs})
        self.state_dir.mkdir(exist_ok=True)
        previous = read_csv(self.csv_file)
        answer_state = load_json(self.state_dir / "answers.json", {})
        mode = "WITHOUT A SANDBOX (--unsafe-no-sandbox)" if self.unsafe else "each in a sandbox"
        self.echo(f"Grading {len(pairs)} submission(s) of {', '.join(names)} in {self.course_dir} "
                  f"(cells time out after {self.cell_timeout:g} s; {jobs} at once, {mode})")
        if self.unsafe:
            self.echo("WARNING: student code runs with your rights and can read solutions/, the "
                      "gradebook and other submissions. Use this only for trusted notebooks.")
        width_s = max([10] + [len(shown_name(s)) for s, _ in pairs])
        width_a = max([12] + [len(a) for _, a in pairs])
        results: list[SubmissionResult] = []
        with tempfile.TemporaryDirectory(prefix="coursetools-support-") as support:
            support = Path(support)
            os.chmod(support, 0o755)
            prepare_support(support)
            imports = set()
            for name in names:
                source = Path(self.coursedir.format_path(self.coursedir.source_directory, ".", name))
                if source.is_dir():
                    imports |= set(course_imports(source)[0].values())
            setup = RunSetup(course_dir=str(self.course_dir), timeout=self.timeout,
                             settings=Settings(timeout=self.cell_timeout, max_time=self.max_time,
                                               unsafe=self.unsafe, support_dir=support,
                                               limits=self.limits),
                             staging=str(self.state_dir / "staged"), feedback=self.feedback,
                             run_name=f"coursetools-{os.getpid()}", imports=imports)
            pool = _Pool(setup, jobs)  # the workers load their libraries while the gradebook is set up
            try:
                tasks = self._tasks(pairs, previous, answer_state)
                self.echo(pool.limits_line())

                def finish(task, outcome):
                    result, seen = outcome
                    if seen is not None:
                        answer_state.setdefault(task.assignment, {})[task.student] = seen
                    if self.unsafe:
                        result.events.append({"kind": UNSAFE, "cell": None,
                                              "detail": "graded without a sandbox (--unsafe-no-sandbox)"})
                        result.reasons.append("graded WITHOUT a sandbox")
                    results.append(result)
                    self.echo(result.line(width_s, width_a))
                    write_json(self.state_dir / "answers.json", answer_state)

                pool.run(tasks, finish)
            finally:
                pool.stop()
        write_csv(results, self.csv_file, previous)
        write_report(results, self.report_file, self.unsafe)
        counts = {status: sum(r.status == status for r in results) for status in (GRADED, NEEDS_MANUAL, FAILED)}
        self.echo(f"{counts[GRADED]} graded, {counts[NEEDS_MANUAL]} need manual grading, "
                  f"{counts[FAILED]} could not be graded. Grades: {self.csv_file}; report: {self.report_file}"
                  + (f"; feedback: {self.course_dir / self.coursedir.feedback_directory}"
                     if self.feedback else ""))
        return results

    def _tasks(self, pairs, previous, answer_state) -> list[Task]:
        from nbgrader.api import Gradebook

        setup_errors, infos = {}, {}
        names = sorted({a for _, a in pairs})
        for name in names:
            error = steps.ensure_in_gradebook(self.coursedir, self.cfg, name)
            if error:
                setup_errors[name] = error
        markers = steps.course_markers_of(self.cfg)
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            for name in names:
                if name not in setup_errors:
                    infos[name] = assignment_info(gb, self.coursedir, name, markers)
        tasks = []
        for student, assignment in pairs:
            error = setup_errors.get(assignment)
            if not STUDENT_ID.fullmatch(student):
                error = (f"the folder name {shown_name(student)!r} is not a student id the grader "
                         "accepts (letters, digits and . _ @ -); rename it to the student's id")
            submitted = Path(self.coursedir.format_path(self.coursedir.submitted_directory, student,
                                                        assignment))
            tasks.append(Task(student=shown_name(student), assignment=assignment,
                              submitted=str(submitted), info=infos.get(assignment), setup_error=error,
                              previous=previous.get((assignment, student)),
                              seen=answer_state.get(assignment, {}).get(student, {})))
        return tasks


class _Pool:
    """The run's workers: the main process with one job, else one forked process per job.

    Each worker process takes tasks from a queue and answers with its results;
    a worker that dies fails only the submission it was grading.
    """

    def __init__(self, setup: RunSetup, jobs: int):
        self.setup = setup
        self.jobs = jobs
        self.worker = None
        self.procs = []
        self.hello: list[str] = []
        if jobs == 1:
            # One job: no worker process to start; everything runs here, in order.
            self.worker = Worker.started(setup)
            self.hello.append(self.worker.launcher.describe())
            return
        methods = multiprocessing.get_all_start_methods()
        # Forked, the workers start at once with nbgrader already imported (and
        # a grading script needs no ``if __name__ == "__main__"`` guard).
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.tasks = context.Queue()
        self.results = context.Queue()
        lock = context.Lock()
        for slot in range(1, jobs + 1):
            proc = context.Process(target=_serve, args=(setup, slot, lock, self.tasks, self.results),
                                   daemon=True)
            proc.start()
            self.procs.append(proc)

    def limits_line(self) -> str:
        """The run's limits, as the first worker to start describes them."""
        waited = 0
        while not self.hello and self.procs and waited < 300 and any(p.is_alive() for p in self.procs):
            kind, _, text = self._next(timeout=1.0)
            waited += 1
            if kind in ("hello", "broken"):
                self.hello.append(text)
        return "Limits: " + (self.hello[0] if self.hello else "unknown (no worker started)")

    def _next(self, timeout: float):
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            return ("timeout", None, None)

    def run(self, tasks: list[Task], finish) -> None:
        if self.worker is not None:
            for task in tasks:
                finish(task, self.worker.grade(task))
            return
        for index, task in enumerate(tasks):
            self.tasks.put((index, task))
        for _ in self.procs:
            self.tasks.put(None)
        outcomes: dict[int, tuple] = {}
        busy: dict[int, int] = {}  # slot -> task index
        shown = 0
        while shown < len(tasks):
            kind, key, value = self._next(timeout=1.0)
            if kind == "start":
                busy[key] = value
            elif kind == "done":
                index, outcome = value
                outcomes[index] = outcome
                busy = {s: i for s, i in busy.items() if i != index}
            elif kind == "timeout":
                for slot, proc in enumerate(self.procs, start=1):
                    if not proc.is_alive() and slot in busy:
                        index = busy.pop(slot)
                        task = tasks[index]
                        result = SubmissionResult(task.student, task.assignment, FAILED,
                                                  reasons=[f"grading error: worker {slot} stopped "
                                                           f"(exit status {proc.exitcode})"])
                        keep_last_good(result, task.previous)
                        outcomes[index] = (result, None)
                if not any(p.is_alive() for p in self.procs):
                    for index in range(len(tasks)):
                        if index not in outcomes:
                            outcomes[index] = (SubmissionResult(
                                tasks[index].student, tasks[index].assignment, FAILED,
                                reasons=["grading error: every worker stopped"]), None)
            while shown in outcomes:  # in the order of the tasks
                finish(tasks[shown], outcomes.pop(shown))
                shown += 1

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for proc in self.procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _serve(setup: RunSetup, slot: int, lock, tasks, results) -> None:
    """A worker process: grade tasks from the queue until told to stop."""
    try:
        worker = Worker.started(setup, slot, lock)
    except Exception as err:  # noqa: BLE001 - said once; its submissions go to the other workers
        results.put(("broken", slot, f"worker {slot} could not start: {type(err).__name__}: {err}"))
        return
    results.put(("hello", slot, worker.launcher.describe()))
    try:
        while True:
            item = tasks.get()
            if item is None:
                return
            index, task = item
            results.put(("start", slot, index))
            try:
                outcome = worker.grade(task)
            except BaseException as err:  # noqa: BLE001 - reported as that submission's failure
                outcome = (worker.failed(task, f"grading error: {type(err).__name__}: {err}"), None)
            results.put(("done", slot, (index, outcome)))
    finally:
        worker.stop()
