"""Answer checks for the practicals: "right", or what kind of mistake it looks like.

Every check cell of a practical ends with ``check_answer("name", name)``.  It
reads ``answer-checks.json``, which the tutor's tools write next to the
practical's notebook, and works in one of two modes the tutor chose:

* **practice**: the number is compared with the right answer *without the
  answer being in the file*.  The file holds a salted SHA-256 hash of the right
  answer rounded on a grid a tenth of the question's tolerance wide; the check
  rounds the student's number on the same grid and compares hashes.  A number
  is called right only when it lies within the tolerance the grader uses, so a
  "right" here is never a wrong answer for the grader.  Likely mistakes (a
  Spearman correlation where Pearson's is asked, a standard deviation for a
  variance) are hashed the same way, or recognised by undoing the mistake, and
  get their own message.
* **assessed**: nothing about the values is in the file.  The check says that
  the answer has the expected form, and that this is not a mark.

Outside IPython (the grader runs the tests in a plain Python process)
``check_answer`` does nothing: marks come from the tutor's tests only.

Importing this module in a notebook also makes a ``NameError`` say what to run:
``answer-checks.json`` names the cell that defines each variable of the
practical, and the message explains *Run → Run All Above Selected Cell*.

A hash of a rounded number can be found by trying every number on the grid,
so practice mode is for practice: assessed practicals are generated without
hashes.

Examples
--------
>>> spec = answer_spec(0.66225, tolerance=0.001, salt="demo")
>>> matches(0.6623, spec), matches(0.6841, spec)
(True, False)
>>> "0.662" in str(spec)            # the right answer is not in the spec
False
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

__all__ = ["CHECKS_FILE", "GRID", "answer_spec", "matches", "verdict", "check_answer",
           "name_hint", "AnswerNotRight", "TRANSFORMS"]

#: The file, next to the practical's notebook, that holds the checks.
CHECKS_FILE = "answer-checks.json"
#: Grid cells per tolerance: a number is right when it rounds to within GRID - 1
#: cells of the answer, i.e. always within the tolerance, and surely when within
#: (GRID - 2) / GRID of it.
GRID = 10
#: After a restart or a skipped cell: how to get every variable back.
RECOVER = ("After a kernel restart or a skipped cell: click this cell, then "
           "Run \N{RIGHTWARDS ARROW} Run All Above Selected Cell.")

#: Mistakes recognised by undoing them: the student's number, transformed, is the answer.
TRANSFORMS = {
    "square": lambda x: x * x,                        # a standard deviation given for a variance
    "sqrt": lambda x: math.sqrt(x) if x >= 0 else math.nan,  # a variance given for an SD
    "times100": lambda x: 100 * x,                   # a proportion given for a percentage
    "div100": lambda x: x / 100,                     # a percentage given for a proportion
    "negate": lambda x: -x,                          # a difference taken the wrong way round
    "double": lambda x: 2 * x,                       # the factor 2 of a likelihood ratio left out
    "exp": lambda x: math.exp(x) if x < 700 else math.inf,   # a log-odds given for an odds ratio
    "inv_logit": lambda x: 1 / (1 + math.exp(-x)) if x > -700 else 0.0,  # a log-odds for a probability
    "complement": lambda x: 1 - x,                   # the other share of a total
    "complement100": lambda x: 100 - x,              # what is left, in percent, for the fall
}


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def _keys(x: float, scale: str, step: float, window: int) -> list[str]:
    """Grid keys of the numbers a student's ``x`` is allowed to stand for."""
    if not math.isfinite(x):
        return []
    if scale == "linear":
        k = round(x / step)
        return [str(k + j) for j in range(-window, window + 1)]
    if scale == "log":
        if x <= 0:
            return []
        k = round(math.log(x) / step)
        return [str(k + j) for j in range(-window, window + 1)]
    if scale == "below":  # x < 10**-e for every listed e
        return [str(e) for e in range(1, 401) if x < 10.0 ** -e]
    raise ValueError(f"unknown scale {scale!r}")


