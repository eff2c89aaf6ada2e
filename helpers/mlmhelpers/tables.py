"""Tables and tests for fitted multilevel models, laid out as lme4 prints them.

Every function takes a model fitted with :func:`mlmhelpers.fit_mixedlm` or
:func:`mlmhelpers.fit_logit_mixed` (both are
:class:`mlmhelpers.results.MixedResults`, and the functions here call their
methods, so ``summary(m)`` and ``m.summary()`` are the same text); a
statsmodels ``MixedLM`` result fitted directly is read the lme4 way at its own
estimates.  :func:`lr_test` and :func:`compare_models` also accept
single-level statsmodels OLS and (binomial) GLM / Logit results.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ._format import Summary, Table, p_text, table
from ._validate import is_number, warn
from .results import MixedResults

__all__ = [
    "LRTestResult",
    "Summary",
    "fixed_effects",
    "random_effects",
    "summary",
    "vpc",
    "lr_test",
    "compare_models",
    "group_effects",
    "effective_sample_size",
]


# ---------------------------------------------------------------------------
# Recognising result objects
# ---------------------------------------------------------------------------

def as_mixed(result):
    """``result`` as a :class:`~mlmhelpers.results.MixedResults`, or None.

    A ``MixedLMResults`` fitted with statsmodels directly is read the lme4
    way at its own estimates (see :func:`mlmhelpers.linear.from_statsmodels`).
    """
    if isinstance(result, MixedResults):
        return result
    from statsmodels.regression.mixed_linear_model import MixedLM

    if isinstance(getattr(result, "model", None), MixedLM):
        from .linear import from_statsmodels
        return from_statsmodels(result)
    return None


def _single_level_kind(result) -> str:
    """'ols' | 'glm' | 'logit' | 'unknown' for a result that is not a mixed model."""
    model = getattr(result, "model", None)
    if model is None:
        return "unknown"
    from statsmodels.discrete.discrete_model import Logit, Probit
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.regression.linear_model import OLS
    if isinstance(model, GLM):
        return "glm"
    if isinstance(model, (Logit, Probit)):
        return "logit"
    if type(model) is OLS:
        return "ols"
    return "unknown"


def _mixed(func, result):
    """The result as a MixedResults, or the error every table function gives."""
    mixed = as_mixed(result)
    if mixed is None:
        raise TypeError(
            f"{func}() needs a multilevel model fitted with fit_mixedlm() or "
            f"fit_logit_mixed(); got {type(result).__name__}.")
    return mixed


def _vc_model_info(result):
    """LR-test facts of a statsmodels MixedLM with variance components, else None.

    Such a model (several nested random intercepts through ``vc_formula``, as
    lecture 7 fits) is not read the lme4 way by the helpers, but its
    log-likelihood and parameter count are all a likelihood-ratio test needs.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    inner = getattr(result, "_results", result)
    model = getattr(inner, "model", None)
    if not isinstance(model, MixedLM) or not getattr(model, "k_vc", 0):
        return None
    n_var = int(model.k_re2) + int(model.k_vc)
    labels = getattr(getattr(model, "data", None), "row_labels", None)
    names = getattr(getattr(model, "data", None), "ynames", None)
    return dict(llf=float(inner.llf), npar=int(model.k_fe) + n_var + 1, nobs=int(inner.nobs),
                rows=None if labels is None else pd.Index(labels), reml=bool(model.reml),
                family="gaussian", mixed=True, n_variance_params=n_var,
                response=names if isinstance(names, str) else None)


