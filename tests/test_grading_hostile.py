"""Hostile submissions: grading that a student cannot cheat or break (issue #9).

One throw-away course (the real ``nbgrader_config.py`` and ``solutions/practical1``)
receives honest and hostile submissions, graded in one parallel run.  Every
hostile one must get no mark it did not earn, harm no other student and be
reported by name; the honest ones get their full marks.  The sandbox's
protections are also checked directly (reading the course, the network,
a detached process, memory, the grader's environment).

These tests need bubblewrap (``bwrap``); without it they fail with a message
saying what to install - they are never skipped.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import nbformat
import pytest

from test_grading import (ASSIGNMENT, SOURCE, TIMEOUT, Source, _answered, _generate_student_version,
                          _give_manual_marks, _lines, _make_course, _nbg, _score, _submit)
# The autouse fixture that fails (never skips) where no sandbox can be made.
from test_grading import _sandbox_available  # noqa: F401

pytestmark = pytest.mark.slow

SECRET = "tutor-secret-" + uuid.uuid4().hex[:12]
TOKEN = "coursetools-detached-" + uuid.uuid4().hex[:8]




def _run(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coursetools.grading", "--course-dir", str(course),
         "--timeout", str(TIMEOUT), "--jobs", "2", *args],
        capture_output=True, text=True, timeout=900, env=env,
    )


def _test_names(src: Source) -> list[str]:
    """Every variable a test cell of the source notebook checks."""
    import ast

    names = []
    for cell in src.nb.cells:
        if cell.cell_type == "code" and _nbg(cell).get("grade"):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Name) and node.id not in ("np", "pd", "chem") \
                        and node.id not in names and not hasattr(__builtins__, node.id):
                    names.append(node.id)
    return names


def _cheat_code(src: Source) -> str:
    """Every trick that once gave a blank notebook marks, in one answer cell."""
    wrong = "\n".join(f"{name} = Always(0.5)" for name in _test_names(src))
    return textwrap.dedent('''\
        import numpy as np
        import pandas as pd
        ip = get_ipython()
        # 1. rewrite every assert before it runs
        ip.input_transformers_post.append(
            lambda lines: [l.replace("assert ", "assert True or ") for l in lines])
        # 2. a float whose comparisons always succeed
        class Always(float):
            def __eq__(self, other): return True
            __lt__ = __le__ = __gt__ = __ge__ = __eq__
            def __ne__(self, other): return False
            __hash__ = float.__hash__
        # 3. patched libraries and builtins
        np.isclose = lambda *a, **k: True
        np.allclose = lambda *a, **k: True
        np.ndim = lambda *a, **k: 0
        pd.Series.mean = lambda self, *a, **k: 0.0
        abs = lambda x: 0
        # 4. a hook that copies every cell it sees into the output (the feedback)
        ip.events.register("pre_run_cell", lambda info: print("SEEN:", info.raw_cell))
        ''') + wrong + "\n"


def _reader_code(course: Path) -> str:
    """Look for the solutions, the gradebook and other students' work; damage what is found."""
    return textwrap.dedent(f'''\
        import glob, os, re, socket, subprocess, sys
        course = {str(course)!r}
        found = []
        for pattern in [course + "/**", course + "/../**/*.ipynb", "/work/*/solutions/**",
                        "/root/**/*.ipynb", "/tmp/**", "/home/**", "/*/gradebook.db"]:
            found += [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        print("FOUND", found)
        refs = {{}}
        for path in found:
            try:
                text = open(path).read()
            except (OSError, ValueError):  # unreadable, or not text (a .pyc under /tmp)
                continue
            for name, value in re.findall(r"np.isclose\\((\\w+), ([-0-9.e]+)", text):
                refs[name] = float(value)
        globals().update(refs)
        for target in [course + "/gradebook.db", course + "/grades.csv",
                       course + "/submitted/alice/practical1/practical1.ipynb"]:
            try:
                with open(target, "w") as fh:
                    fh.write("vandalised")
            except OSError as err:
                print("BLOCKED", target, repr(err), file=sys.stderr)
        try:
            socket.create_connection(("1.1.1.1", 80), timeout=2)
            print("NETWORK OPEN")
        except OSError as err:
            print("NO NETWORK", repr(err), file=sys.stderr)
        # a detached process that should outlive grading and rewrite grades.csv
        subprocess.Popen([sys.executable, "-c",
                          "import time; time.sleep(20); open({str(course)!r} + '/grades.csv', 'w').write('x')",
                          {TOKEN!r}], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("ENV", dict(os.environ))
        # what this process may do: user, capabilities, and who started it
        with open("/proc/self/status") as fh:
            status = dict(line.rstrip("\\n").split(":\\t", 1) for line in fh if ":\\t" in line)
        print("STATUS", {{k: status[k] for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                                                   "CapBnd", "CapAmb", "NoNewPrivs")}})
        print("PARENT", os.getppid())
        ''')


