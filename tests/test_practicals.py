"""The four nbgrader practicals: sources, generated student versions, validation.

* Every hidden test compares an answer with a literal reference value; those
  values must be the lme4/glmer values in tests/fixtures/practical_reference.json
  (computed by tests/fixtures/practical_reference.R).
* practicals/ is exactly what nbgrader generates from solutions/ and contains no
  solution, rubric or hidden test.
* nbgrader's validator passes every solution (hidden tests included) and fails
  every untouched student version; running a solution with our library
  reproduces every lme4 reference answer.
* The answer checks (answer-checks.json, mlmhelpers.practice): in practice mode
  a number is called right only within the hidden test's tolerance, likely
  mistakes get their message, the model answers are right, and nothing in the
  file gives an answer away; in assessed mode the file has no hashes and the
  notebook says that passing checks are not marks.

Everything nbgrader writes goes to pytest's temporary folders, never the repo.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from coursetools.practicals import (ASSIGNMENTS, CODE_STUB, answer_checks, committed_mode,
                                    generate_practicals, load_config)
from mlmhelpers import practice

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "practical_reference.json"
SOLUTIONS = REPO / "solutions"
PRACTICALS = REPO / "practicals"

FORBIDDEN = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
             "HIDDEN TESTS", "Model answer", "Marking rubric"]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _reference():
    with open(FIXTURE) as fh:
        return json.load(fh)["answers"]


def _source(name):
    return nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)


def _nbgrader(cell):
    return cell.metadata.get("nbgrader", {})


def _hidden_region(source):
    match = re.search(r"### BEGIN HIDDEN TESTS\n(.*?)\n### END HIDDEN TESTS", source, re.S)
    return match.group(1) if match else None


def _number(node):
    """A literal number, allowing a leading minus sign."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(node.operand)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    raise ValueError(f"not a literal number: {ast.unparse(node)}")


def _hidden_checks(name):
    """Parse each hidden test into (variable, kind, constant, tolerance)."""
    checks = []
    for cell in _source(name).cells:
        if cell.cell_type != "code":
            continue
        region = _hidden_region(cell.source)
        if region is None:
            continue
        for stmt in ast.parse(region).body:
            assert isinstance(stmt, ast.Assert), f"{name}: hidden tests must be asserts: {ast.unparse(stmt)}"
            test = stmt.test
            if isinstance(test, ast.Call) and ast.unparse(test.func) == "np.isclose":
                var = test.args[0].id
                const = _number(test.args[1])
                kw = {k.arg: _number(k.value) for k in test.keywords}
                checks.append((var, "isclose", const, kw))
            elif (isinstance(test, ast.Compare) and len(test.ops) == 1
                  and isinstance(test.ops[0], ast.Lt) and isinstance(test.left, ast.Name)):
                checks.append((test.left.id, "below", _number(test.comparators[0]), {}))
            else:
                raise AssertionError(f"{name}: unrecognised hidden test {ast.unparse(test)!r}")
    return checks


