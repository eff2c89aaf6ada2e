"""The student edition (``make release``): complete, and nothing of the tutor's in it.

Builds the edition with ``python -m coursetools.release`` into a temporary
folder and checks that

* no file in it holds a line of a model answer, hidden test or marking rubric
  from ``solutions/``, nor an nbgrader solution or hidden-test marker, nor a
  pointer to ``solutions/``;
* it has the lectures, the practicals (exactly the committed student
  versions), the landing page, the data with its codebook, the helper
  library, a student README, Makefile, nbgrader configuration and the Binder
  files, and nothing else: no ``solutions/``, ``tests/``, ``tools/``, grading,
  release or test tooling;
* its ``environment.yml`` and ``requirements.txt`` install no test tools, and
  its ``pyproject.toml`` packages only ``mlmhelpers``;
* its README's Binder badge points at the ``student`` branch.

Binder's install of the edition is replayed in tests/test_binder.py, and the
browser test (tests/test_browser.py) walks it.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import nbformat
import pytest

from coursetools import lab as lab_module
from coursetools import release as release_module
from coursetools.release import build_edition, find_leaks, main, public_lines, secret_lines

REPO = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"pytest", "pytest-xdist", "nbval", "playwright", "hatchling"}
TOP_LEVEL = {".gitignore", "Makefile", "README.md", "course", "data", "docs", "environment.yml", "helpers",
             "index.ipynb", "nbgrader_config.py", "postBuild", "practicals", "pyproject.toml",
             "requirements.txt"}


def _git_files(*paths: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *paths],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return sorted(f for f in out.splitlines() if (REPO / f).is_file())


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _readable_text(path: Path) -> str | None:
    """A file's text; for a notebook its cell sources and outputs, decoded from JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        parts = []
        for cell in nb["cells"]:
            parts.append("".join(cell["source"]))
            parts += [json.dumps(out, ensure_ascii=False) for out in cell.get("outputs", [])]
            parts += ["".join(out.get("text", "")) for out in cell.get("outputs", [])]
        text += "\n" + "\n".join(parts)
    return text


def _pip_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)\s*==", line.split("#", 1)[0])
        if match:
            names.add(match.group(1).lower().replace("_", "-"))
    return names


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "student"
    assert main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def secrets():
    return secret_lines(REPO)


def test_secret_lines_cover_every_practical(secrets):
    """The lines the check looks for: each practical's model answers, rubrics and hidden tests."""
    for rel in _git_files("solutions"):
        if not rel.endswith(".ipynb"):
            continue
        text = (REPO / rel).read_text()
        hidden = [s for s in secrets["HIDDEN TESTS"] if json.dumps(s, ensure_ascii=False)[1:-1] in text]
        answers = [s for s in secrets["SOLUTION"] if json.dumps(s, ensure_ascii=False)[1:-1] in text]
        rubric = [s for s in answers if s.startswith("**Marking rubric")]
        assert len(hidden) >= 5 and len(answers) >= 10 and rubric, (rel, len(hidden), len(answers))
    assert any(s.startswith("assert np.isclose(corr_gcse, 0.66225") for s in secrets["HIDDEN TESTS"])


