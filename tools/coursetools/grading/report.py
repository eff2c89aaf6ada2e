"""What a run tells the tutor: one result per submission, grades.csv and grading-report.json."""

from __future__ import annotations

import csv
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SubmissionResult", "GRADED", "NEEDS_MANUAL", "FAILED", "read_csv", "write_csv",
           "write_report", "keep_last_good", "scores", "stale_manual_marks", "load_json", "write_json"]

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



def keep_last_good(result: SubmissionResult, row: dict | None) -> None:
    """Keep the score of the last good run (its grades.csv ``row``) on a failed regrade."""
    if row and row.get("status") in (GRADED, NEEDS_MANUAL) and row.get("score"):
        result.score = float(row["score"])
        if row.get("max_score"):
            result.max_score = float(row["max_score"])
        result.kept_last_good = True
        result.reasons.append(f"kept the last good grade ({result.score:g}, {row['status']})")


def natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def scores(gb, student: str, assignment: str) -> tuple[float, float, list[str]]:
    """(score, max score, manual answers still to grade) from the gradebook."""
    submission = gb.find_submission(assignment, student)
    pending = []
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.needs_manual_grade and grade.manual_score is None:
                pending.append(grade.name)
    return float(submission.score), float(submission.max_score), sorted(pending, key=natural)


# ---------------------------------------------------------------------------
# state kept between runs: answers at the time of grading, last good grades
# ---------------------------------------------------------------------------


def load_json(path: Path, default):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def stale_manual_marks(gb, student, assignment, answers: dict, state: dict) -> list[str]:
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
    return sorted(cleared, key=natural)


# ---------------------------------------------------------------------------
# grades.csv and grading-report.json
# ---------------------------------------------------------------------------


CSV_COLUMNS = ["assignment", "student_id", "status", "score", "max_score", "reasons"]


def read_csv(path: Path) -> dict[tuple[str, str], dict]:
    rows = {}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("assignment") and row.get("student_id"):
                    rows[(row["assignment"], row["student_id"])] = row
    except (OSError, csv.Error):
        pass
    return rows


def write_csv(results: list[SubmissionResult], path: Path, previous: dict | None = None) -> None:
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


def write_report(results: list[SubmissionResult], path: Path, unsafe: bool) -> None:
    """grading-report.json: every submission's status, score, reasons and named events."""
    report = load_json(path, {})
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
    write_json(path, {"generated_at": now,
                       "submissions": [entries[k] for k in sorted(entries, key=lambda k: (k[0] or "", k[1] or ""))]})