def _model_info(result, func="lr_test") -> dict:
    """What a likelihood-ratio test needs to know about a fitted model.

    Returns dict(llf, npar, nobs, rows, reml, family, mixed, n_variance_params,
    response).  ``npar`` counts every estimated parameter (fixed effects,
    random-effect variances and covariances, and the residual variance of a
    linear model), as lme4's ``logLik()`` ``df`` does.
    """
    vc_info = _vc_model_info(result)
    if vc_info is not None:
        return vc_info
    mixed = as_mixed(result)
    if mixed is not None:
        return mixed._model_info()
    kind = _single_level_kind(result)
    if kind == "unknown":
        raise TypeError(
            f"{func}() compares models fitted with fit_mixedlm(), fit_logit_mixed(), "
            f"statsmodels ols() or a binomial glm()/logit(); got {type(result).__name__}.")
    family = "gaussian"
    if kind == "logit":
        family = "binomial"
    elif kind == "glm":
        from statsmodels.genmod.families import Binomial, Gaussian
        fam = result.model.family
        if isinstance(fam, Binomial):
            family = "binomial"
        elif not isinstance(fam, Gaussian):
            raise TypeError(
                f"{func}(): only binomial (logistic) and Gaussian GLMs can be "
                f"compared here; this GLM has family {type(fam).__name__}.")
    npar = len(result.params) + (1 if family == "gaussian" else 0)
    labels = getattr(getattr(result.model, "data", None), "row_labels", None)
    # the response as the formula names it (arrays without a formula: unknown)
    names = getattr(getattr(result.model, "data", None), "ynames", None)
    from_formula = getattr(result.model, "formula", None) is not None
    return dict(llf=float(result.llf), npar=int(npar), nobs=int(result.nobs),
                rows=None if labels is None else pd.Index(labels), reml=False,
                family=family, mixed=False, n_variance_params=0,
                response=names if from_formula and isinstance(names, str) else None)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def fixed_effects(result):
    """Fixed-effect estimates with lme4's standard errors.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed` (or a statsmodels
        ``MixedLM`` / ``ols`` result).

    Returns
    -------
    pandas.DataFrame
        Indexed by term (patsy's names, e.g. ``Intercept``,
        ``schgend[T.boysch]``) with columns ``Estimate``, ``Std. Error`` and
        ``t value`` (``z value`` and ``Pr(>|z|)`` for a logistic model, as
        lme4 prints them).  The standard errors are lme4's: square roots of
        the diagonal of ``(X' V^-1 X)^-1`` at the estimates.  Rounded
        (``.round(4)``), the p-values are written as R writes them, never as
        0 (``< 0.0001``).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, fixed_effects
    >>> exam = load_dataset("tutorial")
    >>> m2 = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    >>> fixed_effects(m2).round(3)
               Estimate  Std. Error  t value
    Intercept     0.002       0.040    0.060
    standlrt      0.563       0.012   45.195
    """
    if as_mixed(result) is None and _single_level_kind(result) == "ols":
        est = np.asarray(result.params, dtype=float)
        se = np.asarray(result.bse, dtype=float)
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se},
                            index=pd.Index(list(result.model.exog_names), dtype=object))
    return _mixed("fixed_effects", result).fixed_effects()


def random_effects(result):
    """Variances, standard deviations and correlations of the random part.

    The table lme4 prints under "Random effects:" (its ``VarCorr()``); the
    same as ``result.varcorr()``.  Each group's *predicted* effects are
    :func:`group_effects` (or ``result.ranef``).

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.

    Returns
    -------
    pandas.DataFrame
        One row per random term plus a ``Residual`` row (linear models),
        columns ``Groups``, ``Name`` (``(Intercept)``, ``standlrt``),
        ``Variance``, ``Std.Dev.`` and ``Corr`` - the correlation of the term
        with the first (intercept) term, NaN for the first term and the
        residual.

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, random_effects
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> random_effects(m1).round(4)
         Groups         Name  Variance  Std.Dev.  Corr
    0    school  (Intercept)    0.1686    0.4107   NaN
    1  Residual                 0.8478    0.9207   NaN
    """
    return _mixed("random_effects", result).varcorr()


def summary(result):
    """A text summary laid out like lme4's ``summary(lmer(...))``.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.

    Returns
    -------
    Summary
        A ``str`` subclass: ``print()`` it, or leave it as the last line of a
        notebook cell - it displays as plain text either way.  It holds the
        fit criteria (AIC, BIC, logLik, deviance), the scaled residuals, the
        random effects, the number of observations and groups, and the fixed
        effects.  ``result.summary()`` gives the same text.

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, summary
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> print(summary(m1))  # doctest: +ELLIPSIS
    Linear mixed model fit by maximum likelihood
    Formula: normexam ~ 1 + (1 | school)
    ...
    Random effects:
     Groups   Name        Variance Std.Dev.
     school   (Intercept) 0.1686   0.4107
     Residual             0.8478   0.9207
    Number of obs: 4059, groups:  school, 65
    ...
    """
    return _mixed("summary", result).summary()


