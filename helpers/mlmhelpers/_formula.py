"""lme4's formula syntax: random terms written in the formula (issue #15).

:func:`split_formula` takes ``"y ~ x + (1 + x | g) + (1 | h)"`` apart into the
fixed part (``"y ~ x"``) and a list of :class:`RandomBlock`, one per grouping
factor and covariance block, the way lme4 expands them:

* ``(1 | g)``: a random intercept; ``(x | g)`` and ``(1 + x | g)``: a
  random intercept and a correlated random slope (the intercept is implied,
  as in lme4); ``(0 + x | g)``: a slope without an intercept;
* ``(1 + x || g)``: uncorrelated terms, one block per term;
* ``(1 | a/b)``: nested factors, ``(1 | a) + (1 | a:b)``;
* ``(1 | a:b)``: the grouping factor of every combination of ``a`` and ``b``.

Anything else gets a ``ValueError`` that says what is supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUPPORTED = ("(1 | g), (x | g), (1 + x | g), (0 + x | g), several such terms, "
             "(1 + x || g) for uncorrelated terms, (1 | a/b) for nested and (1 | a:b) "
             "for combined grouping factors")

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


@dataclass
class RandomBlock:
    """One covariance block: a grouping factor and its random terms."""

    factors: tuple        # the grouping columns: ("school",) or ("school", "student")
    terms: list           # "(Intercept)" and/or covariate names, in lme4's order
    name: str = ""        # lme4's name: "school", "student:school" for school/student

    @property
    def group(self):
        """lme4's name of the grouping factor: ``school`` or ``student:school``."""
        return self.name or ":".join(self.factors)

    @property
    def intercept(self):
        return "(Intercept)" in self.terms

    @property
    def slopes(self):
        return [t for t in self.terms if t != "(Intercept)"]

    @property
    def re_formula(self):
        """The terms as a patsy formula ("1 + x", "0 + x") for the current fitters."""
        if self.slopes:
            return ("1 + " if self.intercept else "0 + ") + " + ".join(self.slopes)
        return None


def _top_level_parts(text, sep="+"):
    """Split on ``sep`` outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _error(func, what):
    return ValueError(f"{func}: {what} The random terms supported are {SUPPORTED}.")


def _random_term(func, text):
    """``1 + x | g`` (the inside of the parentheses) -> list of RandomBlock."""
    double = "||" in text
    lhs, _, rhs = text.partition("||" if double else "|")
    if "|" in rhs:
        raise _error(func, f"the random term ({text}) has more than one bar.")
    rhs = rhs.strip()
    levels = [p.strip() for p in rhs.split("/")]
    if not all(re.fullmatch(rf"{_NAME}(\s*:\s*{_NAME})*", lv) for lv in levels):
        raise _error(func, f"the grouping factor {rhs!r} in ({text}) is not a column name, "
                           "a/b or a:b.")
    intercept, slopes = True, []
    for raw in _top_level_parts(lhs.strip()):
        term = raw.replace(" ", "")
        if term == "1":
            intercept = True
        elif term in ("0", "-1"):
            intercept = False
        elif term == "":
            raise _error(func, f"the random term ({text}) has nothing left of the bar.")
        elif re.fullmatch(_NAME, term):
            slopes.append(term)
        else:
            raise _error(func, f"the random term {raw!r} in ({text}) is not a covariate "
                               "name: make it a column of the data first.")
    terms = (["(Intercept)"] if intercept else []) + list(dict.fromkeys(slopes))
    if not terms:
        raise _error(func, f"the random term ({text}) has no terms.")
    # a/b/c -> a, a:b, a:b:c  (lme4 names them a, b:a, c:b:a)
    factor_sets = []
    parts = [tuple(f.strip() for f in lv.split(":")) for lv in levels]
    for k in range(len(parts)):
        combined = ()
        for p in parts[:k + 1]:
            combined = combined + p
        name = ":".join(":".join(p) for p in reversed(parts[:k + 1]))
        factor_sets.append((combined, name))
    blocks = []
    for factors, name in factor_sets:
        if double:
            blocks += [RandomBlock(factors=factors, terms=[t], name=name) for t in terms]
        else:
            blocks.append(RandomBlock(factors=factors, terms=list(terms), name=name))
    return blocks


def split_formula(func, formula):
    """``(fixed formula, [RandomBlock, ...])``; the list is empty without a bar."""
    if "|" not in formula or "~" not in formula:
        return formula, []
    lhs, rhs = formula.split("~", 1)
    if "offset(" in formula.replace(" ", ""):
        raise _error(func, "offset() terms are not supported.")
    if "|" in lhs:
        raise _error(func, "the response (left of '~') cannot contain a bar.")
    fixed, blocks = [], []
    for part in _top_level_parts(rhs):
        inner = part
        if part.startswith("(") and part.endswith(")") and "|" in part:
            inner = part[1:-1].strip()
            blocks += _random_term(func, inner)
        elif "|" in part:
            raise _error(func, f"write each random term in parentheses, e.g. (1 | g); "
                               f"{part!r} is not.")
        elif part:
            fixed.append(part)
    groups = [b.group for b in blocks]
    dup = [g for g in groups if groups.count(g) > 1]
    for g in dict.fromkeys(dup):
        terms = [t for b in blocks if b.group == g for t in b.terms]
        if len(terms) != len(set(terms)):
            raise _error(func, f"the grouping factor {g!r} has the same random term in "
                               "two parts of the formula.")
    return f"{lhs.strip()} ~ {' + '.join(fixed) if fixed else '1'}", blocks


def lme4_blocks(func, formula, groups, re_formula, example):
    """Read a fitter's formula: ``(fixed formula, blocks, single)``.

    ``single`` is ``(groups, re_formula)`` when the random part is one block of
    one grouping column (the fitters' fast one-factor path), else None.
    Mixing the two ways of writing the random part is an error.
    """
    if not isinstance(formula, str):
        return formula, [], None
    fixed, blocks = split_formula(func, formula)
    if not blocks:
        if groups is None and "~" in formula:
            raise TypeError(
                f"{func}: the model has no random part. Write it in the formula as lme4 "
                f"does, {func}('{example['formula']} + (1 | {example['groups']})', data), "
                f"or give the grouping column: groups='{example['groups']}'.")
        return formula, [], None
    if groups is not None or re_formula is not None:
        raise ValueError(
            f"{func}: the formula has random terms ({formula!r}), so leave out `groups` and "
            "`re_formula` (or write the fixed part only in the formula and give them).")
    if len(blocks) == 1 and len(blocks[0].factors) == 1:
        return fixed, blocks, (blocks[0].factors[0], blocks[0].re_formula)
    return fixed, blocks, None
