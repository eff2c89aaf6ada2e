"""Random-intercept logistic regression fitted by maximum likelihood.

statsmodels has no maximum-likelihood mixed logistic model, so this module
brings a small one, written to agree with R's ``glmer`` (lme4):

* :func:`fit_logit_mixed` fits ``logit P(y = 1) = X beta + u_group`` with
  ``u_group ~ N(0, sigma2_u)``, by the Laplace approximation (``nagq=1``,
  glmer's default) or adaptive Gauss-Hermite quadrature (``nagq > 1``, glmer's
  ``nAGQ``).  The numerical work lives in :mod:`mlmhelpers._glmm`; the formula
  and the data go through the same first two stages as
  :func:`mlmhelpers.fit_mixedlm`'s (:mod:`mlmhelpers.modular`), and the
  convergence messages and results class are the same.
* :class:`LogitMixedResults` is a :class:`mlmhelpers.results.MixedResults`,
  like the linear results: the table and plot functions of the library
  (``fixed_effects``, ``random_effects``, ``summary``, ``vpc``,
  ``group_effects``, ``plot_caterpillar``, ``lr_test``, ``compare_models``)
  take either.
* :func:`odds_ratios` and :func:`plot_coefficients` present the fixed effects.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import special, stats

from . import _checks, _glmm, style
from ._axes import course_plot, new_axes
from ._formula import model_spec
from ._frame import EXAMPLES, check_arguments, check_groups_argument, model_frame
from ._optimize import Attempt, FitRecord
from ._validate import check_alpha, is_whole, warn
from .linear import keyword_only_after_data
from .results import MixedResults, RandomTermFit

__all__ = ["fit_logit_mixed", "LogitMixedResults", "odds_ratios", "plot_coefficients"]

_VPC_METHODS = ("latent", "simulation", "linearisation")
_LATENT_LEVEL1_VARIANCE = math.pi**2 / 3  # variance of the standard logistic distribution


def _check_nagq(nagq):
    if not is_whole(nagq) or nagq < 1:
        raise ValueError(
            f"fit_logit_mixed: nagq must be a positive whole number, got {nagq!r}: use "
            "nagq=1 for the Laplace approximation (glmer's default) or e.g. nagq=25 for "
            "adaptive Gauss-Hermite quadrature (glmer's nAGQ = 25).")
    if nagq > 100:
        # as glmer (its GHrule stops at 100 nodes); our nodes overflow beyond that
        raise ValueError(
            f"fit_logit_mixed: nagq={nagq} is too many quadrature points: like glmer's nAGQ "
            "it must be at most 100; nagq=25 is already accurate for a random-intercept model.")
    return int(nagq)


# ----------------------------------------------------------------------------
# Fitting
# ----------------------------------------------------------------------------
@keyword_only_after_data
def fit_logit_mixed(formula, data, *, groups=None, nagq=1):
    """Fit a two-level logistic regression with a random intercept by maximum likelihood.

    The model is ``logit P(y_ij = 1) = x_ij' beta + u_j`` with group effects
    ``u_j ~ N(0, sigma2_u)``, the model R fits with
    ``glmer(y ~ x + (1 | group), family = binomial, nAGQ = nagq)``.  The
    results agree with glmer's (estimates, standard errors, variance and
    log-likelihood) to about 1e-4 or better.

    Parameters
    ----------
    formula : str
        Fixed part in patsy notation, e.g. ``"use ~ age + urban"`` with
        ``groups`` given, or lme4's formula with the random intercept,
        ``"use ~ age + urban + (1 | district)"``, with ``groups`` omitted.  The
        outcome must be a column of 0/1 integers or booleans.  Categorical
        columns keep their level order; the first level is the reference and
        the terms are named like ``urban[T.Y]``.
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
        quadrature, a more accurate likelihood.

    Returns
    -------
    LogitMixedResults

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
    nagq = _check_nagq(nagq)
    func = "fit_logit_mixed"
    check_arguments(func, formula, data, family="binomial")
    check_groups_argument(func, groups, data, family="binomial")
    spec = model_spec(func, formula, groups=groups, example=EXAMPLES["binomial"])
    if len(spec.random) != 1 or spec.random[0].rhs != "1" or len(spec.random[0].factors) != 1:
        raise ValueError(
            "fit_logit_mixed: a logistic model here has one random intercept: write "
            "(1 | g) with one grouping column, e.g. 'use ~ age + urban + (1 | district)'. "
            f"The random part of {formula!r} is not supported for logistic models.")
    frame = model_frame(func, spec, data, family="binomial")
    term = frame.terms[0]
    problem = _glmm.LogitRandomIntercept(frame.X, frame.y, term.codes, term.m, nagq)
    out = _glmm.fit(problem)
    result = LogitMixedResults(frame, out, problem, nagq=nagq)
    for category, msg in result._messages:
        # groups with one outcome are information, not a problem: the summary notes them
        # (once), and a warning as well would show the same sentence twice in a notebook
        if msg not in result._information:
            warn(msg, category)
    return result