def vpc(result, at=None, **kwargs):
    """Variance partition coefficient: the share of variance at level 2.

    For a random-intercept model, ``sigma2_u / (sigma2_u + sigma2_e)`` - the
    intra-class correlation.  In a random-slope model the level-2 variance
    depends on the slope variable ``x``, so there is no single VPC: pass
    ``at=`` (a value of ``x``) to get it at that value.  For a logistic
    model see :meth:`LogitMixedResults.vpc` (``method=``).

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.
    at : float, optional
        Random-slope models only: the value of the slope variable at which
        to evaluate ``var(u0 + u1 x) / (var(u0 + u1 x) + sigma2_e)``.  For a
        logistic model, a covariate pattern (dict).
    **kwargs
        Passed to a logistic model (e.g. ``method="latent"``).

    Returns
    -------
    float
        For a model with several random factors (lme4 formula syntax,
        random intercepts), a Series: the share of each level's variance
        (one entry per factor and ``Residual``, summing to 1).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, vpc
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> round(vpc(m1), 3)
    0.166
    """
    mixed = as_mixed(result)
    if mixed is None:
        kind = _single_level_kind(result)
        if kind in ("ols", "glm", "logit"):
            fitter = "fit_mixedlm"
            if kind == "logit" or _model_info(result, "vpc")["family"] == "binomial":
                fitter = "fit_logit_mixed"
            raise ValueError(
                "vpc(): this is a single-level model: it has no level-2 variance, so "
                "there is nothing to partition. Fit a multilevel model with "
                f"{fitter}(formula, data, groups=...) and pass that.")
        _mixed("vpc", result)
    if mixed.family == "binomial" and isinstance(at, str):
        raise TypeError(
            f"vpc(): the second argument is `at` (a covariate pattern); to choose the "
            f"method write it by name: vpc(result, method={at!r}).")
    if at is not None:
        kwargs["at"] = at
    out = mixed.vpc(**kwargs)
    return out if isinstance(out, pd.Series) else float(out)


# ---------------------------------------------------------------------------
# Likelihood-ratio tests and model comparison
# ---------------------------------------------------------------------------

class LRTestResult:
    """Result of :func:`lr_test`.

    Attributes
    ----------
    statistic : float
        The likelihood-ratio statistic ``2 (logLik_full - logLik_restricted)``
        (R's ``Chisq``).
    df : int
        Difference in the number of parameters (R's ``Df``).
    pvalue : float
        Upper tail of chi-square(df) (R's ``Pr(>Chisq)``).
    pvalue_boundary : float
        For tests of random-effect variances, which sit on the boundary of
        the parameter space under the null: the 50:50 mixture of
        chi-square(df - 1) and chi-square(df) (for one variance, half the
        ordinary p-value).  Equals ``pvalue`` when no variance parameter is
        tested.
    restricted, full : dict
        ``npar``, ``logLik``, ``deviance``, ``nobs`` of the two models.
    """

    def __init__(self, statistic, df, pvalue, pvalue_boundary, restricted, full,
                 n_variance_tested):
        self.statistic = float(statistic)
        self.df = int(df)
        self.pvalue = float(pvalue)
        self.pvalue_boundary = float(pvalue_boundary)
        self.restricted = restricted
        self.full = full
        self.n_variance_tested = int(n_variance_tested)

    def __str__(self):
        rows = []
        for name, m in (("restricted", self.restricted), ("full", self.full)):
            rows.append([name, str(m["npar"]), f"{m['logLik']:.3f}", f"{m['deviance']:.3f}"])
        lines = ["Likelihood-ratio test (maximum likelihood fits)"]
        lines.extend(table(rows, ["", "npar", "logLik", "deviance"], "lrrr"))
        lines.append(f"Chisq = {self.statistic:.3f} on {self.df} df, "
                     f"p {p_text(self.pvalue)}")
        if self.n_variance_tested:
            mix = (f"chi2({self.df - 1}) and chi2({self.df})" if self.df > 1
                   else "0 and chi2(1)")
            lines.append(f"Boundary-corrected p (50:50 mixture of {mix}) "
                         f"{p_text(self.pvalue_boundary)}")
        return "\n".join(lines)

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def _check_comparable(infos, names, func):
    for info, name in zip(infos, names):
        if info.get("reml"):
            raise ValueError(
                f"{func}(): {name} was fitted by REML. Likelihood-ratio tests and "
                "AIC/BIC comparisons need maximum-likelihood fits: refit it with "
                "fit_mixedlm(..., reml=False).")
    fams = {info.get("family") for info in infos}
    if len(fams) > 1:
        raise ValueError(
            f"{func}(): the models have different response families "
            f"({', '.join(sorted(map(str, fams)))}); only models for the same "
            "response with the same family can be compared.")
    nagqs = {info["nagq"] for info in infos if info.get("nagq") is not None}
    if len(nagqs) > 1:
        raise ValueError(
            f"{func}(): the logistic mixed models were fitted with different nagq "
            f"({', '.join(map(str, sorted(nagqs)))}), so their log-likelihoods are "
            "different approximations and their difference is not a test. Refit them "
            "with the same nagq, e.g. fit_logit_mixed(..., nagq=25) for all.")
    first = infos[0]
    for info, name in zip(infos[1:], names[1:]):
        y0, y1 = first.get("response"), info.get("response")
        if y0 is not None and y1 is not None and y0 != y1:
            raise ValueError(
                f"{func}(): {names[0]} and {name} have different responses ({y0!r} "
                f"and {y1!r}); likelihoods of different outcomes cannot be compared. "
                "Fit both models to the same outcome.")
        if info["nobs"] != first["nobs"]:
            detail = f"{first['nobs']} vs {info['nobs']} observations"
        else:
            r0, r1 = first.get("rows"), info.get("rows")
            if r0 is None or r1 is None:
                continue
            if pd.Index(r0).sort_values().equals(pd.Index(r1).sort_values()):
                continue
            detail = f"both {info['nobs']} observations, but not the same rows"
        raise ValueError(
            f"{func}(): {names[0]} and {name} were fitted to different rows of the "
            f"data ({detail}). Likelihoods are only comparable on the same rows: "
            "drop the rows with missing values in any variable of either model "
            "first (e.g. data.dropna(subset=[...])) and refit both.")


