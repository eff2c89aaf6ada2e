"""Round trip of the tutor's grading workflow (``python -m coursetools.grading``).

A throw-away course is built from the real ``nbgrader_config.py`` and
``solutions/practical1``: the student version is generated, seven students
submit it (correct, untouched, a wrong value, an infinite loop, a deleted test
cell, a cell that kills the kernel, a cell that swallows interrupts) and the
workflow grades them all, each in its own sandbox (hostile submissions are in
``test_grading_hostile.py``).  Each student's expected score is derived from the
points in the source notebook, not from what the workflow printed.
"""

from __future__ import annotations

import ast
import csv
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "practical1"
SOURCE = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
TIMEOUT = 15  # seconds per cell in these tests (the course uses more)

pytestmark = pytest.mark.slow

KILL_KERNEL = "import os\nos.kill(os.getpid(), 9)"
SWALLOW_INTERRUPTS = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.05)\n"
    "    except KeyboardInterrupt:\n"
    "        pass"
)
INFINITE_LOOP = "while True:\n    pass"


# ---------------------------------------------------------------------------
# the source notebook, read directly
# ---------------------------------------------------------------------------


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _without_delimiters(source: str) -> str:
    keep = [line for line in source.splitlines()
            if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line]
    return "\n".join(keep)


class Source:
    """Facts about the source notebook: answers, tests and their points."""

    def __init__(self, path: Path):
        self.nb = nbformat.read(path, as_version=4)
        cells = self.nb.cells
        self.answers = {_nbg(c)["grade_id"]: _without_delimiters(c.source)
                        for c in cells if _nbg(c).get("solution")}
        grade_cells = [c for c in cells if _nbg(c).get("grade")]
        self.auto_points = sum(float(_nbg(c)["points"]) for c in grade_cells if c.cell_type == "code")
        self.max_points = sum(float(_nbg(c)["points"]) for c in grade_cells)
        self.manual = [_nbg(c)["grade_id"] for c in grade_cells if c.cell_type == "markdown"]
        self.manual_points = {_nbg(c)["grade_id"]: float(_nbg(c)["points"])
                              for c in grade_cells if c.cell_type == "markdown"}
        # The test cells that directly follow each code answer cell.
        self.tests_of: dict[str, list[tuple[str, float]]] = {}
        current = None
        for c in cells:
            meta = _nbg(c)
            if c.cell_type == "code" and meta.get("solution"):
                current = meta["grade_id"]
                self.tests_of[current] = []
            elif c.cell_type == "code" and meta.get("grade") and current:
                self.tests_of[current].append((meta["grade_id"], float(meta["points"])))
            else:
                current = None
        self.first = next(gid for gid, tests in self.tests_of.items() if tests)
        self.first_points = sum(p for _, p in self.tests_of[self.first])
        self.first_test = self.tests_of[self.first][0]
        self.hidden_lines = [
            line.strip()
            for c in cells if c.cell_type == "code" and "BEGIN HIDDEN TESTS" in c.source
            for line in re.search(r"BEGIN HIDDEN TESTS\n(.*?)\n\s*### END HIDDEN TESTS",
                                  c.source, re.S).group(1).splitlines()
            if len(line.strip()) > 3
        ]

    def first_variable(self) -> str:
        """The variable the first answer cell assigns (the one its test checks)."""
        tree = ast.parse(self.answers[self.first])
        names = [t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)]
        return names[-1]


# ---------------------------------------------------------------------------
# the course and the submissions
# ---------------------------------------------------------------------------


