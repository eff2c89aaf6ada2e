"""coursetools: the tutor's and maintainer's tools for the course.

Not part of the student edition.  Students import only ``mlmhelpers``; these
modules need nbgrader's tutor side, nbconvert's slide exporter and the
course's source tree (``solutions/``):

* :mod:`coursetools.practicals` - generate the student versions from ``solutions/``;
* :mod:`coursetools.grading` - autograde submissions, write feedback and grades;
* :mod:`coursetools.release` - build the student edition (``make release``);
* :mod:`coursetools.slides` - render the lectures as reveal.js slides;
* :mod:`coursetools.lab` - start JupyterLab on the course, as a tutor or as a student sees it.
"""