def _mixture_pvalue(stat, df):
    """P-value of the 50:50 mixture of chi2(df - 1) and chi2(df)."""
    if stat <= 0:
        return 1.0
    low = 0.0 if df - 1 <= 0 else stats.chi2.sf(stat, df - 1)
    return float(0.5 * low + 0.5 * stats.chi2.sf(stat, df))


def lr_test(restricted, full):
    """Likelihood-ratio test of a restricted model against a fuller one.

    The equivalent of R's ``anova(restricted, full)`` for two models.  Both
    must be maximum-likelihood fits to the same rows, and the restricted
    model must have fewer parameters (e.g. a single-level ``ols`` model
    against a random-intercept model, or a random-intercept model against
    one with a random slope).

    Parameters
    ----------
    restricted : fitted model
        The simpler model: statsmodels ``ols``/binomial ``glm`` result,
        :func:`fit_mixedlm` or :func:`fit_logit_mixed` result.
    full : fitted model
        The model with more parameters.

    Returns
    -------
    LRTestResult
        ``.statistic``, ``.df``, ``.pvalue`` and ``.pvalue_boundary`` (the
        chi-bar-square p-value for variance parameters tested on the
        boundary: a 50:50 mixture of chi-square(df - 1) and chi-square(df)).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, lr_test
    >>> exam = load_dataset("tutorial")
    >>> m3 = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school")
    >>> m4 = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school",
    ...                  re_formula="1 + standlrt")
    >>> print(lr_test(m3, m4))  # doctest: +ELLIPSIS
    Likelihood-ratio test (maximum likelihood fits)
    ...
    Chisq = 43.643 on 2 df, p = 3.335e-10
    ...
    """
    infos = [_model_info(restricted, "lr_test"), _model_info(full, "lr_test")]
    _check_comparable(infos, ["the restricted model", "the full model"], "lr_test")
    r, f = infos
    if r["npar"] >= f["npar"]:
        if r["npar"] == f["npar"]:
            raise ValueError(
                f"lr_test(): both models have {r['npar']} parameters, so neither is "
                "nested in the other by parameter count. A likelihood-ratio test "
                "needs the restricted model to be a special case of the full one "
                "with fewer parameters; compare non-nested models with "
                "compare_models() (AIC/BIC) instead.")
        raise ValueError(
            f"lr_test(): the restricted model has {r['npar']} parameters and the full "
            f"model {f['npar']}; the restricted (simpler) model must come first. "
            "Swap them: lr_test(simpler_model, fuller_model).")
    stat = 2.0 * (f["llf"] - r["llf"])
    if stat < -1e-6 * max(1.0, abs(f["llf"])):
        warn("lr_test(): the full model has a lower log-likelihood than the restricted "
             "one, so they are probably not nested (or a fit did not converge); the "
             "statistic is set to 0.")
    stat = max(stat, 0.0)
    df = f["npar"] - r["npar"]
    p = float(stats.chi2.sf(stat, df))
    n_var = int(f.get("n_variance_params", 0)) - int(r.get("n_variance_params", 0))
    p_b = _mixture_pvalue(stat, df) if n_var > 0 else p
    summ = lambda i: dict(npar=i["npar"], logLik=i["llf"], deviance=-2 * i["llf"],  # noqa: E731
                          nobs=i["nobs"])
    return LRTestResult(stat, df, p, p_b, summ(r), summ(f), max(n_var, 0))