def _make_course(root: Path) -> Path:
    course = root / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(REPO / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    return course


def _generate_student_version(course: Path):
    """Run nbgrader's generate_assignment inside the throw-away course."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.utils import temp_attrs

    from coursetools.grading import nbgrader_steps as steps

    steps.venv_on_path()
    cfg = steps.nbgrader_config(course)
    coursedir = steps.course_directory(cfg)
    with temp_attrs(coursedir, assignment_id=ASSIGNMENT):
        app = GenerateAssignment(coursedir=coursedir, config=cfg, log=steps.logger())
        app.force = True
        result = steps.run_app(app)
    assert result["success"], result.get("log", "") + result.get("error", "")
    path = course / "practicals" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(path, as_version=4)


def _submit(course: Path, student: str, nb) -> None:
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{ASSIGNMENT}.ipynb")


def _answered(student_nb, src: Source, markdown: bool = False, replace: dict | None = None):
    """A copy of the student version with the model answers filled in.

    ``markdown`` also fills the manually graded written answers; ``replace``
    maps grade ids to the code a student wrote instead of the model answer.
    """
    nb = nbformat.from_dict(student_nb)
    replace = replace or {}
    for cell in nb.cells:
        gid = _nbg(cell).get("grade_id")
        if gid in replace:
            cell.source = replace[gid]
        elif gid in src.answers and (cell.cell_type == "code" or markdown):
            cell.source = src.answers[gid]
    return nb


def _run(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coursetools.grading", "--course-dir", str(course),
         "--timeout", str(TIMEOUT), *args],
        capture_output=True, text=True, timeout=600,
    )


def _lines(stdout: str) -> dict[str, str]:
    """The report lines, by student."""
    return {line.split()[0]: line for line in stdout.splitlines()
            if len(line.split()) > 2 and line.split()[1] == ASSIGNMENT}


@pytest.fixture(scope="module", autouse=True)
def _sandbox_available():
    """Grading runs student code only in a bubblewrap sandbox: fail (never skip) without it."""
    from coursetools.grading.sandbox import SandboxUnavailable, check_sandbox

    try:
        check_sandbox()
    except SandboxUnavailable as err:
        pytest.fail(f"The grading sandbox cannot be made on this machine: {err}", pytrace=False)


@pytest.fixture(scope="module")
def src() -> Source:
    return Source(SOURCE)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, src):
    """The course after one run of the workflow over seven submissions."""
    course = _make_course(tmp_path_factory.mktemp("grading"))
    student_nb = _generate_student_version(course)
    wrong = f"{src.first_variable()} = -0.123"
    _submit(course, "alice", _answered(student_nb, src, markdown=True))
    _submit(course, "bob", nbformat.from_dict(student_nb))
    _submit(course, "carol", _answered(student_nb, src, replace={src.first: wrong}))
    _submit(course, "dave", _answered(student_nb, src, replace={src.first: INFINITE_LOOP}))
    erin = _answered(student_nb, src)
    erin.cells = [c for c in erin.cells if _nbg(c).get("grade_id") != src.first_test[0]]
    _submit(course, "erin", erin)
    _submit(course, "frank", _answered(student_nb, src, replace={src.first: KILL_KERNEL}))
    _submit(course, "grace", _answered(student_nb, src, replace={src.first: SWALLOW_INTERRUPTS}))
    proc = _run(course)
    return course, proc, _lines(proc.stdout)


def _score(line: str) -> tuple[float, float]:
    match = re.search(r"(\d+\.\d) / (\d+\.\d)", line)
    assert match, line
    return float(match.group(1)), float(match.group(2))


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------


def test_one_line_per_student(graded):
    _, proc, lines = graded
    assert sorted(lines) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace"], proc.stdout
    assert "3 graded, 2 need manual grading, 2 could not be graded" in proc.stdout


def test_correct_submission_gets_every_autograded_point(graded, src):
    _, _, lines = graded
    line = lines["alice"]
    assert "needs manual grading" in line
    assert _score(line) == (src.auto_points, src.max_points)
    assert f"{len(src.manual)} manual answers to grade ({', '.join(src.manual)})" in line


def test_untouched_submission_scores_zero(graded, src):
    _, _, lines = graded
    line = lines["bob"]
    assert line.split()[2] == "graded"
    assert _score(line) == (0.0, src.max_points)


def test_wrong_value_loses_the_points_of_its_tests(graded, src):
    _, _, lines = graded
    line = lines["carol"]
    assert line.split()[2] == "graded"
    assert _score(line) == (src.auto_points - src.first_points, src.max_points)


def test_infinite_loop_is_interrupted_and_the_rest_graded(graded, src):
    _, _, lines = graded
    line = lines["dave"]
    assert line.split()[2] == "graded"
    assert _score(line) == (src.auto_points - src.first_points, src.max_points)
    assert f"interrupted after {TIMEOUT}" in line and src.first in line


def test_deleted_test_cell_needs_manual_grading(graded, src):
    _, _, lines = graded
    line = lines["erin"]
    test_id, points = src.first_test
    assert "needs manual grading" in line
    assert f"test cell {test_id} deleted" in line
    # nbgrader itself silently gives the deleted cell 0.
    assert _score(line) == (src.auto_points - points, src.max_points)


def test_kernel_death_and_swallowed_interrupts_are_not_graded(graded, src):
    _, proc, lines = graded
    assert "could not be graded" in lines["frank"]
    assert f"kernel died while running cell {src.first}" in lines["frank"]
    assert "could not be graded" in lines["grace"]
    assert f"cell {src.first} outran the {TIMEOUT} s timeout and ignored the interrupt" in lines["grace"]
    assert proc.returncode == 1
    assert "frank/practical1" in proc.stderr and "grace/practical1" in proc.stderr
    for student in ["alice", "bob", "carol", "dave", "erin"]:
        assert f"{student}/" not in proc.stderr


def test_grades_csv(graded, src):
    course, _, _ = graded
    with open(course / "grades.csv", newline="") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]
    assert all(row["assignment"] == ASSIGNMENT for row in rows.values())
    assert float(rows["alice"]["score"]) == src.auto_points
    assert float(rows["bob"]["score"]) == 0.0
    assert float(rows["carol"]["score"]) == src.auto_points - src.first_points
    assert float(rows["carol"]["max_score"]) == src.max_points
    assert rows["erin"]["status"] == "needs manual grading"
    assert rows["frank"]["status"] == "could not be graded" and rows["frank"]["score"] == ""
    assert "kernel died" in rows["frank"]["reasons"]


def test_data_load_in_the_autograded_folder(graded):
    """The correct submission ran without a single error where nbgrader runs it."""
    course, _, _ = graded
    nb = nbformat.read(course / "autograded" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert any("load_dataset" in c.source for c in nb.cells)


def _feedback_text(course: Path, student: str) -> str:
    page = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_has_no_hidden_tests(graded, src):
    course, _, _ = graded
    assert src.hidden_lines, "practical1 should have hidden tests"
    for student in ["alice", "bob", "carol", "dave", "erin"]:
        text = _feedback_text(course, student)
        assert "HIDDEN TESTS" not in text
        leaked = [line for line in src.hidden_lines if line in text]
        assert leaked == [], (student, leaked)
    # Failed hidden tests show in the feedback, but not their code.
    assert "Error" in _feedback_text(course, "carol")
    assert not (course / "feedback" / "frank").exists()


def _give_manual_marks(course: Path, src: Source, student: str) -> None:
    """The tutor's marks for every written answer, straight into the gradebook."""
    from nbgrader.api import Gradebook

    from coursetools.grading import nbgrader_steps as steps

    coursedir = steps.course_directory(steps.nbgrader_config(course))
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for name, points in src.manual_points.items():
            gb.find_grade(name, ASSIGNMENT, ASSIGNMENT, student).manual_score = points
        gb.db.commit()


def test_manual_scores_survive_a_rerun(graded, src):
    """After the tutor grades the written answers, a rerun reports 'graded'."""
    course, _, _ = graded
    _give_manual_marks(course, src, "alice")
    proc = _run(course, "--student", "alice", "--no-feedback", "--csv", str(course / "rerun.csv"))
    line = _lines(proc.stdout)["alice"]
    assert line.split()[2] == "graded", line
    assert _score(line) == (src.max_points, src.max_points)
    assert proc.returncode == 0


def test_wall_clock_guard_stops_a_hanging_submission(tmp_path, src):
    """Past --max-time the kernel is killed and the submission reported."""
    course = _make_course(tmp_path)
    student_nb = _generate_student_version(course)
    _submit(course, "hank", _answered(student_nb, src, replace={src.first: SWALLOW_INTERRUPTS}))
    proc = _run(course, "--max-time", "6", "--no-feedback")
    line = _lines(proc.stdout)["hank"]
    assert "could not be graded" in line and "timeout" in line and "6 s" in line
    assert proc.returncode == 1 and "hank/practical1" in proc.stderr
    assert not (course / "autograded" / "hank" / ASSIGNMENT).exists()


def test_no_submissions_is_not_an_error(tmp_path):
    course = _make_course(tmp_path)
    proc = _run(course)
    assert proc.returncode == 0
    assert "No submissions found" in proc.stdout


def test_feedback_fallback_clears_hidden_tests_and_their_tracebacks():
    """Without a hidden-test filter in the course config, the workflow adds its own."""
    from nbformat.v4 import new_code_cell, new_output
    from traitlets.config import Config

    from coursetools.grading import nbgrader_steps
    from coursetools.practicals import ClearHiddenTestsForFeedback as cls

    steps = nbgrader_steps.feedback_config(Config()).GenerateFeedback.preprocessors
    assert cls in steps
    cell = new_code_cell(
        "assert x > 0, 'x should be positive'\n### BEGIN HIDDEN TESTS\n"
        "assert abs(x - 0.6613) < 1e-3\n### END HIDDEN TESTS",
        metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                               "points": 1, "grade_id": "t", "schema_version": 3}},
    )
    cell.outputs = [new_output("error", ename="AssertionError", evalue="",
                               traceback=["----> 3 \x1b[39massert abs(x - 0.6613) < 1e-3"])]
    cell, _ = cls().preprocess_cell(cell, {}, 0)
    assert "0.6613" not in cell.source and "HIDDEN" not in cell.source
    assert "x should be positive" in cell.source
    assert "0.6613" not in "".join(cell.outputs[0].traceback)
    assert cell.outputs[0].ename == "AssertionError"
