"""Tables and tests for fitted multilevel models, laid out as lme4 prints them.

Every function takes a model fitted with :func:`mlmhelpers.fit_mixedlm` (a
statsmodels ``MixedLMResults``; one fitted with statsmodels' ``MixedLM``
directly works too) or with :func:`mlmhelpers.fit_logit_mixed`.  Binary
results bring their own ``_mlm_*`` methods and the functions here hand over
to them; :func:`lr_test` and :func:`compare_models` also accept single-level
statsmodels OLS and (binomial) GLM / Logit results.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from .linear import _group_name, _lme4_cache, _re_term_names

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

_Z975 = stats.norm.ppf(0.975)


# ---------------------------------------------------------------------------
# Recognising result objects
# ---------------------------------------------------------------------------

def _is_mixedlm(result) -> bool:
    from statsmodels.regression.mixed_linear_model import MixedLM
    return isinstance(getattr(result, "model", None), MixedLM)


def _kind(result) -> str:
    """'binary-mixed' | 'mixedlm' | 'ols' | 'glm' | 'logit' | 'unknown'."""
    if hasattr(result, "_mlm_model_info"):
        return "binary-mixed"
    if _is_mixedlm(result):
        return "mixedlm"
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


def _what(result) -> str:
    return type(result).__name__


def _need_mixed(func, result):
    raise TypeError(
        f"{func}() needs a multilevel model fitted with fit_mixedlm() or "
        f"fit_logit_mixed(); got {_what(result)}.")


def _model_info(result, func="lr_test") -> dict:
    """What a likelihood-ratio test needs to know about a fitted model.

    Returns dict(llf, npar, nobs, rows, reml, family, mixed, n_variance_params).
    ``npar`` counts every estimated parameter (fixed effects, random-effect
    variances and covariances, and the residual variance of a linear model),
    as lme4's ``logLik()`` ``df`` does.
    """
    kind = _kind(result)
    if kind == "binary-mixed":
        info = dict(result._mlm_model_info())
        info.setdefault("family", "binomial")
        info.setdefault("mixed", True)
        info.setdefault("reml", False)
        info.setdefault("response", getattr(result, "outcome", None))
        return info
    info = _model_info_statsmodels(result, kind, func)
    # the response as the formula names it (arrays without a formula: unknown)
    names = getattr(getattr(result.model, "data", None), "ynames", None)
    from_formula = getattr(result.model, "formula", None) is not None
    info["response"] = names if from_formula and isinstance(names, str) else None
    return info


def _model_info_statsmodels(result, kind, func):
    if kind == "mixedlm":
        inner = result._results if hasattr(result, "_results") else result
        model = inner.model
        n_var = int(model.k_re2 + model.k_vc)
        cache = getattr(inner, "_mlmhelpers", None)
        rows = cache["rows"] if cache else _row_labels(model)
        return dict(llf=float(result.llf), npar=int(model.k_fe + n_var + 1),
                    nobs=int(model.nobs), rows=rows, reml=bool(result.reml),
                    family="gaussian", mixed=True, n_variance_params=n_var)
    if kind == "ols":
        return dict(llf=float(result.llf), npar=int(len(result.params) + 1),
                    nobs=int(result.nobs), rows=_row_labels(result.model), reml=False,
                    family="gaussian", mixed=False, n_variance_params=0)
    if kind in ("glm", "logit"):
        family = "binomial"
        if kind == "glm":
            from statsmodels.genmod.families import Binomial, Gaussian
            fam = result.model.family
            if isinstance(fam, Binomial):
                family = "binomial"
            elif isinstance(fam, Gaussian):
                family = "gaussian"
            else:
                raise TypeError(
                    f"{func}(): only binomial (logistic) and Gaussian GLMs can be "
                    f"compared here; this GLM has family {type(fam).__name__}.")
        npar = len(result.params) + (1 if family == "gaussian" else 0)
        return dict(llf=float(result.llf), npar=int(npar), nobs=int(result.nobs),
                    rows=_row_labels(result.model), reml=False, family=family,
                    mixed=False, n_variance_params=0)
    raise TypeError(
        f"{func}() compares models fitted with fit_mixedlm(), fit_logit_mixed(), "
        f"statsmodels ols() or a binomial glm()/logit(); got {_what(result)}.")


def _row_labels(model):
    data = getattr(model, "data", None)
    labels = getattr(data, "row_labels", None)
    if labels is None:
        return None
    return pd.Index(labels)


# ---------------------------------------------------------------------------
# Formatting like R
# ---------------------------------------------------------------------------

def _r_decimals(values, digits):
    """Decimals R's format() uses so each value shows `digits` significant digits."""
    dec = 0
    for v in np.atleast_1d(np.asarray(values, dtype=float)):
        if not np.isfinite(v) or v == 0:
            continue
        text = f"{abs(v):.{digits}g}"
        if "e" in text:
            mant, exp = text.split("e")
            frac = mant.split(".")[1] if "." in mant else ""
            d = len(frac) - int(exp)
        else:
            d = len(text.split(".")[1]) if "." in text else 0
        dec = max(dec, d)
    return min(dec, 10)


