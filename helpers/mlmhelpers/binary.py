"""Random-intercept logistic regression fitted by maximum likelihood.

statsmodels has no maximum-likelihood mixed logistic model, so this module
brings a small one, written to agree with R's ``glmer`` (lme4):

* :func:`fit_logit_mixed` fits ``logit P(y = 1) = X beta + u_group`` with
  ``u_group ~ N(0, sigma2_u)``, by the Laplace approximation (``nagq=1``,
  glmer's default) or adaptive Gauss-Hermite quadrature (``nagq > 1``, glmer's
  ``nAGQ``).  The numerical work lives in :mod:`mlmhelpers._glmm`.
* :class:`LogitMixedResults` holds the estimates and plugs into the table and
  plot functions of the library (``fixed_effects``, ``random_effects``,
  ``summary``, ``vpc``, ``group_effects``, ``plot_caterpillar``, ``lr_test``,
  ``compare_models``).
* :func:`odds_ratios` and :func:`plot_coefficients` present the fixed effects.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings

import numpy as np
import pandas as pd
import patsy
from scipy import special, stats

from . import _glmm
from ._axes import new_axes
from .linear import ColumnNotFoundError, _suggest, _unknown_names

__all__ = ["fit_logit_mixed", "LogitMixedResults", "odds_ratios", "plot_coefficients"]

_VPC_METHODS = ("latent", "simulation", "linearisation")
_LATENT_LEVEL1_VARIANCE = math.pi**2 / 3  # variance of the standard logistic distribution


class _Text(str):
    """A string that shows itself as plain text in a notebook."""

    def __repr__(self):
        return str(self)


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------
def _is_proportion(alpha):
    """True for a number strictly between 0 and 1 (a valid ``alpha``)."""
    return (isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
            and 0 < alpha < 1)


def _check_nagq(nagq):
    if isinstance(nagq, bool) or not isinstance(nagq, numbers.Integral) or nagq < 1:
        raise ValueError(
            f"nagq must be a positive whole number, got {nagq!r}: use nagq=1 for the Laplace "
            "approximation (glmer's default) or e.g. nagq=25 for adaptive Gauss-Hermite "
            "quadrature (glmer's nAGQ = 25)."
        )
    if nagq > 100:
        # as glmer (its GHrule stops at 100 nodes); our nodes overflow beyond that
        raise ValueError(
            f"nagq={nagq} is too many quadrature points: like glmer's nAGQ it must be at most "
            "100; nagq=25 is already accurate for a random-intercept model.")
    return int(nagq)


def _split_formula(formula, data):
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            f"formula must be a string like 'use ~ age + urban', got {formula!r}."
        )
    if "|" in formula:
        raise ValueError(
            "Write only the fixed part in the formula and name the grouping column in groups=: "
            "for glmer's use ~ age + (1 | district) write "
            "fit_logit_mixed('use ~ age', data, groups='district')."
        )
    lhs, rhs = (part.strip() for part in formula.split("~", 1))
    if lhs not in data.columns:
        raise ValueError(
            f"The outcome {lhs!r} (left of '~') is not a column of data. Columns: "
            f"{', '.join(map(str, data.columns))}. To model an expression, make it a 0/1 column "
            f"first, e.g. data['{lhs}'] = ..."
        )
    return lhs, rhs or "1"


def _outcome_values(y: pd.Series, name: str) -> np.ndarray:
    """The outcome as a float 0/1 array, or an error that says how to recode it."""
    n_missing = int(y.isna().sum())
    if n_missing:
        raise ValueError(
            f"The outcome {name!r} has {n_missing} missing value(s). Decide what they mean, "
            f"or drop those rows first: data = data.dropna(subset=['{name}'])."
        )
    if len(y) == 0:
        raise ValueError("data has no rows: there is nothing to fit.")
    if pd.api.types.is_bool_dtype(y):
        return y.to_numpy(dtype=float)
    if not pd.api.types.is_numeric_dtype(y):
        values = list(y.cat.categories) if isinstance(y.dtype, pd.CategoricalDtype) else sorted(
            map(str, y.unique()))
        shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
        yes = values[-1] if values else "yes"
        raise ValueError(
            f"The outcome {name!r} must be coded 0/1 (or True/False), but it holds the values "
            f"{shown}. Recode it first, e.g. data['{name}'] = (data['{name}'] == {yes!r}).astype(int)."
        )
    values = np.unique(y.to_numpy(dtype=float))
    if not set(values) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise ValueError(
            f"The outcome {name!r} must be 0/1 (or True/False), but it holds the values {shown}. "
            f"Recode it to 1 for the outcome of interest and 0 otherwise, e.g. "
            f"data['{name}'] = (data['{name}'] == {values[-1]:g}).astype(int)."
        )
    if len(values) < 2:
        raise ValueError(
            f"The outcome {name!r} is {values[0]:g} for every row: there is nothing to model."
        )
    return y.to_numpy(dtype=float)


def _formula_variables(design_info, data):
    """Data columns used by the right-hand side: {name: default value} where
    the default is 0 for numbers and the first level for categories."""
    out = {}
    for factor, info in design_info.factor_infos.items():
        names = [n for n in patsy.eval.ast_names(factor.code) if n in data.columns]
        for n in names:
            if info.type == "categorical":
                out.setdefault(n, info.categories[0])
            else:
                out.setdefault(n, 0.0)
    return out


# ----------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------
def fit_logit_mixed(formula, data, groups, nagq=1):
    """Fit a two-level logistic regression with a random intercept by maximum likelihood.

    The model is ``logit P(y_ij = 1) = x_ij' beta + u_j`` with group effects
    ``u_j ~ N(0, sigma2_u)``, the model R fits with
    ``glmer(y ~ x + (1 | group), family = binomial, nAGQ = nagq)``.  The
    results agree with glmer's (estimates, standard errors, variance and
    log-likelihood) to about 1e-4 or better.

    Parameters
    ----------
    formula : str
        Fixed part in patsy notation, e.g. ``"use ~ age + urban"``.  The
        outcome must be a column of 0/1 integers or booleans.  Categorical
        columns keep their level order; the first level is the reference and
        the terms are named like ``urban[T.Y]``.
    data : pandas.DataFrame
        One row per level-1 unit.  Rows with a missing covariate or group are
        dropped (with a warning saying how many).
    groups : str
        Name of the column that identifies the level-2 units.
    nagq : int, default 1
        Number of quadrature points per group: 1 is the Laplace approximation
        (glmer's default); more (e.g. 25) is adaptive Gauss-Hermite
        quadrature, a more accurate likelihood.

    Returns
    -------
    LogitMixedResults

    Warns
    -----
    UserWarning
        When rows are dropped, when some groups have the same outcome for
        every member, when the variance is estimated as zero (a singular fit),
        when a coefficient is huge (a covariate that perfectly separates the
        outcome) and when the optimiser did not converge.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> contra = mlm.load_dataset("contraception")
    >>> m = mlm.fit_logit_mixed("use ~ age + urban", contra, groups="district")
    >>> m.fe_params.round(3)
    Intercept    -0.703
    urban[T.Y]    0.653
    age           0.009
    Name: Estimate, dtype: float64
    >>> round(m.var_re, 4), round(m.llf, 2)
    (0.1915, -1250.2)
    """
    if isinstance(formula, pd.DataFrame) and isinstance(data, str):
        raise TypeError(
            "The formula comes first and the data second: "
            f"fit_logit_mixed({data!r}, data, groups=...).")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    nagq = _check_nagq(nagq)
    if not isinstance(groups, str) or groups not in data.columns:
        given = repr(groups) if isinstance(groups, str) else f"a {type(groups).__name__}"
        hint = _suggest(groups, data.columns, data) if isinstance(groups, str) else ""
        raise ValueError(
            f"groups must name a column of data (e.g. groups='district'), got {given}.{hint} "
            f"Columns: {', '.join(map(str, data.columns))}."
        )
    outcome, rhs = _split_formula(formula, data)
    y_all = _outcome_values(data[outcome], outcome)

    frame = data.reset_index(drop=True)
    # nullable columns (Int64, Float64, boolean, e.g. from convert_dtypes()):
    # patsy cannot drop their pd.NA, so hand it floats with NaN
    nullable = [c for c in frame.columns if c != groups
                and isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype)
                and not isinstance(frame[c].dtype, pd.CategoricalDtype)
                and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
                and frame[c].isna().any()]
    if nullable:
        frame = frame.assign(**{c: frame[c].to_numpy(dtype=float, na_value=np.nan)
                                for c in nullable})
    try:
        X = patsy.dmatrix(rhs, frame, NA_action="drop", return_type="dataframe")
    except patsy.PatsyError as exc:
        unknown = _unknown_names(rhs, data.columns)
        if unknown:
            raise ColumnNotFoundError(
                f"{unknown[0]!r} in the formula {formula!r} is not a column of data."
                f"{_suggest(unknown[0], data.columns, data)} Check the spelling (names are "
                "case-sensitive).") from None
        raise ValueError(f"Could not build the fixed part {rhs!r} from data: {exc}") from None
    keep = np.zeros(len(frame), dtype=bool)
    keep[X.index.to_numpy()] = True
    keep &= frame[groups].notna().to_numpy()
    n_dropped = int((~keep).sum())
    if n_dropped:
        warnings.warn(
            f"{n_dropped} of {len(frame)} rows have a missing covariate or {groups!r} and were "
            "dropped from the fit.", UserWarning, stacklevel=2)
    # categories with no rows left (e.g. after filtering the data) would give
    # all-zero dummy columns; glmer (R's model.frame) drops unused levels
    used = frame.loc[keep]
    unused = [c for c in used.columns if c != groups
              and isinstance(used[c].dtype, pd.CategoricalDtype)
              and used[c].nunique(dropna=True) < len(used[c].cat.categories)]
    if unused:
        frame = frame.assign(**{c: frame[c].cat.set_categories(
            [v for v in frame[c].cat.categories if v in set(used[c].dropna())]) for c in unused})
        X = patsy.dmatrix(rhs, frame.loc[keep], NA_action="drop", return_type="dataframe")
    design_info = X.design_info
    X = X.loc[keep[X.index.to_numpy()]] if n_dropped else X
    positions = X.index.to_numpy()
    y = y_all[positions]
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        raise ValueError(
            "The fixed part has linearly dependent columns (a term that is a copy or sum of "
            f"others, or a category with no rows): {', '.join(X.columns)}. Remove a term."
        )

    gcol = frame[groups].iloc[positions]
    if isinstance(gcol.dtype, pd.CategoricalDtype):
        gcol = gcol.cat.remove_unused_categories()
        labels = pd.Index(gcol.cat.categories, name=groups)
        codes = gcol.cat.codes.to_numpy()
    else:
        codes, labels = pd.factorize(gcol, sort=True)
        labels = pd.Index(labels, name=groups)

    if len(labels) < 2:
        raise ValueError(
            f"The grouping column {groups!r} has only one value in the rows used; a multilevel "
            "model needs several groups. Fit a single-level logistic regression instead, e.g. "
            "statsmodels.formula.api.logit(formula, data).fit().")
    if len(labels) >= len(y):
        raise ValueError(
            f"{len(y)} rows but {len(labels)} groups of {groups!r}: with (at most) one row per "
            "group the group variance cannot be told apart from the outcome's own variation. "
            "Check that groups= names the level-2 units (e.g. groups='district'), not an id "
            "of each row.")
    problem = _glmm.LogitRandomIntercept(X.to_numpy(), y, codes, len(labels), nagq)
    out = _glmm.fit(problem)

    result = LogitMixedResults._from_fit(
        out, problem, formula=f"{outcome} ~ {rhs}", outcome=outcome, groups=groups,
        exog_names=list(X.columns), design_info=design_info, group_labels=labels,
        rows=data.index[positions], variables=_formula_variables(design_info, frame),
        frame=frame, nagq=nagq)
    for msg in result.warnings:
        warnings.warn(msg, UserWarning, stacklevel=2)
    return result


# ----------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------
class LogitMixedResults:
    """Results of :func:`fit_logit_mixed` (a random-intercept logistic model).

    Attributes
    ----------
    fe_params : pandas.Series
        Fixed effects (log-odds scale), named as patsy names the terms.
    bse_fe : pandas.Series
        Their standard errors as glmer reports them: from the Hessian of the
        deviance over the fixed effects and the variance parameter jointly.
    tvalues, pvalues : pandas.Series
        Wald z statistics and their two-sided normal p-values.
    var_re : float
        The group-level (random-intercept) variance sigma2_u.
    sd_re : float
        Its square root, the standard deviation of the group effects.
    cov_re : pandas.DataFrame
        ``var_re`` as a 1 x 1 table (statsmodels' layout).
    llf, deviance, aic, bic : float
        Log-likelihood (of the Laplace or quadrature approximation, as
        glmer's ``logLik``), -2 llf, and the information criteria with
        ``len(fe_params) + 1`` parameters.
    nobs, ngroups : int
        Number of level-1 rows used and of groups.
    converged : bool
        False when the optimiser did not reach an optimum; ``summary`` then
        says "Model failed to converge".
    singular : bool
        True when the variance is estimated as exactly zero.
    ranef : pandas.DataFrame
        Conditional modes of the group effects (column ``mode``) with their
        conditional standard errors (``se``), glmer's ``ranef(condVar = TRUE)``;
        indexed by group.
    warnings : list of str
        What the fit warned about.
    nagq : int
        Quadrature points used (1 = Laplace).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_logit_mixed("use ~ urban", mlm.load_dataset("contraception"), "district")
    >>> m.nobs, m.ngroups, m.converged
    (1934, 60, True)
    >>> m.conf_int().round(2)
                lower  upper
    Intercept   -0.87  -0.53
    urban[T.Y]   0.42   0.88
    """

    @classmethod
    def _from_fit(cls, out, problem, *, formula, outcome, groups, exog_names, design_info,
                  group_labels, rows, variables, frame, nagq):
        self = cls.__new__(cls)
        self.formula, self.outcome, self.groups, self.nagq = formula, outcome, groups, nagq
        self.exog_names = exog_names
        self._design_info = design_info
        self._variables = variables
        self._group_dtype = frame[groups].dtype
        theta = float(out.params[0])
        self.fe_params = pd.Series(out.params[1:], index=exog_names, name="Estimate")
        self.cov_params_fe = pd.DataFrame(out.cov_beta, index=exog_names, columns=exog_names)
        self.bse_fe = pd.Series(np.sqrt(np.diag(out.cov_beta)), index=exog_names,
                                name="Std. Error")
        self.tvalues = (self.fe_params / self.bse_fe).rename("z value")
        self.pvalues = pd.Series(2 * stats.norm.sf(np.abs(self.tvalues)), index=exog_names,
                                 name="Pr(>|z|)")
        self.var_re = theta**2
        self.sd_re = theta
        self.cov_re = pd.DataFrame([[self.var_re]], index=["(Intercept)"],
                                   columns=["(Intercept)"])
        self.deviance = float(out.deviance)
        self.llf = -0.5 * self.deviance
        self.nobs = int(problem.X.shape[0])
        self.ngroups = int(problem.ngroups)
        self.k_params = len(exog_names) + 1
        self.aic = self.deviance + 2 * self.k_params
        self.bic = self.deviance + math.log(self.nobs) * self.k_params
        self.converged = bool(out.converged)
        self.singular = theta == 0.0
        self.rows = rows
        u, se = problem.conditional_effects(out.params)
        self.ranef = pd.DataFrame({"mode": u, "se": se}, index=group_labels)
        self.group_sizes = pd.Series(np.bincount(problem.codes, minlength=problem.ngroups),
                                     index=group_labels, name="n")
        self._X, self._y, self._codes = problem.X, problem.y, problem.codes
        self._fit = out
        self.warnings = self._diagnose(problem, out)
        return self

    # -- diagnostics -----------------------------------------------------------
    def _diagnose(self, problem, out):
        notes = []
        means = np.bincount(problem.codes, weights=problem.y, minlength=problem.ngroups)
        means = means / self.group_sizes.to_numpy()
        n0, n1 = int(np.sum(means == 0)), int(np.sum(means == 1))
        if n0 + n1:
            notes.append(
                f"{n0 + n1} of {self.ngroups} {self.groups} groups have the same outcome for "
                f"every member ({n0} all 0, {n1} all 1). That is fine for this model: their "
                "effects are pulled towards the average and have wide intervals.")
        big = self.fe_params[(self.fe_params.abs() > 10) | (self.bse_fe > 50)]
        big = big.drop([c for c in big.index if c == "Intercept"], errors="ignore")
        if len(big):
            terms = ", ".join(f"{k} = {v:.3g} (SE {self.bse_fe[k]:.3g})" for k, v in big.items())
            notes.append(
                f"Very large estimate(s): {terms}. The outcome is probably (almost) perfectly "
                "separated by this term: in one of its categories everybody (or nobody) has the "
                "outcome, so the maximum-likelihood estimate is infinite. Do not interpret it; "
                "merge categories or drop the term.")
        if self.var_re > 100:
            notes.append(
                f"The variance between {self.groups} groups is huge ({self.var_re:.3g}): the "
                "outcome is (almost) completely determined by the group, e.g. most groups have "
                "all 0 or all 1, so the variance cannot be estimated well. Check the data.")
        if self.singular:
            notes.append(
                f"boundary (singular) fit: the variance between {self.groups} groups is "
                "estimated as zero, so the model is the same as a single-level logistic "
                "regression.")
        if not out.cov_from_hessian:
            notes.append(
                "The standard errors come from the curvature of the likelihood with the variance "
                "held fixed: the full Hessian was not positive definite.")
        if not self.converged:
            notes.append(
                f"Model failed to converge: {out.message or 'the optimiser did not finish'}. "
                "Do not trust these estimates; try rescaling covariates or a simpler model.")
        return notes

    # -- statsmodels-like conveniences ------------------------------------------
    @property
    def params(self):
        """Fixed effects followed by the group-level variance (``'Group Var'``)."""
        return pd.concat([self.fe_params, pd.Series({"Group Var": self.var_re})])

    @property
    def df_resid(self):
        return self.nobs - self.k_params

    def conf_int(self, alpha=0.05):
        """Wald confidence intervals for the fixed effects (log-odds scale).

        Parameters
        ----------
        alpha : float, default 0.05
            1 - confidence level.

        Returns
        -------
        pandas.DataFrame with columns ``lower`` and ``upper``.

        Examples
        --------
        >>> import mlmhelpers as mlm
        >>> m = mlm.fit_logit_mixed("use ~ 1", mlm.load_dataset("contraception"), "district")
        >>> m.conf_int().round(3)
                   lower  upper
        Intercept -0.705 -0.371
        """
        if not _is_proportion(alpha):
            raise ValueError(f"alpha must be between 0 and 1 (0.05 for 95% intervals), got {alpha}.")
        q = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame({"lower": self.fe_params - q * self.bse_fe,
                             "upper": self.fe_params + q * self.bse_fe})

    def cov_params(self):
        """Covariance matrix of the fixed effects (DataFrame)."""
        return self.cov_params_fe.copy()

    def predict(self, exog=None, which="probability", include_random=True):
        """Predicted probabilities or log-odds.

        Parameters
        ----------
        exog : pandas.DataFrame, optional
            New data with the covariates (and, for ``include_random=True``,
            the group column).  Default: the rows used in the fit.
        which : {"probability", "link"}
            ``"probability"`` for P(y = 1), ``"link"`` for the log-odds.
        include_random : bool, default True
            Add the conditional mode of each row's group effect.  Groups not
            seen in the fit get 0 (the average group).  With False the
            prediction is for an average group (u = 0).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> import pandas as pd, mlmhelpers as mlm
        >>> m = mlm.fit_logit_mixed("use ~ urban", mlm.load_dataset("contraception"), "district")
        >>> new = pd.DataFrame({"urban": ["N", "Y"]})
        >>> m.predict(new, include_random=False).round(3).tolist()
        [0.332, 0.488]
        """
        if which not in ("probability", "link"):
            raise ValueError(f"which must be 'probability' or 'link', got {which!r}.")
        if exog is None:
            eta = self._X @ self.fe_params.to_numpy()
            if include_random:
                eta = eta + self.ranef["mode"].to_numpy()[self._codes]
            index = self.rows
        else:
            if not isinstance(exog, pd.DataFrame):
                raise TypeError("exog must be a pandas DataFrame with the model's covariates.")
            X = self._design(exog)
            eta = X @ self.fe_params.to_numpy()
            if include_random:
                if self.groups not in exog.columns:
                    raise ValueError(
                        f"exog has no {self.groups!r} column: add it, or use "
                        "include_random=False for an average group.")
                effect = exog[self.groups].map(self.ranef["mode"])
                unseen = int(effect.isna().sum())
                if unseen:
                    warnings.warn(
                        f"predict(): {unseen} of {len(exog)} rows belong to {self.groups} groups "
                        "not in the fit (check the ids and their type, e.g. 1 vs '1'); they get "
                        "the average group effect 0.", UserWarning, stacklevel=2)
                eta = eta + effect.fillna(0.0).to_numpy(float)
            index = exog.index
        values = eta if which == "link" else special.expit(eta)
        return pd.Series(values, index=index, name="log-odds" if which == "link" else "probability")

    def _design(self, frame):
        try:
            (X,) = patsy.build_design_matrices([self._design_info], frame, NA_action="raise")
        except patsy.PatsyError as exc:
            raise ValueError(
                f"Could not build the model's covariates {list(self._variables)} from the new "
                f"data: {exc}") from None
        return np.asarray(X, dtype=float)

    def _pattern_row(self, at):
        """Design row of a covariate pattern (dict or one-row DataFrame)."""
        if at is None:
            at = {}
        if isinstance(at, pd.DataFrame):
            if len(at) != 1:
                raise ValueError(f"at must have exactly one row, got {len(at)}.")
            frame = at
        elif isinstance(at, dict):
            unknown = set(at) - set(self._variables)
            if unknown:
                raise ValueError(
                    f"at names {sorted(unknown)}, which are not covariates of the model; "
                    f"the covariates are {list(self._variables)}.")
            values = {**self._variables, **at}
            # (the placeholder column gives an intercept-only model its one row)
            frame = pd.DataFrame({"_row": [0], **{k: [v] for k, v in values.items()}})
        else:
            raise TypeError("at must be a dict such as {'age': 0, 'urban': 'Y'} or a one-row DataFrame.")
        return self._design(frame)[0]

    # -- variance partition coefficient ------------------------------------------
    def vpc(self, method="latent", at=None, n_sim=100_000, seed=0):
        """Variance partition coefficient; see :func:`mlmhelpers.vpc`.

        Parameters
        ----------
        method : {"latent", "simulation", "linearisation"}
            ``"latent"`` (default): ``sigma2_u / (sigma2_u + pi^2 / 3)``, the
            share of the variance of a latent continuous response that lies
            between groups; it does not depend on the covariates.
            ``"simulation"`` (Goldstein, Browne and Rasbash 2002): draw
            ``n_sim`` group effects, compute ``p = expit(x'beta + u)`` for the
            pattern ``at`` and return ``var(p) / (var(p) + mean(p (1 - p)))``.
            ``"linearisation"`` (first-order Taylor expansion at ``u = 0``):
            ``sigma2_u p^2 (1-p)^2 / (sigma2_u p^2 (1-p)^2 + p (1-p))`` with
            ``p = expit(x'beta)``.
        at : dict or one-row DataFrame, optional
            Covariate pattern for the simulation and linearisation methods.
            Covariates not given are set to 0 (numeric) or their reference,
            first category (categorical); the default is all covariates at
            0 / reference.
        n_sim : int, default 100000
            Simulated group effects (simulation method).
        seed : int or None, default 0
            Random seed of the simulation; the same seed gives the same VPC.

        Returns
        -------
        float

        Examples
        --------
        >>> import mlmhelpers as mlm
        >>> m = mlm.fit_logit_mixed("use ~ urban", mlm.load_dataset("contraception"), "district")
        >>> round(m.vpc(), 3), round(m.vpc("linearisation", at={"urban": "Y"}), 3)
        (0.054, 0.045)
        """
        return self._mlm_vpc(method=method, at=at, n_sim=n_sim, seed=seed)

    def _mlm_vpc(self, method="latent", at=None, n_sim=100_000, seed=0):
        if method not in _VPC_METHODS:
            raise ValueError(
                f"Unknown VPC method {method!r}; choose one of {', '.join(map(repr, _VPC_METHODS))}.")
        s2 = self.var_re
        if method == "latent":
            if at is not None:
                raise ValueError(
                    "The latent-variable VPC does not depend on covariates; drop at= or use "
                    "method='simulation' or 'linearisation'.")
            return float(s2 / (s2 + _LATENT_LEVEL1_VARIANCE))
        eta = float(self._pattern_row(at) @ self.fe_params.to_numpy())
        if method == "linearisation":
            p = special.expit(eta)
            between = s2 * (p * (1 - p)) ** 2
            return float(between / (between + p * (1 - p)))
        if not isinstance(n_sim, numbers.Integral) or n_sim < 100:
            raise ValueError(f"n_sim must be a whole number of at least 100, got {n_sim!r}.")
        rng = np.random.default_rng(seed)
        p = special.expit(eta + rng.normal(0.0, math.sqrt(s2), size=int(n_sim)))
        between = np.var(p)
        return float(between / (between + np.mean(p * (1 - p))))

    # -- the library's table protocol ---------------------------------------------
    def _mlm_fixed_effects(self):
        return pd.DataFrame({"Estimate": self.fe_params, "Std. Error": self.bse_fe,
                             "z value": self.tvalues, "Pr(>|z|)": self.pvalues})

    def _mlm_random_effects(self):
        return pd.DataFrame({"Groups": [self.groups], "Name": ["(Intercept)"],
                             "Variance": [self.var_re], "Std.Dev.": [self.sd_re],
                             "Corr": [np.nan]})

    def _mlm_group_effects(self):
        q = stats.norm.ppf(0.975)
        eff = self.ranef["mode"].to_numpy()
        se = self.ranef["se"].to_numpy()
        return pd.DataFrame({
            "group": self.ranef.index.to_numpy(),
            "term": "(Intercept)",
            "effect": eff,
            "se": se,
            "lower": eff - q * se,
            "upper": eff + q * se,
            "rank": pd.Series(eff).rank(method="first").astype(int).to_numpy(),
        })

    def _mlm_model_info(self):
        return dict(llf=float(self.llf), npar=int(self.k_params), nobs=int(self.nobs),
                    rows=pd.Index(self.rows), reml=False, family="binomial", mixed=True,
                    n_variance_params=1, nagq=int(self.nagq))

    def _mlm_summary(self):
        method = ("Laplace Approximation" if self.nagq == 1
                  else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}")
        lines = [
            f"Generalized linear mixed model fit by maximum likelihood ({method})",
            " Family: binomial  ( logit )",
            f"Formula: {self.formula} + (1 | {self.groups})",
            "",
        ]
        lines += _aligned_block(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                [f"{self.aic:.1f}", f"{self.bic:.1f}", f"{self.llf:.1f}",
                                 f"{self.deviance:.1f}", f"{self.df_resid}"])
        lines += ["", "Scaled residuals: "]
        mu = np.clip(self.predict().to_numpy(), 1e-15, 1 - 1e-15)
        pearson = (self._y - mu) / np.sqrt(mu * (1 - mu))
        qs = np.quantile(pearson, [0, 0.25, 0.5, 0.75, 1])
        lines += _aligned_block(["Min", "1Q", "Median", "3Q", "Max"], [f"{q:.4f}" for q in qs])
        lines += ["", "Random effects:"]
        re_rows = [["Groups", "Name", "Variance", "Std.Dev."],
                   [self.groups, "(Intercept)", f"{self.var_re:.4g}", f"{self.sd_re:.4g}"]]
        widths = [max(len(r[i]) for r in re_rows) for i in range(4)]
        for r in re_rows:
            lines.append(" " + " ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        lines.append(f"Number of obs: {self.nobs}, groups:  {self.groups}, {self.ngroups}")
        lines += ["", "Fixed effects:"]
        lines += _coef_table(self._mlm_fixed_effects())
        if len(self.fe_params) > 1:
            corr = self.cov_params_fe.to_numpy()
            sd = np.sqrt(np.diag(corr))
            corr = corr / np.outer(sd, sd)
            short = ["(Intr)" if n == "Intercept" else re.sub(r"\[T\.(.*)\]$", r"\1", n)[:6]
                     for n in self.exog_names]
            lines += ["", "Correlation of Fixed Effects:"]
            width = max(len(n) for n in self.exog_names)
            lines.append(" " * (width + 1) + " ".join(f"{s:>6}" for s in short[:-1]))
            for i in range(1, len(short)):
                cells = " ".join(f"{corr[i, j]:6.3f}" for j in range(i))
                lines.append(f"{self.exog_names[i]:<{width}} {cells}")
        if self.warnings:
            lines += [""] + [f"Note: {w}" for w in self.warnings]
        return "\n".join(lines)

    def summary(self):
        """The model laid out like R's ``summary(glmer(...))`` (printable text).

        Examples
        --------
        >>> import mlmhelpers as mlm
        >>> m = mlm.fit_logit_mixed("use ~ urban", mlm.load_dataset("contraception"), "district")
        >>> print(m.summary().splitlines()[0])
        Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)
        """
        return _Text(self._mlm_summary())

    def __repr__(self):
        status = "converged" if self.converged else "NOT converged"
        return (f"<LogitMixedResults: {self.formula} + (1 | {self.groups}), nobs={self.nobs}, "
                f"ngroups={self.ngroups}, llf={self.llf:.3f}, {status}>")


def _aligned_block(headers, values):
    widths = [max(len(h), len(v)) + 1 for h, v in zip(headers, values)]
    return [" ".join(h.rjust(w) for h, w in zip(headers, widths)),
            " ".join(v.rjust(w) for v, w in zip(values, widths))]


def _format_p(p):
    if p < 2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _stars(p):
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def _coef_table(table):
    cells = [["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""]]
    for name, row in table.iterrows():
        cells.append([str(name), f"{row['Estimate']:.6f}", f"{row['Std. Error']:.6f}",
                      f"{row['z value']:.3f}", _format_p(row["Pr(>|z|)"]),
                      _stars(row["Pr(>|z|)"])])
    widths = [max(len(r[i]) for r in cells) for i in range(6)]
    out = []
    for r in cells:
        out.append(" ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                        zip(r[1:5], widths[1:5])] + [r[5]]).rstrip())
    out += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return out


# ----------------------------------------------------------------------------
# Presenting fixed effects
# ----------------------------------------------------------------------------
def _coefficients(result):
    """(estimates, standard errors, is_logit) of a supported result."""
    if isinstance(result, LogitMixedResults):
        return result.fe_params, result.bse_fe, True
    if hasattr(result, "fe_params") and hasattr(result, "bse_fe"):  # statsmodels MixedLM
        k = len(result.fe_params)
        return result.fe_params, pd.Series(np.asarray(result.bse_fe)[:k],
                                           index=result.fe_params.index), False
    model = getattr(result, "model", None)
    if model is not None and hasattr(result, "params") and hasattr(result, "bse"):
        family = getattr(model, "family", None)
        is_logit = type(model).__name__ == "Logit" or (
            family is not None and type(family).__name__ == "Binomial")
        return pd.Series(result.params), pd.Series(result.bse), is_logit
    raise TypeError(
        "Expected a result of mlmhelpers.fit_logit_mixed, mlmhelpers.fit_mixedlm or a "
        f"statsmodels regression, got {type(result).__name__}.")


def odds_ratios(result, alpha=0.05):
    """Odds ratios of a logistic model with their confidence intervals.

    Each fixed effect ``b`` becomes ``exp(b)``: the factor by which the odds
    of the outcome change for a one-unit increase in the covariate (or
    against the reference category), for a given group (``u`` held fixed).
    The intervals are ``exp(b -/+ 1.96 SE)``.  The ``Intercept`` row is the
    odds for the reference pattern in an average group.

    Parameters
    ----------
    result : LogitMixedResults or a statsmodels logistic ``GLM``/``Logit`` result
    alpha : float, default 0.05
        1 - confidence level (0.05 gives 95% intervals).

    Returns
    -------
    pandas.DataFrame indexed by term, with columns ``odds ratio``, ``lower``
    and ``upper``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_logit_mixed("use ~ urban", mlm.load_dataset("contraception"), "district")
    >>> mlm.odds_ratios(m).round(2)
                odds ratio  lower  upper
    Intercept         0.50   0.42   0.59
    urban[T.Y]        1.92   1.53   2.40
    """
    est, se, is_logit = _coefficients(result)
    if not is_logit:
        raise TypeError(
            "Odds ratios need a logistic model (fit_logit_mixed or a binomial GLM); this is a "
            "linear model, whose coefficients are differences in means: use fixed_effects().")
    if not _is_proportion(alpha):
        raise ValueError(f"alpha must be between 0 and 1 (0.05 for 95% intervals), got {alpha}.")
    q = stats.norm.ppf(1 - alpha / 2)
    return pd.DataFrame({"odds ratio": np.exp(est), "lower": np.exp(est - q * se),
                         "upper": np.exp(est + q * se)})


def _plain_log_ticks(axis):
    """Label a log axis with plain numbers (0.5, 1, 2) instead of 5x10^-1."""
    from matplotlib.ticker import FuncFormatter

    def major(value, _pos):
        return f"{value:g}"

    def minor(value, _pos):
        # label only the 2s and 5s between powers of ten, to avoid crowding
        if value <= 0:
            return ""
        lead = value / 10 ** np.floor(np.log10(value) + 1e-9)
        return f"{value:g}" if round(lead) in (2, 5) and abs(lead - round(lead)) < 1e-6 else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))


def plot_coefficients(result, odds=False, ax=None, intercept=False):
    """Coefficient (forest) plot of the fixed effects with 95% intervals.

    Parameters
    ----------
    result : LogitMixedResults, a statsmodels ``MixedLMResults`` (from
        ``fit_mixedlm``) or a statsmodels GLM/Logit result
    odds : bool, default False
        Plot odds ratios on a log axis with a reference line at 1 (logistic
        models only); otherwise estimates with a reference line at 0.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made when omitted.
    intercept : bool, default False
        Include the intercept (usually on another scale than the effects).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_logit_mixed("use ~ age + urban", mlm.load_dataset("contraception"), "district")
    >>> ax = mlm.plot_coefficients(m, odds=True)
    >>> ax.get_xlabel()
    'Odds ratio (log scale)'
    """
    est, se, is_logit = _coefficients(result)
    if odds and not is_logit:
        raise TypeError("odds=True needs a logistic model; plot a linear model with odds=False.")
    if not intercept:
        keep = [n for n in est.index if n not in ("Intercept", "(Intercept)", "const")]
        est, se = est[keep], se[keep]
    if len(est) == 0:
        raise ValueError("There are no effects to plot besides the intercept; use intercept=True.")
    q = stats.norm.ppf(0.975)
    low, high = est - q * se, est + q * se
    if odds:
        est, low, high = np.exp(est), np.exp(low), np.exp(high)
    ax = new_axes(ax, figsize=(6, 0.5 * len(est) + 1.5))
    ypos = np.arange(len(est))[::-1]
    ax.errorbar(est, ypos, xerr=[est - low, high - est], fmt="o", color="tab:blue",
                ecolor="tab:blue", capsize=3)
    ax.axvline(1.0 if odds else 0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ypos)
    ax.set_yticklabels(list(est.index))
    if odds:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("Odds ratio (log scale)")
        ax.set_title("Odds ratios with 95% confidence intervals")
    else:
        ax.set_xlabel("Estimate (log-odds)" if is_logit else "Estimate")
        ax.set_title("Fixed effects with 95% confidence intervals")
    ax.set_ylabel("Term")
    return ax
