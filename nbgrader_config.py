"""nbgrader configuration for the course's four practicals.

The course root is the folder holding this file (the repository root):

* ``solutions/practicalN/practicalN.ipynb`` - the source with model answers,
  hidden tests and marking rubrics (nbgrader's *source* directory);
* ``practicals/practicalN/practicalN.ipynb`` - the student versions, generated
  from the source (nbgrader's *release* directory).  Never edit them by hand:
  run ``python -m coursetools.practicals`` after changing a solution.

``submitted/``, ``autograded/``, ``feedback/``, ``gradebook.db`` and the
exchange folder ``.exchange/`` are created here on demand and are not part of
the repository; so are ``grades.csv``, ``grading-report.json`` and
``.grading/`` (clean copies of the submissions and the answers as last
graded), written by ``make grade`` (``python -m coursetools.grading``), which
runs every submission in a sandbox and its tests in a clean process.
On the class hub (``hub/``) the environment variable ``MLM_EXCHANGE_ROOT``
names the class's shared exchange instead of ``.exchange/``.
"""

import os
import sys

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades

c = get_config()  # noqa: F821 - provided by nbgrader when it reads this file

_ROOT = os.path.dirname(os.path.abspath(__file__))

try:
    from coursetools.practicals import CODE_STUB, ClearHiddenTestsForFeedback
except ImportError:  # the tutor tools are not installed: use them from tools/
    sys.path.insert(0, os.path.join(_ROOT, "tools"))
    for _name in [m for m in sys.modules if m.split(".")[0] == "coursetools"]:
        del sys.modules[_name]
    from coursetools.practicals import CODE_STUB, ClearHiddenTestsForFeedback

c.CourseDirectory.root = _ROOT
c.CourseDirectory.course_id = "multilevel"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "practicals"

# Model fits on chem97 (31,022 pupils) take a few seconds; give every cell two
# minutes.  nbgrader 0.9.6 reads Execute.timeout (ExecutePreprocessor.timeout
# is ignored by its own Execute preprocessor).
c.Execute.timeout = 120
# An unanswered cell says what to do (also when Formgrader's Generate button
# makes the student version; `python -m coursetools.practicals` is still the way
# to do it, as it also writes the answer checks).
c.ClearSolutions.code_stub = {"python": CODE_STUB}
# Interrupt a runaway cell at the timeout instead of waiting for ever.
c.Execute.interrupt_on_timeout = True

# The default exchange (/usr/local/share/nbgrader/exchange) is not writable for
# an ordinary user or on Binder; keep the exchange inside the course folder.
# On a class hub (hub/) every server is given the shared exchange instead.
if os.environ.get("MLM_EXCHANGE") == "service":
    pass  # the class hub's ngshare service: set up for every user by hub/setup.sh
elif os.environ.get("MLM_EXCHANGE_ROOT"):
    c.Exchange.root = os.environ["MLM_EXCHANGE_ROOT"]
else:
    c.Exchange.root = os.path.join(_ROOT, ".exchange")
    os.makedirs(c.Exchange.root, exist_ok=True)
c.Exchange.path_includes_course = True

# Feedback is built from the autograded notebooks, which contain the hidden
# tests again.  Remove the hidden test code from the feedback and shorten the
# tracebacks of test cells to their message, so the feedback never shows a
# hidden reference value.
c.GenerateFeedback.preprocessors = [
    GetGrades,
    ClearHiddenTestsForFeedback,
    CSSHTMLHeaderPreprocessor,
]

# Validate's list of failing checks names the question and says what is wrong,
# instead of showing the check's code and its whole traceback.
from mlmhelpers.validation import summarise_failure  # noqa: E402

c.Execute.on_cell_error = summarise_failure