def _r_format(values, digits=4):
    dec = _r_decimals(values, digits)
    return [("" if not np.isfinite(v) else f"{v:.{dec}f}") for v in np.asarray(values, float)]


def _format_p(p):
    """p-values the way R prints them (4 significant digits, '< 2.2e-16')."""
    if p is None or not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2.2e-16"
    if p < 1e-4:
        return f"{p:.3e}"
    return f"{p:.4g}"


def _p_text(p):
    text = _format_p(p)
    return text if text.startswith("<") else "= " + text


def _table(rows, header, align):
    """Plain-text table; align is a string of 'l'/'r' per column."""
    cols = list(zip(*([header] + rows))) if rows else [[h] for h in header]
    widths = [max(len(str(c)) for c in col) for col in cols]
    out = []
    for row in [header] + rows:
        cells = []
        for cell, w, a in zip(row, widths, align):
            cells.append(str(cell).ljust(w) if a == "l" else str(cell).rjust(w))
        out.append(" " + " ".join(cells).rstrip())
    return out


class Summary(str):
    """Text of a model summary; shows as plain text in a notebook.

    It is a ``str`` (so ``print(summary(m))``, ``"AIC" in summary(m)`` and
    writing it to a file all work) whose ``repr`` is the text itself, so a
    notebook cell ending in ``summary(m)`` displays it without quotes.
    """

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def fixed_effects(result):
    """Fixed-effect estimates with lme4's standard errors.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` (or a statsmodels ``MixedLM`` / ``ols``
        result), or from :func:`fit_logit_mixed`.

    Returns
    -------
    pandas.DataFrame
        Indexed by term (patsy's names, e.g. ``Intercept``,
        ``schgend[T.boysch]``) with columns ``Estimate``, ``Std. Error`` and
        ``t value`` (``z value`` and ``Pr(>|z|)`` for a logistic model).  The
        standard errors are lme4's: square roots of the diagonal of
        ``(X' V^-1 X)^-1`` at the ML estimates.

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
    if hasattr(result, "_mlm_fixed_effects"):
        return result._mlm_fixed_effects()
    kind = _kind(result)
    if kind == "mixedlm":
        cache = _lme4_cache(result)
        est = np.asarray(cache["beta"], dtype=float)
        se = np.sqrt(np.diag(cache["vcov"]))
        names = list(result.model.exog_names)
    elif kind == "ols":
        est = np.asarray(result.params, dtype=float)
        se = np.asarray(result.bse, dtype=float)
        names = list(result.model.exog_names)
    else:
        _need_mixed("fixed_effects", result)
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se},
                        index=pd.Index(names, dtype=object))


def random_effects(result):
    """Variances, standard deviations and correlations of the random part.

    The table lme4 prints under "Random effects:" (its ``VarCorr()``).

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
    if hasattr(result, "_mlm_random_effects"):
        return result._mlm_random_effects()
    if _kind(result) != "mixedlm":
        _need_mixed("random_effects", result)
    cache = _lme4_cache(result)
    cov = np.asarray(cache["cov_re"], dtype=float)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    names = _re_term_names(result.model)
    group = _group_name(result)
    rows = []
    for k, name in enumerate(names):
        if k == 0 or sd[0] == 0 or sd[k] == 0:
            corr = np.nan
        else:
            corr = cov[0, k] / (sd[0] * sd[k])
        rows.append(dict(Groups=group, Name=name, Variance=cov[k, k],
                         **{"Std.Dev.": sd[k]}, Corr=corr))
    sigma2 = float(cache["sigma2"])
    rows.append(dict(Groups="Residual", Name="", Variance=sigma2,
                     **{"Std.Dev.": math.sqrt(sigma2)}, Corr=np.nan))
    out = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
    out["Groups"] = out["Groups"].astype(object)
    out["Name"] = out["Name"].astype(object)
    return out


