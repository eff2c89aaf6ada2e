"""Grade a class's practicals with nbgrader in one command (a tool for tutors).

Usage, from the course folder (the one holding ``nbgrader_config.py``)::

    make grade
    python -m coursetools.grading [--course-dir DIR] [--assignment NAME] [--student ID]
                                 [--timeout SECONDS] [--max-time SECONDS] [--jobs N]
                                 [--memory-mb MB] [--processes N] [--disk-mb MB]
                                 [--no-feedback] [--csv PATH] [--unsafe-no-sandbox]

Put each student's notebooks in ``submitted/<student>/<assignment>/`` (what
``nbgrader collect`` or ``nbgrader zip_collect`` produce).  The command then

1. makes sure the gradebook knows every assignment that has submissions (it
   runs ``generate_assignment`` into a throw-away folder, so the committed
   ``practicals/`` is never touched);
2. stages a clean copy of each submission (:mod:`.staging`): tampered
   metadata, edited test cells, copied cells and browser download names are
   repaired, and student HTML, attachments and metadata made inert
   (:mod:`.sanitize`), each reported by name;
3. runs each copy in its own sandbox (:mod:`.sandbox`, bubblewrap; :mod:`.launch`),
   ``--jobs`` at a time, with the test cells' code removed; a cell that outruns
   ``c.Execute.timeout`` is interrupted, and a wall-clock guard (``--max-time``)
   kills the sandbox of a submission that still does not finish.  Each job is
   a worker process of its own (:mod:`.worker`) that takes its submissions
   through steps 2-5 (only the gradebook writes take turns, under one lock);
   graded as root, a worker forks each notebook's process from a Python that
   has the course's libraries loaded (``sandboxed/zygote.py``).  A control
   group caps each submission's memory and processes together (:mod:`.limits`);
4. runs the tests in a clean process on the plain values recorded in the
   sandbox (:mod:`.tester`), and lets nbgrader's own autograde
   steps score the result (so the gradebook and formgrader work as usual);
5. writes feedback to ``feedback/<student>/<assignment>/`` with the hidden
   tests removed (also from the tracebacks of failed hidden tests), student
   HTML sanitised again and a Content-Security-Policy in each page
   (:mod:`.pages`);
6. updates ``grades.csv`` (assignment, student_id, status, score, max_score,
   reasons) and ``grading-report.json`` beside it (every named event), keeping
   the rows of submissions not graded in this run, and prints one line per
   student and assignment, for example::

       alice  practical1  needs manual grading  10.0 / 14.0  3 manual answers to grade (q3_scatter, ...)
       bob    practical1  graded                 0.0 / 14.0
       dave   practical1  graded                 9.0 / 14.0  interrupted after 120 s: q1_corr
       erin   practical1  needs manual grading   9.0 / 14.0  cell deleted: test cell q1_corr_test deleted ...
       frank  practical1  could not be graded      - / 14.0  the kernel died while running cell q1_corr

The three statuses:

* ``graded`` - every point is settled; the score is final.
* ``needs manual grading`` - written answers wait for the tutor (grade them in
  nbgrader's formgrader, then run the command again; marks of unchanged
  answers are kept, marks of answers changed since marking are cleared), or a
  test/answer cell or notebook is missing from the submission, which nbgrader
  silently scores 0: look at it.
* ``could not be graded`` - the kernel died, a cell ignored the interrupt at
  the timeout, the whole submission outran ``--max-time``, or the notebook is
  unreadable.  grades.csv keeps the last good score of an earlier run (and
  says so) or leaves it empty; the others are graded.

The command exits with status 1 when some submission could not be graded (and
names them on stderr), 2 when no sandbox can be made (it says what to
install), otherwise 0.

The package, one module per stage: :mod:`.assignment` (what the gradebook
knows), :mod:`.staging`, :mod:`.sanitize`, :mod:`.execute` (with
:mod:`.launch`, :mod:`.limits`, :mod:`.sandbox` and the sandbox side in
``sandboxed/``, which shares :mod:`.sandboxed.protocol` with the grader),
:mod:`.outputs`, :mod:`.tester` / :mod:`.tester_client`,
:mod:`.nbgrader_steps`, :mod:`.worker`, :mod:`.report`, :mod:`.course` (the
run), :mod:`.cli`; :mod:`.pages` and :mod:`.web` guard the pages that show
submissions (Formgrader, feedback).

``python -m coursetools.grading export --format moodle|canvas|blackboard``
writes the gradebook's grades as the platform's offline import file
(:mod:`.export`).

Not imported by ``mlmhelpers`` (the students' library): it needs nbgrader,
which students do not.
"""

from __future__ import annotations

import importlib

__all__ = ["SubmissionResult", "grade_course", "main", "stage", "clean_notebook", "clean_output",
           "merge_outputs", "sanitize_notebook", "clean_html", "assignment_info", "nbgrader_config",
           "course_directory", "ensure_in_gradebook", "feedback_config", "run_app",
           "GRADED", "NEEDS_MANUAL", "FAILED"]

_WHERE = {
    "SubmissionResult": "report", "GRADED": "report", "NEEDS_MANUAL": "report", "FAILED": "report",
    "grade_course": "course", "main": "cli",
    "stage": "staging", "clean_notebook": "staging",
    "clean_output": "outputs", "merge_outputs": "outputs",
    "sanitize_notebook": "sanitize", "clean_html": "sanitize",
    "assignment_info": "assignment",
    "nbgrader_config": "nbgrader_steps", "course_directory": "nbgrader_steps",
    "ensure_in_gradebook": "nbgrader_steps", "feedback_config": "nbgrader_steps",
    "run_app": "nbgrader_steps",
}


def __getattr__(name):
    # The public names, imported on first use: `import coursetools.grading.web` (a
    # Jupyter server extension) or `.sandbox` need not load nbgrader's converters.
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
