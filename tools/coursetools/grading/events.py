"""What the grader noticed about a submission: named events, as the report shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Event kinds, as they appear in grading-report.json (docs/tutors/03-report.md).
RENAMED = "notebook renamed"
MISSING_NOTEBOOK = "notebook missing"
DUPLICATE_ID = "duplicate cell id"
DUPLICATE_CELL = "duplicate cell"
UNKNOWN_CELL = "unknown cell id"
METADATA_CHANGED = "cell metadata changed"
TEST_CHANGED = "test cell changed"
LOCKED_CHANGED = "locked cell changed"
CELL_DELETED = "cell deleted"
HTML_REMOVED = "html removed"
OUTPUT_CUT = "output cut"
PROCESSES_KILLED = "processes killed"
VIOLATION = "sandbox violation"
SUBMISSION_LIMIT = "submission limit"
KERNEL_TAMPERING = "kernel tampering"
PLAIN_VALUE = "value converted"
UNSAFE = "no sandbox"


@dataclass
class Event:
    kind: str
    detail: str
    cell: str | None = None
    manual: bool = False  # the tutor must look at it (status "needs manual grading")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "cell": self.cell, "detail": self.detail}


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def shown_name(name: str, limit: int = 60) -> str:
    """A name a student chose (a file name, a cell id), safe to print in a report line.

    Control characters (a terminal escape sequence, a newline that would fake a
    report line) and bidirectional overrides become ``?``; long names are cut.
    HTML is escaped wherever a page shows it, never here.

    >>> shown_name("practical1 (1).ipynb")
    'practical1 (1).ipynb'
    >>> shown_name("a\\x1b[31mred\\nline.ipynb")
    'a?[31mred?line.ipynb'
    """
    text = _UNPRINTABLE.sub("?", str(name))
    return text if len(text) <= limit else text[:limit - 3] + "..."