# ----------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------
class LogitMixedResults(MixedResults):
    """Results of :func:`fit_logit_mixed` (a random-intercept logistic model).

    Besides the attributes of every mixed model of the library (see
    :class:`mlmhelpers.results.MixedResults`: ``fe_params``, ``bse``,
    ``tvalues``, ``pvalues``, ``cov_re``, ``llf``, ``aic``, ``bic``,
    ``ranef`` and ``ranef_se``, ``singular``, ``converged``, ``warnings``):

    Attributes
    ----------
    var_re : float
        The group-level (random-intercept) variance sigma2_u.
    sd_re : float
        Its square root, the standard deviation of the group effects.
    converged : bool
        False when the optimiser did not reach an optimum; ``summary`` then
        says "Model failed to converge".
    nagq : int
        Quadrature points used (1 = Laplace).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)", mlm.load_dataset("contraception"))
    >>> m.nobs, m.ngroups, m.converged
    (1934, 60, True)
    >>> m.conf_int().round(2)
                lower  upper
    Intercept   -0.87  -0.53
    urban[T.Y]   0.42   0.88
    """

    _statistic = "z value"
    _p_in_table = True
    family = "binomial"

    def __init__(self, frame, out, problem, *, nagq):
        theta = float(out.params[0])
        u, se = problem.conditional_effects(out.params)
        se = np.asarray(se, float)
        terms = [RandomTermFit(frame.terms[0], [[theta**2]], np.asarray(u, float)[:, None],
                               (se**2)[:, None, None])]
        stage = out.record
        attempts = list(stage.attempts) if stage is not None else []
        attempts.append(Attempt("Newton steps on glmer's deviance", float(out.deviance),
                                int(out.n_evaluations)))
        optinfo = FitRecord(theta=np.array([abs(theta)]), deviance=float(out.deviance),
                            evaluations=int(out.n_evaluations), gradient=float(out.max_grad),
                            attempts=attempts,
                            boundary_checked=bool(stage is not None and stage.boundary_checked),
                            boundary=[0] if theta == 0.0 else [],
                            method="BFGS, then Newton")
        self._set_common(frame=frame, beta=out.params[1:], vcov=out.cov_beta,
                         llf=-0.5 * float(out.deviance), terms=terms, converged=out.converged,
                         singular=theta == 0.0, notes=(), optinfo=optinfo)
        self.nagq = int(nagq)
        self.method = "Laplace" if nagq == 1 else f"AGQ({nagq})"
        self.outcome = frame.response
        self.var_re = theta**2
        self.sd_re = abs(theta)
        self._fit = out
        self._messages = self._diagnose(out)
        self.warnings = [text for _, text in self._messages]

    # -- diagnostics -----------------------------------------------------------
    def _diagnose(self, out):
        """The fit's messages as (warning class, text)."""
        notes, self._information = [], []
        means = np.bincount(self._codes, weights=self._y, minlength=self.ngroups)
        means = means / self.group_sizes.to_numpy()
        n0, n1 = int(np.sum(means == 0)), int(np.sum(means == 1))
        if n0 + n1:
            text = (f"{n0 + n1} of {self.ngroups} {self.groups} groups have the same outcome "
                    f"for every member ({n0} all 0, {n1} all 1). That is fine for this model: "
                    "their effects are pulled towards the average and have wide intervals.")
            notes.append((UserWarning, text))
            self._information.append(text)
        bse = self.bse_fe
        big = self.fe_params[(self.fe_params.abs() > 10) | (bse > 50)]
        big = big.drop([c for c in big.index if c == "Intercept"], errors="ignore")
        if len(big):
            terms = ", ".join(f"{k} = {v:.3g} (SE {bse[k]:.3g})" for k, v in big.items())
            notes.append((UserWarning,
                f"Very large estimate(s): {terms}. The outcome is probably (almost) perfectly "
                "separated by this term: in one of its categories everybody (or nobody) has the "
                "outcome, so the maximum-likelihood estimate is infinite. Do not interpret it; "
                "merge categories or drop the term."))
        if self.var_re > 100:
            notes.append((UserWarning,
                f"The variance between {self.groups} groups is huge ({self.var_re:.3g}): the "
                "outcome is (almost) completely determined by the group, e.g. most groups have "
                "all 0 or all 1, so the variance cannot be estimated well. Check the data."))
        if self.singular:
            term = self.random_terms[0]
            notes.append((_checks.SingularFitWarning, _checks.singular_message(
                [(term.name, term.names, term.cov.to_numpy())])))
        if not out.cov_from_hessian:
            notes.append((UserWarning,
                "The standard errors come from the curvature of the likelihood with the "
                "variance held fixed: the full Hessian was not positive definite."))
        if not self.converged:
            notes.append((_checks.ConvergenceWarning,
                          _checks.convergence_message(out.max_grad, 1e-3)
                          + (f" ({out.message})" if out.message else "")))
        return notes

    def _summary_header(self):
        method = ("Laplace Approximation" if self.nagq == 1
                  else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}")
        return [f"Generalized linear mixed model fit by maximum likelihood ({method})",
                " Family: binomial  ( logit )"]

    def scaled_residuals(self):
        """Pearson residuals, as glmer's summary shows them."""
        mu = np.clip(self.predict().to_numpy(), 1e-15, 1 - 1e-15)
        return (self._y - mu) / np.sqrt(mu * (1 - mu))

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
        >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)", mlm.load_dataset("contraception"))
        >>> new = pd.DataFrame({"urban": ["N", "Y"]})
        >>> m.predict(new, include_random=False).round(3).tolist()
        [0.332, 0.488]
        """
        if which not in ("probability", "link"):
            raise ValueError(f"which must be 'probability' or 'link', got {which!r}.")
        if exog is None:
            eta = self._fixed_part()
            if include_random:
                eta = eta + self._random_part_of_rows()
            index = self.rows
        else:
            if not isinstance(exog, pd.DataFrame):
                raise TypeError("exog must be a pandas DataFrame with the model's covariates.")
            eta = self._design(exog) @ self.fe_params.to_numpy()
            if include_random:
                eta = eta + self._random_part(exog)
            index = exog.index
        values = eta if which == "link" else special.expit(eta)
        return pd.Series(values, index=index, name="log-odds" if which == "link" else "probability")

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
        >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)", mlm.load_dataset("contraception"))
        >>> round(m.vpc(), 3), round(m.vpc("linearisation", at={"urban": "Y"}), 3)
        (0.054, 0.045)
        """
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
        if not is_whole(n_sim) or n_sim < 100:
            raise ValueError(f"n_sim must be a whole number of at least 100, got {n_sim!r}.")
        rng = np.random.default_rng(seed)
        p = special.expit(eta + rng.normal(0.0, math.sqrt(s2), size=int(n_sim)))
        between = np.var(p)
        return float(between / (between + np.mean(p * (1 - p))))

    def __repr__(self):
        status = "converged" if self.converged else "NOT converged"
        return (f"<LogitMixedResults: {self.lme4_formula}, nobs={self.nobs}, "
                f"ngroups={self.ngroups}, llf={self.llf:.3f}, {status}>")


# ----------------------------------------------------------------------------
# Presenting fixed effects
# ----------------------------------------------------------------------------
def _coefficients(result):
    """(estimates, standard errors, is_logit) of a supported result."""
    from .tables import as_mixed

    mixed = as_mixed(result)
    if mixed is not None:
        return mixed.fe_params, mixed.bse_fe, mixed.family == "binomial"
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
    >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)", mlm.load_dataset("contraception"))
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
        Plot odds ratios on a log axis with a reference line at 1 (logistic
        models only); otherwise estimates with a reference line at 0.
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
    est, se, is_logit = _coefficients(result)
    alpha = check_alpha("plot_coefficients()", alpha)
    if odds and not is_logit:
        raise TypeError("odds=True needs a logistic model; plot a linear model with odds=False.")
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
    if odds:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("Odds ratio (log scale)")
        ax.set_title(f"Odds ratios with {level} confidence intervals")
    else:
        ax.set_xlabel("Estimate (log-odds)" if is_logit else "Estimate")
        ax.set_title(f"Fixed effects with {level} confidence intervals")
    ax.set_ylabel("Term")
    return ax

