"""Stage 1 of fitting: the formula becomes one model specification.

lme4's ``lFormula`` step.  :func:`model_spec` reads either way of writing a
model and returns the same :class:`ModelSpec`: a fixed part (a patsy
formula) and a list of :class:`RandomTerm`, one per covariance block.

* lme4's syntax, random terms in the formula:
  ``(1 | g)`` a random intercept; ``(x | g)`` = ``(1 + x | g)`` a random
  intercept and a correlated random slope (the intercept is implied, as in
  lme4); ``(0 + x | g)`` a slope without an intercept; ``(1 + x || g)``
  uncorrelated terms, one block per term; ``(1 | a/b)`` nested factors,
  ``(1 | a) + (1 | a:b)``; ``(1 | a:b)`` the factor of every combination of
  ``a`` and ``b``; several such terms (crossed or nested factors).
* The statsmodels way: the fixed part in the formula, the grouping column as
  ``groups=`` and the random part as ``re_formula=`` (``"1 + x"``, a patsy
  formula; default a random intercept).  It becomes one :class:`RandomTerm`
  up front, so nothing later knows which way the model was written.

Anything else gets an error that says what is supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SUPPORTED = ("(1 | g), (x | g), (1 + x | g), (0 + x | g), several such terms, "
             "(1 + x || g) for uncorrelated terms, (1 | a/b) for nested and (1 | a:b) "
             "for combined grouping factors")

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


@dataclass(frozen=True)
class RandomTerm:
    """One covariance block of the random part: ``(terms | grouping factor)``.

    Attributes
    ----------
    factors : tuple of str
        The data columns whose combinations are the groups: ``("school",)``,
        or ``("lea", "school")`` for the schools-within-LEAs term of
        ``(1 | lea/school)``.
    rhs : str
        The random part as a patsy formula, which builds the term's design
        columns: ``"1"``, ``"1 + x"``, ``"0 + x"``.
    name : str
        lme4's name of the grouping factor: ``school``; ``school:lea`` for
        the inner factor of ``lea/school`` (lme4 writes the inner level first).
    """

    factors: tuple
    rhs: str = "1"
    name: str = ""
    # "re_formula" when given as groups= / re_formula= (for the wording of messages only)
    origin: str = field(default="formula", compare=False)

    @property
    def group(self):
        """lme4's name of the grouping factor (``school``, ``school:lea``)."""
        return self.name or ":".join(self.factors)

    @property
    def bar(self):
        """The term as lme4 writes it: ``(1 + x | g)``."""
        rhs = self.rhs.strip()
        return f"({rhs} | {self.group})"


@dataclass
class ModelSpec:
    """What the formula says: response, fixed part and random terms.

    Attributes
    ----------
    response : str
        The left of ``~`` as written.
    fixed : str
        The fixed part as a patsy formula, ``"y ~ x"`` (``"y ~ 1"`` for none).
    random : list of RandomTerm
        The covariance blocks, in the order written.
    formula : str
        The whole model in lme4's syntax, as printed by ``summary``.
    """

    response: str
    fixed: str
    random: list = field(default_factory=list)
    formula: str = ""
    offsets: list = field(default_factory=list)   # expressions of offset(...) terms

    @property
    def rhs(self):
        """The fixed part's right-hand side."""
        return self.fixed.split("~", 1)[1].strip()

    @property
    def columns(self):
        """Data columns the random part names: grouping factors first."""
        out = []
        for term in self.random:
            out += list(term.factors)
        return list(dict.fromkeys(out))


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


def _bar_term(func, text):
    """``1 + x | g`` (the inside of the parentheses) -> list of RandomTerm."""
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
    slopes = list(dict.fromkeys(slopes))
    if not intercept and not slopes:
        raise _error(func, f"the random term ({text}) has no terms.")
    if double:  # one block per term, each without an implied intercept
        rhss = (["1"] if intercept else []) + [f"0 + {s}" for s in slopes]
    else:
        rhss = [" + ".join((["1"] if intercept else ["0"]) + slopes)]
    # a/b/c -> a, a:b, a:b:c  (lme4 names them a, b:a, c:b:a)
    parts = [tuple(f.strip() for f in lv.split(":")) for lv in levels]
    out = []
    for k in range(len(parts)):
        factors = tuple(f for p in parts[:k + 1] for f in p)
        name = ":".join(":".join(p) for p in reversed(parts[:k + 1]))
        out += [RandomTerm(factors=factors, rhs=r, name=name) for r in rhss]
    return out


