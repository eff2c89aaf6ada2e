"""Structure of the lecture notebooks in course/ and the slides build.

nbval executes the notebooks in `make test` (course/ is passed to pytest with
--nbval-lax); these tests do not run them again.  They check what nbval does
not: that each notebook is committed executed, in one run from the top, without
errors, with the course's teaching structure and slide metadata.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
EXPECTED = [
    "01-linear-regression.ipynb",
    "02-multilevel-data.ipynb",
    "03-variance-components.ipynb",
    "04-random-intercepts.ipynb",
    "05-binary-responses.ipynb",
    "06-random-slopes.ipynb",
    "07-going-further.ipynb",
]
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}
# nbval compares a cell's output (under --nbval-lax) when the cell carries this tag; a tag, unlike
# nbval's "# NBVAL_CHECK_OUTPUT" comment, stays out of the students' sight.
CHECK_TAG = "nbval-check-output"
# A cell that draws a figure must label it: a title set in the cell, or one of
# the library's plotting functions (they set title and axis labels themselves).
LABELLED = re.compile(r"set_title|suptitle|title\s*=|\.set\(.*title|mlm\.plot_|variance_explorer")
AXIS_LABELS = re.compile(r"set_xlabel|xlabel\s*=|mlm\.plot_|variance_explorer")
MAX_BYTES = 1_500_000
SETUP_CALLS = {"use_course_style"}

ids = [p.name for p in NOTEBOOKS]


def _read(path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _shows_something(source):
    """True if running the cell must produce output: it prints, or ends in an expression."""
    lines = [l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False
    if not tree.body:
        return False
    prints = any(
        isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" for node in ast.walk(tree)
    )
    last = tree.body[-1]
    # a set-up call that returns None (the course style in the first cell) shows nothing
    setup = isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and (
        getattr(last.value.func, "attr", None) in SETUP_CALLS)
    return prints or (isinstance(last, ast.Expr) and not setup and not source.rstrip().endswith(";"))


def _has_image(cell):
    return any(
        o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})
        for o in cell.get("outputs", [])
    )


def test_course_holds_exactly_the_seven_lectures():
    names = [p.name for p in NOTEBOOKS]
    unexpected = sorted(set(names) - set(EXPECTED))
    assert not unexpected, f"unexpected notebooks in course/ (the landing page links the seven lectures): {unexpected}"
    missing = sorted(set(EXPECTED) - set(names))
    assert not missing, f"lecture notebooks missing from course/: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_valid_light_and_uses_python3(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata.get("language_info", {}).get("name") == "python"
    assert path.stat().st_size < MAX_BYTES, (
        f"{path.name} is {path.stat().st_size} bytes; draw fewer or smaller figures (keep the course dpi)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_cell_has_slide_metadata(path):
    nb = _read(path)
    bad = [
        (i, c.metadata.get("slideshow"))
        for i, c in enumerate(nb.cells)
        if c.metadata.get("slideshow", {}).get("slide_type") not in SLIDE_TYPES
    ]
    assert not bad, f"cells without a valid metadata.slideshow.slide_type: {bad}"
    assert nb.cells[0].metadata["slideshow"]["slide_type"] == "slide"
    n_slides = sum(c.metadata["slideshow"]["slide_type"] == "slide" for c in nb.cells)
    assert n_slides >= 4, "a lecture should have several sections, each starting a slide"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_executed_in_order_without_errors(path):
    nb = _read(path)
    cells = _code_cells(nb)
    assert cells, "a lecture without code"
    counts = [c.execution_count for c in cells]
    assert None not in counts, (
        f"{path.name} has unexecuted code cells; run "
        f"`python -m coursetools.lectures course/{path.name}` and commit"
    )
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name} was not executed top to bottom in one fresh kernel (execution counts {counts})"
    )
    errors = [
        (i, o.get("ename"))
        for i, c in enumerate(cells)
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, f"error outputs in {path.name}: {errors}"
    silent = [c.source for c in cells if _shows_something(c.source) and not c.outputs]
    assert not silent, f"cells that print or end in an expression but have no output: {silent}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_teaching_structure(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    number = int(path.name[:2])
    assert first.source.startswith(f"# Part {number}"), "first cell: '# Part N — title'"
    assert "Learning goals" in first.source
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any(re.search(r"^## Summary", s, re.M) for s in markdown), "no '## Summary' section"
    self_check = [s for s in markdown if re.search(r"^## Self-check", s, re.M)]
    assert self_check, "no '## Self-check questions' section"
    text = "\n".join(markdown)
    opened = text.count("<details>")
    assert opened >= 2, "self-check answers are folded in <details> blocks (at least two questions)"
    assert opened == text.count("</details>"), "unbalanced <details> blocks"
    assert text.count("<summary>") == opened
    # the lecture ends: summary, self-check questions, exercises, (references)
    headings = [s.split("\n", 1)[0] for s in markdown if s.startswith("## ")]
    tail = headings[headings.index(next(h for h in headings if h.startswith("## Summary"))):]
    assert [h.split()[1] for h in tail[:3]] == ["Summary", "Self-check", "Exercises"], tail
    assert all(h.startswith("## References") for h in tail[3:]), tail


def _exercises(nb):
    """(prompt, starter, solution) cells of each '### Exercise N' in the notebook."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.startswith("### Exercise"):
            out.append((cell, nb.cells[i + 1], nb.cells[i + 2]))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_exercises_with_folded_executed_solutions(path):
    """Two or three 'your turn' tasks: prompt, starter cell, solution cell folded in JupyterLab.

    JupyterLab 4 opens a code cell with its input folded when metadata jupyter.source_hidden is
    true and its output folded when metadata collapsed is true (it does not read
    jupyter.outputs_hidden, nbformat's newer name, which is set too for other front ends).  The
    solution is still an ordinary code cell, so nbval runs it (and compares its output when it
    is tagged nbval-check-output) and `test_committed_executed_in_order_without_errors` sees it.
    """
    nb = _read(path)
    exercises = _exercises(nb)
    assert 2 <= len(exercises) <= 3, f"{path.name}: {len(exercises)} exercises (want 2 or 3)"
    numbers = [int(re.match(r"### Exercise (\d+)", p.source).group(1)) for p, _, _ in exercises]
    assert numbers == list(range(1, len(exercises) + 1))
    for prompt, starter, solution in exercises:
        assert starter.cell_type == "code" and "exercise" in starter.metadata.get("tags", []), prompt.source
        assert "# your code here" in starter.source, "the starter cell tells the student where to write"
        assert not starter.outputs, "the starter cell runs without output (nbval executes it)"
        assert solution.cell_type == "code" and "solution" in solution.metadata.get("tags", []), prompt.source
        assert solution.metadata.get("jupyter") == {"source_hidden": True, "outputs_hidden": True}, (
            "solution cells are folded: metadata jupyter.source_hidden and outputs_hidden")
        assert solution.metadata.get("collapsed") is True, "JupyterLab folds outputs by metadata 'collapsed'"
        assert solution.metadata["slideshow"]["slide_type"] == "skip", "solutions stay out of the slides"
        assert solution.source.startswith("# Solution"), "the folded cell shows its first line: '# Solution'"
        assert solution.outputs, f"solution cell was not executed or prints nothing:\n{solution.source}"
        text = "".join(o.get("text", "") for o in solution.outputs if o.output_type == "stream")
        assert re.search(r"\d", text) or _has_image(solution), "a solution shows its result"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_checked_cells_print_deterministic_numbers(path):
    nb = _read(path)
    checked = [c for c in _code_cells(nb) if CHECK_TAG in c.metadata.get("tags", [])]
    assert checked, f"{path.name} has no cell tagged '{CHECK_TAG}': nbval would compare nothing"
    for cell in checked:
        text = "".join(
            o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
            for o in cell.outputs
            if o.output_type != "stream" or o.name == "stdout"
        )
        assert re.search(r"\d", text), f"checked cell prints no number:\n{cell.source}"
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"checked cell writes to stderr (nbval compares it):\n{cell.source}"
        assert not re.search(r"0x[0-9a-f]{6,}", text), "checked cell prints a memory address"


