"""Stage 2 of fitting: the model frame (lme4's ``model.frame`` and ``mkReTrms``).

:func:`model_frame` turns a :class:`~mlmhelpers._formula.ModelSpec` and the
data into a :class:`ModelFrame`: the response, the fixed-effects design
``X`` and, per random term, the group codes and the design columns ``Z``.
Every fitter (linear and logistic) goes through it, so they share one set
of checks, each a named function with its own message:

* :func:`check_arguments` - the types of ``formula`` and ``data``;
* :func:`check_columns` - every name is a column (with a suggestion);
* :func:`check_response` - numeric (linear) or 0/1 (logistic);
* :func:`drop_incomplete_rows` - R's ``na.omit``, with a warning;
* :func:`check_levels` - every grouping factor has several levels;
* :func:`check_sizes` - more observations than random effects per term
  (lme4's ``check.nobs.vs.nRE``);
* :func:`check_rank` - a full-rank fixed-effects design;
* :func:`check_variation` - the response varies.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy

from ._formula import ModelSpec
from ._validate import ColumnNotFoundError, identifiers, suggest, unknown_names, warn

EXAMPLES = {
    "gaussian": dict(data="tutorial", formula="normexam ~ standlrt", groups="school"),
    "binomial": dict(data="contraception", formula="use ~ age + urban", groups="district"),
    "poisson": dict(data="mmmec", formula="deaths ~ uvb + offset(log(expected))",
                    groups="region"),
}

# functions an offset or a cbind() argument may use, as R's formulas have them
_MATH = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p,
         "log2": np.log2, "log10": np.log10, "np": np}
_CBIND = re.compile(r"cbind\s*\((.*)\)", re.S)


@dataclass
class GroupingTerm:
    """One random term in the data: its groups and its design columns.

    Attributes
    ----------
    name : str
        lme4's name in ``VarCorr`` (``school``, ``school:lea``; ``g.1`` for the
        second block of ``(1 + x || g)``).
    factor : str
        The grouping factor (``school``, ``school:lea``; ``g`` for ``g.1``).
    columns : tuple of str
        The data columns whose combination is the factor.
    names : list of str
        The term names, lme4's way: ``(Intercept)``, ``standlrt``.
    codes : ndarray (n,)
        0-based group of every row; ``labels`` the groups in code order.
    Z : ndarray (n, q)
        The term's design columns.
    design_info : patsy DesignInfo or None
        Builds ``Z`` for new data (None: intercept only).
    """

    name: str
    factor: str
    columns: tuple
    names: list
    codes: np.ndarray
    labels: pd.Index
    Z: np.ndarray
    design_info: object = None

    @property
    def m(self):
        """Number of groups."""
        return len(self.labels)

    @property
    def q(self):
        """Number of random effects per group."""
        return self.Z.shape[1]

    @property
    def sizes(self):
        """Rows per group (Series indexed by the groups)."""
        return pd.Series(np.bincount(self.codes, minlength=self.m), index=self.labels,
                         name="n")

    def keys(self, frame):
        """The group of every row of ``frame`` (a DataFrame with ``columns``)."""
        if len(self.columns) == 1:
            return frame[self.columns[0]]
        parts = self.factor.split(":")  # lme4 prints nested levels inner first
        key = frame[parts[0]].astype(str)
        for col in parts[1:]:
            key = key + ":" + frame[col].astype(str)
        return key

    def design(self, frame):
        """``Z`` for the rows of ``frame``."""
        if self.design_info is None:
            return np.ones((len(frame), 1))
        (Z,) = patsy.build_design_matrices([self.design_info], frame, NA_action="raise")
        return np.asarray(Z, dtype=float)


@dataclass
class ModelFrame:
    """Everything a deviance function needs about the data, complete rows only."""

    y: np.ndarray              # (n,) response
    X: np.ndarray              # (n, p) fixed-effects design
    exog_names: list           # patsy's names of the columns of X
    terms: list                # GroupingTerm per random term, lme4's order
    rows: pd.Index             # labels of the rows used, from data.index
    frame: pd.DataFrame        # the used columns of the complete rows (positional index)
    fixed: str                 # the fixed part, "response ~ rhs"
    formula: str               # the whole model, lme4's syntax
    response: str              # the response as the formula names it
    family: object = "gaussian"  # "gaussian" or a generalised model's Family
    design_info: object = None  # patsy DesignInfo of X (to build X for new data)
    variables: dict = field(default_factory=dict)  # covariates -> default value
    n_trials: np.ndarray = None    # binomial trials per row (1 for 0/1 outcomes)
    weights: np.ndarray = None     # prior weights (the trials of cbind() counts)
    offset: np.ndarray = None      # the offset of every row (0 without one)
    offset_terms: list = field(default_factory=list)  # the formula's offset() expressions

    @property
    def kind(self):
        """``"gaussian"``, ``"binomial"`` or ``"poisson"``."""
        return self.family if isinstance(self.family, str) else self.family.name

    @property
    def n(self):
        return len(self.y)

    @property
    def p(self):
        return self.X.shape[1]


# ---------------------------------------------------------------------------
# The named checks
# ---------------------------------------------------------------------------

def check_arguments(func, formula, data, family="gaussian"):
    """``formula`` is a string with a ``~`` and both sides; ``data`` a DataFrame."""
    example = EXAMPLES[family]
    if isinstance(formula, pd.DataFrame) and isinstance(data, str):
        raise TypeError(
            f"{func}: the formula comes first and the data second: "
            f"{func}({data!r}, data, groups=...).")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"{func}: `data` must be a pandas DataFrame (for example "
            f"load_dataset({example['data']!r})), not {type(data).__name__}.")
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            f"{func}: `formula` must be a string such as {example['formula']!r} "
            "(response on the left of '~', fixed-effect terms on the right).")
    lhs, rhs = formula.split("~", 1)
    if not lhs.strip():
        raise ValueError(
            f"{func}: the formula has no response. Put the outcome on the left of '~', "
            f"e.g. {example['formula'].split('~')[0].strip() + ' ~ 1'!r}.")
    if not rhs.strip():
        raise ValueError(
            f"{func}: the formula has nothing right of '~'. Write the explanatory "
            f"variables there, or 1 for the empty model: '{lhs.strip()} ~ 1'.")


def check_groups_argument(func, groups, data, family="gaussian"):
    """``groups=`` names a column of ``data``."""
    example = EXAMPLES[family]
    if groups is None:
        return
    if not isinstance(groups, str):
        raise TypeError(
            f"{func}: `groups` must be the name of a column of `data` that identifies the "
            f"level-2 units (e.g. groups='{example['groups']}'), got a "
            f"{type(groups).__name__}. Columns: {', '.join(map(str, data.columns))}.")
    if groups not in data.columns:
        raise ColumnNotFoundError(
            f"{func}: groups={groups!r} is not a column of `data`."
            + suggest(groups, data.columns, data)
            + f" Columns available: {', '.join(map(str, data.columns))}.")


def check_columns(func, spec: ModelSpec, data):
    """Every name of the model is a column of ``data`` (and not a Python keyword)."""
    for name in spec.columns:
        if name not in data.columns:
            raise ColumnNotFoundError(
                f"{func}: {name!r} in the random part of the formula is not a column of "
                "`data`." + suggest(name, data.columns, data)
                + " Check the spelling (names are case-sensitive).")
    texts = [("formula", spec.fixed)] + [
        ("re_formula" if t.origin == "re_formula" else "the random part", t.rhs)
        for t in spec.random]
    for label, text in texts:
        bare = identifiers(re.sub(r"(['\"]).*?\1", " ", text))  # outside Q("...")
        clash = [n for n in bare if keyword.iskeyword(n) and n in data.columns]
        if clash:
            raise ValueError(
                f"{func}: the column name {clash[0]!r} in {label} is a Python keyword, "
                f"which a formula cannot use as it is: write Q({clash[0]!r}) in the "
                "formula, or rename the column.")
    for label, text in texts:
        unknown = unknown_names(text, data.columns)
        if unknown:
            name = unknown[0]
            raise ColumnNotFoundError(
                f"{func}: {name!r} in {label} {text!r} is not a column of `data`."
                + suggest(name, data.columns, data)
                + " Check the spelling (names are case-sensitive).")


def _kind(family):
    return family if isinstance(family, str) else family.name


def check_response(func, spec: ModelSpec, data, family, weighted=False):
    """A numeric response (linear), a 0/1 outcome (binomial) or counts (poisson).

    cbind(successes, failures) responses and proportions with weights are
    checked when they are read (:func:`glm_response`).
    """
    lhs = spec.response
    family = _kind(family)
    if family == "poisson" or _CBIND.fullmatch(lhs) or weighted:
        return
    if family == "gaussian":
        for name in [n for n in identifiers(lhs) if n in data.columns]:
            col = data[name]
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                raise TypeError(
                    f"{func}: the response {name!r} must be numeric, but it has dtype "
                    f"{col.dtype}. A linear mixed model needs a numeric outcome; for a 0/1 "
                    "outcome use fit_logit_mixed().")
        return
    if lhs not in data.columns:
        raise ValueError(
            f"{func}: the outcome {lhs!r} (left of '~') must be a column of `data`. "
            f"To model an expression, make it a 0/1 column first, e.g. data['y'] = ...")
    y = data[lhs]
    if pd.api.types.is_bool_dtype(y):
        return
    if not pd.api.types.is_numeric_dtype(y):
        values = (list(y.cat.categories) if isinstance(y.dtype, pd.CategoricalDtype)
                  else sorted(map(str, y.dropna().unique())))
        shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        yes = values[-1] if values else "yes"
        raise ValueError(
            f"{func}: the outcome {lhs!r} must be coded 0/1 (or True/False), but it holds "
            f"the values {shown}. Recode it first, e.g. "
            f"data['{lhs}'] = (data['{lhs}'] == {yes!r}).astype(int).")
    values = np.unique(y.dropna().to_numpy(dtype=float))
    if not set(values) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        counts = np.all(values >= 0) and np.all(values == np.rint(values))
        raise ValueError(
            f"{func}: the outcome {lhs!r} must be 0/1 (or True/False), but it holds the "
            f"values {shown}. Recode it to 1 for the outcome of interest and 0 otherwise, "
            f"e.g. data['{lhs}'] = (data['{lhs}'] == {values[-1]:g}).astype(int)."
            + (" If these are counts, fit them with fit_glmm(..., family='poisson'), or "
               "counts out of n as cbind(successes, failures)." if counts else ""))


def _typed_columns(data, used, grouping):
    """The used columns with patsy-safe types."""
    frame = data.loc[:, used].reset_index(drop=True)
    for name in used:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            continue
        if name in grouping:
            if pd.api.types.is_string_dtype(col.dtype) or col.dtype == object:
                frame[name] = col.astype(object)
            continue
        if pd.api.types.is_bool_dtype(col.dtype):
            frame[name] = col.to_numpy(dtype=float, na_value=np.nan)
        elif pd.api.types.is_numeric_dtype(col.dtype):
            if isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
                # nullable Int64/Float64 (convert_dtypes()): patsy cannot drop pd.NA
                frame[name] = col.to_numpy(dtype=float, na_value=np.nan)
        else:
            # text: a factor with its levels sorted, as R does for character data
            levels = sorted(col.dropna().unique().tolist(), key=str)
            frame[name] = pd.Categorical(col, categories=levels)
    return frame


def drop_incomplete_rows(func, frame):
    """R's ``na.omit``: the complete rows, with a warning saying how many went."""
    complete = frame.notna().all(axis=1).to_numpy()
    n_drop = int((~complete).sum())
    if n_drop:
        bad = [n for n in frame.columns if frame[n].isna().any()]
        warn(f"{func}: dropped {n_drop} of {len(frame)} rows with missing values in "
             f"{', '.join(bad)}; the model uses the remaining {int(complete.sum())} rows.")
        frame = frame.loc[complete].reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(
            f"{func}: no complete rows left after dropping the rows with missing values.")
    # categories with no rows left (e.g. after filtering the data) would give
    # all-zero dummy columns; R's model.frame drops unused levels, so do we
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            if col.nunique(dropna=True) < len(col.cat.categories):
                frame[name] = col.cat.remove_unused_categories()
    return frame, np.flatnonzero(complete)