def answer_spec(value: float, tolerance: float = 0.0, *, relative: float = 0.0,
                below: float | None = None, salt: str, grid: int = GRID) -> dict:
    """The hashed check of one number (what the tutor's tools write for each answer).

    Parameters
    ----------
    value : float
        The right answer (ignored with ``below``).
    tolerance : float
        The absolute tolerance of the grader's test (``np.isclose(x, value, atol=...)``).
    relative : float
        A relative tolerance instead (``rtol`` with ``atol=0``): the check is then
        on the logarithm of the number.
    below : float, optional
        For a test ``x < below`` (a power of ten, e.g. ``1e-10``).
    salt : str
        Makes the hashes of two answers with the same value differ.
    grid : int
        Grid cells per tolerance.

    Returns
    -------
    dict
        ``scale``, ``step``, ``window``, ``salt`` and ``hash``: no value in plain.

    Examples
    --------
    >>> spec = answer_spec(5.347e-48, relative=0.05, salt="p")
    >>> matches(5.2e-48, spec), matches(5.347e-47, spec)
    (True, False)
    >>> spec = answer_spec(0, below=1e-10, salt="q")
    >>> matches(0.0, spec), matches(3e-12, spec), matches(0.04, spec)
    (True, True, False)
    """
    if below is not None:
        exponent = -math.log10(below)
        if not (below > 0 and abs(exponent - round(exponent)) < 1e-9 and 1 <= round(exponent) <= 400):
            raise ValueError(f"below= must be a power of ten from 1e-1 to 1e-400, not {below!r}")
        return {"scale": "below", "step": 0, "window": 0, "salt": salt,
                "hash": _digest(salt, str(round(exponent)))}
    if relative:
        if not value > 0 or tolerance:
            raise ValueError("a relative tolerance needs a positive value and no absolute tolerance")
        step = math.log1p(relative) / grid
        key = round(math.log(value) / step)
        return {"scale": "log", "step": step, "window": grid - 1, "salt": salt,
                "hash": _digest(salt, str(key))}
    if not tolerance > 0:
        raise ValueError("give the grader's tolerance (tolerance= or relative=)")
    step = tolerance / grid
    return {"scale": "linear", "step": step, "window": grid - 1, "salt": salt,
            "hash": _digest(salt, str(round(value / step)))}


def matches(x, spec: dict) -> bool:
    """True when the number ``x`` is the number ``spec`` was made from (within its tolerance).

    Examples
    --------
    >>> spec = answer_spec(2.0, tolerance=0.01, salt="s")
    >>> [matches(v, spec) for v in (2.0, 2.0079, 1.992, 2.011, 1.98, float("nan"))]
    [True, True, True, False, False, False]
    """
    try:
        x = float(x)
    except (TypeError, ValueError):
        return False
    keys = _keys(x, spec["scale"], spec["step"], spec["window"])
    return any(_digest(spec["salt"], k) == spec["hash"] for k in keys)


def verdict(x, entry: dict) -> tuple[bool, str | None]:
    """(right?, message about a likely mistake or None) for one answer of the checks file.

    Examples
    --------
    >>> entry = {"right": answer_spec(2.88, tolerance=0.002, salt="v"),
    ...          "mistakes": [{"transform": "square",
    ...                        "message": "this is the standard deviation: square it"}]}
    >>> verdict(2.8805, entry)
    (True, None)
    >>> verdict(2.88 ** 0.5, entry)
    (False, 'this is the standard deviation: square it')
    >>> verdict(3.5, entry)
    (False, None)
    """
    if matches(x, entry["right"]):
        return True, None
    for mistake in entry.get("mistakes", []):
        if "transform" in mistake:
            try:
                undone = TRANSFORMS[mistake["transform"]](float(x))
            except (TypeError, ValueError, OverflowError):
                continue
            if matches(undone, entry["right"]):
                return False, mistake["message"]
        elif matches(x, mistake):
            return False, mistake["message"]
    return False, None


