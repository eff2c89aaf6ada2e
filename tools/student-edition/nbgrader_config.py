"""nbgrader settings for students (the Validate button).

nbgrader's Validate button reads this file from the folder JupyterLab was
started in: it runs the whole practical from a fresh start and lists the
checks that still fail.  The course's model fits take a few seconds each, so
every cell may take up to two minutes before Validate gives up on it.
"""

c = get_config()  # noqa: F821 - provided by nbgrader when it reads this file

c.CourseDirectory.course_id = "multilevel"
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Validate's list of failing checks names the question and says what is wrong,
# instead of showing the check's code and its whole traceback.
from mlmhelpers.validation import summarise_failure  # noqa: E402

c.Execute.on_cell_error = summarise_failure