def _fitted_parts(result):
    """(fixed part X beta, random part Z b) per row, in the model's row order."""
    cache = _lme4_cache(result)
    model = result.model
    X = np.asarray(model.exog, dtype=float)
    Z = np.asarray(model.exog_re, dtype=float)
    fixed = X @ np.asarray(cache["beta"], dtype=float)
    rand = np.zeros(len(fixed))
    b = cache["b"]
    for j, label in enumerate(model.group_labels):
        ix = model.row_indices[label]
        rand[ix] = Z[ix] @ b[j]
    return fixed, rand


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
        effects.

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
    if hasattr(result, "_mlm_summary"):
        return Summary(result._mlm_summary())
    if _kind(result) != "mixedlm":
        _need_mixed("summary", result)
    cache = _lme4_cache(result)
    model = result.model
    reml = bool(cache["reml"])
    group = _group_name(result)
    re_names = _re_term_names(model)
    lines = []
    if reml:
        lines.append("Linear mixed model fit by REML")
    else:
        lines.append("Linear mixed model fit by maximum likelihood")
    lines.append("Formula: " + _lme4_formula(result, re_names, group))
    lines.append("")
    info = _model_info(result, "summary")
    llf = info["llf"]
    n = info["nobs"]
    k = info["npar"]
    if reml:
        crit = {"REML criterion at convergence": -2 * llf}
        lines.append(f"REML criterion at convergence: {-2 * llf:.1f}")
    else:
        crit = [("AIC", -2 * llf + 2 * k), ("BIC", -2 * llf + math.log(n) * k),
                ("logLik", llf), ("deviance", -2 * llf)]
        vals = [f"{v:.1f}" for _, v in crit] + [str(n - k)]
        heads = [h for h, _ in crit] + ["df.resid"]
        w = [max(len(a), len(b)) for a, b in zip(heads, vals)]
        lines.append(" " + " ".join(h.rjust(x) for h, x in zip(heads, w)))
        lines.append(" " + " ".join(v.rjust(x) for v, x in zip(vals, w)))
    lines.append("")
    fixed, rand = _fitted_parts(result)
    resid = (np.asarray(model.endog, float) - fixed - rand) / math.sqrt(cache["sigma2"])
    q = np.quantile(resid, [0, 0.25, 0.5, 0.75, 1.0])
    lines.append("Scaled residuals: ")
    heads = ["Min", "1Q", "Median", "3Q", "Max"]
    vals = [f"{v:.4f}" for v in q]
    w = [max(len(a), len(b)) for a, b in zip(heads, vals)]
    lines.append(" ".join(h.rjust(x) for h, x in zip(heads, w)))
    lines.append(" ".join(v.rjust(x) for v, x in zip(vals, w)))
    lines.append("")
    lines.append("Random effects:")
    re = random_effects(result)
    var_txt = _r_format(re["Variance"].to_numpy(), 4)
    sd_txt = _r_format(re["Std.Dev."].to_numpy(), 4)
    has_corr = len(re_names) > 1
    rows = []
    for i, r in re.iterrows():
        grp = r["Groups"] if (i == 0 or r["Groups"] == "Residual") else ""
        row = [grp, r["Name"], var_txt[i], sd_txt[i]]
        if has_corr:
            row.append("" if not np.isfinite(r["Corr"]) else f"{r['Corr']:.2f}")
        rows.append(row)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if has_corr else [])
    lines.extend(_table(rows, header, "llll" + ("r" if has_corr else "")))
    lines.append(f"Number of obs: {n}, groups:  {group}, {cache['n_groups']}")
    lines.append("")
    lines.append("Fixed effects:")
    fe = fixed_effects(result)
    est_txt = _r_format(np.r_[fe["Estimate"].to_numpy(), fe["Std. Error"].to_numpy()], 4)
    p = len(fe)
    rows = [[name, est_txt[i], est_txt[p + i], f"{fe['t value'].iloc[i]:.3f}"]
            for i, name in enumerate(fe.index)]
    lines.extend(_table(rows, ["", "Estimate", "Std. Error", "t value"], "lrrr"))
    if p > 1:
        lines.append("")
        lines.append("Correlation of Fixed Effects:")
        lines.extend(_fixef_correlation(cache["vcov"], list(fe.index)))
    if cache["singular"]:
        lines.append("")
        lines.append("optimizer message: boundary (singular) fit: see help('isSingular')")
    return Summary("\n".join(lines))


