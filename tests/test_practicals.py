"""The four nbgrader practicals: sources, generated student versions, validation.

* Every hidden test compares an answer with a literal reference value; those
  values must be the lme4/glmer values in tests/fixtures/practical_reference.json
  (computed by tests/fixtures/practical_reference.R).
* practicals/ is exactly what nbgrader generates from solutions/ and contains no
  solution, rubric or hidden test.
* nbgrader's validator passes every solution (hidden tests included) and fails
  every untouched student version; running a solution with our library
  reproduces every lme4 reference answer.

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

from coursetools.practicals import ASSIGNMENTS, generate_practicals, load_config

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
    assert 9 <= auto_points <= 12, f"{name}: {auto_points} autograded points (9 to 12 wanted)"
    assert manual and all(c.cell_type == "markdown" for c in manual)
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

def test_practicals_are_generated_not_edited(tmp_path):
    """Regenerating practicals/ from solutions/ reproduces the committed files."""
    made = generate_practicals(root=REPO, output=tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in made) == [
        f"{a}/{a}.ipynb" for a in ASSIGNMENTS]
    committed = sorted(p.relative_to(PRACTICALS).as_posix() for p in PRACTICALS.rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    generated = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert committed == generated, "practicals/ holds files nbgrader does not generate"
    for rel in generated:
        new = json.loads((tmp_path / rel).read_text())
        old = json.loads((PRACTICALS / rel).read_text())
        assert new == old, (f"practicals/{rel} differs from what nbgrader generates; "
                            "run `python -m coursetools.practicals` and commit the result")


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
    assert stubs and all("raise NotImplementedError()" in c.source for c in stubs)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


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
    results, _, _ = _run_solution(name, run_root)
    failed = results.get("failed", [])
    assert results == {}, "solution fails:\n" + "\n\n".join(
        f["source"] + "\n" + f["raw_error"] for f in failed)


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
    results = _validate(work / f"{name}.ipynb", _config(tmp_path))
    nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
    failed = {f["source"] for f in results.get("failed", [])}
    # every test cell fails, and every manually graded answer is reported as missing
    expected = {c.source.strip() for c in nb.cells if _nbgrader(c).get("grade")}
    assert failed == expected, "every graded cell of an untouched notebook must fail"
