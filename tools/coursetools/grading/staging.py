"""Stage one submission: a clean, repaired, inert copy of what the student handed in.

:func:`stage` reads ``submitted/<student>/<assignment>/`` and writes a copy to
the staging folder that nbgrader autogrades: outputs cleared, duplicate cell
ids made unique, copied (duplicate) answer or test cells turned into
ordinary cells, tampered nbgrader metadata and changed test or locked cells
restored from the gradebook, a notebook saved under the browser's download
name (``practical1 (1).ipynb``) renamed, and every piece of HTML, attachment
and metadata the student wrote made inert (:mod:`.sanitize`).  Each change is
reported as a named event.  :func:`clean_notebook` does the same to a notebook
already read (the seam the tests use).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import sanitize
from .assignment import AssignmentInfo, CellInfo, NotebookInfo
from .events import (CELL_DELETED, DUPLICATE_CELL, DUPLICATE_ID, HTML_REMOVED, LOCKED_CHANGED,
                     METADATA_CHANGED, MISSING_NOTEBOOK, RENAMED, TEST_CHANGED, UNKNOWN_CELL, Event,
                     shown_name)

__all__ = ["Staged", "stage", "clean_notebook", "nbgrader_meta", "cell_name", "MAX_NOTEBOOK_BYTES"]

#: nbgrader's own files of a submission: the time it was handed in and, for a
#: submission collected through the exchange, the secret that names its
#: feedback (``nbgrader release_feedback`` reads it from the feedback folder).
KEPT_FILES = {"timestamp.txt": re.compile(r"[0-9 :.+\-TUCZ]{8,40}\n?"),
              "submission_secret.txt": re.compile(r"[0-9a-fA-F]{8,256}\n?")}


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


@dataclass
class Staged:
    student: str
    assignment: str
    notebooks: dict[str, object] = field(default_factory=dict)  # name -> NotebookNode
    events: list[Event] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # notebook -> grade id -> hash


MAX_NOTEBOOK_BYTES = 200 * 1024 * 1024


def _expected_metadata(info: CellInfo) -> dict:
    meta = {"grade": info.grade, "grade_id": info.name, "locked": info.locked,
            "schema_version": 3, "solution": info.solution, "task": info.task,
            "checksum": info.checksum}
    if info.grade or info.task:
        meta["points"] = info.points
    return meta


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def stage(submitted: Path, staged: Path, student: str, info: AssignmentInfo) -> Staged:
    """Write a clean copy of one submission to ``staged``; report what was changed.

    Returns the :class:`Staged` copy: its notebooks (as written), the events,
    the fatal problems (an unreadable notebook) and a hash of each written
    answer (to notice an answer changed after the tutor marked it).
    """
    import nbformat

    submitted, staged = Path(submitted), Path(staged)
    out = Staged(student, info.name)
    files = sorted(p for p in submitted.glob("*.ipynb") if p.is_file())
    by_name = {p.stem: p for p in files}
    missing = [n for n in info.notebooks if n not in by_name]
    spare = [p for p in files if p.stem not in info.notebooks]
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    for kept, form in KEPT_FILES.items():
        if (submitted / kept).is_file():
            text = (submitted / kept).read_bytes()[:300].decode(errors="replace")
            if form.fullmatch(text):
                (staged / kept).write_text(text)
            else:
                out.events.append(Event(METADATA_CHANGED, f"{kept} is not what nbgrader writes; "
                                        "left out"))
    if len(missing) == 1 and len(spare) == 1:
        by_name[missing[0]] = spare[0]
        out.events.append(Event(RENAMED, f"'{shown_name(spare[0].name)}' graded as "
                                f"{missing[0]}.ipynb"))
        missing = []
    for name in missing:
        out.events.append(Event(MISSING_NOTEBOOK, f"notebook {name}.ipynb not submitted "
                                "(nbgrader scores it 0)", manual=True))
    for name, nb_info in info.notebooks.items():
        path = by_name.get(name)
        if path is None:
            continue
        try:
            if path.stat().st_size > MAX_NOTEBOOK_BYTES:
                raise ValueError("larger than 200 MB")
            with open(path, encoding="utf-8") as fh:
                raw = json.load(fh)
            if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
                raise ValueError("no cells")
        except (OSError, ValueError, UnicodeDecodeError) as err:
            out.fatal.append(f"{shown_name(path.name)} is not a readable notebook "
                             f"({type(err).__name__}: {shown_name(str(err), 80)})")
            continue
        nb = clean_notebook(raw, nb_info, out.events, info.markers, info.tutor_sources)
        try:
            nbformat.validate(nb)
        except Exception as err:  # noqa: BLE001 - reported by name
            out.fatal.append(f"{shown_name(path.name)} is not a valid notebook after repair "
                             f"({shown_name(str(err), 120)})")
            continue
        nbformat.write(nb, staged / f"{name}.ipynb")
        out.notebooks[name] = nb
        out.answers[name] = {
            nbgrader_meta(c)["grade_id"]: hashlib.sha256(_norm(c.source).encode()).hexdigest()
            for c in nb.cells if nbgrader_meta(c).get("solution")}
    return out


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata (an empty dict when it has none or it is not a dict)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def cell_name(nb, index) -> str:
    """How the report names cell ``index``: by its grade id, else by its number."""
    if index is None or not 0 <= index < len(nb.cells):
        return "a cell"
    gid = nbgrader_meta(nb.cells[index]).get("grade_id")
    return f"cell {gid}" if gid else f"cell number {index + 1}"


def clean_notebook(raw: dict, nb_info: NotebookInfo, events: list, markers=None,
                   tutors=frozenset()):
    """A clean notebook from a submitted one (parsed JSON); what changed is appended to ``events``.

    Only the cells' type, source, id, nbgrader metadata (checked against the
    gradebook) and a Markdown cell's image attachments are taken over;
    outputs and every other piece of metadata are left behind; student HTML
    is made inert.
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

    from ..markers import Markers

    markers = markers or Markers()
    out = Staged("", "", events=events)
    nb = new_notebook()
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    kept, flagged = sanitize.clean_metadata(metadata)
    nb.metadata = nbformat.from_dict(kept)
    if flagged:
        out.events.append(Event(HTML_REMOVED, f"removed {', '.join(flagged[:4])} (HTML in metadata)"))
    seen_ids: set[str] = set()
    dup_ids = 0
    for raw_cell in raw["cells"]:
        if not isinstance(raw_cell, dict):
            continue
        kind = raw_cell.get("cell_type")
        source = _cell_source(raw_cell)
        maker = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}.get(kind)
        if maker is None:
            maker = new_markdown_cell
        cell = maker(source)
        cell_id = raw_cell.get("id")
        if not isinstance(cell_id, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cell_id) \
                or cell_id in seen_ids:
            if isinstance(cell_id, str) and cell_id in seen_ids:
                dup_ids += 1
            cell_id = uuid.uuid4().hex[:12]
        seen_ids.add(cell_id)
        cell["id"] = cell_id
        raw_meta = raw_cell.get("metadata") if isinstance(raw_cell.get("metadata"), dict) else {}
        if "nbgrader" in raw_meta:
            cell.metadata["nbgrader"] = raw_meta["nbgrader"]
        if any("<" in repr(v) for k, v in raw_meta.items() if k != "nbgrader"):
            out.events.append(Event(HTML_REMOVED, f"cell number {len(nb.cells) + 1}: removed its "
                                    "metadata (HTML in metadata)", cell=f"cell number {len(nb.cells) + 1}"))
        if kind == "markdown" and isinstance(raw_cell.get("attachments"), dict):
            cell["attachments"] = raw_cell["attachments"]
        nb.cells.append(cell)
    if dup_ids:
        out.events.append(Event(DUPLICATE_ID, f"{dup_ids} cell id(s) repeated (a copied cell); "
                                "new ids given"))

    # Which cell carries each grade id: the last copy, as nbgrader keeps it.
    holders: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(gid, str) or gid not in nb_info.cells:
            del cell.metadata["nbgrader"]
            if isinstance(gid, str) and gid:
                out.events.append(Event(UNKNOWN_CELL, f"cell id {shown_name(gid, 40)!r} is not in the "
                                        "assignment; treated as an ordinary cell",
                                        cell=shown_name(gid, 40)))
            elif not isinstance(meta, dict) or meta.get("grade") or meta.get("solution") or meta.get("locked"):
                out.events.append(Event(METADATA_CHANGED, f"cell {index + 1} has nbgrader metadata "
                                        "without a valid id; treated as an ordinary cell"))
            continue
        holders.setdefault(gid, []).append(index)
    trusted: set[int] = set()  # cells whose source is the tutor's (restored from the gradebook)
    for gid, indices in holders.items():
        info = nb_info.cells[gid]
        for index in indices[:-1]:
            del nb.cells[index].metadata["nbgrader"]
        if len(indices) > 1:
            out.events.append(Event(DUPLICATE_CELL, f"{len(indices) - 1} copy/copies of {gid}: the last "
                                    "one is graded, the others run as ordinary cells", cell=gid))
        cell = nb.cells[indices[-1]]
        old = cell.metadata["nbgrader"] if isinstance(cell.metadata["nbgrader"], dict) else {}
        expected = _expected_metadata(info)
        changed = [k for k in ("grade", "solution", "locked", "task", "points")
                   if _flag(old.get(k), k) != _flag(expected.get(k), k)]
        if cell.cell_type != info.cell_type:
            changed.append("cell_type")
            cell = _retype(nb, indices[-1], info.cell_type)
        if changed:
            out.events.append(Event(METADATA_CHANGED, f"{gid}: {', '.join(changed)} restored",
                                    cell=gid))
        cell.metadata["nbgrader"] = expected
        if info.locked:
            visible = markers.strip_hidden(info.source) if markers.has_hidden(info.source) else info.source
            if _norm(cell.source) != _norm(visible) and _norm(cell.source) != _norm(info.source):
                kind = TEST_CHANGED if info.grade and info.cell_type == "code" else LOCKED_CHANGED
                out.events.append(Event(kind, f"{gid} was edited; the original was restored", cell=gid))
            cell.source = info.source
            trusted.add(indices[-1])
    present = set(holders)
    for gid in nb_info.order:
        info = nb_info.cells[gid]
        if gid in present or not (info.grade or info.task or info.solution or info.locked):
            continue
        if info.grade or info.task:
            kind = "test cell" if info.cell_type == "code" and not info.solution else \
                "task cell" if info.task else "answer cell"
            out.events.append(Event(CELL_DELETED, f"{kind} {gid} deleted (nbgrader scores it 0 of "
                                    f"{info.points:g})", cell=gid, manual=True))
        else:
            out.events.append(Event(CELL_DELETED, f"{'answer' if info.solution else 'locked'} cell "
                                    f"{gid} deleted", cell=gid, manual=info.solution))
    out.events.extend(sanitize.sanitize_notebook(nb, lambda i: cell_name(nb, i), trusted, tutors))
    return nb


def _flag(value, key):
    if key == "points":
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return "invalid"
    return bool(value) if isinstance(value, (bool, int)) or value is None else "invalid"


def _retype(nb, index, cell_type):
    from nbformat.v4 import new_code_cell, new_markdown_cell

    old = nb.cells[index]
    new = (new_code_cell if cell_type == "code" else new_markdown_cell)(old.source)
    new["id"] = old["id"]
    new.metadata = old.metadata
    nb.cells[index] = new
    return new