def check_levels(func, term: GroupingTerm, family, single):
    """A grouping factor with one level is no grouping."""
    family = _kind(family)
    if term.m >= 2:
        return
    if single:
        alternative = ("statsmodels' ols()" if family == "gaussian"
                       else "statsmodels.formula.api.logit(formula, data).fit()")
        raise ValueError(
            f"{func}: the grouping column {term.factor!r} has only one value in the rows "
            f"used; a multilevel model needs several groups. Fit a single-level model with "
            f"{alternative} instead.")
    raise ValueError(
        f"{func}: the grouping factor {term.factor!r} has only one level in the rows used; "
        "a random term needs several groups.")


def check_sizes(func, n, terms, re_formula=False, allow_equal=False):
    """lme4's ``check.nobs.vs.nRE``: each term has fewer random effects than rows.

    glmer allows as many (``allow_equal``): an observation-level random effect
    of counts, the remedy for overdispersion.
    """
    for term in terms:
        if term.m * term.q < n or (allow_equal and term.m * term.q == n):
            continue
        q = term.q
        slope = [t for t in term.names if t != "(Intercept)"]
        raise ValueError(
            f"{func}: {n} observations but {term.m} groups of {term.factor!r}"
            + (f" x {q} random terms" if q > 1 else "")
            + " - there must be more observations than random effects, or the group "
            "variance cannot be told apart from the level-1 variation (e.g. one row per "
            "group). Check that the grouping factor names the level-2 units (not an id of "
            "each row)" + ("." if not slope else ", or drop the random slope (re_formula=None)."
                           if re_formula else f", or drop the random slope of {', '.join(slope)}."))