def _abbreviate(name, width=6):
    """Short column labels for the correlation table, as lme4 prints them."""
    if name in ("Intercept", "(Intercept)"):
        return "(Intr)"
    return name[:width]


def _fixef_correlation(vcov, names):
    """Lower triangle of the correlation of the fixed effects (lme4's layout)."""
    vcov = np.asarray(vcov, dtype=float)
    sd = np.sqrt(np.diag(vcov))
    corr = vcov / np.outer(sd, sd)
    rows = []
    for i in range(1, len(names)):
        rows.append([names[i]] + [f"{corr[i, j]:.3f}" for j in range(i)]
                    + [""] * (len(names) - 1 - i))
    header = [""] + [_abbreviate(n) for n in names[:-1]]
    return _table(rows, header, "l" + "r" * (len(names) - 1))


def _lme4_formula(result, re_names, group):
    cache = _lme4_cache(result)
    formula = cache.get("formula")
    if not formula:
        formula = getattr(result.model, "formula", None) or "y ~ ..."
    lhs, rhs = formula.split("~", 1)
    rhs = rhs.strip()
    re_terms = ["1" if n == "(Intercept)" else n for n in re_names]
    if "(Intercept)" not in re_names:
        re_terms = ["0"] + re_terms
    return f"{lhs.strip()} ~ {rhs} + ({' + '.join(re_terms)} | {group})"


def vpc(result, at=None, **kwargs):
    """Variance partition coefficient: the share of variance at level 2.

    For a random-intercept model, ``sigma2_u / (sigma2_u + sigma2_e)`` - the
    intra-class correlation.  In a random-slope model the level-2 variance
    depends on the slope variable ``x``, so there is no single VPC: pass
    ``at=`` (a value of ``x``) to get it at that value.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.
    at : float, optional
        Random-slope models only: the value of the slope variable at which
        to evaluate ``var(u0 + u1 x) / (var(u0 + u1 x) + sigma2_e)``.  For a
        logistic model, passed on to its own method.
    **kwargs
        Passed to a logistic model (e.g. ``method="latent"``).

    Returns
    -------
    float

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, vpc
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> round(vpc(m1), 3)
    0.166
    """
    if hasattr(result, "_mlm_vpc"):
        if isinstance(at, str):
            raise TypeError(
                f"vpc(): the second argument is `at` (a covariate pattern); to choose the "
                f"method write it by name: vpc(result, method={at!r}).")
        if at is not None:
            kwargs["at"] = at
        return float(result._mlm_vpc(**kwargs))
    kind = _kind(result)
    if kind in ("ols", "glm", "logit"):
        fitter = "fit_mixedlm"
        if kind == "logit" or (kind == "glm" and _model_info(result, "vpc")["family"] == "binomial"):
            fitter = "fit_logit_mixed"
        raise ValueError(
            "vpc(): this is a single-level model: it has no level-2 variance, so "
            "there is nothing to partition. Fit a multilevel model with "
            f"{fitter}(formula, data, groups=...) and pass that.")
    if kind != "mixedlm":
        _need_mixed("vpc", result)
    if kwargs:
        raise TypeError(
            f"vpc(): unexpected argument(s) {', '.join(kwargs)} for a linear model. "
            "method=, n_sim= and seed= are for logistic models from fit_logit_mixed(); "
            "a linear random-intercept model has one VPC: vpc(result).")
    cache = _lme4_cache(result)
    cov = np.asarray(cache["cov_re"], dtype=float)
    sigma2 = float(cache["sigma2"])
    names = _re_term_names(result.model)
    if names == ["(Intercept)"]:
        if at is not None:
            raise ValueError("vpc(): `at` is only for random-slope models; this one "
                             "has a random intercept only.")
        return float(cov[0, 0] / (cov[0, 0] + sigma2))
    slopes = ", ".join(n for n in names if n != "(Intercept)")
    if at is not None and (names[0] != "(Intercept)" or cov.shape[0] != 2):
        raise ValueError(
            f"vpc(): `at` works for a random intercept with one random slope; this "
            f"model's random part is {', '.join(names)}. Compute the level-2 variance "
            "at your covariate values from the covariance matrix result.cov_re "
            "instead.")
    if at is not None and (isinstance(at, bool) or not isinstance(
            at, (int, float, np.integer, np.floating)) or not np.isfinite(at)):
        raise TypeError(
            f"vpc(): `at` is a value of {slopes} (a finite number, e.g. at=0), "
            f"not {at!r}.")
    if at is None:
        raise ValueError(
            f"vpc(): this model has a random slope for {slopes}, so the level-2 "
            f"variance (and with it the VPC) changes with {slopes}; there is no "
            f"single VPC. Use a random-intercept model, or give the value of "
            f"{slopes} to evaluate it at, e.g. vpc(result, at=0).")
    x = float(at)
    v2 = cov[0, 0] + 2 * x * cov[0, 1] + x * x * cov[1, 1]
    return float(v2 / (v2 + sigma2))


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
        lines.extend(_table(rows, ["", "npar", "logLik", "deviance"], "lrrr"))
        lines.append(f"Chisq = {self.statistic:.3f} on {self.df} df, "
                     f"p {_p_text(self.pvalue)}")
        if self.n_variance_tested:
            mix = (f"chi2({self.df - 1}) and chi2({self.df})" if self.df > 1
                   else "0 and chi2(1)")
            lines.append(f"Boundary-corrected p (50:50 mixture of {mix}) = "
                         f"{_format_p(self.pvalue_boundary)}")
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
        warnings.warn(
            "lr_test(): the full model has a lower log-likelihood than the restricted "
            "one, so they are probably not nested (or a fit did not converge); the "
            "statistic is set to 0.", UserWarning, stacklevel=2)
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
        first row).

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm, compare_models
    >>> exam = load_dataset("tutorial")
    >>> m2 = fit_mixedlm("normexam ~ standlrt", exam, groups="school")
    >>> m3 = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school")
    >>> compare_models(m2, m3, names=["m2", "m3"]).round(2)
        npar      AIC      BIC   logLik  deviance  Chisq   Df  Pr(>Chisq)
    m2     4  9365.24  9390.48 -4678.62   9357.24    NaN  NaN         NaN
    m3     6  9361.42  9399.27 -4674.71   9349.42   7.82  2.0        0.02
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
    return out


