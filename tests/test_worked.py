"""Worked solutions to publish after the deadline (issue #21): model answers, no checks, no rubrics."""

from __future__ import annotations

import re

import nbformat
import pytest

from coursetools.markers import course_markers
from coursetools.practicals import ASSIGNMENTS, course_root
from coursetools.worked import main, worked_notebook, write_worked

ROOT = course_root()


def _solution(name):
    return ROOT / "solutions" / name / f"{name}.ipynb"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_worked_notebook_has_answers_and_nothing_of_the_tutors(name):
    markers = course_markers()
    source = nbformat.read(_solution(name), as_version=4)
    nb = worked_notebook(_solution(name))
    text = "\n".join(c.source for c in nb.cells)
    # every model answer is there: the code of each solution region, the words of each written one
    for cell in source.cells:
        for kind, body in markers.regions(cell.source):
            if kind != "SOLUTION":
                continue
            answer = re.split(r"\n*\*\*Marking rubric", body)[0].strip()
            assert answer and answer in text, f"{name}: a model answer is missing: {answer[:60]}"
    # nothing of the grader or the tutor
    for hidden in (body for c in source.cells for kind, body in markers.regions(c.source)
                   if kind == "HIDDEN TESTS"):
        assert hidden.strip() not in text
    assert not any(m in text for m in markers.all)
    assert "Marking rubric" not in text and "check_answer" not in text
    assert "<!-- answer checks" not in text
    assert all("nbgrader" not in c.metadata for c in nb.cells)
    assert "Worked solutions" in nb.cells[1].source


def test_worked_solutions_run_and_make_a_page(tmp_path):
    (nb_path, html_path) = write_worked(tmp_path, ["practical4"])
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[:1]
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "its figures are drawn"
    html = html_path.read_text(encoding="utf-8")
    assert "Worked solutions" in html and "Marking rubric" not in html


def test_command_refuses_an_unknown_practical(capsys):
    with pytest.raises(SystemExit):
        main(["practical9"])
    assert "unknown practical" in capsys.readouterr().err
