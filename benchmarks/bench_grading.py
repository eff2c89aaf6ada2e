"""Time the practicals: each solution notebook, and autograding one submission.

Targets from the course's issue: every solution notebook executes in under
30 s, and autograding takes under 10 s per submission.

1. Each ``solutions/practicalN/practicalN.ipynb`` is executed with nbclient
   (as nbval and nbgrader do) in its own folder.
2. A throw-away course (the real ``nbgrader_config.py`` and ``solutions/``)
   receives two submissions per practical - ``model`` (the source notebook,
   every answer complete) and ``blank`` (the committed student version,
   untouched) - and ``coursetools.grading.grade_course`` grades them.  The
   table shows nbgrader's autograde time (kernel start, execution, saving the
   grades) and the feedback time per submission.

Usage::

    .venv/bin/python benchmarks/bench_grading.py [practical1 ...]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_TARGET = 30.0
AUTOGRADE_TARGET = 10.0


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