def _config(root):
    """nbgrader's configuration, read from a copy of nbgrader_config.py in `root`."""
    shutil.copy2(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    return load_config(root)


def _validate(notebook, config):
    from nbgrader.validator import Validator

    return Validator(config=config).validate(str(notebook))


def _grade_test_cells(nb):
    return [c for c in nb.cells
            if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")]


# ---------------------------------------------------------------------------
# sources and fixture
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_hidden_constants_are_the_lme4_references(name):
    """Each hidden-test constant is the R value within well under its tolerance."""
    ref = _reference()[name]
    checks = _hidden_checks(name)
    tested = {var for var, *_ in checks}
    assert tested == set(ref), (
        f"{name}: hidden tests check {sorted(tested)}, the fixture has {sorted(ref)}")
    for var, kind, const, kw in checks:
        value = ref[var]["value"]
        if kind == "below":
            assert value < const, f"{name}.{var}: lme4 gives {value}, hidden test wants < {const}"
            continue
        atol, rtol = kw.get("atol", 1e-8), kw.get("rtol", 1e-5)
        tol = atol + rtol * abs(const)
        # the constant is a rounded R value, far inside the tolerance it grants
        assert abs(const - value) <= tol / 2, (
            f"{name}.{var}: hidden constant {const} vs lme4 {value} (tolerance {tol})")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_structure(name):
    """Points, unique ids, visible + hidden part in every test cell, no leaked constants."""
    nb = _source(name)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    ids = [_nbgrader(c)["grade_id"] for c in nb.cells if _nbgrader(c)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate grade_id"
    tests = _grade_test_cells(nb)
    auto_points = sum(_nbgrader(c)["points"] for c in tests)
    manual = [c for c in nb.cells if _nbgrader(c).get("grade") and _nbgrader(c).get("solution")]
    # the core (what counts) fits its class slot; going-further questions carry no points and
    # remember the points they would carry (cell metadata course.points)
    assert 8 <= auto_points <= 12, f"{name}: {auto_points} autograded core points (8 to 12 wanted)"
    assert manual and all(c.cell_type == "markdown" for c in manual)
    for cell in tests + manual:
        further = cell.metadata.get("course", {}).get("going_further", False)
        assert (_nbgrader(cell)["points"] == 0) == further, _nbgrader(cell)["grade_id"]
        if further:
            assert cell.metadata["course"]["points"] > 0
    manual_points = sum(_nbgrader(c)["points"] for c in manual)
    stated = re.search(r"About (\d+) points are marked automatically and (\d+) by your tutor",
                       nb.cells[0].source)
    assert stated and (int(stated[1]), int(stated[2])) == (auto_points, manual_points), (
        f"{name}: the introduction must state {auto_points} automatic and {manual_points} manual points")
    assert all("Marking rubric" in c.source for c in manual), "every manual answer has a rubric"
    constants = {f"{const:g}" for _, _, const, _ in _hidden_checks(name)}
    for cell in tests:
        hidden = _hidden_region(cell.source)
        assert hidden, f"{name}/{_nbgrader(cell)['grade_id']}: no hidden test"
        visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
        assert "assert" in visible, f"{name}/{_nbgrader(cell)['grade_id']}: no visible test"
        assert "print" not in visible
        for const in constants:
            assert not re.search(rf"(?<![\w.]){re.escape(const)}(?![\w])", visible), (
                f"{name}/{_nbgrader(cell)['grade_id']}: visible test shows {const}")


def test_first_answer_of_practical1_is_the_correlation():
    """The browser test types its answer into this cell."""
    nb = _source("practical1")
    answers = [c for c in nb.cells if _nbgrader(c).get("solution") and c.cell_type == "code"]
    assert _nbgrader(answers[0])["grade_id"] == "q1_corr"
    assert "corr_gcse =" in answers[0].source


# ---------------------------------------------------------------------------
# generated student versions
# ---------------------------------------------------------------------------

def _comparable(rel, text):
    """A generated file as data; a notebook without the Python version JupyterLab would write."""
    data = json.loads(text)
    if rel.endswith(".ipynb"):
        data["metadata"].get("language_info", {}).pop("version", None)
    return data


def test_practicals_are_generated_not_edited(tmp_path):
    """Regenerating practicals/ from solutions/ (in its mode) reproduces the committed files."""
    mode = committed_mode(PRACTICALS)
    made = generate_practicals(root=REPO, output=tmp_path, mode=mode)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in made) == [
        f"{a}/{a}.ipynb" for a in ASSIGNMENTS]
    committed = sorted(p.relative_to(PRACTICALS).as_posix() for p in PRACTICALS.rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    generated = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert committed == generated, "practicals/ holds files nbgrader does not generate"
    assert sum(rel.endswith("answer-checks.json") for rel in generated) == len(ASSIGNMENTS)
    for rel in generated:
        new = _comparable(rel, (tmp_path / rel).read_text())
        old = _comparable(rel, (PRACTICALS / rel).read_text())
        assert new == old, (f"practicals/{rel} differs from what nbgrader generates; "
                            "run `python -m coursetools.practicals` and commit the result")
    # JupyterLab rewrites language_info to the kernel's as it starts: the generated one is
    # the running Python's, complete, so a notebook opens unmodified on that Python.
    info = json.loads((tmp_path / made[0].relative_to(tmp_path)).read_text())["metadata"]["language_info"]
    import platform
    assert info == {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                    "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                    "pygments_lexer": "ipython3", "version": platform.python_version()}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_versions_hide_solutions_and_hidden_tests(name):
    text = (PRACTICALS / name / f"{name}.ipynb").read_text()
    for marker in FORBIDDEN:
        assert marker not in text, f"practicals/{name} contains {marker!r}"
    for var, kind, const, kw in _hidden_checks(name):
        for shown in {f"{const:g}", repr(const)}:
            assert not re.search(rf"(?<![\w.]){re.escape(shown)}(?![\w])", text), (
                f"practicals/{name} contains the hidden reference value {shown} of {var}")
    nb = nbformat.read(PRACTICALS / name / f"{name}.ipynb", as_version=4)
    stubs = [c for c in nb.cells if _nbgrader(c).get("solution") and c.cell_type == "code"]
    # an unanswered cell says what to do, not a bare NotImplementedError
    assert stubs and all(CODE_STUB in c.source for c in stubs)
    assert "replace this line" in CODE_STUB
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert all("practice" not in c.metadata for c in nb.cells), "mistake values stay with the tutor"
    # the answer checks hold hashes, never a reference value or a likely mistake's value
    checks = (PRACTICALS / name / "answer-checks.json").read_text()
    mistakes = [m["value"] for c in _source(name).cells
                for ms in c.metadata.get("practice", {}).get("mistakes", {}).values()
                for m in ms if "value" in m]
    for value in [const for _, _, const, _ in _hidden_checks(name)] + mistakes:
        for shown in {f"{value:g}", repr(value), f"{value:.3f}", f"{value:.4g}"}:
            if abs(value) >= 1e-3 and len(shown.strip("-0.")) >= 3:
                assert shown not in checks, f"{name}/answer-checks.json shows {shown}"


@pytest.mark.parametrize("folder", ["practicals", "solutions"])
def test_no_nbval_marker_in_student_visible_cells(folder):
    """nbval's markers belong in cell tags; a `# NBVAL_...` comment would show to students."""
    for path in sorted((REPO / folder).glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            assert "NBVAL_" not in cell.source, f"{path.relative_to(REPO)}: {cell.source[:80]!r}"


def test_first_cell_explains_how_to_recover():
    for name in ASSIGNMENTS:
        first = nbformat.read(PRACTICALS / name / f"{name}.ipynb", as_version=4).cells[0].source
        for needed in ("Kernel → Restart", "Run → Run All Above Selected Cell", "200%", "**⋯**"):
            assert needed in first, (name, needed)


def test_every_check_cell_imports_what_it_uses():
    """A check cell run on its own after a restart fails only for a missing answer, not
    for a name of its own (np, check_answer); it names its question on its first line."""
    for name in ASSIGNMENTS:
        for cell in _grade_test_cells(_source(name)):
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert re.match(r"# Question \d+: checks ", visible), visible[:60]
            assert "import numpy as np" in visible or "np." not in visible
            assert "from mlmhelpers.practice import check_answer" in visible


# ---------------------------------------------------------------------------
# answer checks
# ---------------------------------------------------------------------------

def _checks(name):
    return json.loads((PRACTICALS / name / "answer-checks.json").read_text())


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_practice_check_is_never_looser_than_the_hidden_test(name):
    """For every hidden test: numbers well inside its tolerance are right, numbers just
    outside it are not; a p-value test `p < 1e-10` is mirrored exactly."""
    if committed_mode(PRACTICALS) != "practice":
        pytest.skip("practicals/ is in assessed mode")
    answers = _checks(name)["answers"]
    for var, kind, const, kw in _hidden_checks(name):
        entry = answers[var]
        assert set(entry["right"]) == {"hash", "salt", "scale", "step", "window"}
        if kind == "below":
            assert practice.verdict(const / 10, entry)[0] and practice.verdict(0.0, entry)[0]
            assert not practice.verdict(const * 1.01, entry)[0]
            continue
        atol, rtol = kw.get("atol", 1e-8), kw.get("rtol", 1e-5)
        if atol == 0:
            inside, outside = [const * 1.04, const / 1.04], [const * 1.051, const * 0.949]
        else:
            inside, outside = [const + 0.79 * atol, const - 0.79 * atol], \
                [const + 1.001 * (atol + rtol * abs(const)), const - 1.001 * (atol + rtol * abs(const))]
        for x in inside:
            assert practice.verdict(x, entry) == (True, None), (name, var, x)
        for x in outside:
            right, _ = practice.verdict(x, entry)
            assert not right and abs(x - const) > atol + rtol * abs(const), (name, var, x)


def test_spearman_for_pearson_gets_its_own_message():
    entry = _checks("practical1")["answers"]["corr_gcse"]
    pearson, spearman = 0.6622476394301268, 0.6841906221281001  # chem97: score with gcsescore
    assert practice.verdict(pearson, entry) == (True, None)
    right, message = practice.verdict(spearman, entry)
    assert not right and "Spearman" in message and "Pearson" in message
    assert practice.verdict(0.5, entry) == (False, None)
    # a standard deviation given for a variance is recognised by squaring it
    var = _checks("practical1")["answers"]["var_school"]
    right, message = practice.verdict(2.8819 ** 0.5, var)
    assert not right and "standard deviation" in message


def test_check_answer_in_a_notebook(tmp_path, monkeypatch, capsys):
    """check_answer in a kernel next to answer-checks.json: right, mistake, assessed, missing file."""
    monkeypatch.setattr(practice, "_shell", lambda: object())
    monkeypatch.chdir(tmp_path)
    practice.check_answer("corr_gcse", 0.66)
    assert "only the form was checked" in capsys.readouterr().out
    shutil.copy(PRACTICALS / "practical1" / "answer-checks.json", tmp_path)
    practice.check_answer("corr_gcse", 0.66225)
    assert "Question 1: corr_gcse is right" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Question 1: corr_gcse = 0.684191 is not right: "
                                             "this looks like Spearman"):
        practice.check_answer("corr_gcse", 0.684191)
    with pytest.raises(AssertionError, match="is not right yet"):
        practice.check_answer("corr_gcse", 0.6)
    assessed = answer_checks(SOLUTIONS / "practical1" / "practical1.ipynb", "practical1", "assessed")
    (tmp_path / "answer-checks.json").write_text(json.dumps(assessed))
    practice.check_answer("corr_gcse", 0.1)
    assert "This is not a mark" in capsys.readouterr().out
    # outside IPython (the grader's clean process) it does nothing at all
    monkeypatch.setattr(practice, "_shell", lambda: None)
    practice.check_answer("corr_gcse", 0.1)
    assert capsys.readouterr().out == ""


def test_a_missing_variable_names_the_cell_to_run():
    checks = _checks("practical1")
    hint = practice.name_hint("chem", checks)
    assert "`chem` is not defined yet" in hint and "chem = mlm.load_dataset" in hint
    assert "Run → Run All Above Selected Cell" in hint
    assert "your answer to Question 5" in practice.name_hint("vpc_school", checks)
    assert "import numpy as np" in practice.name_hint("np", checks)
    # the model answer's own helper variables are not listed (they would hint at the answer)
    assert "x_mean" not in checks["names"] and "fixed0" not in checks["names"]


@pytest.mark.slow
def test_assessed_mode(tmp_path):
    """--mode assessed: no hashes, and the notebook says passing checks are not marks."""
    [nb_path] = generate_practicals(root=REPO, output=tmp_path, assignments=["practical1"],
                                    mode="assessed")
    checks = json.loads((nb_path.parent / "answer-checks.json").read_text())
    assert checks["mode"] == "assessed" and '"hash"' not in json.dumps(checks)
    assert checks["answers"]["corr_gcse"] == {"question": "Question 1"}
    intro = nbformat.read(nb_path, as_version=4).cells[1].source
    assert "Passing checks are not marks" in intro and "<!--" not in intro
    practice_intro = nbformat.read(PRACTICALS / "practical1" / "practical1.ipynb", as_version=4).cells[1].source
    assert "prints **right**" in practice_intro and "<!--" not in practice_intro
    # the check cells are the same in both modes (the grader restores them from the gradebook)
    same = nbformat.read(PRACTICALS / "practical1" / "practical1.ipynb", as_version=4)
    assert [c.source for c in _grade_test_cells(same)] == \
        [c.source for c in _grade_test_cells(nbformat.read(nb_path, as_version=4))]
    with pytest.raises(ValueError, match="mode must be one of"):
        generate_practicals(root=REPO, output=tmp_path, assignments=["practical1"], mode="exam")


def test_docstring_examples():
    import doctest

    from coursetools import practicals as practicals_module

    for module in (practice, practicals_module):
        failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert tried > 0 and failures == 0, module.__name__




# ---------------------------------------------------------------------------
# validation (executes the notebooks)
# ---------------------------------------------------------------------------

_RUNS: dict[str, tuple[dict, dict, str]] = {}

# First cell of the validated copy: keep a copy of everything the notebook prints
# and of the text form of each cell's result (ipykernel 7 gives each cell its own
# stdout, so print itself is wrapped).
_TEE = """import builtins as _builtins, io as _io
_printed = []
def _print(*args, _print=_builtins.print, **kwargs):
    if kwargs.get("file") is None:
        _buffer = _io.StringIO()
        _print(*args, **{**kwargs, "file": _buffer})
        _printed.append(_buffer.getvalue())
    return _print(*args, **kwargs)
_builtins.print = _print
def _keep_result(result):
    if result.result is not None:
        _printed.append(str(result.result) + "\\n")
get_ipython().events.register("post_run_cell", _keep_result)"""


def _run_solution(name, tmp_root):
    """Validate a copy of the solution; also dump every answer variable and the printed text."""
    if name not in _RUNS:
        work = tmp_root / name
        work.mkdir(parents=True)
        nb = _source(name)
        names = sorted(_reference()[name])
        tee = nbformat.v4.new_code_cell(_TEE)
        tee["id"] = "tee-printed"
        nb.cells.insert(0, tee)
        dump = nbformat.v4.new_code_cell(
            "import json as _json\n"
            f"_json.dump({{_n: float(globals()[_n]) for _n in {names!r} if _n in globals()}}, "
            "open('answers.json', 'w'))\n"
            "open('printed.txt', 'w').write(''.join(_printed))")
        dump["id"] = "dump-answers"
        nb.cells.append(dump)
        path = work / f"{name}.ipynb"
        nbformat.write(nb, path)
        # the practice checks run too: every model answer must be "right"
        shutil.copy2(PRACTICALS / name / "answer-checks.json", work / "answer-checks.json")
        results = _validate(path, _config(tmp_root))
        answers = json.loads((work / "answers.json").read_text())
        printed = (work / "printed.txt").read_text()
        _RUNS[name] = (results, answers, printed)
    return _RUNS[name]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return tmp_path_factory.mktemp("solutions")


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_passes_validation(name, run_root):
    """nbgrader's validator: every test cell of the solution passes, hidden tests included."""
    results, _, printed = _run_solution(name, run_root)
    failed = results.get("failed", [])
    assert results == {}, "solution fails:\n" + "\n\n".join(
        f["source"] + "\n" + f["raw_error"] for f in failed)
    # with the student version's answer checks beside it, every model answer is "right"
    for var in _reference()[name]:
        assert f"{var} is right." in printed, f"{name}: the practice check of {var} did not pass"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_library_reproduces_lme4_answers(name, run_root):
    """The solution's answers (computed with mlmhelpers) agree with lme4/glmer."""
    _, answers, _ = _run_solution(name, run_root)
    ref = _reference()[name]
    assert set(answers) == set(ref)
    for var, entry in ref.items():
        value, ours = entry["value"], answers[var]
        if var.startswith("n_"):
            assert abs(ours - value) <= 1, f"{var}: ours {ours}, lme4 {value}"
        elif "pvalue" in var:
            assert math.isclose(ours, value, rel_tol=1e-2, abs_tol=1e-300), f"{var}: ours {ours}, lme4 {value}"
        else:
            assert math.isclose(ours, value, rel_tol=2e-4, abs_tol=2e-4), f"{var}: ours {ours}, lme4 {value}"


# "p = 0", "p-value: 0.0", "Pr(>Chisq) 0", "p ≈ 0": a p-value shown as exactly zero
_P_ZERO = re.compile(r"(\bp(-value)?|Pr\(>\S*\))\s*(=|:|≈|\s)\s*0(\.0*)?(?![\d.]|e-)", re.I)


@pytest.mark.parametrize("text, zero", [
    ("LR = 4580.6, p = 0", True), ("p-value: 0.0", True), ("(p ≈ 0)", True),
    ("Pr(>Chisq) 0", True), ("p < 2e-16", False), ("p = 0.012", False), ("p = 0.5", False),
    ("p = 1.3e-21", False), ("p < 0.001", False)])
def test_zero_pvalue_pattern(text, zero):
    assert bool(_P_ZERO.search(text)) == zero


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_model_answers_never_give_a_pvalue_of_zero(name):
    for cell in _source(name).cells:
        assert not _P_ZERO.search(cell.source), f"{name}/{cell.id}: {_P_ZERO.search(cell.source)[0]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_never_prints_a_pvalue_of_zero(name, run_root):
    """What a solution prints shows tiny p-values as R does ('< 2e-16'), never as 0."""
    _, answers, printed = _run_solution(name, run_root)
    assert not _P_ZERO.search(printed), f"{name} prints {_P_ZERO.search(printed)[0]!r}"
    if any(v < 2e-16 for k, v in answers.items() if "pvalue" in k):
        assert "p < 2e-16" in printed, f"{name}: a tiny p-value is not printed as '< 2e-16'"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_untouched_student_version_fails_validation(name, tmp_path):
    work = tmp_path / name
    work.mkdir()
    shutil.copy2(PRACTICALS / name / f"{name}.ipynb", work / f"{name}.ipynb")
    shutil.copy2(PRACTICALS / name / "answer-checks.json", work / "answer-checks.json")
    results = _validate(work / f"{name}.ipynb", _config(tmp_path))
    nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
    failed = {f["source"] for f in results.get("failed", [])}
    # every test cell fails (named by its question: mlmhelpers.validation), and every
    # manually graded answer is reported as missing
    from mlmhelpers.validation import GOING_FURTHER, question_of

    def label(c):
        further = GOING_FURTHER if c.metadata.get("course", {}).get("going_further") else ""
        return question_of(c.source, _nbgrader(c)["grade_id"]) + further

    expected = {label(c) if c.cell_type == "code" else c.source.strip()
                for c in nb.cells if _nbgrader(c).get("grade")}
    assert failed == expected, "every graded cell of an untouched notebook must fail"
    errors = [f["raw_error"] for f in results["failed"] if f["source"].startswith("Question")]
    assert errors and not any("Traceback" in e or "check_answer(" in e for e in errors), errors[:2]


@pytest.mark.slow
def test_release_in_assessed_mode(tmp_path):
    """`make release MODE=assessed` passes the mode on; the edition's practicals are then
    generated in it and pass the release's leak check."""
    import subprocess

    from coursetools.release import main as release_main

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MAKE")}
    dry = subprocess.run(["make", "-n", "-C", str(REPO), "release", "MODE=assessed"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "-m coursetools.release --out build/student --mode assessed" in dry, dry
    out = tmp_path / "student"
    assert release_main(["--out", str(out), "--mode", "assessed"]) == 0
    for name in ASSIGNMENTS:
        checks = json.loads((out / "practicals" / name / "answer-checks.json").read_text())
        assert checks["mode"] == "assessed" and '"hash"' not in json.dumps(checks)
        intro = nbformat.read(out / "practicals" / name / f"{name}.ipynb", as_version=4).cells[1].source
        assert "Passing checks are not marks" in intro