def check_rank(func, X, names, formula):
    """The fixed-effects design has full column rank."""
    if np.linalg.matrix_rank(X.T @ X) < X.shape[1]:
        raise ValueError(
            f"{func}: the fixed-effects design is rank deficient (some terms are perfectly "
            "collinear, e.g. a variable constant within the data, a duplicated column or "
            f"a category with no rows); remove the redundant terms from {formula!r}. "
            f"Columns: {', '.join(names)}.")


def check_variation(func, y, response, family):
    """A response that is the same in every row has nothing to model."""
    family = _kind(family)
    if family == "gaussian" and np.ptp(y) == 0:
        raise ValueError(
            f"{func}: the response {response!r} has the same value ({y[0]:g}) in every "
            "row used; there is no variation to model.")
    if family == "binomial" and len(np.unique(y)) < 2:
        raise ValueError(
            f"{func}: the outcome {response!r} is {y[0]:g} for every row used: there is "
            "nothing to model.")


# ---------------------------------------------------------------------------
# The frame
# ---------------------------------------------------------------------------

def _design(func, rhs_formula, frame, what):
    try:
        return patsy.dmatrix(rhs_formula, frame, NA_action="raise", return_type="dataframe")
    except patsy.PatsyError as err:
        raise ValueError(
            f"{func}: could not read {what} {rhs_formula!r}: "
            f"{getattr(err, 'message', err)}") from None


