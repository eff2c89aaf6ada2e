"""Logistic multilevel models: the course's names for them, and odds ratios.

* :func:`fit_logit_mixed` is :func:`mlmhelpers.fit_glmm` with the binomial
  family and the logit link (glmer's ``family = binomial``): a 0/1 outcome,
  any random part the linear fitter takes, the Laplace approximation or
  adaptive quadrature (``nagq``) for one random intercept.
  :class:`LogitMixedResults` is the class it returns,
  :class:`mlmhelpers.glmm.GlmmResults`.
* :func:`odds_ratios` and :func:`plot_coefficients` present the fixed effects
  (rate ratios of a Poisson model are :func:`mlmhelpers.rate_ratios`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from . import glmm, style
from ._axes import course_plot, new_axes
from ._validate import check_alpha
from .linear import keyword_only_after_data

__all__ = ["fit_logit_mixed", "LogitMixedResults", "odds_ratios", "plot_coefficients"]


@keyword_only_after_data
def fit_logit_mixed(formula, data, *, groups=None, nagq=1):
    """Fit a multilevel logistic regression by maximum likelihood (glmer's logit model).

    The model is ``logit P(y_ij = 1) = x_ij' beta + u_j`` with group effects
    ``u_j ~ N(0, sigma2_u)`` - or any random part the linear fitter takes:
    ``(1 | comm/mom)`` for three levels, crossed factors, random slopes -
    the model R fits with ``glmer(y ~ x + (1 | group), family = binomial,
    nAGQ = nagq)``.  It is :func:`mlmhelpers.fit_glmm` with the binomial
    family and the logit link; the results agree with glmer's (estimates,
    standard errors, variances and log-likelihood) to about 1e-4 or better.

    Parameters
    ----------
    formula : str
        lme4's formula with the random part, ``"use ~ age + urban + (1 |
        district)"``, or the fixed part in patsy notation, e.g. ``"use ~ age +
        urban"``, with ``groups``.  The outcome must be a column of 0/1
        integers or booleans (counts out of n: ``fit_glmm`` with
        ``cbind(successes, failures)``).  Categorical columns keep their level
        order; the first level is the reference and the terms are named like
        ``urban[T.Y]``.
    data : pandas.DataFrame
        One row per level-1 unit.  Rows with a missing value in a column the
        model uses (outcome, covariate or group) are dropped, with a warning
        saying how many (as R's ``na.omit``).
    groups : str, optional (by name)
        Name of the column that identifies the level-2 units (omitted when
        the formula has the ``(1 | g)`` term).
    nagq : int, default 1 (by name)
        Number of quadrature points per group: 1 is the Laplace approximation
        (glmer's default); more (e.g. 25) is adaptive Gauss-Hermite
        quadrature, a more accurate likelihood, for one random intercept only.

    Returns
    -------
    LogitMixedResults
        (the same class as :func:`mlmhelpers.fit_glmm` returns)

    Warns
    -----
    UserWarning
        When rows are dropped, when the variance is estimated as zero (a
        singular fit), when a coefficient is huge (a covariate that perfectly
        separates the outcome) and when the optimiser did not converge.  Groups
        whose members all have the same outcome are not a problem for this
        model: they are not warned about, but listed in ``warnings`` and noted
        once at the end of ``summary()``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> contra = mlm.load_dataset("contraception")
    >>> m = mlm.fit_logit_mixed("use ~ age + urban + (1 | district)", contra)
    >>> m.fe_params.round(3)
    Intercept    -0.703
    urban[T.Y]    0.653
    age           0.009
    Name: Estimate, dtype: float64
    >>> round(m.var_re, 4), round(m.llf, 2)
    (0.1915, -1250.2)
    """
    return glmm._fit("fit_logit_mixed", formula, data, family="binomial", link="logit",
                     groups=groups, nagq=nagq, weights=None, offset=None)


# The course's name for a logistic fit: the generalised model's results class.
LogitMixedResults = glmm.GlmmResults


# ----------------------------------------------------------------------------
# Presenting fixed effects
# ----------------------------------------------------------------------------
def _coefficients(result):
    """(estimates, standard errors, link) of a supported result; link is "logit",
    "log", another link of a generalised model, or None for a linear model."""
    from .tables import as_mixed

    mixed = as_mixed(result)
    if mixed is not None:
        return mixed.fe_params, mixed.bse_fe, getattr(mixed, "link", None)
    model = getattr(result, "model", None)
    if model is not None and hasattr(result, "params") and hasattr(result, "bse"):
        family = getattr(model, "family", None)
        is_logit = type(model).__name__ == "Logit" or (
            family is not None and type(family).__name__ == "Binomial")
        return pd.Series(result.params), pd.Series(result.bse), "logit" if is_logit else None
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
    >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)", mlm.load_dataset("contraception"))
    >>> mlm.odds_ratios(m).round(2)
                odds ratio  lower  upper
    Intercept         0.50   0.42   0.59
    urban[T.Y]        1.92   1.53   2.40
    """
    est, se, link = _coefficients(result)
    if link != "logit":
        what = ("linear model, whose coefficients are differences in means: use "
                "fixed_effects()" if link is None else
                "count model: use rate_ratios()" if link == "log" else
                f"binomial model with the {link} link, whose coefficients are not log-odds")
        raise TypeError(
            f"Odds ratios need a logistic model (fit_logit_mixed or a binomial GLM); this is "
            f"a {what}.")
    alpha = check_alpha("odds_ratios()", alpha)
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


@course_plot
def plot_coefficients(result, *, odds=False, ax=None, intercept=False, alpha=0.05):
    """Coefficient (forest) plot of the fixed effects with confidence intervals.

    Parameters
    ----------
    result : LogitMixedResults, a statsmodels ``MixedLMResults`` (from
        ``fit_mixedlm``) or a statsmodels GLM/Logit result
    odds : bool, default False
        Plot odds ratios (logistic models) or rate ratios (Poisson models) on
        a log axis with a reference line at 1; otherwise estimates with a
        reference line at 0.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made when omitted.
    intercept : bool, default False
        Include the intercept (usually on another scale than the effects).
    alpha : float, default 0.05
        1 - confidence level of the intervals (0.05 gives 95% intervals).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_logit_mixed("use ~ age + urban + (1 | district)",
    ...                         mlm.load_dataset("contraception"))
    >>> ax = mlm.plot_coefficients(m, odds=True)
    >>> ax.get_xlabel()
    'Odds ratio (log scale)'
    """
    est, se, link = _coefficients(result)
    is_logit = link == "logit"
    alpha = check_alpha("plot_coefficients()", alpha)
    if odds and link not in ("logit", "log"):
        raise TypeError("odds=True needs a logistic model (odds ratios) or a Poisson model "
                        "(rate ratios); plot this model with odds=False.")
    if not intercept:
        keep = [n for n in est.index if n not in ("Intercept", "(Intercept)", "const")]
        est, se = est[keep], se[keep]
    if len(est) == 0:
        raise ValueError("There are no effects to plot besides the intercept; use intercept=True.")
    q = stats.norm.ppf(1 - alpha / 2)
    level = f"{100 * (1 - alpha):g}%"
    low, high = est - q * se, est + q * se
    if odds:
        est, low, high = np.exp(est), np.exp(low), np.exp(high)
    ax = new_axes(ax, figsize=(6, 0.5 * len(est) + 1.5))
    ypos = np.arange(len(est))[::-1]
    ax.errorbar(est, ypos, xerr=[est - low, high - est], fmt="o", color=style.DATA,
                ecolor=style.DATA, capsize=3)
    ax.axvline(1.0 if odds else 0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(ypos)
    ax.set_yticklabels(list(est.index))
    what = "Odds ratio" if is_logit else "Rate ratio"
    if odds:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(f"{what} (log scale)")
        ax.set_title(f"{what}s with {level} confidence intervals")
    else:
        ax.set_xlabel("Estimate (log-odds)" if is_logit else
                      "Estimate (log rate)" if link == "log" else "Estimate")
        ax.set_title(f"Fixed effects with {level} confidence intervals")
    ax.set_ylabel("Term")
    return ax

