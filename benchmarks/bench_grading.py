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
   table shows the autograde time (sandbox, execution, clean test run,
   nbgrader saving the grades) and the feedback time per submission.
3. The fixed cost of a submission: a class of blank practical 1 notebooks
   graded with one job, each phase's mean (staging, sandbox start, runner and
   shell start, the student's cells with the set-up imports, answer
   extraction, the clean test run, nbgrader's autograde and feedback).
4. Throughput: classes of ``THROUGHPUT_CLASSES`` copies of practical 1
   (half model answers, half blank) graded with ``--jobs 1`` and with one job
   per core, in submissions per minute, and the CPU time the whole run used
   (the grader, its workers and everything they started) per submission.
   On a machine shared with other work the wall clock says little; CPU time
   gives the rate on that many *free* cores (``cores x 60 / CPU seconds``).

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
THROUGHPUT_CLASSES = (12, 36)


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


# Where the fixed cost of a submission goes, in the order the steps run.
PHASES = ["staging", "sandbox start", "runner and shell start", "student cells", "answer extraction",
          "sandbox end", "clean test run", "waiting for the gradebook", "nbgrader autograde", "feedback"]
FIXED_CLASS = 6
ONCE = "worker start"  # the worker's preloaded Python: started once per worker and run


def _class_course(course: Path, versions: list[str]) -> None:
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions" / "practical1", course / "solutions" / "practical1")
    for i, version in enumerate(versions):
        folder = course / "submitted" / f"s{i:03d}" / "practical1"
        folder.mkdir(parents=True)
        shutil.copy(REPO / version / "practical1" / "practical1.ipynb", folder)


def fixed_costs() -> tuple[dict, float]:
    """Seconds per phase of a blank practical 1 (mean over a class of blanks, one job).

    A blank notebook runs the set-up cell, loads the data and fails every
    answer at once: what is left is the fixed cost of a submission.  Returns
    (phase -> mean seconds, mean wall-clock seconds per submission).
    """
    from coursetools.grading import grade_course

    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as tmp:
        course = Path(tmp)
        _class_course(course, ["practicals"] * (FIXED_CLASS + 1))
        # The one-offs (gradebook set-up, starting the worker) are not part of it.
        grade_course(course, students=["s000"], echo=lambda line: None, jobs=1)
        start = time.perf_counter()
        results = grade_course(course, students=[f"s{i:03d}" for i in range(1, FIXED_CLASS + 1)],
                               echo=lambda line: None, jobs=1)
        wall = (time.perf_counter() - start) / len(results)
    phases = {}
    for r in results:
        for key, value in r.timings.items():
            phases[key] = phases.get(key, 0.0) + value / len(results)
    return phases, wall


def _cpu_seconds() -> float:
    """CPU time of this process and of every descendant it has waited for."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_throughput(jobs_list, size: int) -> list[tuple[int, int, float, float]]:
    """(jobs, submissions, seconds, CPU seconds) for a class of ``size`` copies of practical 1."""
    from coursetools.grading import grade_course

    out = []
    for jobs in jobs_list:
        with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
            course = Path(tmp)
            _class_course(course, ["solutions" if i % 2 == 0 else "practicals" for i in range(size)])
            # The gradebook set-up is a one-off: do it before timing.
            grade_course(course, students=["s000"], echo=lambda line: None, jobs=1)
            cpu, start = _cpu_seconds(), time.perf_counter()
            results = grade_course(course, echo=lambda line: None, jobs=jobs)
            out.append((jobs, len(results), time.perf_counter() - start, _cpu_seconds() - cpu))
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

    phases, wall = fixed_costs()
    print(f"\nFixed cost of one submission: a blank practical 1, mean of {FIXED_CLASS}, one job "
          "(seconds)")
    once = phases.pop(ONCE, 0.0) * FIXED_CLASS
    for what in PHASES + sorted(set(phases) - set(PHASES)):
        if what in phases:
            print(f"  {what:<30}{phases[what]:>7.2f}")
    print(f"  {'sum of the phases':<30}{sum(phases.values()):>7.2f}")
    print(f"  {'wall clock per submission':<30}{wall:>7.2f}  (with the worker start shared out)")
    print(f"  once per worker and run: starting the Python with the libraries preloaded {once:.2f} s")

    cores = os.cpu_count() or 1
    print(f"\nThroughput: classes of practical1 (half model answers, half blank); load before: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'class':>6}{'jobs':>6}{'seconds':>10}{'submissions/min':>18}{'CPU s each':>12}"
          f"{f'/min on {cores} free cores':>26}")
    for size in THROUGHPUT_CLASSES:
        for jobs, n, seconds, cpu in time_throughput(sorted({1, cores}), size):
            print(f"{size:>6}{jobs:>6}{seconds:>10.1f}{60 * n / seconds:>18.1f}{cpu / n:>12.2f}"
                  f"{cores * 60 * n / cpu:>26.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