def _grouping_term(func, frame, term, label):
    """The codes, levels and design columns of one RandomTerm."""
    columns = tuple(term.factors)
    if len(columns) == 1:
        col = frame[columns[0]]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.cat.remove_unused_categories()
            labels = pd.Index(col.cat.categories, name=term.group)
            codes = col.cat.codes.to_numpy().astype(np.intp)
        else:
            codes, labels = pd.factorize(col, sort=True)
            labels = pd.Index(labels, name=term.group)
    else:
        parts = term.group.split(":")
        key = frame[parts[0]].astype(str)
        for col in parts[1:]:
            key = key + ":" + frame[col].astype(str)
        codes, labels = pd.factorize(key, sort=True)
        labels = pd.Index(np.asarray(labels, dtype=object), name=term.group)
    rhs = term.rhs.strip()
    if rhs == "1":
        Z, names, info = np.ones((len(frame), 1)), ["(Intercept)"], None
    else:
        Zdf = _design(func, rhs, frame, "the random part")
        Z = Zdf.to_numpy(dtype=float)
        names = ["(Intercept)" if c == "Intercept" else str(c) for c in Zdf.columns]
        info = Zdf.design_info
        if Z.shape[1] == 0:
            raise ValueError(f"{func}: the random term {term.bar} has no terms.")
    return GroupingTerm(name=label, factor=term.group, columns=columns, names=names,
                        codes=np.asarray(codes, dtype=np.intp), labels=labels, Z=Z,
                        design_info=info)


