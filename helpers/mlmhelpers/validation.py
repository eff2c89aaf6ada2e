"""nbgrader's *Validate* in the words a student needs: the question, and what is wrong.

*Validate* runs the whole practical and lists every check that fails.  By
itself nbgrader shows each failing check cell's code ("The following cell
failed:") and its whole traceback.  :func:`summarise_failure`, nbgrader's
hook for a cell that failed while *Validate* runs it, puts the question the
check belongs to in place of the code (a check cell's first line says
``# Question N: ...``) and the error's message in place of the traceback.
Only what the dialog shows changes: the notebook on disk is not touched, and
a check cell the student edited is still reported as changed.  The course's
``nbgrader_config.py`` files set it::

    from mlmhelpers.validation import summarise_failure
    c.Execute.on_cell_error = summarise_failure
"""

from __future__ import annotations

import os
import re

__all__ = ["summarise_failure", "question_of", "GOING_FURTHER"]

#: What a going-further check (cell metadata ``course.going_further``) adds to its question.
GOING_FURTHER = " (going further: optional, no marks)"

_QUESTION = re.compile(r"#\s*(Question\s+\d+[a-z]?)\b", re.I)


def question_of(source: str, grade_id: str | None = None) -> str:
    """The question a check cell belongs to, from its first line.

    >>> question_of("# Question 2: checks slope. Run it after your answer.\\nassert x")
    'Question 2'
    >>> question_of("assert x", "q2_test")
    'Check q2_test'
    """
    match = _QUESTION.match(source.strip())
    return match.group(1) if match else f"Check {grade_id or 'cell'}"


def summarise_failure(cell=None, **_):
    """nbclient's ``on_cell_error`` hook: a failed check cell becomes its question and message.

    Acts only while nbgrader validates (``NBGRADER_VALIDATING``), only on an
    autograded test cell the student left unchanged.
    """
    if cell is None or os.environ.get("NBGRADER_VALIDATING") != "1":
        return
    from nbgrader import utils

    if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
        return
    meta = cell.metadata.nbgrader
    if "checksum" in meta and utils.compute_checksum(cell) != meta["checksum"]:
        return  # edited by the student: nbgrader reports it as changed
    label = question_of(cell.source, meta.get("grade_id"))
    if cell.metadata.get("course", {}).get("going_further"):
        label += GOING_FURTHER
    cell.source = label
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
    if "checksum" in meta:
        meta["checksum"] = utils.compute_checksum(cell)
