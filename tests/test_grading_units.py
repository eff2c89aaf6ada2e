"""The grading package's stages one at a time, without a grading run (fast).

Sanitising (:mod:`coursetools.grading.sanitize`), rebuilding outputs from the
sandbox (:mod:`coursetools.grading.outputs`), staging a notebook
(:func:`coursetools.grading.staging.clean_notebook`), the protocol both sides
of the sandbox share, nbgrader's markers and the guarded pages.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursetools.grading import outputs, sanitize
from coursetools.grading.assignment import CellInfo, NotebookInfo
from coursetools.grading.pages import SafeHTMLExporter
from coursetools.grading.sandboxed import protocol
from coursetools.grading.staging import clean_notebook
from coursetools.markers import Markers

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


# ------------------------------------------------------------------ sanitising


@pytest.mark.parametrize("hostile, removed", [
    ('<img src=x onerror="alert(1)">', "event handler onerror= on <img>"),
    ("<script>alert(1)</script>", "<script>"),
    ('<a href="javascript:alert(1)">x</a>', "javascript: URL in <a href=>"),
    ('<a href=" JaVaScRiPt:alert(1)">x</a>', "javascript: URL in <a href=>"),
    ("<svg onload=alert(1)></svg>", "<svg>"),
    ('<iframe src="https://example.org"></iframe>', "<iframe>"),
    ("<style>body{background:url(https://example.org/x)}</style>", "<style>"),
    ('<img src="https://example.org/track.png">', "image from 'https://example.org/track.png'"),
    ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data: URL in <a href=>"),
    ('<form action="/api/contents"><button>go</button></form>', "<form>"),
])
def test_every_kind_of_hostile_html_is_removed_and_named(hostile, removed):
    assert removed in sanitize.removed_parts(hostile)
    cleaned = sanitize.clean_html(hostile)
    assert not re.search(r"(?i)<script|onerror|onload|javascript:|<iframe|<style|<svg|<form|example\.org",
                         cleaned), cleaned


def test_honest_html_is_kept_as_it_is():
    honest = ('<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th>a</th>'
              '</tr></thead><tbody><tr><td>1.5</td></tr></tbody></table><p><b>bold</b> and <i>$x^2$</i></p>'
              f'<img src="data:image/png;base64,{PNG}" alt="plot">')
    assert sanitize.removed_parts(honest) == []
    cleaned = sanitize.clean_html(honest)
    assert 'class="dataframe"' in cleaned and "<td>1.5</td>" in cleaned and "$x^2$" in cleaned
    assert f"data:image/png;base64,{PNG}" in cleaned


def test_a_written_answer_keeps_its_text_maths_table_and_image():
    answer = ("The slope is **0.5**: $\\beta_1 = 0.5$.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
              "![plot](attachment:p.png)\n\n<img src=x onerror=\"alert(1)\">\n\n[site](javascript:alert(2))")
    text, parts = sanitize.sanitize_markdown(answer, {"p.png": {"image/png": PNG}})
    assert "The slope is **0.5**: $\\beta_1 = 0.5$." in text and "| 1 | 2 |" in text
    assert "![plot](attachment:p.png)" in text
    assert "&lt;img src=x" in text and "(#removed)" in text
    assert "event handler onerror= on <img>" in parts and "javascript: link" in parts
    rendered = sanitize.render_markdown(text, {"p.png": {"image/png": PNG}})
    assert sanitize.removed_parts(rendered) == [] and "<table>" in rendered


def test_attachments_keep_images_only():
    kept, dropped = sanitize.clean_attachments({
        "p.png": {"image/png": PNG}, "x.svg": {"image/svg+xml": "PHN2Zz4="},
        "y.html": {"text/html": "<script>alert(1)</script>"}, "bad.png": {"image/png": "not base64!"}})
    assert kept == {"p.png": {"image/png": PNG}}
    assert len(dropped) == 3 and any("x.svg" in d for d in dropped)


def test_notebook_metadata_keeps_plain_kernel_words_only():
    kept, flagged = sanitize.clean_metadata({
        "kernelspec": {"name": "python3", "display_name": "<img src=x onerror=alert(1)>"},
        "language_info": {"name": "python", "version": "3.11.7"},
        "title": "<script>alert(1)</script>", "widgets": {"state": {}}})
    assert kept["kernelspec"]["name"] == "python3" and "<" not in repr(kept)
    assert kept["language_info"] == {"name": "python", "version": "3.11.7"}
    assert "title" not in kept and "widgets" not in kept
    assert any("title" in f for f in flagged) and any("display_name" in f for f in flagged)


# ------------------------------------------------------------------ outputs from the sandbox


def test_clean_output_rebuilds_and_reports():
    html = {"output_type": "display_data", "metadata": {}, "data": {
        "text/html": '<b>ok</b><img src=x onerror="alert(1)">', "text/plain": "ok",
        "application/javascript": "alert(2)", "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
        "image/png": PNG, "image/jpeg": "***not base64***"}}
    node, events = outputs.clean_output(html, "q1", 1000)
    assert set(node.data) == {"text/html", "text/plain", "image/png"}
    assert "onerror" not in node.data["text/html"] and "<b>ok</b>" in node.data["text/html"]
    assert [e.kind for e in events] == ["html removed"] and events[0].cell == "q1"
    assert "application/javascript" in events[0].detail
    stream, events = outputs.clean_output({"output_type": "stream", "name": "bogus", "text": "x" * 5000},
                                          "q2", 1000)
    assert stream.name == "stdout" and protocol.CUT_MARK in stream.text and len(stream.text) < 1200
    assert [e.kind for e in events] == ["output cut"]
    with pytest.raises(ValueError):
        outputs.clean_output({"output_type": "execute_input"}, "q3", 1000)


def test_merge_outputs_puts_cleaned_outputs_in_code_cells_only():
    nb = new_notebook(cells=[new_markdown_cell("text"), new_code_cell("x = 1"), new_code_cell("")])
    raw = {"cells": [None, {"execution_count": 1, "outputs": [
        {"output_type": "error", "ename": "CellTimeoutError", "evalue": "", "traceback": ["t"]},
        {"output_type": "stream", "name": "stderr", "text": "MemoryError\n"}]}, None],
        "_leftover": ["sleep"]}
    executed, events, timed_out = outputs.merge_outputs(nb, raw, tests={2: "t"}, limit=1000)
    assert executed.cells[1].execution_count == 1 and len(executed.cells[1].outputs) == 2
    assert nb.cells[1].outputs == []  # the staged notebook itself is not changed
    assert timed_out == ["cell number 2"]
    kinds = {e.kind: e.detail for e in events}
    assert "memory limit reached" in kinds["sandbox violation"] and "sleep" in kinds["processes killed"]
    with pytest.raises(ValueError):
        outputs.merge_outputs(nb, {"cells": []}, tests={}, limit=1000)


# ------------------------------------------------------------------ staging


def _info():
    answer = CellInfo("q1", "markdown", False, "", "", grade=True, solution=True, points=2.0)
    return NotebookInfo("n", {"q1": answer}, ["q1"])


def test_clean_notebook_makes_a_written_answer_inert_and_trusts_the_tutors_cells():
    tutor = 'Read the <span style="color:red">instructions</span>.'
    raw = {"cells": [
        {"cell_type": "markdown", "id": "a", "source": tutor, "metadata": {}},
        {"cell_type": "markdown", "id": "b", "source": "My answer <script>alert(1)</script>",
         "metadata": {"nbgrader": {"grade_id": "q1", "grade": True, "solution": True, "points": 2},
                      "tags": ["<img src=x onerror=alert(1)>"]},
         "attachments": {"x.svg": {"image/svg+xml": "PHN2Zz4="}}},
        {"cell_type": "code", "id": "c", "source": "1", "metadata": {}, "execution_count": 1,
         "outputs": [{"output_type": "display_data", "data": {"text/html": "<script>x</script>"}}]}],
        "metadata": {"title": "<b>t</b>"}, "nbformat": 4, "nbformat_minor": 5}
    events = []
    nb = clean_notebook(raw, _info(), events, Markers(), tutors=frozenset({tutor}))
    nbformat.validate(nb)
    assert nb.cells[0].source == tutor  # the tutor's own cell, untouched and not reported
    assert "&lt;script&gt;" in nb.cells[1].source and "attachments" not in nb.cells[1]
    assert nb.cells[2].outputs == [] and "title" not in nb.metadata
    removed = [e for e in events if e.kind == "html removed"]
    assert {e.cell for e in removed} >= {"q1", "cell number 2"} and len(removed) == 3, removed


# ------------------------------------------------------------------ protocol and markers


def test_protocol_frames_and_cuts_the_same_on_both_sides():
    data = b"noise printed by a library\n" + protocol.result_frame({"status": "ok", "cell": None})
    assert protocol.read_result(data) == {"status": "ok", "cell": None}
    with pytest.raises(ValueError):
        protocol.read_result(b"no marker at all")
    assert protocol.parse_progress(protocol.progress_line(7)) == 7
    assert protocol.parse_progress("a student's own line") is None
    assert protocol.CUT_MARK in protocol.cut("x" * 50, 10) and protocol.cut("short", 10) == "short"


def test_markers_find_regions_as_nbgrader_does():
    m = Markers()
    source = ("assert x > 0\n### BEGIN HIDDEN TESTS\nassert abs(x - 1) < 1e-3\n### END HIDDEN TESTS\n"
              "# BEGIN SOLUTION\ny = 2\n# END SOLUTION")
    assert m.regions(source) == [("HIDDEN TESTS", "assert abs(x - 1) < 1e-3"), ("SOLUTION", "y = 2")]
    assert m.strip_hidden(source).splitlines()[0] == "assert x > 0" and "abs(" not in m.strip_hidden(source)
    custom = Markers(begin_hidden="HIDE", end_hidden="SHOW")
    assert custom.regions("a\n## HIDE\nsecret\n## SHOW") == [("HIDDEN TESTS", "secret")]


# ------------------------------------------------------------------ guarded pages


def test_safe_pages_give_the_nonce_to_the_templates_scripts_only():
    from traitlets.config import Config

    nb = new_notebook(cells=[new_markdown_cell('<script>alert(1)</script> $x$ <img src=x onerror="a()">'),
                             new_code_cell("x", outputs=[new_output("display_data", data={
                                 "text/html": "<script nonce=\"guess\">alert(2)</script><b>kept</b>",
                                 "text/plain": "x"})])])
    config = Config()
    config.HTMLExporter.template_name = "classic"
    html, _ = SafeHTMLExporter(config=config).from_notebook_node(nb)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(f'nonce="{nonce}"' in s for s in scripts), scripts
    assert "alert(1)" not in html and "alert(2)" not in html and "onerror" not in html
    assert "<b>kept</b>" in html and "$x$" in html
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    again, _ = SafeHTMLExporter(config=config).from_notebook_node(nb)
    assert nonce not in again  # every page its own nonce


# ------------------------------------------------------------------ control groups


def test_cgroup_v2_group_is_made_and_read_as_the_kernel_lays_it_out(tmp_path, monkeypatch):
    """cgroup v2's files, in a folder laid out as /sys/fs/cgroup (this machine has v1 controllers)."""
    from coursetools.grading import limits

    root = tmp_path / "cgroup"
    (root / "grader").mkdir(parents=True)
    (root / "grader" / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(limits, "CGROUP_ROOT", root)
    monkeypatch.setattr(limits, "_own_paths", lambda: {"": "/grader"})
    monkeypatch.setattr(limits, "_fs_type", lambda path: "cgroup2")
    monkeypatch.delenv("COURSETOOLS_CGROUPS", raising=False)
    run = root / "grader" / "run"
    run.mkdir()
    (run / "cgroup.subtree_control").write_text("")
    group, why = limits.detect(1, 2048, 128, "run")
    assert why is None and group.kind == "cgroup v2"
    slot = run / "slot1"
    assert (run / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (slot / "memory.max").read_text() == str(2048 * 2**20) and (slot / "pids.max").read_text() == "128"
    assert group.procs_files == [str(slot / "cgroup.procs")]
    (slot / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    (slot / "pids.events").write_text("max 3\n")
    assert group.counters() == {"memory": 2, "processes": 3}
    (slot / "cgroup.procs").write_text("")
    assert group.empty(timeout=0.1) and group.pids() == []


def test_no_cgroup_where_the_controllers_are_missing(tmp_path, monkeypatch):
    from coursetools.grading import limits

    (tmp_path / "cgroup.controllers").write_text("cpu\n")
    monkeypatch.setattr(limits, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(limits, "_own_paths", lambda: {"": "/"})
    monkeypatch.setattr(limits, "_fs_type", lambda path: "cgroup2")
    monkeypatch.delenv("COURSETOOLS_CGROUPS", raising=False)
    group, why = limits.detect(1, 2048, 128, "run")
    assert group is None and "not memory and pids" in why