def _evaluate(func, text, frame, what):
    """A column, or an expression of columns (``log(expected)``, ``size - incidence``)."""
    text = text.strip()
    if text in frame.columns:
        col = frame[text]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise TypeError(f"{func}: {what} {text!r} must be numeric, but it has dtype "
                            f"{col.dtype}.")
        return col.to_numpy(dtype=float)
    try:
        out = patsy.dmatrix(f"0 + I({text})", frame, NA_action="raise",
                            eval_env=patsy.EvalEnvironment([_MATH]), return_type="matrix")
    except Exception as err:  # patsy wraps every error of the expression
        raise ValueError(f"{func}: could not compute {what} {text!r}: "
                         f"{getattr(err, 'message', err)}") from None
    return np.asarray(out, dtype=float)[:, 0]


def _whole(func, values, what):
    if np.any(values < 0) or np.any(np.abs(values - np.rint(values)) > 1e-8):
        bad = values[(values < 0) | (np.abs(values - np.rint(values)) > 1e-8)][:3]
        raise ValueError(
            f"{func}: {what} must be counts (whole numbers, 0 or more), but it holds "
            f"{', '.join(f'{v:g}' for v in bad)}.")


def glm_response(func, spec, frame, family, weights):
    """(y, n, prior weights) of a binomial or poisson model, R's way.

    binomial: ``cbind(s, f)`` gives ``y = s / (s + f)``, ``n = s + f`` and
    weights ``n``; a 0/1 outcome ``n = 1``; a proportion with ``weights=``
    the trials as weights (as R's glm).  poisson: whole-number counts.
    """
    lhs = spec.response
    w = np.ones(len(frame)) if weights is None else np.asarray(weights, float)
    m = _CBIND.fullmatch(lhs)
    if m:
        if family.name != "binomial":
            raise ValueError(
                f"{func}: cbind(successes, failures) is the response of a binomial model; "
                f"this model's family is {family.name!r}.")
        parts = [p for p in _split_commas(m.group(1))]
        if len(parts) != 2:
            raise ValueError(
                f"{func}: write counts out of n as cbind(successes, failures), e.g. "
                "cbind(incidence, size - incidence); "
                f"{lhs!r} has {len(parts)} parts.")
        s = _evaluate(func, parts[0], frame, "the successes")
        f = _evaluate(func, parts[1], frame, "the failures")
        _whole(func, s, f"the successes {parts[0]!r}")
        _whole(func, f, f"the failures {parts[1]!r}")
        n = s + f
        y = np.where(n > 0, s / np.where(n > 0, n, 1.0), 0.0)
        return y, n, w * n
    y = _evaluate(func, lhs, frame, "the response")
    if not np.all(np.isfinite(y)):
        raise TypeError(f"{func}: the response must be numeric without infinite values.")
    if family.name == "binomial":
        if weights is None:
            if not set(np.unique(y)) <= {0.0, 1.0}:
                raise ValueError(
                    f"{func}: the outcome {lhs!r} must be 0/1 for a binomial model; counts "
                    "out of n are written cbind(successes, failures), and proportions need "
                    "the numbers of trials as weights=.")
        elif np.any((y < 0) | (y > 1)):
            raise ValueError(
                f"{func}: with weights= the outcome {lhs!r} is a proportion of the trials "
                "(between 0 and 1); write counts as cbind(successes, failures) instead.")
        return y, np.ones(len(y)), w
    _whole(func, y, f"the outcome {lhs!r} of a poisson model")
    return y, np.ones(len(y)), w


