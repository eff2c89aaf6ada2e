"""Input checks shared by every public function: one wording, one exception type.

Conventions: a wrong *type* raises ``TypeError``; a right type with a wrong
value raises ``ValueError``; a name that is not a column of the data raises
:class:`ColumnNotFoundError` (both a ``KeyError`` and a ``ValueError``).
Every message starts with the function's name and says what to do instead.
"""

from __future__ import annotations

import difflib
import keyword
import numbers
import os
import re
import sys
import warnings

import numpy as np

__all__ = ["ColumnNotFoundError"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Identifiers that may appear in a formula without being data columns.
FORMULA_FUNCTIONS = {
    "C", "I", "Q", "np", "numpy", "log", "exp", "sqrt", "center", "standardize",
    "scale", "bs", "cr", "cc", "te", "Treatment", "Sum", "Diff", "Poly",
    "Helmert", "levels", "Intercept", "abs", "pow", "len", "str", "int", "float",
    "True", "False", "None", "cbind", "offset",
}


class ColumnNotFoundError(KeyError, ValueError):
    """A name in a formula or `groups` is not a column of the data.

    A ``KeyError`` (like pandas' missing-column error) and a ``ValueError``
    that prints its message without quotes.
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def is_number(value) -> bool:
    """True for a real number (numpy scalars too), False for bools and anything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_whole(value) -> bool:
    """True for an integer (numpy too), False for bools, floats and anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_proportion(alpha) -> bool:
    """True for a number strictly between 0 and 1 (a valid ``alpha``)."""
    return is_number(alpha) and 0 < alpha < 1


def check_alpha(func, alpha):
    """``alpha`` as a float, or a ValueError saying what it must be."""
    if not is_proportion(alpha):
        raise ValueError(
            f"{func}: alpha must be between 0 and 1 (0.05 for 95% intervals), got {alpha!r}.")
    return float(alpha)


def identifiers(formula: str) -> list[str]:
    """Names in a formula that could refer to columns (in order, unique)."""
    # Q("name") quotes a column name; other string literals are level names
    names = [m.group(2) for m in re.finditer(r"\bQ\(\s*(['\"])(.*?)\1\s*\)", formula)]
    text = re.sub(r"(['\"]).*?\1", " ", formula)  # drop string literals
    for match in re.finditer(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)", text):
        name = match.group(1)
        # attribute access such as np.log: skip the part after the dot
        if match.start() > 0 and text[match.start() - 1] == ".":
            continue
        # a keyword argument such as Treatment(reference="F"): a parameter, not a column
        if re.match(r"\s*=(?!=)", text[match.end():]):
            continue
        if name not in names:
            names.append(name)
    return names


def unknown_names(formula: str, columns) -> list[str]:
    cols = set(map(str, columns))
    return [n for n in identifiers(formula)
            if n not in cols and n not in FORMULA_FUNCTIONS and not keyword.iskeyword(n)]


def suggest(name: str, columns, data=None) -> str:
    """A hint for a name that is not a column: the index, or close spellings."""
    if data is not None and name in [n for n in data.index.names if n is not None]:
        return (f" {name!r} is the index of `data` (after set_index or groupby?): "
                "make it a column again with data.reset_index().")
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?"
    return ""


def warn(message, category=UserWarning):
    """``warnings.warn`` pointing at the first caller outside this package.

    A warning then names the student's line, however deep in the library it
    was raised.
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
