"""nbgrader's region markers, read from its configuration in one place.

nbgrader finds a model answer between two lines containing
``ClearSolutions.begin_solution_delimeter`` and ``end_solution_delimeter``
(``BEGIN SOLUTION`` / ``END SOLUTION``) and hidden tests between lines
containing ``ClearHiddenTests.begin_test_delimeter`` and
``end_test_delimeter`` (``BEGIN HIDDEN TESTS`` / ``END HIDDEN TESTS``); the
course writes them as ``### BEGIN SOLUTION`` and so on.  Generating the
practicals (:mod:`coursetools.practicals`), checking the student edition for
leaks (:mod:`coursetools.release`) and grading (:mod:`coursetools.grading`)
all read them here, from the course's ``nbgrader_config.py`` when it sets
them and nbgrader's defaults otherwise, and find regions the way nbgrader
does: line by line, a line *containing* the marker opens or closes a region.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Markers", "from_config", "course_markers"]

SOLUTION = "SOLUTION"
HIDDEN = "HIDDEN TESTS"


@dataclass(frozen=True)
class Markers:
    """The four delimiters, and nbgrader's way of finding the regions they mark."""

    begin_solution: str = "BEGIN SOLUTION"
    end_solution: str = "END SOLUTION"
    begin_hidden: str = "BEGIN HIDDEN TESTS"
    end_hidden: str = "END HIDDEN TESTS"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.begin_solution, self.end_solution, self.begin_hidden, self.end_hidden)

    def _pairs(self):
        return ((SOLUTION, self.begin_solution, self.end_solution),
                (HIDDEN, self.begin_hidden, self.end_hidden))

    def regions(self, source: str) -> list[tuple[str, str]]:
        """``(kind, body)`` of every marked region, in order; kind is "SOLUTION" or "HIDDEN TESTS".

        >>> Markers().regions("a\\n### BEGIN HIDDEN TESTS\\nassert x\\n### END HIDDEN TESTS\\nb")
        [('HIDDEN TESTS', 'assert x')]
        """
        found, open_, body = [], None, []
        for line in source.split("\n"):
            if open_ is None:
                open_ = next(((k, end) for k, begin, end in self._pairs() if begin in line), None)
                body = []
            elif open_[1] in line:
                found.append((open_[0], "\n".join(body)))
                open_ = None
            else:
                body.append(line)
        return found

    def without_regions(self, source: str, kinds=(SOLUTION, HIDDEN)) -> str:
        """``source`` with the regions of ``kinds`` (marker lines included) taken out.

        >>> Markers().without_regions("a\\n### BEGIN SOLUTION\\nx = 1\\n### END SOLUTION\\nb")
        'a\\nb'
        """
        kept, inside = [], None
        for line in source.split("\n"):
            if inside is None:
                inside = next((end for k, begin, end in self._pairs() if k in kinds and begin in line),
                              None)
                if inside is None:
                    kept.append(line)
            elif inside in line:
                inside = None
        return "\n".join(kept)

    def strip_hidden(self, source: str) -> str:
        """A test cell's code as students see it: the hidden tests taken out."""
        return self.without_regions(source, (HIDDEN,))

    def has_hidden(self, source: str) -> bool:
        return self.begin_hidden in source

    def visible_part(self, source: str) -> str:
        """What comes before the hidden tests of a test cell."""
        return source.split(self.begin_hidden)[0]


def from_config(config=None) -> Markers:
    """The markers a traitlets ``Config`` sets, nbgrader's defaults for the rest."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    def value(cls, name):
        section = config.get(cls.__name__, {}) if config is not None else {}
        return section.get(name, getattr(cls, name).default_value)

    return Markers(value(ClearSolutions, "begin_solution_delimeter"),
                   value(ClearSolutions, "end_solution_delimeter"),
                   value(ClearHiddenTests, "begin_test_delimeter"),
                   value(ClearHiddenTests, "end_test_delimeter"))


@functools.lru_cache(maxsize=8)
def _cached(root: str, stamp: float) -> Markers:
    from .practicals import load_config

    return from_config(load_config(root))


def course_markers(root=None) -> Markers:
    """The markers of the course in ``root`` (default: this repository), from its nbgrader_config.py.

    >>> course_markers().begin_hidden
    'BEGIN HIDDEN TESTS'
    """
    if root is None:
        from .practicals import course_root

        root = course_root()
    path = Path(root) / "nbgrader_config.py"
    if not path.exists():
        return from_config(None)
    return _cached(str(Path(root).resolve()), path.stat().st_mtime)
