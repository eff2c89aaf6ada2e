"""Limits that hold for a whole submission, and a sandbox run from a symlinked environment.

One throw-away course (the real ``nbgrader_config.py`` and ``solutions/practical1``)
is graded with small whole-submission limits (``--memory-mb 1024 --processes
64 --disk-mb 128``) and two jobs: ``hog`` starts six processes of 400 MB each
(each far below its own 4 GB limit, 2.4 GB together), ``forker`` starts 200
processes, ``filler`` writes 200 MB, and ``honest`` answers the first question.
Each offender is stopped and reported by name; the honest student in the same
run is graded as usual.  The same class is graded again with control groups
switched off (the grader then watches the sandbox's memory itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_grading import (ASSIGNMENT, SOURCE, TIMEOUT, Source, _answered, _generate_student_version,
                          _lines, _make_course, _sandbox_available, _score, _submit)  # noqa: F401

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

HOG = textwrap.dedent('''\
    import subprocess, sys
    code = "import time; block = b'x' * (400 * 1024 * 1024); time.sleep(6)"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(6)]
    print("exit statuses", [p.wait() for p in procs])
    ''')
FORKER = textwrap.dedent('''\
    import subprocess
    procs = []
    for _ in range(200):
        procs.append(subprocess.Popen(["sleep", "3"]))
    ''')
FILLER = textwrap.dedent('''\
    with open("/tmp/big", "wb") as fh:
        for _ in range(200):
            fh.write(b"x" * 1024 * 1024)
    ''')


def _grade(course: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coursetools.grading", "--course-dir", str(course), "--timeout", str(TIMEOUT),
         "--jobs", "2", "--no-feedback", "--memory-mb", "1024", "--processes", "64", "--disk-mb", "128"],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, **env))


def _events(course: Path) -> dict:
    data = json.loads((course / "grading-report.json").read_text())
    return {e["student_id"]: e for e in data["submissions"]}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    src = Source(SOURCE)
    course = _make_course(tmp_path_factory.mktemp("limits"))
    student_nb = _generate_student_version(course)
    for student, code in (("hog", HOG), ("forker", FORKER), ("filler", FILLER)):
        _submit(course, student, _answered(student_nb, src, replace={src.first: code}))
    honest = _answered(student_nb, src)
    _submit(course, "honest", honest)
    return course, src


def test_whole_submission_limits_stop_and_name_the_offender(course):
    course, src = course
    proc = _grade(course)
    lines = _lines(proc.stdout)
    assert sorted(lines) == ["filler", "forker", "hog", "honest"], proc.stdout + proc.stderr
    kind = "cgroup v1" if not Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v2"
    assert f"Limits: each submission: 1,024 MB of memory, 64 processes, 128 MB of disk" in proc.stdout
    assert f"({kind})" in proc.stdout, proc.stdout  # this machine (root) has control groups
    report = _events(course)
    hog = " ".join(e["detail"] for e in report["hog"]["events"] if e["kind"] == "submission limit")
    assert "1,024 MB of memory" in hog, report["hog"]
    forker = " ".join(e["detail"] for e in report["forker"]["events"])
    assert "64 processes" in forker or "process limit reached" in forker, report["forker"]
    filler = " ".join(e["detail"] for e in report["filler"]["events"])
    assert "disk limit reached" in filler, report["filler"]
    # The honest student of the same run: every automatic point.
    assert _score(lines["honest"]) == (src.auto_points, src.max_points), lines["honest"]
    assert "submission limit" not in lines["honest"]


def test_without_control_groups_the_grader_watches_memory(course):
    course, src = course
    proc = _grade(course, COURSETOOLS_CGROUPS="off")
    lines = _lines(proc.stdout)
    assert "memory watched by the grader (switched off (COURSETOOLS_CGROUPS=off))" in proc.stdout
    assert "could not be graded" in lines["hog"] and "1,024 MB of memory" in lines["hog"], lines["hog"]
    assert "kept the last good grade" in lines["hog"] or "-" in lines["hog"]
    assert _score(lines["honest"]) == (src.auto_points, src.max_points), lines["honest"]


def test_a_symlinked_environment_makes_a_sandbox(tmp_path):
    """A tutor whose .venv is a link: the sandbox mounts and runs the resolved environment."""
    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.prefix))
    python = link / "bin" / "python"
    code = ("from coursetools.grading.sandbox import check_sandbox, python_executable\n"
            "check_sandbox()\nprint(python_executable())")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "tools")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(Path(sys.prefix).resolve() / "bin" / "python")
