"""Run a staged notebook: the student's cells in a sandbox, the tests in a clean process.

:func:`execute` takes the staged copy (:mod:`.staging`), removes every test
cell's code and, where a test cell was, records the variables that test
reads as plain data (``sandboxed/capture.py``).  The worker's
:class:`~.launch.Launcher` runs that in a sandbox; :mod:`.outputs` rebuilds
what comes back; the tests (code from the gradebook, never from the
submission) run in the worker's clean test process (:mod:`.tester`) on the
recorded values, and their verdicts become the test cells' outputs, which
nbgrader's ``SaveAutoGrades`` scores.
"""

from __future__ import annotations

import ast
import builtins
import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox
from .assignment import AssignmentInfo
from .events import SUBMISSION_LIMIT, Event
from .outputs import kernel_events, merge_outputs
from .staging import cell_name, nbgrader_meta

__all__ = ["Settings", "Executed", "execute", "test_cells", "needed_names", "ALWAYS_WATCHED"]

# Functions whose replacement in the student's kernel is reported (it has no
# effect on the tests, which run elsewhere, but the tutor should know).
ALWAYS_WATCHED = tuple(f"builtins.{name}" for name in (
    "abs", "float", "int", "round", "len", "isinstance", "min", "max", "sum", "bool", "str")) + \
    tuple(f"numpy.{name}" for name in ("isclose", "allclose", "ndim", "abs", "array_equal"))


@dataclass
class Settings:
    """How submissions are executed (shared by every worker)."""

    timeout: float = 120
    max_time: float = 1260
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    max_output_chars: int = 100_000
    max_capture_bytes: int = 64 * 1024 * 1024
    unsafe: bool = False
    support_dir: Path | None = None  # per run: mpl cache, passwd files


@dataclass
class Executed:
    """The outcome of running one notebook: outputs to insert, or why it failed."""

    notebook: object | None = None  # NotebookNode with outputs (None when it failed)
    failure: str | None = None
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)  # seconds, as reported by the sandbox (for benchmarks)


def test_cells(nb) -> dict[int, str]:
    """Index -> grade id of the autograded test cells of a staged notebook."""
    return {i: nbgrader_meta(c)["grade_id"] for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}


def needed_names(source: str, info: AssignmentInfo) -> tuple[list[str], list[str]]:
    """(variables a test reads from the notebook, library functions it calls)."""
    tree = ast.parse(source)
    loaded, stored, watch = [], set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append(node.id)
            else:
                stored.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda, ast.comprehension)):
            pass
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in info.modules:
            watch.add(f"{info.modules[node.value.id]}.{node.attr}")
    names = []
    for name in loaded:
        if name in stored or name in info.imports or name in names:
            continue
        if hasattr(builtins, name):
            watch.add(f"builtins.{name}")
            continue
        names.append(name)
    return names, sorted(watch)


def execute(nb, info: AssignmentInfo, settings: Settings, launcher, tester) -> Executed:
    """Run a staged notebook in ``launcher``'s sandbox and its tests in ``tester``'s clean process."""
    result = Executed()
    tests = test_cells(nb)
    sandbox_nb = copy.deepcopy(nb)
    captures, needs = {}, {}
    watch = set(ALWAYS_WATCHED)
    for index, cell in enumerate(sandbox_nb.cells):
        if index in tests:
            names, calls = needed_names(cell.source, info)
            needs[index] = names
            captures[str(index)] = names
            watch.update(calls)
            cell.source = ""  # the test code never enters the student's kernel
        elif info.markers.has_hidden(cell.source) and nbgrader_meta(cell):
            cell.source = ""
        if cell.cell_type == "code":
            cell.outputs = []
    job = {
        "notebook": sandbox_nb, "captures": captures, "watch": sorted(watch),
        "timeout": int(settings.timeout), "max_output_chars": settings.max_output_chars,
        "max_capture_bytes": settings.max_capture_bytes,
        # In the sandbox's PID namespace, 1 is bubblewrap's and 2 the runner's parent.
        "spare_pids": [2],
        # where capture.py is seen from the notebook's process
        "grader_dir": None if settings.unsafe else "/grader",
    }
    start = time.monotonic()
    raw, failure = launcher.run(job, set(info.imports.values()), info.extra_files,
                                lambda index: cell_name(nb, index))
    result.seconds = time.monotonic() - start
    if failure:
        result.failure = failure
        if failure.startswith("submission limit") or "whole-submission" in failure \
                or "wall-clock limit" in failure:
            result.events.append(Event(SUBMISSION_LIMIT, failure))
        return result
    result.timing = _phases(raw, start, result.seconds)
    try:
        executed, events, result.timed_out = merge_outputs(nb, raw, tests, settings.max_output_chars)
    except ValueError as err:
        result.failure = f"the sandbox returned malformed results ({err})"
        return result
    result.events.extend(events)
    result.events.extend(_limit_events(raw.get("_limit_hits") or {}, settings.limits))
    values = raw.get("values") if isinstance(raw.get("values"), dict) else {}
    result.events.extend(kernel_events(values))
    start = time.perf_counter()
    verdicts = _run_tests(nb, tests, needs, values, info, settings, tester)
    result.timing["clean test run"] = time.perf_counter() - start
    if isinstance(verdicts, str):
        result.failure = verdicts
        return result
    from nbformat import NotebookNode

    for index in tests:
        cell = executed.cells[index]
        verdict = verdicts.get(str(index)) or {"ok": False, "ename": "RuntimeError",
                                                "evalue": "the test did not run", "traceback": []}
        cell.outputs = [] if verdict.get("ok") else [NotebookNode(
            output_type="error", ename=str(verdict.get("ename", "Error"))[:100],
            evalue=str(verdict.get("evalue", ""))[:2000],
            traceback=[str(t)[:2000] for t in verdict.get("traceback", [])][:50])]
    result.notebook = executed
    return result