# --------------------------------------------------------------------------- in the notebook


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _load(folder=None) -> dict | None:
    path = Path(folder or os.getcwd()) / CHECKS_FILE
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def check_answer(name: str, value) -> None:
    """Say whether the answer stored in the variable ``name`` is right (practice mode).

    In a notebook next to ``answer-checks.json``: in practice mode it prints
    that the answer is right, or raises :class:`AnswerNotRight` (an
    ``AssertionError``, shown as its message alone) saying that it is not and,
    if it looks like a known mistake, which; in assessed mode it prints that
    the answer has the expected form and that this is not a mark.  Anywhere
    else (the grader's clean process, a plain Python script) it does nothing.

    Parameters
    ----------
    name : str
        The variable the question asks for, e.g. ``"corr_gcse"``.
    value
        Its value.

    Examples
    --------
    >>> check_answer("corr_gcse", 0.5)   # outside a notebook: no check, no output
    """
    if _shell() is None:
        return
    checks = _load()
    if checks is None:
        print(f"{name}: only the form was checked ({CHECKS_FILE}, which comes with the "
              "practical, is not in this notebook's folder).")
        return
    entry = checks.get("answers", {}).get(name, {})
    question = entry.get("question") or name
    if checks.get("mode") != "practice" or "right" not in entry:
        print(f"{question}: {name} has the expected form. This is not a mark: in this "
              "assessed practical your tutor's tests check the value when grading.")
        return
    right, mistake = verdict(value, entry)
    if right:
        print(f"\N{CHECK MARK} {question}: {name} is right.")
        return
    shown = _shown(value)
    if mistake:
        _not_right(f"{question}: {name} = {shown} is not right: {mistake}.")
    _not_right(f"{question}: {name} = {shown} is not right yet. Read the question again (which "
               "model, which variable, which scale?) and take the number from your results rather "
               "than typing it in.")


class AnswerNotRight(AssertionError):
    """A practice check found the answer wrong (shown as its message alone in a notebook)."""


def _not_right(message: str):
    raise AnswerNotRight(message)


def _shown(value) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return type(value).__name__


def name_hint(name: str, checks: dict | None) -> str:
    """What to tell a student whose code uses ``name`` before it is defined.

    Examples
    --------
    >>> name_hint("chem", {"names": {"chem": "made by the cell under 'Set-up'"}})[:60]
    "`chem` is not defined yet: it is made by the cell under 'Set"
    >>> name_hint("chme", None)[:52]
    '`chme` is not defined: check the spelling, or run th'
    """
    where = (checks or {}).get("names", {}).get(name)
    if where:
        run = "" if "run that cell" in where else " Run that cell first."
        return f"`{name}` is not defined yet: it is {where}.{run} {RECOVER}"
    return (f"`{name}` is not defined: check the spelling, or run the cells above this one "
            f"first. {RECOVER}")


def _handler(shell, etype, value, tb, tb_offset=None):
    """IPython's handler for a NameError (what to run) and a wrong answer (the message only)."""
    if isinstance(value, AnswerNotRight):
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)
        return stb
    name = getattr(value, "name", None)
    checks = _load()
    if name and name in (checks or {}).get("names", {}):
        stb = [f"\x1b[0;31mNameError\x1b[0m: {name_hint(name, checks)}"]
    else:
        stb = list(shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset))
        stb += [name_hint(name, checks)] if name else []
    shell._showtraceback(etype, value, stb)
    return stb


def _install_name_hints() -> None:
    """Make a NameError in this notebook say which cell to run (IPython only)."""
    shell = _shell()
    if shell is None or getattr(shell, "_mlm_name_hints", False):
        return
    if shell.custom_exceptions:  # someone else's handler: leave it alone
        return
    shell.set_custom_exc((NameError, AnswerNotRight), _handler)
    shell._mlm_name_hints = True


_install_name_hints()