def compare_models(*results, names=None):
    """Compare maximum-likelihood fits, as R's ``anova(m1, m2, ...)`` does.

    Models are listed in order of their number of parameters (as R does);
    each row is tested against the row above it.

    Parameters
    ----------
    *results : fitted models
        Two or more fits to the same rows (``ols``/binomial ``glm``,
        :func:`fit_mixedlm`, :func:`fit_logit_mixed`).
    names : list of str, optional
        Row labels; default ``model 1``, ``model 2``, ... in the order given.

    Returns
    -------
    pandas.DataFrame
        Columns ``npar``, ``AIC``, ``BIC``, ``logLik``, ``deviance``,
        ``Chisq``, ``Df``, ``Pr(>Chisq)`` (the test columns are NaN in the
        first row).  When rounded (``.round(3)``) the p-values are written
        as R writes them, never as 0 (``< 0.001``).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, compare_models
    >>> exam = load_dataset("tutorial")
    >>> m2 = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    >>> m3 = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school")
    >>> compare_models(m2, m3, names=["m2", "m3"]).round(2)
        npar      AIC      BIC   logLik  deviance  Chisq   Df Pr(>Chisq)
    m2     4  9365.24  9390.48 -4678.62   9357.24    NaN  NaN        NaN
    m3     6  9361.42  9399.27 -4674.71   9349.42   7.82  2.0       0.02
    """
    if len(results) == 1 and isinstance(results[0], (list, tuple)):
        results = tuple(results[0])
    if len(results) < 1:
        raise ValueError("compare_models(): give at least one fitted model, e.g. "
                         "compare_models(m1, m2).")
    if names is None:
        names = [f"model {i + 1}" for i in range(len(results))]
    else:
        if isinstance(names, str):
            names = [names]
        names = [str(n) for n in names]
        if len(names) != len(results):
            raise ValueError(
                f"compare_models(): {len(results)} models but {len(names)} names; give "
                "one name per model, e.g. names=['m1', 'm2'].")
        if len(set(names)) != len(names):
            raise ValueError("compare_models(): the names must be different from each other.")
    infos = [_model_info(r, "compare_models") for r in results]
    _check_comparable(infos, names, "compare_models")
    order = sorted(range(len(infos)), key=lambda i: infos[i]["npar"])
    rows = []
    for pos, i in enumerate(order):
        info = infos[i]
        llf, k, n = info["llf"], info["npar"], info["nobs"]
        row = {"npar": k, "AIC": -2 * llf + 2 * k, "BIC": -2 * llf + math.log(n) * k,
               "logLik": llf, "deviance": -2 * llf,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if pos > 0:
            prev = infos[order[pos - 1]]
            chisq = max(0.0, 2 * (llf - prev["llf"]))
            df = k - prev["npar"]
            row["Chisq"] = chisq
            row["Df"] = float(df)
            row["Pr(>Chisq)"] = float(stats.chi2.sf(chisq, df)) if df > 0 else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index([names[i] for i in order], dtype=object))
    out["npar"] = out["npar"].astype(int)
    return Table(out)


