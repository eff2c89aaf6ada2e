"""``python -m coursetools.grading``: the command line."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    ``python -m coursetools.grading export --format ...`` writes the gradebook
    as a learning platform's import file instead (:mod:`.export`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        from .export import main as export_main

        return export_main(argv[1:])
    from .course import grade_course
    from .report import FAILED
    from .sandbox import Limits, SandboxUnavailable

    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grading",
        description="Autograde every submission under submitted/<student>/<assignment>/ (each in "
        "its own sandbox), write feedback, grades.csv and grading-report.json, and report each "
        "submission.  `python -m coursetools.grading export --help`: the grades as a learning "
        "platform's import file (Moodle, Canvas, Blackboard).",
    )
    parser.add_argument("--course-dir", default=".", help="course folder (default: current folder)")
    parser.add_argument("--assignment", action="append", help="grade only this assignment (repeatable)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--timeout", type=float, help="seconds one cell may run (default: c.Execute.timeout)")
    parser.add_argument("--max-time", type=float,
                        help="wall-clock seconds for one whole submission (default: 10 x timeout + 60)")
    parser.add_argument("--jobs", "-j", type=int,
                        help="submissions graded at once, one sandbox each (default: number of cores)")
    parser.add_argument("--memory-mb", type=int, default=Limits.total_memory_mb,
                        help="memory of one whole submission, all its processes together "
                        f"(default: {Limits.total_memory_mb})")
    parser.add_argument("--processes", type=int, default=Limits.processes,
                        help=f"processes and threads of one submission (default: {Limits.processes})")
    parser.add_argument("--disk-mb", type=int, default=Limits.disk_mb,
                        help=f"disk one submission may write (default: {Limits.disk_mb})")
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
            limits=Limits(total_memory_mb=args.memory_mb, processes=args.processes, disk_mb=args.disk_mb),
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