# ---------------------------------------------------------------------------
# Group-level effects
# ---------------------------------------------------------------------------

def group_effects(result):
    """Predicted group effects (conditional modes) with 95% intervals.

    The tidy version of lme4's ``ranef(model, condVar = TRUE)``.

    Parameters
    ----------
    result : fitted model
        From :func:`fit_mixedlm` or :func:`fit_logit_mixed`.

    Returns
    -------
    pandas.DataFrame
        One row per group and random term: ``group`` (the group's id),
        ``term`` (``(Intercept)``, ``standlrt``), ``effect`` (the predicted
        deviation of the group from the overall line), ``se`` (its
        conditional standard error), ``lower`` and ``upper`` (effect -/+
        1.96 se) and ``rank`` (1 = lowest effect within the term).

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
    if hasattr(result, "_mlm_group_effects"):
        return result._mlm_group_effects()
    if _kind(result) != "mixedlm":
        _need_mixed("group_effects", result)
    cache = _lme4_cache(result)
    labels = list(result.model.group_labels)
    names = _re_term_names(result.model)
    b = np.asarray(cache["b"], dtype=float)
    condvar = np.asarray(cache["condvar"], dtype=float)
    frames = []
    for k, name in enumerate(names):
        se = np.sqrt(np.clip(condvar[:, k, k], 0, None))
        eff = b[:, k]
        df = pd.DataFrame({"group": labels, "term": name, "effect": eff, "se": se,
                           "lower": eff - _Z975 * se, "upper": eff + _Z975 * se})
        df["rank"] = df["effect"].rank(method="first").astype(int)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["term"] = out["term"].astype(object)
    return out


def effective_sample_size(n, cluster_size, icc):
    """Effective sample size of a clustered sample (design effect).

    ``n / (1 + (cluster_size - 1) * icc)``: how many independent
    observations the clustered sample is worth.

    Parameters
    ----------
    n : int or float
        Total number of observations (> 0).
    cluster_size : float
        Average number of observations per cluster (>= 1).
    icc : float
        Intra-class correlation, between 0 and 1 (e.g. :func:`vpc`).

    Returns
    -------
    float

    Examples
    --------
    >>> round(effective_sample_size(4059, 4059 / 65, 0.166), 1)
    362.4
    """
    for name, value in (("n", n), ("cluster_size", cluster_size), ("icc", icc)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
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