LIMITS_CODE = textwrap.dedent('''\
    import subprocess, sys
    print("x" * 30_000_000)
    try:
        hog = bytearray(20 * 1024 ** 3)
    except MemoryError as err:
        print("MemoryError", file=sys.stderr)
    procs = []
    try:
        for _ in range(2000):
            procs.append(subprocess.Popen(["sleep", "60"]))
    except OSError as err:
        print(repr(err), file=sys.stderr)
    ''')


@pytest.fixture(scope="module")
def src() -> Source:
    return Source(SOURCE)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, src):
    """One grading run over honest and hostile submissions."""
    course = _make_course(tmp_path_factory.mktemp("hostile"))
    student_nb = _generate_student_version(course)
    blank = nbformat.from_dict(student_nb)
    first = src.first

    # The honest student copied one answer cell (same cell id and grade id, as
    # a copy-paste in the browser makes); written as JSON, since nbformat.write
    # would repair the repeated id.
    alice = _answered(student_nb, src, markdown=True)
    index = next(i for i, c in enumerate(alice.cells) if _nbg(c).get("grade_id") == first)
    alice.cells.insert(index, nbformat.from_dict(json.loads(json.dumps(alice.cells[index]))))
    folder = course / "submitted" / "alice" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(alice))

    _submit(course, "cheater", _replace(blank, {first: _cheat_code(src)}))
    _submit(course, "reader", _replace(blank, {first: _reader_code(course)}))
    # Floods, memory and process hogs in the first answer cell of a blank notebook.
    _submit(course, "limits", _replace(blank, {first: LIMITS_CODE}))

    # A blank notebook whose first test cell says `pass` and is worth 100 points,
    # and whose other test cells are no longer marked as tests.
    tamper = _replace(blank, {})
    test_id = src.first_test[0]
    for cell in tamper.cells:
        meta = _nbg(cell)
        if meta.get("grade_id") == test_id:
            cell.source = "pass"
            meta["points"] = 100
        elif meta.get("grade") and cell.cell_type == "code":
            meta["grade"] = False
    _submit(course, "tamper", tamper)

    folder = course / "submitted" / "dora" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(blank, folder / f"{ASSIGNMENT} (1).ipynb")

    env = dict(os.environ, COURSETOOLS_TEST_SECRET=SECRET)
    proc = _run(course, env=env)
    return course, proc, _lines(proc.stdout)


def _replace(nb, sources: dict):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if _nbg(cell).get("grade_id") in sources:
            cell.source = sources[_nbg(cell)["grade_id"]]
    return nb


def _report(course: Path) -> dict:
    data = json.loads((course / "grading-report.json").read_text())
    return {e["student_id"]: e for e in data["submissions"]}


def _kinds(entry: dict) -> set[str]:
    return {e["kind"] for e in entry["events"]}


def _feedback(course: Path, student: str) -> str:
    page = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    return html.unescape(page)


def test_everyone_is_graded_in_one_run(hostile):
    _, proc, lines = hostile
    assert sorted(lines) == ["alice", "cheater", "dora", "limits", "reader", "tamper"], \
        proc.stdout + proc.stderr
    assert "2 at once, each in a sandbox" in proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_honest_submission_gets_every_autograded_point(hostile, src):
    _, _, lines = hostile
    assert _score(lines["alice"]) == (src.auto_points, src.max_points)
    assert "kernel tampering" not in lines["alice"]


