"""Grades back into the learning platform: ``python -m coursetools.grading export``.

A small gradebook is built with nbgrader's API (two practicals; automatic
marks, a tutor's manual mark, extra credit, an answer not marked yet, a
student without a submission), exported for Moodle, Canvas and Blackboard,
and each file is read back by the rules its platform documents for an
offline grade upload.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from coursetools.grading import export as ex

REPO = Path(__file__).resolve().parents[1]

ROSTER = """username,role,email,first_name,last_name,student_id,platform_id,section
tutor,instructor,tutor@uni.example,Tess,Tutor,,,
alice,student,alice@uni.example,Alice,Ashby,S001,101,Group A
bob,student,bob@uni.example,Bob,Brown,S002,102,Group B
carol,student,carol@uni.example,Carol,Cortés,S003,103,Group A
dan,student,dan@uni.example,Dan,Dalton,S004,104,Group B
"""

# What each student earns (points out of practical1's 14 and practical2's 6).
EXPECTED = {
    # alice: 10 automatic + 3 manual on practical1; practical2 full marks + 1 extra credit
    ("alice", "practical1"): "13", ("alice", "practical2"): "7",
    # bob: 9.5 automatic, written answer marked 0; no practical2 submission
    ("bob", "practical1"): "9.5", ("bob", "practical2"): "",
    # carol: practical1's written answer not marked yet (empty unless --partial); practical2 2.25
    ("carol", "practical1"): "", ("carol", "practical2"): "2.25",
    # dan: on the roster, never submitted
    ("dan", "practical1"): "", ("dan", "practical2"): "",
}
MAXIMA = {"practical1": "14", "practical2": "6"}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with nbgrader_config.py, gradebook.db and hub/roster.csv."""
    from nbgrader.api import Gradebook
    from sqlalchemy import exc as sa_exc

    from coursetools.grading.nbgrader_steps import venv_on_path

    venv_on_path()  # nbgrader makes a new gradebook with the environment's `alembic`
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "multilevel"\n')
    (root / "hub").mkdir()
    (root / "hub" / "roster.csv").write_text(ROSTER, encoding="utf-8")
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "multilevel") as gb:
        gb.add_assignment("practical1", duedate="2026-11-02 17:00:00")
        gb.add_assignment("practical2", duedate="2026-11-09 17:00:00")
        gb.add_notebook("practical1", "practical1")
        gb.add_grade_cell("q1_test", "practical1", "practical1", max_score=10, cell_type="code")
        gb.add_grade_cell("q2_written", "practical1", "practical1", max_score=4, cell_type="markdown")
        gb.add_notebook("practical2", "practical2")
        gb.add_grade_cell("q1_test", "practical2", "practical2", max_score=6, cell_type="code")
        for student in ("alice", "bob", "carol", "tutor"):  # the tutor tried the practical too
            gb.add_student(student)
        # An id nbgrader knows from collecting but the roster lacks: still exported.
        gb.add_student("erin", first_name="Erin", last_name="Evans", email="erin@uni.example")

        def mark(student, assignment, cell, auto=None, manual=None, extra=None, needs_manual=False):
            grade = gb.find_grade(cell, assignment, assignment, student)
            grade.auto_score, grade.manual_score, grade.extra_credit = auto, manual, extra
            grade.needs_manual_grade = needs_manual
            gb.db.commit()

        for student in ("alice", "bob", "carol", "erin", "tutor"):
            with warnings.catch_warnings():
                # nbgrader's add_submission under SQLAlchemy 2 ("not in session"): the rows are made all the same
                warnings.simplefilter("ignore", sa_exc.SAWarning)
                gb.add_submission("practical1", student)
        mark("alice", "practical1", "q1_test", auto=10)
        mark("alice", "practical1", "q2_written", manual=3)
        mark("bob", "practical1", "q1_test", auto=9.5)
        mark("bob", "practical1", "q2_written", manual=0)
        mark("carol", "practical1", "q1_test", auto=8)
        mark("carol", "practical1", "q2_written", needs_manual=True)
        mark("erin", "practical1", "q1_test", auto=7)
        mark("erin", "practical1", "q2_written", manual=4)
        for student in ("alice", "carol"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sa_exc.SAWarning)
                gb.add_submission("practical2", student)
        mark("alice", "practical2", "q1_test", auto=6, extra=1)
        mark("carol", "practical2", "q1_test", auto=2.25)
    return root


EXPECTED_ERIN = {"practical1": "11", "practical2": ""}


def _run(course, *args):
    """The command in a process of its own, from the course folder."""
    return subprocess.run([sys.executable, "-m", "coursetools.grading", "export", *args],
                          cwd=course, capture_output=True, text=True, timeout=120)


class _Done:
    def __init__(self, returncode, captured):
        self.returncode, self.stdout, self.stderr = returncode, captured.out, captured.err


@pytest.fixture
def run(capsys):
    """The same command line in this process (nbgrader imported once: quicker)."""
    from coursetools.grading.cli import main

    def _in_process(course, *args):
        try:
            code = main(["export", "--course-dir", str(course), *args])
        except SystemExit as stop:  # argparse's errors
            code = stop.code
        return _Done(code, capsys.readouterr())

    return _in_process


def _read(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.reader(fh))


def _expected(student, assignment):
    return EXPECTED_ERIN[assignment] if student == "erin" else EXPECTED[(student, assignment)]