def _limit_events(hits: dict, limits: sandbox.Limits) -> list[Event]:
    events = []
    if hits.get("memory"):
        events.append(Event(SUBMISSION_LIMIT, f"the submission's processes together reached its "
                            f"{limits.total_memory_mb:,} MB of memory; the kernel stopped "
                            f"{hits['memory']} of them"))
    if hits.get("processes"):
        events.append(Event(SUBMISSION_LIMIT, f"the submission tried to run more than "
                            f"{limits.processes} processes and threads at once"))
    return events


def _phases(raw: dict, start: float, total: float) -> dict[str, float]:
    """Seconds of each phase of a sandbox run (for the report and ``make bench``).

    Worked out from clock readings taken here and in the sandbox; they only
    describe the run, nothing depends on them.
    """
    got = raw.get("timing") if isinstance(raw.get("timing"), dict) else {}
    stamps = {k: float(v) for k, v in got.items() if isinstance(v, (int, float)) and v == v}
    sent = raw.get("_sent")
    keys = ("at shell ready", "at cells done", "at done")
    if not isinstance(sent, float) or not all(k in stamps for k in keys) \
            or not sent <= stamps["at shell ready"] <= stamps["at cells done"] <= stamps["at done"]:
        return {"sandbox run": total}
    capturing = min(max(stamps.get("capturing", 0.0), 0.0), stamps["at cells done"] - stamps["at shell ready"])
    preloading = raw.get("_preloading") if isinstance(raw.get("_preloading"), float) else 0.0
    return {
        # starting this worker's preloaded Python: once per worker, not per submission
        "worker start": preloading,
        "sandbox start": sent - start - preloading,
        "runner and shell start": stamps["at shell ready"] - sent,
        "student cells": stamps["at cells done"] - stamps["at shell ready"] - capturing,
        "answer extraction": capturing + stamps["at done"] - stamps["at cells done"],
        "sandbox end": start + total - stamps["at done"],
    }


def _run_tests(nb, tests, needs, values, info: AssignmentInfo, settings: Settings, tester):
    """Verdicts of every test cell (run in a fresh Python), or why they could not run."""
    used = set()
    job_tests = []
    for index in tests:
        source = nb.cells[index].source
        tree_names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        used.update(tree_names & set(info.imports))
        entry = values.get(str(index))
        job_tests.append({"index": index, "source": source, "names": needs[index],
                          "values": entry if isinstance(entry, dict) else None})
    job = {"imports": [info.imports[n] for n in sorted(used)], "tests": job_tests,
           "timeout": max(10, int(settings.timeout))}
    out = tester.ask(job, settings, timeout=max(120, 5 * settings.timeout))
    if isinstance(out, str):
        return out
    verdicts = out.get("verdicts")
    if not isinstance(verdicts, dict):
        return "the tests could not be run: " + str(out.get("error", "no verdicts"))[:200]
    return verdicts