def test_tricks_in_the_kernel_earn_nothing(hostile, src):
    """Input transformer, float subclass, patched numpy/pandas/abs, event hook: 0 points."""
    course, _, lines = hostile
    assert _score(lines["cheater"]) == (0.0, src.max_points)
    entry = _report(course)["cheater"]
    assert entry["score"] == 0.0
    tampering = " ".join(e["detail"] for e in entry["events"] if e["kind"] == "kernel tampering")
    for what in ["input transformers", "event hooks", "patched numpy.isclose", "redefined abs"]:
        assert what in tampering, tampering
    assert any("float subclass" in e["detail"] for e in entry["events"]), entry["events"]


def test_solutions_and_gradebook_are_out_of_reach(hostile, src):
    course, _, lines = hostile
    assert _score(lines["reader"]) == (0.0, src.max_points)
    nb = nbformat.read(course / "autograded" / "reader" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    found = re.search(r"FOUND (\[.*?\])", text).group(1)
    assert "solutions" not in found and "gradebook" not in found and str(course) not in found, found
    assert "NETWORK OPEN" not in text and "NO NETWORK" in text
    assert text.count("BLOCKED") == 3
    kinds = " ".join(e["detail"] for e in _report(course)["reader"]["events"])
    assert "network blocked" in kinds


def test_student_code_runs_without_privileges(hostile):
    """Own user id, no capability left (not even in the bounding set), no_new_privs.

    Graded as root, each notebook runs in a fork of the worker's preloaded
    Python that entered its sandbox and then dropped root: its parent is
    outside the sandbox (process id 0 as seen from inside).
    """
    import ast

    course, _, _ = hostile
    nb = nbformat.read(course / "autograded" / "reader" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    status = ast.literal_eval(re.search(r"STATUS (\{.*?\})\n", text).group(1))
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[key], 16) == 0, (key, status[key])
    assert status["NoNewPrivs"].strip() == "1"
    uids = {int(u) for u in status["Uid"].split()}
    gids = {int(g) for g in status["Gid"].split()}
    assert 0 not in uids and 0 not in gids and status["Groups"].strip() in ("", str(min(gids)))
    if os.geteuid() == 0:
        from coursetools.grading import sandbox

        assert len(uids) == 1 and sandbox.UID_BASE < uids.pop() <= sandbox.UID_BASE + 2  # --jobs 2
        assert re.search(r"PARENT (\d+)", text).group(1) == "0"


def test_no_student_can_change_another_students_grade(hostile, src):
    course, _, lines = hostile
    with sqlite3.connect(course / "gradebook.db") as db:
        rows = dict(db.execute(
            "select student.id, sum(coalesce(grade.manual_score, grade.auto_score, 0)) from grade "
            "join submitted_notebook on grade.notebook_id = submitted_notebook.id "
            "join submitted_assignment on submitted_notebook.assignment_id = submitted_assignment.id "
            "join student on submitted_assignment.student_id = student.id group by student.id"))
    assert rows["alice"] == src.auto_points
    assert "vandalised" not in (course / "submitted" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    with open(course / "grades.csv", newline="") as fh:
        grades = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert float(grades["alice"]["score"]) == src.auto_points


def test_detached_processes_do_not_outlive_grading(hostile):
    course, _, _ = hostile
    leftover = subprocess.run(["pgrep", "-f", TOKEN], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
    assert "processes killed" in _kinds(_report(course)["reader"])


def test_feedback_never_shows_hidden_tests_or_the_graders_environment(hostile, src):
    course, _, _ = hostile
    for student in ["alice", "cheater", "reader", "limits", "tamper", "dora"]:
        text = _feedback(course, student)
        assert SECRET not in text, student
        assert "HIDDEN TESTS" not in text, student
        leaked = [line for line in src.hidden_lines if line in text]
        assert leaked == [], (student, leaked)
    # The reader printed its environment: only the sandbox's few variables are there.
    text = _feedback(course, "reader")
    env = re.search(r"ENV (\{.*?\})", text).group(1)
    assert "HOME': '/home/student'" in env and "COURSETOOLS_TEST_SECRET" not in env


def test_limits_are_enforced_and_reported(hostile, src):
    course, _, lines = hostile
    # The misbehaving cell is stopped by the limits; the notebook is graded.
    assert lines["limits"].split()[2] == "graded"
    assert _score(lines["limits"]) == (0.0, src.max_points)
    entry = _report(course)["limits"]
    details = " ".join(e["detail"] for e in entry["events"])
    assert "output cut" in _kinds(entry)
    assert "memory limit reached" in details
    assert "process limit reached" in details
    nb_path = course / "autograded" / "limits" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert nb_path.stat().st_size < 5_000_000
    assert "output cut by the grader" in nb_path.read_text()
    feedback = course / "feedback" / "limits" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    assert feedback.stat().st_size < 6_000_000
    assert "output cut by the grader" in _feedback(course, "limits")


def test_copied_cell_is_graded_with_a_note(hostile, src):
    course, _, lines = hostile
    assert _score(lines["alice"]) == (src.auto_points, src.max_points)
    assert "duplicate cell" in lines["alice"] and src.first in lines["alice"]
    assert {"duplicate cell", "duplicate cell id"} <= _kinds(_report(course)["alice"])


def test_edited_test_cell_and_metadata_are_restored_and_reported(hostile, src):
    course, _, lines = hostile
    assert _score(lines["tamper"]) == (0.0, src.max_points)
    assert "graded" in lines["tamper"]
    kinds = _kinds(_report(course)["tamper"])
    assert {"test cell changed", "cell metadata changed"} <= kinds
    assert f"test cell changed: {src.first_test[0]}" in lines["tamper"]


def test_browser_download_name_is_graded(hostile, src):
    course, _, lines = hostile
    assert lines["dora"].split()[2] == "graded"
    assert _score(lines["dora"]) == (0.0, src.max_points)
    assert "notebook renamed" in lines["dora"] and "(1).ipynb" in lines["dora"]


def test_rerun_of_one_student_keeps_the_class_and_revisits_changed_answers(hostile, src):
    """Marks survive for unchanged answers; a changed answer needs marking again."""
    course, _, _ = hostile
    _give_manual_marks(course, src, "alice")
    changed = src.manual[0]
    path = course / "submitted" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = json.loads(path.read_text())  # as JSON: keep the copied cell's repeated id
    for cell in nb["cells"]:
        if _nbg(cell).get("grade_id") == changed:
            cell["source"] += "\n\nA second thought, added after marking."
    path.write_text(json.dumps(nb))
    proc = _run(course, "--student", "alice", "--no-feedback")
    line = _lines(proc.stdout)["alice"]
    assert "needs manual grading" in line and f"answer changed after marking: {changed}" in line
    kept = sum(p for name, p in src.manual_points.items() if name != changed)
    assert _score(line) == (src.auto_points + kept, src.max_points)
    with open(course / "grades.csv", newline="") as fh:
        rows = {row["student_id"] for row in csv.DictReader(fh)}
    assert rows == {"alice", "cheater", "dora", "limits", "reader", "tamper"}


def test_failed_regrade_keeps_the_last_good_grade(hostile, src):
    course, _, lines = hostile
    last_good = _score(lines["dora"])[0]
    path = course / "submitted" / "dora" / ASSIGNMENT / f"{ASSIGNMENT} (1).ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if _nbg(cell).get("grade_id") == src.first:
            cell.source = "import os\nos.kill(os.getpid(), 9)"
    nbformat.write(nb, path)
    proc = _run(course, "--student", "dora", "--no-feedback")
    line = _lines(proc.stdout)["dora"]
    assert "could not be graded" in line and "kernel died" in line
    assert f"kept the last good grade ({last_good:g}, graded)" in line
    with open(course / "grades.csv", newline="") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert rows["dora"]["status"] == "could not be graded"
    assert float(rows["dora"]["score"]) == last_good
    # The feedback of the last good run is still there.
    assert (course / "feedback" / "dora" / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()
    assert proc.returncode == 1


# ---------------------------------------------------------------------------
# the sandbox itself, without nbgrader (fast)
# ---------------------------------------------------------------------------


PROBE = textwrap.dedent('''\
    import json, os, socket, subprocess, sys
    out = {"uid": os.getuid(), "env": sorted(os.environ)}
    out["course_visible"] = os.path.exists(sys.argv[1])
    out["root_listing"] = sorted(os.listdir("/"))
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=2)
        out["network"] = True
    except OSError:
        out["network"] = False
    try:
        bytearray(16 * 1024 ** 3)
        out["memory_limited"] = False
    except MemoryError:
        out["memory_limited"] = True
    try:
        open("/usr/evil", "w")
        out["usr_writable"] = True
    except OSError:
        out["usr_writable"] = False
    subprocess.Popen(["sleep", sys.argv[2]], start_new_session=True)
    print(json.dumps(out))
    ''')


def test_sandbox_protections(tmp_path):
    from coursetools.grading import sandbox

    # A duration no other sleep on the machine has: other tests' sleeps do not count.
    duration = f"30.{uuid.uuid4().int % 10**6:06d}"
    pattern = f"^sleep {duration}$"
    secret_dir = tmp_path / "course" / "solutions"
    secret_dir.mkdir(parents=True)
    (secret_dir / "answers.txt").write_text("42")
    cmd = sandbox.sandbox_command(
        [sys.executable, "-I", "-c", PROBE, str(secret_dir), duration], slot=7,
        ro_binds=sandbox.write_identity(tmp_path / "id", 7), limits=sandbox.Limits(memory_mb=2048),
        env={"PATH": "/usr/bin:/bin", "HOME": "/home/student"}, cwd="/submission")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={"COURSETOOLS_TEST_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["uid"] == sandbox.sandbox_uid(7) == sandbox.UID_BASE + 7  # the grader runs as root here
    assert set(out["env"]) <= {"HOME", "PATH", "PWD", "LC_CTYPE"}
    assert out["course_visible"] is False
    assert out["network"] is False
    assert out["memory_limited"] is True
    assert out["usr_writable"] is False
    left = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert left == [], "a detached sleep survived the sandbox"


def test_grading_refuses_without_a_sandbox_unless_told_so(tmp_path):
    course = _make_course(tmp_path)
    _submit(course, "eve", _generate_student_version(course))
    env = dict(os.environ, COURSETOOLS_BWRAP="")
    cmd = [sys.executable, "-m", "coursetools.grading", "--course-dir", str(course), "--no-feedback"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "Refusing to grade" in proc.stderr and "apt-get install bubblewrap" in proc.stderr
    assert "--unsafe-no-sandbox" in proc.stderr
    assert not (course / "grades.csv").exists()
    # The documented switch grades anyway, and every report says so.
    proc = subprocess.run(cmd + ["--unsafe-no-sandbox"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "WITHOUT A SANDBOX" in proc.stdout
    assert "graded WITHOUT a sandbox" in _lines(proc.stdout)["eve"]
    assert _report(course)["eve"]["sandbox"] == "none (--unsafe-no-sandbox)"
    assert "no sandbox" in _kinds(_report(course)["eve"])


def test_plain_values_only_cross_from_the_sandbox():
    """The clean test process rebuilds plain values and refuses anything else."""
    from coursetools.grading import tester

    assert tester.decode({"t": "float", "v": "0.5"}) == 0.5
    assert type(tester.decode({"t": "float", "v": "0.5"})) is float
    with pytest.raises(ValueError):
        tester.decode({"t": "array", "dtype": "|O", "shape": [1], "b64": ""})
    with pytest.raises(ValueError):
        tester.decode({"t": "pickle", "v": "gASVAAAAAAAAAAA="})
    model = tester.decode({"t": "opaque", "type": "statsmodels.MixedLMResults"}, name="m0")
    with pytest.raises(TypeError, match="m0 is a statsmodels.MixedLMResults"):
        model < 1  # noqa: B015
    verdicts = tester.run({"imports": ["import numpy as np"], "tests": [
        {"index": 1, "source": "assert np.isclose(x, 0.66225, atol=0.001), 'not the correlation'",
         "names": ["x"], "values": {"x": {"t": "float", "v": "0.1"}}},
        {"index": 2, "source": "assert abs(x - 0.66225) < 1e-3", "names": ["x"],
         "values": {"x": {"t": "float", "v": "0.6622"}}},
        {"index": 3, "source": "assert y > 0", "names": ["y"], "values": {}},
    ]})["verdicts"]
    assert verdicts["1"]["ok"] is False and verdicts["1"]["evalue"] == "not the correlation"
    assert verdicts["2"]["ok"] is True
    assert verdicts["3"]["ename"] == "NameError"


def test_staging_repairs_and_names_every_change(tmp_path, src):
    """Tampered metadata, copied cells, unknown ids: repaired, and each named (no notebook run)."""
    from nbgrader.api import Gradebook

    from coursetools.grading import assignment_info, course_directory, ensure_in_gradebook, \
        nbgrader_config, stage

    course = _make_course(tmp_path)
    student_nb = json.loads(json.dumps(_generate_student_version(course)))
    cfg = nbgrader_config(course)
    coursedir = course_directory(cfg)
    assert ensure_in_gradebook(coursedir, cfg, ASSIGNMENT) is None
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        info = assignment_info(gb, coursedir, ASSIGNMENT)

    cells = student_nb["cells"]
    test_id, points = src.first_test
    manual = src.manual[0]
    for cell in cells:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade_id") == test_id:
            meta["points"] = "lots"          # not even a number
        elif meta.get("grade_id") == manual:
            cell["metadata"]["nbgrader"] = ["not", "a", "dict"]
    cells.append({"cell_type": "code", "id": cells[0]["id"], "metadata": {
        "nbgrader": {"grade": True, "grade_id": "bonus", "points": 50, "solution": False}},
        "source": "pass", "outputs": [], "execution_count": None})
    folder = tmp_path / "submitted"
    folder.mkdir()
    (folder / f"{ASSIGNMENT} (2).ipynb").write_text(json.dumps(student_nb))
    # what `nbgrader collect` leaves beside a notebook from the exchange
    (folder / "timestamp.txt").write_text("2026-12-03 09:00:00.000000 UTC")
    (folder / "submission_secret.txt").write_text("f00d" * 32)

    staged = stage(folder, tmp_path / "staged", "mallory", info)
    assert staged.fatal == []
    # release_feedback names the feedback file from the secret: it must travel on
    for kept in ("timestamp.txt", "submission_secret.txt"):
        assert (tmp_path / "staged" / kept).read_text() == (folder / kept).read_text()
    kinds = {e.kind: e for e in staged.events}
    assert "(2).ipynb" in kinds["notebook renamed"].detail
    assert kinds["duplicate cell id"]
    assert kinds["unknown cell id"].cell == "bonus"
    changed = {e.cell for e in staged.events if e.kind == "cell metadata changed"}
    assert test_id in changed
    # The answer cell whose metadata was destroyed no longer counts as the answer.
    assert any(e.kind == "cell deleted" and e.cell == manual for e in staged.events)
    nb = staged.notebooks[ASSIGNMENT]
    meta = next(c.metadata["nbgrader"] for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == test_id)
    assert meta["points"] == points and meta["grade"] is True and meta["locked"] is True
    assert len({c["id"] for c in nb.cells}) == len(nb.cells)
    assert "BEGIN HIDDEN TESTS" in next(c.source for c in nb.cells
                                        if c.metadata.get("nbgrader", {}).get("grade_id") == test_id)
    assert (tmp_path / "staged" / f"{ASSIGNMENT}.ipynb").exists()
    # A corrupt file is named, not graded.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / f"{ASSIGNMENT}.ipynb").write_text('{"cells": [')
    staged = stage(broken, tmp_path / "staged-broken", "trudy", info)
    assert staged.fatal and f"{ASSIGNMENT}.ipynb is not a readable notebook" in staged.fatal[0]
