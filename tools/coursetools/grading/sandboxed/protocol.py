"""What the grader and the sandbox say to each other: one module for both sides.

The sandbox side (``runner.py``, ``zygote.py``) imports it as ``protocol``
from its own folder (mounted read-only at ``/grader``; the sandbox has no
``coursetools`` package); the grader imports it as
:mod:`coursetools.grading.sandboxed.protocol`.  Standard library only.

* The runner writes a progress line to stderr before each cell
  (:func:`progress_line`), which the grader reads to name the cell a
  submission was in when it was stopped (:func:`parse_progress`).
* At the end it writes one result document to stdout after a marker line
  (:func:`result_frame`); whatever else reached stdout comes before it, and
  the grader reads what follows the *last* marker (:func:`read_result`).
* Texts longer than a limit are cut with :func:`cut`, on both sides, so the
  grader can recognise a cut (:data:`CUT_MARK`) whoever made it.
* The zygote (a worker's preloaded Python) says :data:`READY` once it has
  imported the course's libraries, and gets one :func:`zygote_request` per
  submission.
"""

import json

PROGRESS = "@@coursetools-cell "
RESULT = "@@coursetools-result"
CUT_MARK = "[output cut by the grader"
READY = b"ready"


def progress_line(index):
    """The stderr line that says cell ``index`` starts."""
    return f"{PROGRESS}{index}"


def parse_progress(line):
    """The cell index of a progress line, or None if ``line`` is not one."""
    if not line.startswith(PROGRESS):
        return None
    try:
        return int(line[len(PROGRESS):])
    except ValueError:
        return None


def result_frame(doc):
    """The bytes that end the runner's stdout: the marker, then ``doc`` as JSON."""
    return ("\n" + RESULT + "\n" + json.dumps(doc)).encode()


def read_result(data):
    """The result document after the last marker in ``data``; ValueError if there is none."""
    _, marker, payload = bytes(data).rpartition(RESULT.encode() + b"\n")
    if not marker:
        raise ValueError("no result")
    doc = json.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("the result is not an object")
    return doc


def cut(text, limit, what="an output"):
    """``text`` cut to ``limit`` characters, with a marker saying what was cut and how much."""
    if len(text) <= limit:
        return text
    return (text[:limit] + f"\n... {CUT_MARK}: {what} of {len(text):,} characters; "
            f"the limit is {limit:,}] ...\n")


def zygote_request(pid, cwd, job, uid, limits, cgroup_procs=()):
    """What the grader sends the zygote to run one submission in sandbox ``pid``."""
    return json.dumps({"pid": pid, "cwd": cwd, "job": job, "uid": uid, "limits": limits,
                       "cgroup_procs": list(cgroup_procs)}).encode()