def test_moodle_csv_import(course):
    """Moodle: one identifier column (username / email), one column per grade item."""
    done = _run(course, "--format", "moodle", "--identifier", "email")
    assert done.returncode == 0, done.stderr
    assert "carol/practical1: 1 written answer(s) not marked yet (q2_written): left empty" in done.stderr
    assert "(practical1 out of 14, practical2 out of 6)" in done.stdout
    rows = _read(course / "grades-moodle.csv")
    head, body = rows[0], rows[1:]
    assert head == ["Email address", "First name", "Last name", "practical1", "practical2"]
    by_email = {row[0]: dict(zip(head, row)) for row in body}
    assert set(by_email) == {f"{n}@uni.example" for n in ("alice", "bob", "carol", "dan", "erin")}
    assert "tutor@uni.example" not in by_email
    for name in ("alice", "bob", "carol", "dan", "erin"):
        row = by_email[f"{name}@uni.example"]
        for assignment in MAXIMA:
            assert row[assignment] == _expected(name, assignment), (name, assignment)
    assert by_email["carol@uni.example"]["Last name"] == "Cortés"
    # Every grade is a number of points within the item's range, or empty.
    for row in by_email.values():
        for assignment, top in MAXIMA.items():
            if row[assignment]:
                assert 0 <= float(row[assignment]) <= float(top) + 1  # extra credit may pass it


def test_moodle_by_username_and_partial(run, course, tmp_path):
    out = tmp_path / "moodle.csv"
    done = run(course, "--format", "moodle", "--partial", "--output", str(out))
    assert done.returncode == 0, done.stderr
    rows = _read(out)
    assert rows[0][0] == "Username"
    by_user = {row[0]: row for row in rows[1:]}
    assert by_user["carol"][rows[0].index("practical1")] == "8"  # the score so far


def test_canvas_gradebook_csv(run, course):
    """Canvas: Student, ID, SIS User ID, SIS Login ID, Section, assignments; a Points Possible row."""
    done = run(course, "--format", "canvas", "--column-id", "practical2=5502")
    assert done.returncode == 0, done.stderr
    rows = _read(course / "grades-canvas.csv")
    head = rows[0]
    assert head[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    # A known assignment is "Name (ID)"; a new one is its name alone.
    assert head[5:] == ["practical1", "practical2 (5502)"]
    points = rows[1]
    assert points[0].strip() == "Points Possible" and points[1:5] == ["", "", "", ""]
    assert points[5:] == [MAXIMA["practical1"], MAXIMA["practical2"]]
    students = {row[3]: row for row in rows[2:]}  # by SIS Login ID
    assert set(students) == {"alice", "bob", "carol", "dan", "erin"}
    alice = students["alice"]
    assert alice[:5] == ["Ashby, Alice", "101", "S001", "alice", "Group A"]
    for login, row in students.items():
        # Canvas needs one of ID / SIS User ID / SIS Login ID to find the student
        assert row[1] or row[2] or row[3]
        assert row[5:] == [_expected(login, "practical1"), _expected(login, "practical2")], login


def test_blackboard_grade_center_upload(run, course):
    """Blackboard: Last Name, First Name, Username, Student ID; "Name |ID" or a new column
    with its points; comma-delimited with every field quoted."""
    done = run(course, "--format", "blackboard", "--column-id", "practical1=_123_1")
    assert done.returncode == 0, done.stderr
    text = (course / "grades-blackboard.csv").read_text(encoding="utf-8-sig")
    for line in text.splitlines():
        fields = next(csv.reader([line]))
        assert line == ",".join(f'"{f}"' for f in fields), f"every field in quotes: {line}"
    rows = _read(course / "grades-blackboard.csv")
    head = rows[0]
    assert head[:4] == ["Last Name", "First Name", "Username", "Student ID"]
    existing, new = head[4], head[5]
    name, _, column_id = existing.rpartition(" |")
    assert column_id == "_123_1" and name == "practical1 [Total Pts: 14 Score]"
    assert "|" not in new and new == "practical2 [Total Pts: 6 Score]"
    by_user = {row[2]: row for row in rows[1:]}
    assert set(by_user) == {"alice", "bob", "carol", "dan", "erin"}
    assert by_user["bob"][:4] == ["Brown", "Bob", "bob", "S002"]
    for user, row in by_user.items():
        assert row[4:] == [_expected(user, "practical1"), _expected(user, "practical2")], user


def test_one_practical_and_mistakes(run, course, tmp_path):
    out = tmp_path / "one.csv"
    done = run(course, "--format", "canvas", "--assignment", "practical2", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert _read(out)[0][5:] == ["practical2"]
    done = run(course, "--format", "canvas", "--assignment", "practical9")
    assert done.returncode == 1 and "practical9" in done.stderr
    done = run(course, "--format", "moodle", "--identifier", "idnumber")
    assert done.returncode == 1 and "erin has no id number" in done.stderr
    done = run(course, "--format", "canvas", "--column-id", "practical1")
    assert done.returncode == 2 and "ASSIGNMENT=ID" in done.stderr


def test_grading_command_is_unchanged_without_export():
    """The grading command's own options are still parsed as before."""
    done = subprocess.run([sys.executable, "-m", "coursetools.grading", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--unsafe-no-sandbox" in done.stdout and "export" in done.stdout


def test_numbers_as_platforms_read_them():
    assert [ex._number(v) for v in (None, 0.0, 12.0, 12.5, 12.25, 1 / 3, -0.0, 1234567.0)] == \
        ["", "0", "12", "12.5", "12.25", "0.33", "0", "1234567"]


def test_the_hubs_example_roster_serves_both_the_hub_and_the_export():
    """hub/roster.example.csv: the hub reads username and role, the export the names and numbers too."""
    sys.path.insert(0, str(REPO / "hub"))
    import classhub

    roster = REPO / "hub" / "roster.example.csv"
    hub_people = classhub.read_roster(roster)
    students = ex.read_roster(roster)
    assert set(students) == {p.username for p in hub_people if p.role == "student"}
    assert all(p.email and p.first_name and p.last_name and p.student_id for p in students.values())