def test_no_answer_hidden_test_rubric_or_marker_in_edition(edition, secrets):
    """Every secret line is looked for as a line (the builder's check) and, if it is long
    enough not to be part of an ordinary line by chance, anywhere in any file (except where
    a practical's instructions quote it on purpose)."""
    public = "\n".join(public_lines(REPO))
    long_lines = {kind: {s for s in lines if len(s) >= 40 and s not in public}
                  for kind, lines in secrets.items()}
    offending = []
    for rel in _files(edition):
        text = _readable_text(edition / rel)
        if text is None:
            continue
        for kind, lines in long_lines.items():
            offending += [f"{rel}: {kind} {s!r}" for s in lines if s in text]
        offending += [f"{rel}: marker {m!r}" for m in ("BEGIN SOLUTION", "END SOLUTION",
                                                       "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                                                       "Model answer", "Marking rubric")
                      if m in text]
        offending += [f"{rel}: points to solutions/" for _ in re.findall(r"solutions/", text)][:1]
    assert not offending, "\n".join(offending[:30])
    assert find_leaks(edition, secrets) == []


def test_leak_check_catches_a_planted_hidden_test(edition, secrets, tmp_path):
    """The builder's own check (run by every `make release`) reports a leaked line and a marker."""
    nb = nbformat.read(edition / "practicals/practical1/practical1.ipynb", as_version=4)
    hidden = sorted(secrets["HIDDEN TESTS"])[0]
    nb.cells.append(nbformat.v4.new_code_cell(f"### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS"))
    nbformat.write(nb, tmp_path / "practical1.ipynb")
    leaks = find_leaks(tmp_path, secrets)
    assert f"practical1.ipynb: hidden tests line {hidden!r}" in leaks
    assert "practical1.ipynb: marker 'BEGIN HIDDEN TESTS'" in leaks


def test_edition_holds_the_course_and_nothing_of_the_tutors(edition):
    assert {p.name for p in edition.iterdir()} == TOP_LEVEL
    files = _files(edition)
    for forbidden in ("solutions/", "tests/", "tools/", "benchmarks/", "coursetools", "conftest",
                      "grading", "test_", "release", "gradebook", ".exchange", "submitted/",
                      "feedback/", "requirements-dev"):
        assert not [f for f in files if forbidden in f], f"the edition holds {forbidden}"
    # Exactly the committed lectures, practicals, landing page, data and helpers.
    for folder in ("course", "practicals", "data", "helpers/mlmhelpers"):
        committed = _git_files(folder)
        assert committed and [f for f in files if f.startswith(folder + "/")] == committed, folder
        for rel in committed:
            assert (edition / rel).read_bytes() == (REPO / rel).read_bytes(), rel
    assert {"data/README.md", "data/chem97.csv", "data/guimmun.csv"} <= set(files)
    for rel in ("index.ipynb", "postBuild", "environment.yml", "requirements.txt"):
        assert (edition / rel).read_bytes() == (REPO / rel).read_bytes(), rel
    assert os.access(edition / "postBuild", os.X_OK)
    # The students' nbgrader configuration: Validate's time limit, no tutor set-up.
    config = (edition / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout = 120" in config
    for tutor_only in ("coursetools", "solutions", "source_directory", "Exchange", "db_url"):
        assert tutor_only not in config, tutor_only


def test_edition_ships_the_sites_source_without_the_tutors_pages(edition):
    """The website's source for the students' pages comes along (docs/ as committed), the guides
    for tutors and maintainers do not (issue #22)."""
    files = _files(edition)
    shipped = [f for f in _git_files("docs") if not f.startswith(("docs/tutors/", "docs/maintainers/"))]
    assert {"docs/conf.py", "docs/_ext/course_site.py", "docs/further-reading.md",
            "docs/reference/api.md"} <= set(shipped)
    assert [f for f in files if f.startswith("docs/")] == shipped
    for rel in shipped:
        assert (edition / rel).read_bytes() == (REPO / rel).read_bytes(), rel
    assert _git_files("docs/tutors") and _git_files("docs/maintainers")
    assert not (edition / "docs" / "tutors").exists() and not (edition / "docs" / "maintainers").exists()


def test_edition_installs_no_test_tools(edition):
    runtime = _pip_names(edition / "environment.yml")
    assert {"jupyterlab", "nbgrader", "numpy", "scipy", "pandas", "statsmodels", "matplotlib",
            "ipywidgets"} <= runtime
    assert not runtime & DEV_TOOLS, runtime & DEV_TOOLS
    assert _pip_names(edition / "requirements.txt") == runtime
    project = tomllib.loads((edition / "pyproject.toml").read_text())
    assert project["project"]["name"] == "mlmhelpers"
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["helpers/mlmhelpers"]
    assert "pytest" not in project["tool"], "the test configuration stays in the tutor's repository"
    deps = {re.split(r"[<>=!~ ]", d)[0] for d in project["project"]["dependencies"]}
    assert not deps & DEV_TOOLS


def test_student_readme_badge_and_instructions(edition):
    readme = (edition / "README.md").read_text()
    match = re.search(r"\(https://mybinder\.org/v2/gh/([^/\s]+)/([^/\s]+)/([^?\s]+)\?urlpath=([^)\s]+)\)",
                      readme)
    assert match, "the student README has no Binder badge"
    _user, _repo, ref, urlpath = match.groups()
    assert ref == "student", "the badge must start the student edition (branch `student`)"
    assert (edition / urlpath.removeprefix("lab/tree/")).is_file(), urlpath
    for needed in ("make lab", "Binder", "File → Download", "Validate"):
        assert needed in readme, needed
    for tutor_only in ("make test", "make grade", "make release", "solutions", "nbgrader_config"):
        assert tutor_only not in readme, tutor_only


def test_student_makefile_lab_runs_postbuild_and_starts_on_landing_page(edition):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # also under `make test`
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-C", str(edition), "lab", "PORT=8123"],
                         env=env, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    steps = [line.strip() for line in dry.splitlines() if line.strip() and not line.startswith("make")]
    assert any("pip install --quiet -r requirements.txt" in s for s in steps), steps
    assert any(s.endswith("./postBuild") for s in steps), steps
    launch = steps[-1]
    assert launch.startswith(".venv/bin/jupyter lab") and "--port=8123" in launch
    assert "--LabApp.default_url=/lab/tree/index.ipynb" in launch
    assert ("--allow-root" in launch) == (os.geteuid() == 0)
    assert not re.search(r"-m pytest|coursetools|requirements-dev", dry), dry


def test_rebuild_keeps_a_worktree_git_and_drops_stale_files(tmp_path):
    out = tmp_path / "student"
    out.mkdir()
    (out / ".git").write_text("gitdir: /somewhere/worktrees/student\n")
    (out / "course").mkdir()
    (out / "course" / "stale.ipynb").write_text("{}")
    (out / ".venv").mkdir()  # the edition's own `make lab`, tried by a tutor
    (out / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    build_edition(out)
    assert (out / ".git").read_text().startswith("gitdir:")
    assert (out / ".venv" / "pyvenv.cfg").exists()
    assert not (out / "course" / "stale.ipynb").exists()
    with pytest.raises(ValueError, match="outside the course's own folders"):
        build_edition(REPO / "no-such-folder")
    # A mistyped --out never wipes a folder of other files.
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("precious")
    with pytest.raises(ValueError, match="not part of a student edition"):
        build_edition(other)
    assert (other / "chapter1.tex").read_text() == "precious"


@pytest.mark.parametrize("module", [release_module, lab_module], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
