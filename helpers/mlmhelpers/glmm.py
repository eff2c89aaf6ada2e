"""Generalised linear mixed models (binary outcomes, counts out of n, counts), as glmer.

:func:`fit_glmm` fits ``glmer(y ~ x + (terms | g) + ..., family = ...)`` by
maximum likelihood: the Laplace approximation (glmer's default) for any random
part the linear fitter takes - several factors, nested and crossed, random
slopes, ``||`` - or adaptive Gauss-Hermite quadrature (``nagq > 1``) where
glmer allows it, one scalar random term.  Families: binomial (links logit,
probit, cloglog; 0/1 outcomes, ``cbind(successes, failures)`` counts, or
proportions with ``weights=``) and Poisson (log link, with ``offset()``).  The
formula and the data go through the pipeline's first stages
(:mod:`mlmhelpers.modular`), the numerical work is :mod:`mlmhelpers._glmm`, and
the result is a :class:`GlmmResults`: the library's tables and plots take it
as they take a linear fit.  :func:`mlmhelpers.fit_logit_mixed` is this with the
binomial family and its logit link, the course's name for it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from . import _checks, _glmm
from ._family import make_family
from ._formula import model_spec
from ._frame import EXAMPLES, check_arguments, check_groups_argument, model_frame
from ._optimize import Attempt, FitRecord
from ._validate import check_alpha, is_whole, warn
from .linear import keyword_only_after_data
from .results import MixedResults, fit_terms

__all__ = ["fit_glmm", "GlmmResults", "rate_ratios", "overdispersion"]

_VPC_METHODS = ("latent", "simulation", "linearisation")
# variance of the standard logistic, normal and Gumbel distributions: the level-1
# variance of the latent response of the logit, probit and cloglog links
_LATENT = {"logit": math.pi**2 / 3, "probit": 1.0, "cloglog": math.pi**2 / 6}


def check_nagq(func, nagq):
    if not is_whole(nagq) or nagq < 1:
        raise ValueError(
            f"{func}: nagq must be a positive whole number, got {nagq!r}: use "
            "nagq=1 for the Laplace approximation (glmer's default) or e.g. nagq=25 for "
            "adaptive Gauss-Hermite quadrature (glmer's nAGQ = 25).")
    if nagq > 100:
        # as glmer (its GHrule stops at 100 nodes)
        raise ValueError(
            f"{func}: nagq={nagq} is too many quadrature points: like glmer's nAGQ "
            "it must be at most 100; nagq=25 is already accurate for a random-intercept model.")
    return int(nagq)


def _fit(func, formula, data, *, family, link, groups, nagq, weights, offset):
    nagq = check_nagq(func, nagq)
    fam = make_family(func, family, link)
    kind = fam.name
    check_arguments(func, formula, data, family=kind)
    check_groups_argument(func, groups, data, family=kind)
    spec = model_spec(func, formula, groups=groups, example=EXAMPLES[kind])
    frame = model_frame(func, spec, data, family=fam, weights=weights, offset=offset)
    if nagq > 1 and (len(frame.terms) != 1 or frame.terms[0].q != 1):
        raise ValueError(
            f"{func}: nagq={nagq} (adaptive Gauss-Hermite quadrature) works, as in glmer, "
            "only for a model with one scalar random term such as (1 | g); this model's "
            f"random part is {', '.join(t.name + ': ' + ' + '.join(t.names) for t in frame.terms)}."
            " Use the Laplace approximation, nagq=1.")
    try:
        problem = _glmm.GlmmProblem(frame, fam, nagq)
        out = _glmm.fit(problem)
    except (_glmm.PirlsFailure, RuntimeError) as exc:
        raise RuntimeError(
            f"{func}: the fit failed ({exc}). Check the outcome for groups or covariate "
            "patterns where it is always 0 or always 1 (separation), rescale covariates, or "
            "simplify the random part.") from None
    result = GlmmResults(frame, problem, out, family=fam, nagq=nagq)
    for category, msg in result._messages:
        # groups with one outcome are information, not a problem: the summary notes them
        # (once), and a warning as well would show the same sentence twice in a notebook
        if msg not in result._information:
            warn(msg, category)
    return result


@keyword_only_after_data
def fit_glmm(formula, data, *, family="binomial", link=None, groups=None, nagq=1,
             weights=None, offset=None):
    """Fit a generalised linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        lme4's formula with the random part, e.g. ``"immun ~ kid2p + (1 | comm/mom)"``,
        ``"use ~ age + (urban | district)"``, ``"deaths ~ uvb +
        offset(log(expected)) + (1 | region)"``, or the fixed part with
        ``groups=``.  A binomial response is a 0/1 column (or True/False),
        counts out of n as ``cbind(successes, failures)``, or a proportion
        with the numbers of trials as ``weights=``; a Poisson response is a
        column of counts.  ``offset(expr)`` adds a known term to the linear
        predictor (``offset(log(exposure))`` for rates).
    data : pandas.DataFrame
    family : {"binomial", "poisson"}, default "binomial"
    link : str, optional
        binomial: ``"logit"`` (default), ``"probit"`` or ``"cloglog"``;
        poisson: ``"log"``.
    groups : str, optional (by name)
        The grouping column, with the fixed part only in ``formula``.
    nagq : int, default 1
        1 is the Laplace approximation (glmer's default); more is adaptive
        Gauss-Hermite quadrature with that many nodes, for one scalar random
        term only (as glmer's ``nAGQ``).
    weights, offset : str or sequence, optional
        A column name or one value per row: prior weights (the trials of a
        proportion) and an offset added to the linear predictor.

    Returns
    -------
    GlmmResults

    Warns
    -----
    SingularFitWarning, ConvergenceWarning, UserWarning
        As the linear fitter; also a large estimate (separation), a huge
        variance, and for counts overdispersion (the Pearson chi-square is
        larger than its degrees of freedom: add an observation-level
        random effect).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> contra = mlm.load_dataset("contraception")
    >>> m = mlm.fit_glmm("use ~ age + urban + (urban | district)", contra)
    >>> m.family, m.link, round(m.llf, 2)
    ('binomial', 'logit', -1242.07)
    >>> mlm.random_effects(m).round(3)
         Groups         Name  Variance  Std.Dev.   Corr
    0  district  (Intercept)     0.384     0.620    NaN
    1  district   urban[T.Y]     0.564     0.751 -0.749
    """
    return _fit("fit_glmm", formula, data, family=family, link=link, groups=groups,
                nagq=nagq, weights=weights, offset=offset)


class GlmmResults(MixedResults):
    """Results of :func:`fit_glmm` and :func:`mlmhelpers.fit_logit_mixed` (as glmer's).

    Besides the attributes of every mixed model of the library (see
    :class:`mlmhelpers.results.MixedResults`: ``fe_params``, ``bse``,
    ``tvalues``, ``pvalues``, ``random_terms``, ``llf``, ``aic``, ``bic``,
    ``singular``, ``converged``, ``warnings``, ``optinfo``; with one random
    term ``cov_re``, ``ranef``, ``ranef_se``, ``ngroups``):

    Attributes
    ----------
    family, link : str
        ``"binomial"`` / ``"poisson"``; ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``.
    nagq : int
        Quadrature points (1 = Laplace).
    theta : ndarray
        lme4's covariance parameters (the random effects' SDs and correlations
        as the factor of their covariance matrix).
    var_re, sd_re : float
        One scalar random term: its variance and standard deviation.

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

    def __init__(self, frame, problem, out, *, family, nagq):
        theta, beta = problem.split(out.x)
        system = problem.system
        f, u = out.state["f"], out.state["u"]
        covs = []
        for k in range(len(frame.terms)):
            T = system.T(theta, k)
            covs.append(T @ T.T)
        terms = fit_terms(frame.terms, covs, system.modes(f, u),
                          lambda: system.conditional_covariances(theta, f, 1.0))
        stage = out.record
        attempts = list(stage.attempts) + [Attempt("Newton steps on glmer's deviance",
                                                   float(out.deviance), 0)]
        diag = _glmm._diagonal_mask(problem.qs)
        optinfo = FitRecord(theta=out.x, deviance=float(out.deviance),
                            evaluations=int(out.evaluations),
                            gradient=float(np.max(np.abs(out.gradient)))
                            if out.gradient is not None else float(stage.gradient),
                            attempts=attempts, boundary_checked=stage.boundary_checked,
                            boundary=[int(i) for i in np.flatnonzero(diag & (theta == 0))],
                            method="BFGS on the Laplace deviance, then Newton on glmer's")
        singular = bool(np.any(np.abs(theta[diag]) < _checks.SINGULAR_TOL))
        if out.gradient is not None and out.hessian is not None:
            scaled = _checks.scaled_gradient_from(out.gradient, out.hessian)
        else:
            scaled = float(stage.gradient) if not singular else 0.0
        self._scaled_gradient = scaled
        converged = bool(np.isfinite(out.deviance) and scaled < _checks.GRAD_TOL)
        self._set_common(frame=frame, beta=beta, vcov=out.vcov, llf=-0.5 * float(out.deviance),
                         terms=terms, converged=converged, singular=singular, notes=(),
                         optinfo=optinfo)
        self.family = family.name
        self.link = family.link.name
        self._family = family
        self.nagq = int(nagq)
        self.method = "Laplace" if nagq == 1 else f"AGQ({nagq})"
        self.theta = np.asarray(theta, float)
        self.outcome = frame.response
        self._offset, self._trials, self._weights = frame.offset, frame.n_trials, frame.weights
        self._offset_terms = list(getattr(frame, "offset_terms", []))
        self._fit, self._problem = out, problem
        self._messages = self._diagnose(out)
        self.warnings = [text for _, text in self._messages]

    # -- one scalar random term ------------------------------------------------------
    @property
    def var_re(self):
        """The variance of the random intercept (one scalar random term)."""
        return float(self._single("var_re").cov.iloc[0, 0])

    @property
    def sd_re(self):
        """The standard deviation of the random intercept (one scalar random term)."""
        return math.sqrt(self.var_re)

    # -- diagnostics -----------------------------------------------------------------
    def _diagnose(self, out):
        """The fit's messages as (warning class, text)."""
        notes, self._information = [], []
        lead = self.random_terms[0]
        if self.family == "binomial" and np.all(self._trials == 1):
            means = np.bincount(lead.codes, weights=self._y, minlength=lead.ngroups)
            means = means / lead.group_sizes.to_numpy()
            n0, n1 = int(np.sum(means == 0)), int(np.sum(means == 1))
            if n0 + n1:
                text = (f"{n0 + n1} of {lead.ngroups} {lead.factor} groups have the same "
                        f"outcome for every member ({n0} all 0, {n1} all 1). That is fine for "
                        "this model: their effects are pulled towards the average and have "
                        "wide intervals.")
                notes.append((UserWarning, text))
                self._information.append(text)
        bse = self.bse_fe
        big = self.fe_params[(self.fe_params.abs() > 10) | (bse > 50)]
        big = big.drop([c for c in big.index if c == "Intercept"], errors="ignore")
        if len(big) and self.family == "binomial":
            terms = ", ".join(f"{k} = {v:.3g} (SE {bse[k]:.3g})" for k, v in big.items())
            notes.append((UserWarning,
                f"Very large estimate(s): {terms}. The outcome is probably (almost) perfectly "
                "separated by this term: in one of its categories everybody (or nobody) has the "
                "outcome, so the maximum-likelihood estimate is infinite. Do not interpret it; "
                "merge categories or drop the term."))
        huge = [t for t in self.random_terms if np.max(np.diag(t.cov.to_numpy())) > 100]
        for t in huge:
            notes.append((UserWarning,
                f"The variance between {t.name} groups is huge "
                f"({np.max(np.diag(t.cov.to_numpy())):.3g}): the outcome is (almost) completely "
                "determined by the group, e.g. most groups have all 0 or all 1, so the variance "
                "cannot be estimated well. Check the data."))
        if self.singular:
            sing = [t for t in self.random_terms
                    if np.any(np.linalg.eigvalsh(t.cov.to_numpy()) < 1e-8)
                    or np.any(np.diag(t.cov.to_numpy()) == 0)]
            notes.append((_checks.SingularFitWarning, _checks.singular_message(
                [(t.name, t.names, t.cov.to_numpy()) for t in (sing or self.random_terms)])))
        for text in out.messages:
            notes.append((UserWarning, text[0].upper() + text[1:] + "."))
        if not self.converged:
            notes.append((_checks.ConvergenceWarning,
                          _checks.convergence_message(self._scaled_gradient)))
        if self.family == "poisson" or (self.family == "binomial" and np.any(self._trials > 1)):
            od = overdispersion(self)
            if od["p"] < 0.05 and od["ratio"] > 1:
                notes.append((UserWarning,
                    f"Overdispersion: the Pearson chi-square is {od['chisq']:.1f} on "
                    f"{od['df']:.0f} residual degrees of freedom (ratio {od['ratio']:.2f}, "
                    f"p {_p_short(od['p'])}): the counts vary more than the model allows, so "
                    "its standard errors are too small. Add an observation-level random "
                    "effect, a column with one level per row, e.g. "
                    "data['obs'] = range(len(data)) and + (1 | obs) in the formula."))
        return notes

    def _summary_header(self):
        method = ("Laplace Approximation" if self.nagq == 1
                  else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}")
        return [f"Generalized linear mixed model fit by maximum likelihood ({method})",
                f" Family: {self.family}  ( {self.link} )"]

    # -- fitted values -----------------------------------------------------------------
    def _linear_predictor(self, include_random=True):
        eta = self._fixed_part() + self._offset
        if include_random:
            eta = eta + self._random_part_of_rows()
        return eta

    @property
    def fittedvalues(self):
        """Fitted means (probabilities or expected counts), group effects included."""
        return pd.Series(self._family.linkinv(self._linear_predictor()), index=self.rows,
                         name="fitted")

    def scaled_residuals(self):
        """Pearson residuals, as glmer's summary shows them."""
        mu = self._family.linkinv(self._linear_predictor())
        return (self._y - mu) * np.sqrt(self._weights / self._family.variance(mu))

    @property
    def resid_pearson(self):
        return pd.Series(self.scaled_residuals(), index=self.rows, name="pearson")

    def predict(self, exog=None, which="response", include_random=True, offset=None):
        """Predicted probabilities / expected counts, or the linear predictor.

        Parameters
        ----------
        exog : pandas.DataFrame, optional
            New data with the covariates (and the grouping columns when
            ``include_random``).  Default: the rows used in the fit.
        which : {"response", "probability", "link"}
            ``"response"`` (``"probability"`` is the same for a binomial model)
            for the mean, ``"link"`` for the linear predictor (log-odds, log
            rate).
        include_random : bool, default True
            Add the conditional modes of each row's group effects (0 for groups
            not seen in the fit).  With False the prediction is for an
            average group.
        offset : float or sequence, optional
            New data only: an offset given as ``offset=`` at the fit (an
            ``offset()`` term of the formula is computed from ``exog``).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> import pandas as pd, mlmhelpers as mlm
        >>> m = mlm.fit_logit_mixed("use ~ urban + (1 | district)",
        ...                         mlm.load_dataset("contraception"))
        >>> new = pd.DataFrame({"urban": ["N", "Y"]})
        >>> m.predict(new, include_random=False).round(3).tolist()
        [0.332, 0.488]
        """
        if which not in ("response", "probability", "link"):
            raise ValueError(
                f"predict(): which must be 'response' (or 'probability'), or 'link', got "
                f"{which!r}.")
        if which == "probability" and self.family != "binomial":
            raise ValueError("predict(): which='probability' is for binomial models; use "
                             "which='response' for the expected counts.")
        if exog is None:
            eta = self._linear_predictor(include_random)
            index = self.rows
        else:
            if not isinstance(exog, pd.DataFrame):
                raise TypeError("predict(): exog must be a pandas DataFrame with the model's "
                                "covariates.")
            eta = self._design(exog) @ self.fe_params.to_numpy()
            eta = eta + self._new_offset(exog, offset)
            if include_random:
                eta = eta + self._random_part(exog)
            index = exog.index
        if which == "link":
            name = {"logit": "log-odds", "log": "log-rate"}.get(self.link, "linear predictor")
            return pd.Series(eta, index=index, name=name)
        name = "probability" if self.family == "binomial" else "expected count"
        return pd.Series(self._family.linkinv(eta), index=index, name=name)

    def _new_offset(self, exog, offset):
        from ._frame import _evaluate

        out = np.zeros(len(exog))
        for text in self._offset_terms:
            out = out + _evaluate("predict()", text, exog, "the offset")
        if offset is not None:
            out = out + np.broadcast_to(np.asarray(offset, float), out.shape)
        return out

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
            raise TypeError("at must be a dict such as {'age': 0, 'urban': 'Y'} or a "
                            "one-row DataFrame.")
        return self._design(frame)[0]

    # -- variance partition coefficient ------------------------------------------
    def vpc(self, method="latent", at=None, n_sim=100_000, seed=0):
        """Variance partition coefficient; see :func:`mlmhelpers.vpc`.

        Parameters
        ----------
        method : {"latent", "simulation", "linearisation"}
            ``"latent"`` (default): the share of the variance of a latent
            continuous response that lies between groups, ``sigma2_u /
            (sigma2_u + pi^2 / 3)`` for the logit link (1 for probit, pi^2 / 6
            for cloglog); it does not depend on the covariates.  With several
            random intercepts, a Series: one share per level and the residual.
            ``"simulation"`` (Goldstein, Browne and Rasbash 2002; logit, one
            random intercept): draw ``n_sim`` group effects, compute ``p =
            expit(x'beta + u)`` for the pattern ``at`` and return ``var(p) /
            (var(p) + mean(p (1 - p)))``.  ``"linearisation"`` (first-order
            Taylor expansion at ``u = 0``; logit, one random intercept):
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
        float, or a Series for several random intercepts

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
        if self.family != "binomial":
            raise ValueError(
                "vpc(): a Poisson model has no single VPC: the level-1 variance of counts "
                "depends on their mean. Compare the random-effect variances "
                "(random_effects(m)) on the log scale instead.")
        slopes = [t.name for t in self.random_terms if t.names != ["(Intercept)"]]
        if slopes:
            raise ValueError(
                f"vpc(): the random part of {', '.join(slopes)} has slopes, so the variance "
                "between groups changes with the covariate; there is no single VPC. Use a "
                "model with random intercepts only.")
        level1 = _LATENT[self.link]
        if len(self.random_terms) > 1:
            if method != "latent" or at is not None:
                raise ValueError("vpc(): a model with several random terms has the latent "
                                 "VPC only: vpc(m) (a share per level).")
            var = {t.name: float(t.cov.iloc[0, 0]) for t in self.random_terms}
            var["Residual (latent)"] = level1
            total = sum(var.values())
            return pd.Series({k: v / total for k, v in var.items()}, name="vpc")
        s2 = self.var_re
        if method == "latent":
            if at is not None:
                raise ValueError(
                    "The latent-variable VPC does not depend on covariates; drop at= or use "
                    "method='simulation' or 'linearisation'.")
            return float(s2 / (s2 + level1))
        if self.link != "logit":
            raise ValueError(f"vpc(): method={method!r} is written for the logit link; use "
                             "method='latent'.")
        eta = float(self._pattern_row(at) @ self.fe_params.to_numpy())
        from scipy import special

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
        groups = (f"ngroups={self.ngroups}" if len(self.random_terms) == 1
                  else f"ngrps={self.ngrps.to_dict()}")
        return (f"<{type(self).__name__}: {self.lme4_formula}, {self.family} ({self.link}), "
                f"nobs={self.nobs}, {groups}, llf={self.llf:.3f}, {status}>")


def _p_short(p):
    return f"< 0.001" if p < 0.001 else f"= {p:.3f}"


def overdispersion(result):
    """Is there more variation in the counts than the model allows?

    The Pearson chi-square of the fit against its residual degrees of
    freedom (observations minus parameters), as the GLMM FAQ's
    ``overdisp_fun``: a ratio well above 1 with a small p-value means
    overdispersion, whose usual remedy in a mixed model is an
    observation-level random effect, ``+ (1 | obs)`` with one level per row.

    Parameters
    ----------
    result : GlmmResults
        A Poisson fit (or binomial counts out of n).

    Returns
    -------
    pandas.Series
        ``chisq``, ``df``, ``ratio`` and ``p`` (upper tail of chi-square(df)).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_glmm("deaths ~ uvb + offset(log(expected)) + (1 | region)",
    ...                  mlm.load_dataset("mmmec"), family="poisson")
    >>> od = mlm.overdispersion(m)
    >>> list(od.index)
    ['chisq', 'df', 'ratio', 'p']
    """
    if not isinstance(result, GlmmResults):
        raise TypeError(
            "overdispersion() checks counts: pass a model fitted with fit_glmm(..., "
            f"family='poisson') (or binomial counts), not {type(result).__name__}.")
    if result.family == "binomial" and np.all(result._trials == 1):
        raise ValueError(
            "overdispersion(): 0/1 outcomes cannot be overdispersed; the check is for counts "
            "(poisson) and counts out of n (cbind(successes, failures)).")
    chisq = float(np.sum(result.scaled_residuals() ** 2))
    df = float(result.df_resid)
    return pd.Series({"chisq": chisq, "df": df, "ratio": chisq / df,
                      "p": float(stats.chi2.sf(chisq, df))}, name="overdispersion")


def rate_ratios(result, alpha=0.05):
    """Rate ratios of a Poisson model (log link) with their confidence intervals.

    Each fixed effect ``b`` becomes ``exp(b)``: the factor by which the
    expected count (the rate, with an offset of log exposure) changes for a
    one-unit increase in the covariate, for a given group.  The intervals are
    ``exp(b -/+ 1.96 SE)``.

    Parameters
    ----------
    result : GlmmResults
        A Poisson fit with the log link.
    alpha : float, default 0.05

    Returns
    -------
    pandas.DataFrame indexed by term, columns ``rate ratio``, ``lower``, ``upper``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_glmm("deaths ~ uvb + offset(log(expected)) + (1 | region)",
    ...                  mlm.load_dataset("mmmec"), family="poisson")
    >>> list(mlm.rate_ratios(m).columns)
    ['rate ratio', 'lower', 'upper']
    """
    if not isinstance(result, GlmmResults) or result.link != "log":
        kind = getattr(result, "family", type(result).__name__)
        raise TypeError(
            "rate_ratios() needs a Poisson model with the log link (fit_glmm(..., "
            f"family='poisson')); this is a {kind} model"
            + (": use odds_ratios() for a logistic one." if kind == "binomial" else "."))
    alpha = check_alpha("rate_ratios()", alpha)
    q = stats.norm.ppf(1 - alpha / 2)
    est, se = result.fe_params, result.bse_fe
    return pd.DataFrame({"rate ratio": np.exp(est), "lower": np.exp(est - q * se),
                         "upper": np.exp(est + q * se)})