# ---------------------------------------------------------------------------
# Group-level effects
# ---------------------------------------------------------------------------

def group_effects(result, alpha=0.05):
    """Predicted group effects (conditional modes) with confidence intervals.

    The tidy version of lme4's ``ranef(model, condVar = TRUE)``.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.
    alpha : float, default 0.05
        1 - confidence level of the intervals (0.05: 95% intervals).

    Returns
    -------
    pandas.DataFrame
        One row per group and random term: ``group`` (the group's id),
        ``term`` (``(Intercept)``, ``standlrt``), ``effect`` (the predicted
        deviation of the group from the overall line), ``se`` (its
        conditional standard error), ``lower`` and ``upper`` (effect -/+
        z se, 1.96 se for 95%) and ``rank`` (1 = lowest effect within the term).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, group_effects
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> ge = group_effects(m1)
    >>> ge.shape
    (65, 7)
    >>> list(ge.columns)
    ['group', 'term', 'effect', 'se', 'lower', 'upper', 'rank']
    """
    return _mixed("group_effects", result).group_effects(alpha=alpha)


def effective_sample_size(n, cluster_size, icc):
    """Effective sample size of a clustered sample (Kish's design effect).

    ``n / (1 + (m - 1) * icc)``: how many independent observations the
    clustered sample is worth for estimating a mean (or the effect of a
    group-level variable).  ``m`` is the cluster size; when clusters differ
    in size, Kish's size-weighted mean ``sum(n_j**2) / sum(n_j)`` takes its
    place (large clusters weigh more: they carry more repeated information),
    which is larger than the plain mean.

    Parameters
    ----------
    n : int or float
        Total number of observations (> 0).
    cluster_size : float or sequence of int
        The number of observations per cluster: one number (all clusters the
        same size), or the size of every cluster (e.g.
        ``data.groupby("school").size()``; then they must add up to ``n``).
    icc : float
        Intra-class correlation, between 0 and 1 (e.g. :func:`vpc`).

    Returns
    -------
    float

    Examples
    --------
    >>> round(effective_sample_size(1000, 10, 0.1), 1)
    526.3
    >>> round(effective_sample_size(30, [5, 10, 15], 0.1), 1)   # m = 350 / 30
    14.5
    """
    if not is_number(cluster_size) and not isinstance(cluster_size, (str, bytes)):
        try:
            sizes = np.asarray(cluster_size, dtype=float).ravel()
        except (TypeError, ValueError):
            raise TypeError("effective_sample_size(): `cluster_size` must be a number or the "
                            f"sizes of the clusters, got {cluster_size!r}.") from None
        if sizes.size == 0 or not np.all(np.isfinite(sizes)) or np.any(sizes < 1):
            raise ValueError(
                "effective_sample_size(): `cluster_size` given as the size of every cluster "
                "must hold counts of at least 1, e.g. data.groupby('school').size().")
        if is_number(n) and not np.isclose(sizes.sum(), n):
            raise ValueError(
                f"effective_sample_size(): the cluster sizes add up to {sizes.sum():g}, not "
                f"n = {n!r}: give the sizes of all clusters of the sample.")
        cluster_size = float((sizes**2).sum() / sizes.sum())
    for name, value in (("n", n), ("cluster_size", cluster_size), ("icc", icc)):
        if not is_number(value):
            raise TypeError(
                f"effective_sample_size(): `{name}` must be a number, got {value!r}.")
        if not np.isfinite(value):
            raise ValueError(f"effective_sample_size(): `{name}` must be finite, got {value!r}.")
    if n <= 0:
        raise ValueError(f"effective_sample_size(): `n` is the total number of "
                         f"observations and must be positive, got {n!r}.")
    if cluster_size < 1:
        raise ValueError(f"effective_sample_size(): `cluster_size` is the average number "
                         f"of observations per cluster and must be at least 1, got "
                         f"{cluster_size!r}.")
    if cluster_size > n:
        raise ValueError("effective_sample_size(): `cluster_size` cannot exceed `n` "
                         f"({cluster_size!r} > {n!r}).")
    if not 0 <= icc <= 1:
        raise ValueError(f"effective_sample_size(): `icc` is a proportion of variance and "
                         f"must lie between 0 and 1, got {icc!r}.")
    return float(n / (1 + (cluster_size - 1) * icc))