def _re_formula_term(func, groups, re_formula):
    """``groups=`` and ``re_formula=`` as one RandomTerm."""
    if re_formula is None:
        return RandomTerm(factors=(groups,), rhs="1", name=groups, origin="re_formula")
    if not isinstance(re_formula, str):
        raise TypeError(
            f"{func}: `re_formula` must be a string such as '1 + standlrt' (random "
            "intercept and random slope of standlrt) or None (random intercept only).")
    text = re_formula.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if not text:
        raise ValueError(f"{func}: `re_formula` is empty; use None for a random intercept.")
    if "|" in text:
        raise ValueError(
            f"{func}: `re_formula` is the random part without the grouping factor, "
            f"e.g. '1 + standlrt'; write lme4's ({text}) in the formula instead and "
            "leave out `groups` and `re_formula`.")
    return RandomTerm(factors=(groups,), rhs=text, name=groups, origin="re_formula")


def model_spec(func, formula, *, groups=None, re_formula=None, example=None):
    """Read a fitter's formula (and ``groups`` / ``re_formula``) as a :class:`ModelSpec`.

    ``example`` (``dict(formula=..., groups=...)``) words the error for a
    model without a random part.  Mixing the two ways of writing the random
    part is an error, as is a model without one.

    Examples
    --------
    >>> spec = model_spec("f", "y ~ x + (1 + x | g) + (1 | h)")
    >>> spec.fixed, [(t.group, t.rhs) for t in spec.random]
    ('y ~ x', [('g', '1 + x'), ('h', '1')])
    >>> model_spec("f", "y ~ x", groups="g", re_formula="1 + x").formula
    'y ~ x + (1 + x | g)'
    """
    example = example or dict(formula="normexam ~ standlrt", groups="school")
    lhs, rhs = formula.split("~", 1)
    if "|" in lhs:
        raise _error(func, "the response (left of '~') cannot contain a bar.")
    rhs, offsets = _offsets(func, rhs)
    if "|" not in rhs:
        if groups is None:
            raise TypeError(
                f"{func}: the model has no random part. Write it in the formula as lme4 "
                f"does, {func}('{example['formula']} + (1 | {example['groups']})', data), "
                f"or give the grouping column: groups='{example['groups']}'.")
        term = _re_formula_term(func, groups, re_formula)
        fixed = f"{lhs.strip()} ~ {rhs.strip()}"
        shown = " + ".join([fixed] + [f"offset({o})" for o in offsets] + [term.bar])
        return ModelSpec(response=lhs.strip(), fixed=fixed, random=[term], formula=shown,
                         offsets=offsets)
    if groups is not None or re_formula is not None:
        raise ValueError(
            f"{func}: the formula has random terms ({formula!r}), so leave out `groups` and "
            "`re_formula` (or write the fixed part only in the formula and give them).")
    fixed_parts, terms = [], []
    for part in _top_level_parts(rhs):
        if part.startswith("(") and part.endswith(")") and "|" in part:
            terms += _bar_term(func, part[1:-1].strip())
        elif "|" in part:
            raise _error(func, f"write each random term in parentheses, e.g. (1 | g); "
                               f"{part!r} is not.")
        elif part:
            fixed_parts.append(part)
    seen = {}
    for term in terms:
        names = [t.strip() for t in term.rhs.split("+")]
        names = ["(Intercept)" if n == "1" else n for n in names if n != "0"]
        for n in names:
            if n in seen.setdefault(term.group, set()):
                raise _error(func, f"the grouping factor {term.group!r} has the same random "
                                   "term in two parts of the formula.")
            seen[term.group].add(n)
    fixed = f"{lhs.strip()} ~ {' + '.join(fixed_parts) if fixed_parts else '1'}"
    return ModelSpec(response=lhs.strip(), fixed=fixed, random=terms,
                     formula=" ".join(formula.split()), offsets=offsets)


def _offsets(func, rhs):
    """The right-hand side without its ``offset(...)`` terms, and their expressions."""
    parts, offsets = [], []
    for part in _top_level_parts(rhs):
        m = re.fullmatch(r"offset\s*\((.*)\)", part.strip(), flags=re.S)
        if m:
            if not m.group(1).strip():
                raise ValueError(f"{func}: offset() needs an expression, e.g. "
                                 "offset(log(exposure)).")
            offsets.append(m.group(1).strip())
        elif "offset(" in part.replace(" ", ""):
            raise ValueError(f"{func}: write an offset as a term of its own, e.g. "
                             f"'y ~ x + offset(log(exposure))'; {part!r} is not.")
        else:
            parts.append(part)
    return (" + ".join(p for p in parts if p) or "1"), offsets
