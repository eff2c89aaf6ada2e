"""One data-preparation step for both fitters (``fit_mixedlm``, ``fit_logit_mixed``).

It checks the arguments, keeps the columns the model uses, drops incomplete
rows the way R's ``model.frame`` does (``na.omit``, with a warning saying how
many and which columns), drops unused factor levels, and builds the
fixed-effects design ``X``, the random-effects design ``Z`` and the group
codes with patsy.  Both fitters therefore share the same missing-value,
unused-level, exception-type and message conventions.
"""

from __future__ import annotations

import keyword
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy

from ._validate import ColumnNotFoundError, identifiers, suggest, unknown_names


@dataclass
class Design:
    """Everything a fitter needs about the data, on the complete rows only."""

    y: np.ndarray              # (n,) response
    X: np.ndarray              # (n, p) fixed-effects design
    exog_names: list           # patsy's names of the columns of X
    Z: np.ndarray              # (n, q) random-effects design
    re_names: list             # lme4's names of the columns of Z: (Intercept), standlrt
    codes: np.ndarray          # (n,) 0-based group index of every row
    group_labels: pd.Index     # the groups, in code order (sorted)
    rows: pd.Index             # labels of the rows used, from data.index
    frame: pd.DataFrame        # the used columns of the complete rows (positional index)
    formula: str               # "response ~ rhs"
    response: str              # the response as the formula names it
    groups: str
    re_formula: str | None     # the random part as given (None: intercept only)
    design_info: object        # patsy DesignInfo of X (to build X for new data)
    re_design_info: object     # patsy DesignInfo of Z, or None (intercept only)
    variables: dict            # covariates -> default value (0 or first level)

    @property
    def n(self):
        return len(self.y)

    @property
    def ngroups(self):
        return len(self.group_labels)


def _check_arguments(func, formula, data, groups, re_formula, example):
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
    if re_formula is not None and not isinstance(re_formula, str):
        raise TypeError(
            f"{func}: `re_formula` must be a string such as '1 + standlrt' (random "
            "intercept and random slope of standlrt) or None (random intercept only).")
    for label, text in (("formula", formula), ("re_formula", re_formula or "")):
        bare = identifiers(re.sub(r"(['\"]).*?\1", " ", text))  # outside Q("...")
        clash = [n for n in bare if keyword.iskeyword(n) and n in data.columns]
        if clash:
            raise ValueError(
                f"{func}: the column name {clash[0]!r} in {label} is a Python keyword, "
                f"which a formula cannot use as it is: write Q({clash[0]!r}) in the "
                "formula, or rename the column.")
    lhs, rhs = formula.split("~", 1)
    if not lhs.strip():
        raise ValueError(
            f"{func}: the formula has no response. Put the outcome on the left of '~', "
            f"e.g. {example['formula'].split('~')[0].strip() + ' ~ 1'!r}.")
    if not rhs.strip():
        raise ValueError(
            f"{func}: the formula has nothing right of '~'. Write the explanatory "
            f"variables there, or 1 for the empty model: '{lhs.strip()} ~ 1'.")
    for label, text in (("formula", formula), ("re_formula", re_formula or "")):
        unknown = unknown_names(text, data.columns)
        if unknown:
            name = unknown[0]
            raise ColumnNotFoundError(
                f"{func}: {name!r} in {label} {text!r} is not a column of `data`."
                + suggest(name, data.columns, data)
                + " Check the spelling (names are case-sensitive).")
    return lhs.strip(), rhs.strip()


def _normalise_re_formula(func, re_formula):
    if re_formula is None:
        return None
    text = re_formula.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if not text:
        raise ValueError(f"{func}: `re_formula` is empty; use None for a random intercept.")
    return text


def _check_linear_response(func, lhs, data):
    for name in [n for n in identifiers(lhs) if n in data.columns]:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise TypeError(
                f"{func}: the response {name!r} must be numeric, but it has dtype "
                f"{col.dtype}. A linear mixed model needs a numeric outcome; for a 0/1 "
                "outcome use fit_logit_mixed().")