def _split_commas(text):
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + [cur.strip()]


def lme4_order(terms):
    """The terms in lme4's order, named as lme4 names them.

    lme4 (``mkReTrms``) puts the terms in decreasing order of their number of
    groups - by ``rev(order(nl))``, which also reverses ties - but only when
    the formula's order is not decreasing already.  A factor with several
    terms (``(1 + x || g)``) gets the names ``g``, ``g.1``, ... in the final order.
    """
    nl = [t.m for t in terms]
    if any(b > a for a, b in zip(nl, nl[1:])):
        terms = [terms[i] for i in np.argsort(nl, kind="stable")[::-1]]
    seen = {}
    for term in terms:
        k = seen.get(term.factor, 0)
        seen[term.factor] = k + 1
        term.name = term.factor if k == 0 else f"{term.factor}.{k}"
    return terms


def _formula_variables(design_info, frame):
    """Data columns used by the right-hand side: {name: default value} where the
    default is 0 for numbers and the first level for categories."""
    out = {}
    for factor, info in design_info.factor_infos.items():
        for n in [n for n in identifiers(factor.code) if n in frame.columns]:
            out.setdefault(n, info.categories[0] if info.type == "categorical" else 0.0)
    return out


def _argument_column(func, name, value, data):
    """``weights=`` / ``offset=``: a column name or a sequence with one value per row."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in data.columns:
            raise ColumnNotFoundError(
                f"{func}: {name}={value!r} is not a column of `data`."
                + suggest(value, data.columns, data))
        col = data[value]
    else:
        col = pd.Series(np.asarray(value), index=data.index) if not isinstance(
            value, pd.Series) else value
        if len(col) != len(data):
            raise ValueError(f"{func}: {name} has {len(col)} values but data has {len(data)} "
                             "rows; give a column name or one value per row.")
        col = pd.Series(col.to_numpy(), index=data.index)
    if not pd.api.types.is_numeric_dtype(col):
        raise TypeError(f"{func}: {name} must be numeric, not {col.dtype}.")
    return col.to_numpy(dtype=float)


def model_frame(func, spec: ModelSpec, data, *, family="gaussian", weights=None,
                offset=None):
    """Check the data against the model and build a :class:`ModelFrame`.

    ``family`` is ``"gaussian"`` (a linear model) or a generalised model's
    :class:`~mlmhelpers._family.Family`; ``weights`` and ``offset`` (column
    names or one value per row) are for generalised models.  Rows with a
    missing value in any column the model uses are dropped with a
    ``UserWarning``; unused factor levels are dropped.  The random terms are
    ordered and named as lme4 orders and names them (:func:`lme4_order`).
    """
    kind = _kind(family)
    if kind == "gaussian" and (spec.offsets or weights is not None or offset is not None):
        raise ValueError(
            f"{func}: offsets and weights are for counts and proportions (fit_glmm); for a "
            "linear model subtract the offset from the response instead.")
    check_columns(func, spec, data)
    for text in spec.offsets:
        unknown = unknown_names(text, data.columns)
        if unknown:
            raise ColumnNotFoundError(
                f"{func}: {unknown[0]!r} in offset({text}) is not a column of `data`."
                + suggest(unknown[0], data.columns, data))
    check_response(func, spec, data, family, weighted=weights is not None)
    if len(data) == 0:
        raise ValueError(f"{func}: data has no rows: there is nothing to fit.")
    extra = {"(weights)": _argument_column(func, "weights", weights, data),
             "(offset)": _argument_column(func, "offset", offset, data)}
    grouping = set(spec.columns)
    used = [n for n in identifiers(spec.fixed) if n in data.columns]
    for text in spec.offsets:
        used += [n for n in identifiers(text) if n in data.columns]
    for term in spec.random:
        used += [n for n in identifiers(term.rhs) if n in data.columns]
    used = list(dict.fromkeys(used + spec.columns))
    frame = _typed_columns(data, used, grouping)
    for name, values in extra.items():
        if values is not None:
            frame[name] = values
    frame, positions = drop_incomplete_rows(func, frame)
    extra = {k: (frame.pop(k).to_numpy(dtype=float) if v is not None else None)
             for k, v in extra.items()}

    try:
        if kind == "gaussian":
            Y, X = patsy.dmatrices(spec.fixed, frame, NA_action="raise",
                                   return_type="dataframe")
        else:
            X = patsy.dmatrix(spec.rhs, frame, NA_action="raise", return_type="dataframe")
    except patsy.PatsyError as err:
        raise ValueError(
            f"{func}: could not read the formula {spec.fixed!r}: "
            f"{getattr(err, 'message', err)}") from None
    if kind == "gaussian":
        if Y.shape[1] != 1:
            raise TypeError(f"{func}: the response must be one numeric column.")
        y = Y.to_numpy(dtype=float)[:, 0]
        response = str(Y.columns[0])
        n_trials, prior, off = np.ones(len(y)), np.ones(len(y)), np.zeros(len(y))
        if not np.all(np.isfinite(y)):
            raise TypeError(f"{func}: the response must be numeric without infinite values.")
    else:
        y, n_trials, prior = glm_response(func, spec, frame, family, extra["(weights)"])
        response = spec.response
        off = np.zeros(len(y))
        for text in spec.offsets:
            off = off + _evaluate(func, text, frame, "the offset")
        if extra["(offset)"] is not None:
            off = off + extra["(offset)"]
        if not np.all(np.isfinite(off)):
            raise ValueError(
                f"{func}: the offset is not finite in some rows (a log of 0?): an exposure "
                "must be positive.")
    Xa = X.to_numpy(dtype=float)

    terms = [_grouping_term(func, frame, term, term.group) for term in spec.random]
    single = len({t.factor for t in terms}) == 1
    for term in terms:
        check_levels(func, term, family, single)
    terms = lme4_order(terms)
    check_sizes(func, len(y), terms, re_formula=spec.random[0].origin == "re_formula",
                allow_equal=kind == "poisson" or (kind == "binomial" and np.any(n_trials > 1)))
    check_variation(func, y, response, family)
    check_rank(func, Xa, list(X.columns), spec.fixed)
    return ModelFrame(
        y=y, X=Xa, exog_names=list(X.columns), terms=terms, rows=data.index[positions],
        frame=frame, fixed=spec.fixed, formula=spec.formula, response=response,
        family=family, design_info=X.design_info,
        variables=_formula_variables(X.design_info, frame), n_trials=n_trials,
        weights=prior, offset=off, offset_terms=list(spec.offsets))
