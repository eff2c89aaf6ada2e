"""Rebuild what comes back from a sandbox: outputs checked field by field, cut, made inert.

Nothing the sandbox returns is trusted.  :func:`clean_output` rebuilds one
output of a code cell with checked types and sizes: printed text, errors,
images (PNG, JPEG, GIF, as valid base64), and HTML, Markdown and SVG only
after :mod:`.sanitize`; JavaScript and widget views are dropped.
:func:`merge_outputs` puts the cleaned outputs of a whole run into the staged
notebook and names what it noticed (an output cut, HTML removed, a limit
reached, processes left running).  Both are public seams, tested without a
grading run.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re

from . import sanitize
from .events import (HTML_REMOVED, KERNEL_TAMPERING, OUTPUT_CUT, PLAIN_VALUE, PROCESSES_KILLED,
                     VIOLATION, Event)
from .sandboxed.protocol import CUT_MARK, cut
from .staging import cell_name

__all__ = ["clean_output", "merge_outputs", "kernel_events", "IMAGE_MIMES", "TEXT_MIMES"]

IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml")
MAX_IMAGE_CHARS = 4_000_000


def clean_output(out, cell: str, limit: int) -> tuple[object, list[Event]]:
    """One output from the sandbox, rebuilt; returns (the output node, events about it).

    Raises ValueError for something that is not an output at all.
    """
    from nbformat import NotebookNode

    if not isinstance(out, dict):
        raise ValueError("an output is not an object")
    kind = out.get("output_type")
    events: list[Event] = []

    def text(value, cap):
        if isinstance(value, list):
            value = "".join(v for v in value if isinstance(v, str))
        if not isinstance(value, str):
            return ""
        value = cut(value, cap)
        if CUT_MARK in value and not any(e.kind == OUTPUT_CUT for e in events):
            events.append(Event(OUTPUT_CUT, f"{cell}: oversized output cut to {cap:,} characters",
                                cell=cell))
        return value

    if kind == "stream":
        name = out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout"
        return NotebookNode(output_type="stream", name=name, text=text(out.get("text"), limit)), events
    if kind in ("display_data", "execute_result"):
        raw = out.get("data") if isinstance(out.get("data"), dict) else {}
        data, rich = {}, {}
        for mime, value in raw.items():
            value = "".join(v for v in value if isinstance(v, str)) if isinstance(value, list) else value
            if not isinstance(value, str):
                continue
            if mime in IMAGE_MIMES:
                if len(value) <= max(limit, MAX_IMAGE_CHARS) and _base64(value):
                    data[mime] = value
            elif mime in TEXT_MIMES:
                rich[mime] = value if mime == "text/plain" else value[:max(limit, 2000)]
            else:
                rich[mime] = ""  # reported by clean_rich_data when it is active content
        kept, removed = sanitize.clean_rich_data(rich)
        for mime, value in kept.items():
            if mime in TEXT_MIMES:
                data[mime] = text(value, limit) if mime == "text/plain" else value
        if removed:
            events.append(Event(HTML_REMOVED, f"{cell}: removed {', '.join(removed[:6])}", cell=cell))
        if not data and raw:
            data["text/plain"] = "[output not shown by the grader]"
        node = NotebookNode(output_type=kind, data=data, metadata={})
        if kind == "execute_result":
            count = out.get("execution_count")
            node.execution_count = count if isinstance(count, int) else None
        return node, events
    if kind == "error":
        tb = out.get("traceback") if isinstance(out.get("traceback"), list) else []
        return NotebookNode(output_type="error", ename=text(out.get("ename"), 200),
                            evalue=text(out.get("evalue"), 2000),
                            traceback=[text(t, 2000) for t in tb[:60]]), events
    raise ValueError(f"unknown output type {str(kind)[:30]!r}")


def _base64(value: str) -> bool:
    try:
        base64.b64decode(value.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _texts(out) -> list[str]:
    if out.output_type == "stream":
        return [out.text]
    if out.output_type == "error":
        return [out.evalue] + list(out.traceback)
    return [v for v in out.get("data", {}).values() if isinstance(v, str)]


def merge_outputs(nb, raw: dict, tests, limit: int):
    """The staged notebook with the sandbox's outputs in its code cells (test cells left empty).

    Returns (executed notebook, events, names of cells interrupted at the
    timeout).  Raises ValueError when the sandbox's result does not fit the
    notebook.
    """
    executed = copy.deepcopy(nb)
    events: list[Event] = []
    timed_out: list[str] = []
    cells = raw.get("cells")
    if not isinstance(cells, list) or len(cells) != len(executed.cells):
        raise ValueError("wrong number of cells")
    for index, (cell, got) in enumerate(zip(executed.cells, cells)):
        if cell.cell_type != "code" or index in tests:
            continue
        if not isinstance(got, dict):
            raise ValueError("missing cell outputs")
        outputs = got.get("outputs") if isinstance(got.get("outputs"), list) else []
        name = cell_name(nb, index)
        name = name if name.startswith("cell number") else name.removeprefix("cell ")
        # The sandbox already cut the outputs; nothing from it is trusted, so cut again.
        budget, cleaned, found = limit, [], []
        for o in outputs[:200]:
            out, notes = clean_output(o, name, max(budget, 2000) + 300)
            budget -= sum(len(v) for v in _texts(out))
            cleaned.append(out)
            found += notes
        cell.outputs = cleaned
        # One event of each kind per cell.
        for kind in (OUTPUT_CUT, HTML_REMOVED):
            same = [e for e in found if e.kind == kind]
            if same:
                details = sorted({d for e in same for d in e.detail.split(": removed ", 1)[1:]})
                events.append(same[0] if kind == OUTPUT_CUT or len(same) == 1 else
                              Event(kind, f"{name}: removed {', '.join(details)}", cell=name))
        count = got.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        for out in cell.outputs:
            if out.output_type == "error" and out.ename == "CellTimeoutError":
                timed_out.append(name)
        events.extend(_violations(cell.outputs, name))
    leftover = raw.get("_leftover")
    if leftover:
        events.append(Event(PROCESSES_KILLED, f"{len(leftover)} process(es) still running when "
                            f"the notebook ended were killed ({', '.join(leftover)})"))
    return executed, events, timed_out


_SIGNS = [
    ("memory limit reached", re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc")),
    ("network blocked", re.compile(r"Network is unreachable|Temporary failure in name resolution|"
                                   r"Name or service not known|\[Errno (101|-2|-3)\]")),
    ("process limit reached", re.compile(r"Resource temporarily unavailable|can't start new thread")),
    ("file size limit reached", re.compile(r"File too large|\[Errno 27\]")),
    ("disk limit reached", re.compile(r"No space left on device|\[Errno 28\]")),
    ("grader files out of reach", re.compile(r"gradebook\.db|/solutions|/submitted/|/autograded/|"
                                             r"/feedback/|/root\b")),
]


def _violations(outputs, name: str) -> list[Event]:
    text = " ".join(
        (o.get("ename", "") + " " + o.get("evalue", "")) if o.output_type == "error"
        else o.get("text", "") if o.output_type == "stream" and o.get("name") == "stderr" else ""
        for o in outputs)
    if not text.strip():
        return []
    return [Event(VIOLATION, f"{label} in {name}", cell=name)
            for label, pattern in _SIGNS if pattern.search(text)]


def kernel_events(values: dict) -> list[Event]:
    """What the student's code changed in its kernel, from the values the sandbox recorded."""
    base = values.get("baseline") if isinstance(values.get("baseline"), dict) else {}
    changes: dict[str, None] = {}
    notes: dict[str, None] = {}
    for key, entry in values.items():
        if key == "baseline" or not isinstance(entry, dict):
            continue
        state = entry.get("__kernel__") if isinstance(entry.get("__kernel__"), dict) else {}
        for what, count in state.items():
            if not isinstance(count, int) or not isinstance(what, str):
                continue
            if count > (base.get(what, 0) if isinstance(base.get(what, 0), int) else 0):
                changes[what[:60]] = None
        for note in entry.get("__notes__", []) if isinstance(entry.get("__notes__"), list) else []:
            if isinstance(note, str):
                notes[note[:200]] = None
    events = []
    if changes:
        events.append(Event(KERNEL_TAMPERING, "the notebook changed its kernel ("
                            + ", ".join(sorted(changes)) + "); tests run in a clean "
                            "process, so this has no effect on the marks"))
    events.extend(Event(PLAIN_VALUE, note) for note in notes)
    return events