NUMBERED = re.compile(r"^(\s*)(\d+)[.)](\s|$)")
LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])(\s|$)")


def _stray_numbers(markdown):
    """Lines that Markdown would turn into a numbered list by accident.

    A wrapped sentence whose next line starts with a number and a full stop ('... the other\\n150.
    Which ...') renders as a list item numbered 150 in JupyterLab.  A real list starts at 1 after a
    blank line or another item, and counts on by one at the same indentation.
    """
    stray, last, fenced, previous = [], {}, False, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else NUMBERED.match(line)
        if match:
            indent, number = len(match.group(1)), int(match.group(2))
            starts = number == 1 and (not previous.strip() or LIST_ITEM.match(previous))
            if not starts and last.get(indent) != number - 1:
                stray.append(line)
            last[indent] = number
        previous = line
    return stray


def test_stray_number_finder():
    assert _stray_numbers("1. a\n\n2. One has 10 pupils, the other\n   150. Which?") == ["   150. Which?"]
    assert _stray_numbers("- Smith, A. (2018). A title that wraps\n  2018) and more") == ["  2018) and more"]
    assert not _stray_numbers("Steps:\n\n1. one\n2. two\n\n<details>x</details>\n\n3. three\n   more of three")
    assert not _stray_numbers("```\n150. inside code\n```")


