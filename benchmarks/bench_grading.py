"""Time the practicals: each solution notebook, autograding, and grading throughput.

Targets from the course's issues: every solution notebook executes in under
30 s, autograding takes under 10 s per submission, and a class of 200
finishes in minutes (throughput, serial and parallel).

1. Each ``solutions/practicalN/practicalN.ipynb`` is executed with nbclient
   (as nbval and nbgrader do) in its own folder.
2. A throw-away course (the real ``nbgrader_config.py`` and ``solutions/``)
   receives two submissions per practical - ``model`` (the source notebook,
   every answer complete) and ``blank`` (the committed student version,
   untouched) - and ``coursetools.grading.grade_course`` grades them.  The
   table shows the autograde time (sandbox, kernel start, execution, clean
   test run, nbgrader saving the grades) and the feedback time per
   submission, and where the fixed cost of a submission goes (sandbox and
   runner start, kernel start, the set-up cell's imports).
3. Throughput: a class of ``THROUGHPUT_CLASS`` copies of practical 1 (half
   model answers, half blank) graded with ``--jobs 1`` and with one job per
   core, in submissions per minute.

Usage::

    .venv/bin/python benchmarks/bench_grading.py [practical1 ...]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_TARGET = 30.0
AUTOGRADE_TARGET = 10.0
THROUGHPUT_CLASS = 8


def _assignments(selected=None) -> list[str]:
    found = sorted(p.name for p in (REPO / "solutions").iterdir()
                   if (p / f"{p.name}.ipynb").exists())
    return [a for a in found if not selected or a in selected]


def time_solution(assignment: str) -> float:
    """Seconds to execute one solution notebook from a fresh kernel."""
    import nbformat
    from nbclient import NotebookClient

    path = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def time_autograding(assignments: list[str]):
    """Grade a model and a blank submission of each practical; return results."""
    from coursetools.grading import grade_course

    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        course = Path(tmp)
        shutil.copy(REPO / "nbgrader_config.py", course)
        for a in assignments:
            shutil.copytree(REPO / "solutions" / a, course / "solutions" / a)
            for student, version in [("model", "solutions"), ("blank", "practicals")]:
                folder = course / "submitted" / student / a
                folder.mkdir(parents=True)
                shutil.copy(REPO / version / a / f"{a}.ipynb", folder)
        start = time.perf_counter()
        results = grade_course(course, assignments=assignments, echo=lambda line: None)
        total = time.perf_counter() - start
    return results, total


def _fixed_costs() -> dict:
    """Seconds from sandbox start to kernel ready, and of the set-up cell, for one blank notebook."""
    from coursetools import grading, submission
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as tmp:
        course = Path(tmp)
        shutil.copy(REPO / "nbgrader_config.py", course)
        shutil.copytree(REPO / "solutions" / "practical1", course / "solutions" / "practical1")
        grading._venv_on_path()
        cfg = grading._config(course)
        coursedir = grading._coursedir(cfg)
        grading._ensure_in_gradebook(coursedir, cfg, "practical1")
        with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
            info = submission.assignment_info(gb, coursedir, "practical1")
        folder = course / "submitted" / "blank" / "practical1"
        folder.mkdir(parents=True)
        shutil.copy(REPO / "practicals" / "practical1" / "practical1.ipynb", folder)
        staged = submission.stage(folder, course / "staged", "blank", info)
        support = course / "support"
        support.mkdir()
        os.chmod(support, 0o755)
        grading._prepare_support(support)
        settings = submission.Settings(timeout=120, max_time=600, support_dir=support)
        start = time.perf_counter()
        run = submission.execute(staged.notebooks["practical1"], info, settings, 1, "blank")
        total = time.perf_counter() - start
    timing = run.timing
    setup = max((v for k, v in timing.items() if k.startswith("cell ")), default=float("nan"))
    return {"runner and nbclient imported": timing.get("imports_done", float("nan")),
            "kernel ready": timing.get("kernel_ready", float("nan")),
            "slowest cell (the set-up imports)": setup,
            "sandbox total": timing.get("sandbox_total", float("nan")),
            "with the clean test run": total}


def time_throughput(jobs_list) -> list[tuple[int, int, float]]:
    """(jobs, submissions, seconds) for a class of copies of practical 1."""
    from coursetools.grading import grade_course

    out = []
    for jobs in jobs_list:
        with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
            course = Path(tmp)
            shutil.copy(REPO / "nbgrader_config.py", course)
            shutil.copytree(REPO / "solutions" / "practical1", course / "solutions" / "practical1")
            for i in range(THROUGHPUT_CLASS):
                version = "solutions" if i % 2 == 0 else "practicals"
                folder = course / "submitted" / f"s{i:03d}" / "practical1"
                folder.mkdir(parents=True)
                shutil.copy(REPO / version / "practical1" / "practical1.ipynb", folder)
            # The gradebook set-up is a one-off: do it before timing.
            grade_course(course, students=["s000"], echo=lambda line: None, jobs=1)
            start = time.perf_counter()
            results = grade_course(course, echo=lambda line: None, jobs=jobs)
            out.append((jobs, len(results), time.perf_counter() - start))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    assignments = _assignments(argv)
    if not assignments:
        print("No solution notebooks found under solutions/")
        return 1

    print(f"Solution notebooks, executed from a fresh kernel (target < {NOTEBOOK_TARGET:g} s)")
    print(f"{'notebook':<14}{'seconds':>9}")
    for a in assignments:
        seconds = time_solution(a)
        flag = "" if seconds < NOTEBOOK_TARGET else "  SLOWER THAN TARGET"
        print(f"{a:<14}{seconds:>9.1f}{flag}", flush=True)

    results, total = time_autograding(assignments)
    print(f"\nAutograding per submission (target < {AUTOGRADE_TARGET:g} s)")
    print(f"{'assignment':<14}{'student':<8}{'autograde s':>12}{'feedback s':>12}  status")
    for r in results:
        seconds = r.autograde_seconds or float("nan")
        feedback = r.feedback_seconds if r.feedback_seconds is not None else float("nan")
        flag = "" if seconds < AUTOGRADE_TARGET else "  SLOWER THAN TARGET"
        print(f"{r.assignment:<14}{r.student:<8}{seconds:>12.1f}{feedback:>12.1f}  "
              f"{r.status} {r.score if r.score is not None else '-'} / {r.max_score}{flag}")
    print(f"Whole run of grade_course for {len(results)} submissions "
          f"(gradebook set-up included): {total:.1f} s")

    print("\nFixed cost of one submission (blank practical 1, seconds since the sandbox started)")
    for what, seconds in _fixed_costs().items():
        print(f"  {what:<36}{seconds:>7.2f}")

    cores = os.cpu_count() or 1
    print(f"\nThroughput: {THROUGHPUT_CLASS} submissions of practical1 (half model answers, half blank)")
    print(f"{'jobs':>6}{'seconds':>10}{'submissions/min':>18}")
    for jobs, n, seconds in time_throughput(sorted({1, cores})):
        print(f"{jobs:>6}{seconds:>10.1f}{60 * n / seconds:>18.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