def _check_binary_response(func, lhs, y: pd.Series):
    """The outcome must be 0/1 (or True/False): an error that says how to recode it."""
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
        raise ValueError(
            f"{func}: the outcome {lhs!r} must be 0/1 (or True/False), but it holds the "
            f"values {shown}. Recode it to 1 for the outcome of interest and 0 otherwise, "
            f"e.g. data['{lhs}'] = (data['{lhs}'] == {values[-1]:g}).astype(int).")


def _model_frame(func, data, used, groups):
    """The used columns with patsy-safe types, and the mask of complete rows."""
    frame = data.loc[:, used].reset_index(drop=True)
    for name in used:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            continue
        if name == groups:
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
    complete = frame.notna().all(axis=1).to_numpy()
    return frame, complete


def prepare(func, formula, data, groups, *, re_formula=None, family="gaussian", extra=()):
    """Check the arguments and build a :class:`Design` (see the module docstring).

    ``family`` is ``"gaussian"`` (a numeric response) or ``"binomial"`` (a 0/1
    response).  Rows with a missing value in any column the model uses are
    dropped with a ``UserWarning``.  ``extra`` names further columns the model
    uses (the grouping factors and random slopes of lme4-style terms): they
    must exist and count for the missing values.
    """
    for name in extra:
        if isinstance(data, pd.DataFrame) and name not in data.columns:
            raise ColumnNotFoundError(
                f"{func}: {name!r} in the random part of the formula is not a column of "
                "`data`." + suggest(name, data.columns, data)
                + " Check the spelling (names are case-sensitive).")
    example = (dict(data="tutorial", formula="normexam ~ standlrt", groups="school")
               if family == "gaussian" else
               dict(data="contraception", formula="use ~ age + urban", groups="district"))
    lhs, rhs = _check_arguments(func, formula, data, groups, re_formula, example)
    re_text = _normalise_re_formula(func, re_formula)
    if family == "gaussian":
        _check_linear_response(func, lhs, data)
    else:
        if lhs not in data.columns:
            raise ValueError(
                f"{func}: the outcome {lhs!r} (left of '~') must be a column of `data`. "
                f"To model an expression, make it a 0/1 column first, e.g. data['y'] = ...")
        _check_binary_response(func, lhs, data[lhs])
    if len(data) == 0:
        raise ValueError(f"{func}: data has no rows: there is nothing to fit.")

    used = [n for n in identifiers(formula) + identifiers(re_text or "") if n in data.columns]
    used = list(dict.fromkeys(used + [groups] + list(extra)))
    frame, complete = _model_frame(func, data, used, groups)
    n_drop = int((~complete).sum())
    if n_drop:
        bad = [n for n in used if frame[n].isna().any()]
        warnings.warn(
            f"{func}: dropped {n_drop} of {len(frame)} rows with missing values in "
            f"{', '.join(bad)}; the model uses the remaining {int(complete.sum())} rows.",
            UserWarning, stacklevel=3)
        frame = frame.loc[complete].reset_index(drop=True)
    if len(frame) == 0:
        raise ValueError(
            f"{func}: no complete rows left after dropping the rows with missing values.")
    positions = np.flatnonzero(complete)
    # categories with no rows left (e.g. after filtering the data) would give
    # all-zero dummy columns; R's model.frame drops unused levels, so do we
    for name in used:
        col = frame[name]
        if name != groups and isinstance(col.dtype, pd.CategoricalDtype):
            if col.nunique(dropna=True) < len(col.cat.categories):
                frame[name] = col.cat.remove_unused_categories()

    full = f"{lhs} ~ {rhs}"
    try:
        Y, X = patsy.dmatrices(full, frame, NA_action="raise", return_type="dataframe")
        Zdf = None if re_text is None else patsy.dmatrix(re_text, frame, NA_action="raise",
                                                         return_type="dataframe")
    except patsy.PatsyError as err:
        raise ValueError(
            f"{func}: could not read the formula {full!r}"
            + ("" if re_text is None else f" / re_formula {re_text!r}")
            + f": {getattr(err, 'message', err)}") from None
    if Y.shape[1] != 1:
        raise TypeError(f"{func}: the response must be one numeric column.")
    y = Y.to_numpy(dtype=float)[:, 0]
    if not np.all(np.isfinite(y)):
        raise TypeError(f"{func}: the response must be numeric without infinite values.")
    Xa = X.to_numpy(dtype=float)
    if Zdf is None:
        Z = np.ones((len(y), 1))
        re_names = ["(Intercept)"]
        re_info = None
    else:
        Z = Zdf.to_numpy(dtype=float)
        re_names = ["(Intercept)" if c == "Intercept" else str(c) for c in Zdf.columns]
        re_info = Zdf.design_info

    gcol = frame[groups]
    if isinstance(gcol.dtype, pd.CategoricalDtype):
        gcol = gcol.cat.remove_unused_categories()
        labels = pd.Index(gcol.cat.categories, name=groups)
        codes = gcol.cat.codes.to_numpy().astype(np.intp)
    else:
        codes, labels = pd.factorize(gcol, sort=True)
        labels = pd.Index(labels, name=groups)
        codes = codes.astype(np.intp)

    if len(labels) < 2:
        alternative = ("statsmodels' ols()" if family == "gaussian"
                       else "statsmodels.formula.api.logit(formula, data).fit()")
        raise ValueError(
            f"{func}: the grouping column {groups!r} has only one value in the rows used; a "
            f"multilevel model needs several groups. Fit a single-level model with "
            f"{alternative} instead.")
    q = Z.shape[1]
    if len(labels) * q >= len(y):
        # lme4 refuses these too: the random effects alone fit every observation
        raise ValueError(
            f"{func}: {len(y)} observations but {len(labels)} groups of {groups!r}"
            + (f" x {q} random terms" if q > 1 else "")
            + " - there must be more observations than random effects, or the group "
            "variance cannot be told apart from the level-1 variation (e.g. one row per "
            "group). Check that `groups` names the level-2 units (not an id of each row)"
            + (", or drop the random slope (re_formula=None)." if q > 1 else "."))
    if family == "gaussian" and np.ptp(y) == 0:
        raise ValueError(
            f"{func}: the response {Y.columns[0]!r} has the same value ({y[0]:g}) in every "
            "row used; there is no variation to model.")
    if family == "binomial" and len(np.unique(y)) < 2:
        raise ValueError(
            f"{func}: the outcome {lhs!r} is {y[0]:g} for every row used: there is "
            "nothing to model.")
    if np.linalg.matrix_rank(Xa.T @ Xa) < Xa.shape[1]:
        raise ValueError(
            f"{func}: the fixed-effects design is rank deficient (some terms are perfectly "
            "collinear, e.g. a variable constant within the data, a duplicated column or "
            f"a category with no rows); remove the redundant terms from {full!r}. "
            f"Columns: {', '.join(X.columns)}.")
    return Design(
        y=y, X=Xa, exog_names=list(X.columns), Z=Z, re_names=re_names, codes=codes,
        group_labels=labels, rows=data.index[positions], frame=frame, formula=full,
        response=str(Y.columns[0]), groups=groups, re_formula=re_text,
        design_info=X.design_info, re_design_info=re_info,
        variables=_formula_variables(X.design_info, frame))


def _formula_variables(design_info, frame):
    """Data columns used by the right-hand side: {name: default value} where the
    default is 0 for numbers and the first level for categories."""
    out = {}
    for factor, info in design_info.factor_infos.items():
        for n in [n for n in identifiers(factor.code) if n in frame.columns]:
            out.setdefault(n, info.categories[0] if info.type == "categorical" else 0.0)
    return out