MARKDOWN_NOTEBOOKS = NOTEBOOKS + sorted((REPO / "solutions").glob("*/*.ipynb")) + [REPO / "index.ipynb"]


@pytest.mark.parametrize(
    "path", MARKDOWN_NOTEBOOKS, ids=[p.relative_to(REPO).as_posix() for p in MARKDOWN_NOTEBOOKS]
)
def test_no_wrapped_line_starts_a_numbered_list(path):
    stray = [line for c in _read(path).cells if c.cell_type == "markdown" for line in _stray_numbers(c.source)]
    assert not stray, f"{path.name}: rewrap so no line starts with a number and '.' or ')': {stray}"


STUDENT_NOTEBOOKS = NOTEBOOKS + sorted((REPO / "practicals").glob("*/*.ipynb")) + [REPO / "index.ipynb"]


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.relative_to(REPO).as_posix() for p in STUDENT_NOTEBOOKS])
def test_no_test_markers_in_what_students_read(path):
    """nbval's markers live in cell tags: no cell a student reads shows an 'NBVAL_' comment."""
    shown = [c.source for c in _read(path).cells if "NBVAL_" in c.source]
    assert not shown, f"{path.name}: tag the cell 'nbval-check-output' instead of a comment:\n{shown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_figures_are_drawn_and_labelled(path):
    nb = _read(path)
    plotting = [c for c in _code_cells(nb) if _has_image(c)]
    for cell in _code_cells(nb):
        if "plt.show()" in cell.source:
            assert _has_image(cell), f"cell calls plt.show() but has no image output:\n{cell.source}"
    for cell in plotting:
        assert LABELLED.search(cell.source), f"figure without a title:\n{cell.source}"
        assert AXIS_LABELS.search(cell.source), f"figure without axis labels:\n{cell.source}"


