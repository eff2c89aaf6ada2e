"""``python -m coursetools.grading export``: the gradebook as a learning platform's import file.

Usage, from the course folder::

    python -m coursetools.grading export --format moodle|canvas|blackboard
        [--course-dir DIR] [--roster FILE] [--assignment NAME] [--output PATH]
        [--column-id ASSIGNMENT=ID] [--identifier username|email|idnumber] [--partial]

It reads nbgrader's gradebook (``gradebook.db``: automatic and manual marks,
extra credit) and writes the file each platform takes for an offline grade
upload, one row per student and one column per practical, each grade in
points out of the practical's maximum:

``moodle``
    Moodle's CSV grade import (*Grades → Import → CSV file*): an identifier
    column (``Username``, ``Email address`` or ``ID number``; the import form
    asks which one "Identify user by" uses), ``First name`` and ``Last name``
    when the roster has them, then one column per practical.  On import, map
    each practical's column to its grade item (or to a new grade item).
    Moodle reads an empty cell as "no grade" (it clears a grade already
    there) and abandons the whole import at a row whose person it cannot
    find.
``canvas``
    Canvas's gradebook CSV (*Grades → Import*): ``Student``, ``ID``,
    ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per
    practical (``practical1 (ID)`` when ``--column-id`` gives Canvas's
    assignment ID, else a new assignment named ``practical1``), and a second
    row ``Points Possible`` with each practical's maximum, as Canvas's own
    export has.  Canvas matches a student by ``ID``, ``SIS User ID`` or
    ``SIS Login ID``; the login name goes into ``SIS Login ID``.
``blackboard``
    Blackboard Learn's Grade Center offline upload (*Work Offline → Upload*):
    a comma-delimited file with every field in quotes, columns
    ``Last Name``, ``First Name``, ``Username``, ``Student ID``, then one
    column per practical, headed ``practical1 [Total Pts: 14 Score] |ID``
    for an existing Grade Center column (its ID from ``--column-id``) or
    without ``|ID`` for a new column.  Blackboard matches students by
    ``Username``.

Every student of the gradebook and of the roster is in the file; one without
a submission has an empty grade (not a zero).
A submission whose written answers are not all marked yet has an empty grade
too, and is named on stderr, unless ``--partial`` exports its score so far.

The roster (``--roster``, default ``hub/roster.csv`` or
``hub/roster.example.csv`` beside the course, when present) is the hub's
CSV file: ``username`` and ``role`` and, optionally, ``email``,
``first_name``, ``last_name``, ``student_id`` (the university's student
number: Moodle's ID number, Canvas's SIS User ID, Blackboard's Student ID),
``platform_id`` (Canvas's own user ID) and ``section``.  Without a roster the
names and emails nbgrader's gradebook holds are used.  The roster's
instructors are left out even when the gradebook has a submission of theirs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from .report import natural

__all__ = ["FORMATS", "Person", "Grades", "read_roster", "read_gradebook", "write_export", "export", "main"]

FORMATS = ("moodle", "canvas", "blackboard")
MOODLE_IDENTIFIERS = {"username": "Username", "email": "Email address", "idnumber": "ID number"}
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Canvas's own export writes the label with four leading spaces; its importer
# recognises the row by the words.
CANVAS_POINTS_POSSIBLE = "    Points Possible"
BLACKBOARD_COLUMNS = ["Last Name", "First Name", "Username", "Student ID"]


@dataclass(frozen=True)
class Person:
    """A student as the platforms know them (only ``username`` is required)."""

    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    student_id: str = ""
    platform_id: str = ""
    section: str = ""


@dataclass
class Grades:
    """What the gradebook says: practicals (with maxima), students, scores."""

    assignments: list[tuple[str, float]]  # (name, maximum), in the gradebook's order
    people: list[Person]
    scores: dict[tuple[str, str], float] = field(default_factory=dict)  # (student, assignment)
    pending: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # unmarked answers

    def grade(self, student: str, assignment: str, partial: bool = False) -> float | None:
        """The grade to upload, or None (no submission, or marking not finished)."""
        if (student, assignment) not in self.scores:
            return None
        if (student, assignment) in self.pending and not partial:
            return None
        return self.scores[(student, assignment)]


def read_roster(path, roles=("student",)) -> dict[str, Person]:
    """The people of a roster CSV with one of ``roles`` (``username`` required; see the module's help).

    A roster without a ``role`` column lists students only.
    """
    people = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "username" not in reader.fieldnames:
            raise ValueError(f"{path}: the first line must be a header with a 'username' column")
        for row in reader:
            name = (row.get("username") or "").strip()
            if not name or name.startswith("#"):
                continue
            if (row.get("role") or "student").strip().lower() not in roles:
                continue
            people[name] = Person(name, **{key: (row.get(key) or "").strip() for key in
                                           ("email", "first_name", "last_name", "student_id",
                                            "platform_id", "section")})
    return people


def read_gradebook(db_url: str, course_id: str = "", assignments: list[str] | None = None,
                   roster: dict[str, Person] | None = None, staff=()) -> Grades:
    """Scores, maxima and unmarked answers from nbgrader's gradebook.

    ``staff``: ids the gradebook may hold (a tutor's trial submission) that are no students.
    """
    from nbgrader.api import Gradebook, MissingEntry

    roster = roster or {}
    with Gradebook(db_url, course_id or "default_course") as gb:
        known = [a for a in gb.assignments]
        names = [a.name for a in known]
        if assignments:
            missing = [a for a in assignments if a not in names]
            if missing:
                raise ValueError(f"not in the gradebook: {', '.join(missing)} (it has {', '.join(names) or 'none'})")
            known = [a for a in known if a.name in assignments]
        known.sort(key=lambda a: (a.duedate is None, a.duedate or 0, natural(a.name)))
        grades = Grades([(a.name, float(a.max_score)) for a in known], [])
        people = dict(roster)
        for student in gb.students:
            if student.id in staff:
                continue
            mine = people.get(student.id, Person(student.id))
            people[student.id] = replace(
                mine, email=mine.email or (student.email or ""),
                first_name=mine.first_name or (student.first_name or ""),
                last_name=mine.last_name or (student.last_name or ""),
                student_id=mine.student_id or (getattr(student, "lms_user_id", None) or ""))
        for assignment in known:
            for student in people:
                try:
                    submission = gb.find_submission(assignment.name, student)
                except MissingEntry:
                    continue
                grades.scores[(student, assignment.name)] = float(submission.score)
                unmarked = sorted((g.name for nb in submission.notebooks for g in nb.grades
                                   if g.needs_manual_grade and g.manual_score is None), key=natural)
                if unmarked:
                    grades.pending[(student, assignment.name)] = unmarked
    grades.people = sorted(people.values(), key=lambda p: (p.last_name.lower(), p.first_name.lower(),
                                                           natural(p.username)))
    return grades


def _number(value: float | None) -> str:
    """Points as the platforms read them: 12, 12.5, 12.25; empty for no grade."""
    if value is None:
        return ""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _rows(fmt: str, grades: Grades, column_ids: dict[str, str], identifier: str,
          partial: bool) -> tuple[list[list[str]], int]:
    """The file's rows and its csv quoting."""
    names = [name for name, _ in grades.assignments]

    def marks(person):
        return [_number(grades.grade(person.username, name, partial)) for name in names]

    if fmt == "moodle":
        key = MOODLE_IDENTIFIERS[identifier]
        with_names = any(p.first_name or p.last_name for p in grades.people)
        rows = [[key] + (["First name", "Last name"] if with_names else []) + names]
        for p in grades.people:
            ident = {"username": p.username, "email": p.email, "idnumber": p.student_id}[identifier]
            if not ident:
                raise ValueError(f"{p.username} has no {key.lower()} in the roster (Moodle's "
                                 f"import identifies students by it): add it or use --identifier username")
            rows.append([ident] + ([p.first_name, p.last_name] if with_names else []) + marks(p))
        return rows, csv.QUOTE_MINIMAL
    if fmt == "canvas":
        heads = [f"{name} ({column_ids[name]})" if name in column_ids else name for name in names]
        rows = [CANVAS_COLUMNS + heads,
                [CANVAS_POINTS_POSSIBLE, "", "", "", ""] + [_number(top) for _, top in grades.assignments]]
        for p in grades.people:
            shown = f"{p.last_name}, {p.first_name}" if p.last_name and p.first_name else p.username
            rows.append([shown, p.platform_id, p.student_id, p.username, p.section] + marks(p))
        return rows, csv.QUOTE_MINIMAL
    if fmt == "blackboard":
        heads = [f"{name} [Total Pts: {_number(top)} Score]" + (f" |{column_ids[name]}" if name in column_ids else "")
                 for name, top in grades.assignments]
        rows = [BLACKBOARD_COLUMNS + heads]
        for p in grades.people:
            rows.append([p.last_name, p.first_name, p.username, p.student_id] + marks(p))
        return rows, csv.QUOTE_ALL
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def write_export(fmt: str, grades: Grades, path, column_ids: dict[str, str] | None = None,
                 identifier: str = "username", partial: bool = False) -> Path:
    """Write ``grades`` as platform ``fmt``'s import file at ``path``."""
    rows, quoting = _rows(fmt, grades, column_ids or {}, identifier, partial)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # UTF-8 with a byte-order mark: all three platforms read it, and so does a
    # spreadsheet a tutor opens it in first (names with accents stay right).
    with open(tmp, "w", newline="", encoding="utf-8-sig") as fh:
        csv.writer(fh, quoting=quoting).writerows(rows)
    os.replace(tmp, path)
    return path


def _default_roster(course_dir: Path) -> Path | None:
    for folder in (course_dir / "hub", course_dir.parent / "hub"):
        for name in ("roster.csv", "roster.example.csv"):
            if (folder / name).exists():
                return folder / name
    return None


def export(course_dir=".", fmt: str = "moodle", output=None, roster=None, assignments=None,
           column_ids=None, identifier: str = "username", partial: bool = False) -> tuple[Path, Grades]:
    """Read the course's gradebook and write the import file; return its path and the grades."""
    from .nbgrader_steps import course_directory, nbgrader_config

    course_dir = Path(course_dir).resolve()
    coursedir = course_directory(nbgrader_config(course_dir))
    roster_path = Path(roster) if roster else _default_roster(course_dir)
    people = read_roster(roster_path) if roster_path else {}
    staff = set(read_roster(roster_path, roles=("instructor",))) if roster_path else set()
    grades = read_gradebook(coursedir.db_url, coursedir.course_id, assignments, people, staff)
    output = Path(output) if output else course_dir / f"grades-{fmt}.csv"
    return write_export(fmt, grades, output, column_ids, identifier, partial), grades


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coursetools.grading export",
        description="Write the gradebook's grades as the import file of a learning platform "
        "(Moodle's CSV grade import, Canvas's gradebook CSV, Blackboard's Grade Center upload).",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="the learning platform")
    parser.add_argument("--course-dir", default=".", help="course folder (default: current folder)")
    parser.add_argument("--roster", help="roster CSV with names, emails and student numbers "
                        "(default: hub/roster.csv or hub/roster.example.csv, when present)")
    parser.add_argument("--assignment", action="append", help="export only this practical (repeatable)")
    parser.add_argument("--output", "-o", help="where to write (default: <course-dir>/grades-<format>.csv)")
    parser.add_argument("--column-id", action="append", default=[], metavar="ASSIGNMENT=ID",
                        help="the platform's ID of a practical's grade column (Canvas, Blackboard); "
                        "without it the platform makes a new column (repeatable)")
    parser.add_argument("--identifier", choices=sorted(MOODLE_IDENTIFIERS), default="username",
                        help="Moodle: the column that identifies students (default: username)")
    parser.add_argument("--partial", action="store_true",
                        help="export submissions whose written answers are not all marked yet, "
                        "with their score so far (default: leave them empty)")
    args = parser.parse_args(argv)

    column_ids = {}
    for item in args.column_id:
        name, sep, ident = item.partition("=")
        if not sep or not name or not ident:
            parser.error(f"--column-id {item!r}: write ASSIGNMENT=ID, e.g. practical1=12345")
        column_ids[name] = ident
    try:
        path, grades = export(args.course_dir, args.format, args.output, args.roster, args.assignment,
                              column_ids, args.identifier, args.partial)
    except (ValueError, OSError) as err:
        print(f"Could not export: {err}", file=sys.stderr)
        return 1
    for (student, assignment), cells in sorted(grades.pending.items()):
        what = "exported its score so far" if args.partial else "left empty"
        print(f"{student}/{assignment}: {len(cells)} written answer(s) not marked yet "
              f"({', '.join(cells)}): {what}", file=sys.stderr)
    graded = sum(grades.grade(p.username, a, args.partial) is not None
                 for p in grades.people for a, _ in grades.assignments)
    maxima = ", ".join(f"{name} out of {_number(top)}" for name, top in grades.assignments)
    print(f"{args.format}: {len(grades.people)} students, {graded} grade(s) ({maxima}) -> {path}")
    return 0