CAPTION = "*Figure:* "
MIN_CAPTION_WORDS = 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_figure_is_described_in_words(path):
    """A screen reader reaches every figure's content through the caption cell under it.

    JupyterLab draws an image/png output as an <img> without alt text (its image renderer reads
    no alt from the output's metadata), so each figure is followed by a Markdown cell
    '*Figure:* ...' that says in words what the figure shows: one paragraph, in the slides too.
    """
    nb = _read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not _has_image(cell):
            continue
        caption = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        assert caption is not None and caption.cell_type == "markdown" and caption.source.startswith(CAPTION), (
            f"{path.name}: the figure of cell {i} needs a caption cell '{CAPTION}<what it shows>' "
            f"right under it:\n{cell.source}")
        words = caption.source[len(CAPTION):].split()
        assert len(words) >= MIN_CAPTION_WORDS, f"describe the figure in more words: {caption.source}"
        assert "\n\n" not in caption.source.strip(), "a caption is one paragraph"
        hidden = cell.metadata["slideshow"]["slide_type"] == "skip"
        assert (caption.metadata["slideshow"]["slide_type"] == "skip") == hidden, (
            "a caption is on the slide its figure is on (skipped with a skipped solution)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_widgets_are_committed_as_pictures(path):
    """A committed lecture draws without a kernel: no live-widget output, no saved widget state.

    A widget view needs the kernel's model; before the notebook runs, JupyterLab shows "Error
    displaying widget: model not found" (or the widget's text repr).  `python -m
    coursetools.lectures` saves the widget's still picture and description in its place.
    """
    from coursetools.lectures import WIDGET_VIEW

    nb = _read(path)
    live = [c.source for c in _code_cells(nb) for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert not live, (f"{path.name}: live widget outputs; execute the lecture with "
                      f"`python -m coursetools.lectures course/{path.name}`: {live}")
    assert "widgets" not in nb.metadata, "saved widget state: execute with `python -m coursetools.lectures`"


def test_lecture3_explorer_is_a_labelled_picture_before_running():
    nb = _read(COURSE / "03-variance-components.ipynb")
    (cell,) = [c for c in _code_cells(nb) if "variance_explorer(" in c.source]
    (output,) = cell.outputs
    assert set(output.data) == {"image/png", "text/plain"}
    assert output.data["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert output.data["text/plain"].startswith("VPC explorer: 10 simulated schools of 20 pupils")
    assert "VPC = 0.200" in output.data["text/plain"]


def test_lecture_execution_tool_docstrings_run():
    import doctest

    import coursetools.lectures as lectures_module

    failures, tried = doctest.testmod(lectures_module)
    assert tried > 0 and failures == 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_data_only_through_the_library(path):
    code = "\n".join(c.source for c in _code_cells(_read(path)))
    assert "import mlmhelpers as mlm" in code
    assert not re.search(r"read_csv|\.csv['\"]|https?://", code), "load data with mlm.load_dataset(name)"


def test_slides_render_one_lecture(tmp_path):
    from coursetools.slides import build_slides, main

    source = NOTEBOOKS[0]
    (out,) = build_slides(source, tmp_path)
    assert out == tmp_path / f"{source.stem}.slides.html"
    html = out.read_text(encoding="utf-8")
    assert "reveal" in html.lower()
    n_slides = sum(c.metadata["slideshow"]["slide_type"] == "slide" for c in _read(source).cells)
    assert html.count("<section") >= n_slides
    # the first heading of the lecture is on the first slide
    assert "Learning goals" in html
    assert main([str(tmp_path / "nowhere"), str(tmp_path)]) == 2


def test_slides_docstring_example_runs():
    import doctest

    import coursetools.slides as slides_module

    failures, tried = doctest.testmod(slides_module)
    assert tried > 0 and failures == 0


P_COLUMN = re.compile(r"(P>\|[tz]\||Pr\(>[^)]*\))$")
P_ZERO = re.compile(r"\bp(-value)?\b[^=\n]{0,40}=\s*0(\.0*)?(?![\d.e])", re.I)


def _zero_p_values(text):
    """Places where a printed p-value reads as 0: 'p = 0.0', or a 0 in a table's p column."""
    found = [m.group(0) for m in P_ZERO.finditer(text)]
    in_table = False
    for line in text.splitlines():
        if P_COLUMN.search(line.rstrip()):
            in_table = True
            continue
        if not line.strip():
            in_table = False
            continue
        if in_table:
            last = line.split()[-1]
            try:
                if float(last) == 0:
                    found.append(line)
            except ValueError:
                pass
    return found


def test_zero_p_value_finder():
    assert _zero_p_values("             Coef.  P>|t|\nIntercept  2.07  0.0\nx  3.1  < 2e-16\n")
    assert _zero_p_values("likelihood ratio: p = 0.000")
    assert not _zero_p_values("    Estimate  Pr(>|z|)\nage  0.009  0.0952\nurban 0.65  < 2e-16")
    assert not _zero_p_values("p = 4.24e-11, boundary-corrected p = 0.116")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_p_value_prints_as_zero(path):
    """p-values are printed as R prints them ('< 2e-16'), never as 0 or 0.0."""
    bad = []
    for cell in _code_cells(_read(path)):
        for o in cell.outputs:
            text = o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
            bad += _zero_p_values(text)
    assert not bad, f"{path.name} prints p-values as 0: {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_numbers_print_as_plain_numbers(path):
    """Answers show as 0.662, not as numpy's repr 'np.float64(0.662...)' (print them or use f-strings)."""
    bad = []
    for cell in _code_cells(_read(path)):
        for o in cell.outputs:
            text = o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
            bad += re.findall(r"np\.(?:float|int|bool|str)_?\d*\(", text)
    assert not bad, f"{path.name} shows numpy scalar reprs {bad}: print(x) or an f-string prints the number"


def test_landing_page_plans_the_day():
    """index.ipynb: learning outcomes, prerequisites, a timed slot for every lecture and practical, help."""
    landing = _read(REPO / "index.ipynb")
    text = "\n".join(c.source for c in landing.cells if c.cell_type == "markdown")
    assert re.search(r"^## What you will be able to do", text, re.M)
    assert "What you need before you start" in text
    (timetable,) = [c.source for c in landing.cells if c.source.startswith("## The day, hour by hour")]
    rows = [r for r in timetable.splitlines() if re.match(r"\| \d\d:\d\d \|", r)]
    slots = {re.sub(r" —.*", "", r.split("|")[2].strip()): int(re.search(r"(\d+) min", r).group(1)) for r in rows}
    wanted = [f"Part {n}" for n in range(1, 8)] + [f"Practical {n}" for n in range(1, 5)]
    assert [w for w in wanted if w not in slots] == [], f"timetable rows: {list(slots)}"
    # Part 7 closes the day in the original's ten-minute wrap-up and is read in full afterwards
    assert all(15 <= slots[w] <= 60 for w in wanted if w != "Part 7"), slots
    assert slots["Part 7"] >= 10, slots
    times = [int(r[2:4]) * 60 + int(r[5:7]) for r in rows]
    # the original course's day: 10:00 to 17:00, breaks 11:00-11:15, 12:30-13:30, 15:45-16:00
    assert rows[0].startswith("| 10:00 |") and times[-1] + int(re.search(r"(\d+) min", rows[-1]).group(1)) == 17 * 60
    breaks = {r.split("|")[1].strip(): int(re.search(r"(\d+) min", r).group(1))
              for r in rows if r.split("|")[2].strip() in ("break", "lunch")}
    assert breaks == {"11:00": 15, "12:30": 60, "15:45": 15}, breaks
    # each practical's slot is the time its introduction states for its core
    for n in range(1, 5):
        intro = _read(REPO / "solutions" / f"practical{n}" / f"practical{n}.ipynb").cells[0].source
        stated = re.search(r"\*\*In class: (\d+) minutes\.\*\*", intro)
        assert stated and int(stated.group(1)) == slots[f"Practical {n}"], (n, stated, slots)
    lengths = [int(re.search(r"(\d+) min", r).group(1)) for r in rows]
    assert all(a + n == b for a, n, b in zip(times, lengths, times[1:])), "each slot starts when the last ends"
    (stuck,) = [c.source for c in landing.cells if c.source.startswith("## When you are stuck")]
    for step in ("Restart Kernel", "Run All Above Selected Cell", "Validate", "tutor"):
        assert step in stuck, f"'When you are stuck' does not mention {step}"


def _git(cwd, *args):
    import subprocess

    env = {"GIT_AUTHOR_NAME": "Tutor", "GIT_AUTHOR_EMAIL": "tutor@example.org", "GIT_COMMITTER_NAME": "Tutor",
           "GIT_COMMITTER_EMAIL": "tutor@example.org", "PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_make_update_pulls_over_a_run_lecture_and_keeps_the_students_copy(tmp_path):
    """Running a lecture writes its outputs into it; the edition's `make update` still pulls.

    A plain `git pull` refuses once the tutor has changed a notebook the student ran.  `make
    update` (tools/student-edition/Makefile) moves the student's copy of such a file to
    my-work/<date-time>/, restores the course's version and fast-forwards; a practical only the
    student changed keeps the student's answers.
    """
    import subprocess

    tutor, student = tmp_path / "tutor", tmp_path / "student"
    (tutor / "course").mkdir(parents=True)
    (tutor / "practicals").mkdir()
    shutil.copy(REPO / "tools" / "student-edition" / "Makefile", tutor / "Makefile")
    shutil.copy(REPO / "tools" / "student-edition" / ".gitignore", tutor / ".gitignore")
    lecture, practical = "course/03-variance-components.ipynb", "practicals/practical1.ipynb"
    (tutor / lecture).write_text('{"version": 1}\n')
    (tutor / practical).write_text('{"answer": null}\n')
    _git(tutor, "init", "--quiet", "--initial-branch=student")
    _git(tutor, "add", "-A")
    _git(tutor, "commit", "--quiet", "-m", "course")
    _git(tmp_path, "clone", "--quiet", str(tutor), str(student))

    # The student runs the lecture (JupyterLab saves its outputs) and answers the practical.
    (student / lecture).write_text('{"version": 1, "outputs": "run by the student"}\n')
    (student / practical).write_text('{"answer": 42}\n')
    # The tutor fixes the lecture and adds another one.
    (tutor / lecture).write_text('{"version": 2}\n')
    (tutor / "course" / "08-extra.ipynb").write_text('{"new": true}\n')
    _git(tutor, "add", "-A")
    _git(tutor, "commit", "--quiet", "-m", "fix lecture 3")

    pull = subprocess.run(["git", "pull", "--quiet"], cwd=student, capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C", "HOME": str(tmp_path)})
    assert pull.returncode != 0 and "overwritten" in pull.stderr, "a plain pull should refuse here"

    update = subprocess.run(["make", "--no-print-directory", "update"], cwd=student, capture_output=True,
                            text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert update.returncode == 0, update.stdout + update.stderr
    assert (student / lecture).read_text() == '{"version": 2}\n'
    assert (student / "course" / "08-extra.ipynb").exists()
    assert (student / practical).read_text() == '{"answer": 42}\n', "the student's answers stay"
    (kept,) = (student / "my-work").glob(f"*/{lecture}")
    assert kept.read_text() == '{"version": 1, "outputs": "run by the student"}\n'
    assert f"kept your version of {lecture}" in update.stdout and "up to date" in update.stdout
    # my-work is the student's, out of git's way; nothing else of the course is modified
    assert _git(student, "status", "--porcelain") == f" M {practical}\n"
