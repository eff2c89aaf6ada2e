"""Stage 6 of fitting: one results class (lme4's ``mkMerMod``).

:class:`MixedResults` holds what every fitted mixed model of the library
has - the fixed effects with their covariance, the random part as a list of
fitted random terms (:class:`RandomTermFit`: one per covariance block, each
with its covariance matrix and its groups' predicted effects), the fit
criteria, the convergence evidence and the warnings - and implements the
tables, the group effects, the summary and the predictions once, for any
number of random terms.  :class:`LinearMixedResults` (from
:func:`mlmhelpers.fit_mixedlm`) and :class:`mlmhelpers.LogitMixedResults`
(from :func:`mlmhelpers.fit_logit_mixed`) add what is particular to each.

A model with one random term (the course's two-level models) also has the
single-term conveniences students know from statsmodels: ``cov_re``,
``ranef``, ``ranef_se``, ``ngroups``, ``groups``, ``re_names``,
``group_sizes``.  With several terms those ask for a choice and say how
to make it: ``result.random_terms["lea"].cov``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import _format
from ._validate import check_alpha, is_number, warn

__all__ = ["MixedResults", "LinearMixedResults", "RandomTermFit", "RandomTerms"]

_RANDOM_EFFECTS_TRAP = (
    "This result has no .random_effects attribute, to avoid a trap: in statsmodels it "
    "means the per-group effects, in this library random_effects(m) is the variance "
    "table. Use mlm.random_effects(m) (or m.varcorr()) for the variances, m.ranef for "
    "each group's predicted effects (mlm.group_effects(m) with intervals), or "
    "m.statsmodels.random_effects for statsmodels' own dictionary.")


class RandomTermFit:
    """One fitted random term: ``(terms | factor)`` with its estimates.

    Attributes
    ----------
    name : str
        lme4's name in ``VarCorr`` (``school``, ``school:lea``, ``g.1``).
    factor : str
        The grouping factor (``school``, ``school:lea``).
    names : list of str
        The random terms: ``(Intercept)``, ``standlrt``.
    cov : pandas.DataFrame
        Covariance matrix of the term's random effects.
    ranef : pandas.DataFrame
        Predicted effects (conditional modes), one row per group.
    ranef_se : pandas.DataFrame
        Their conditional standard errors (lme4's ``condVar``).
    group_sizes : pandas.Series
        Rows per group.
    """

    def __init__(self, term, cov, b, condvar):
        self.name = term.name
        self.factor = term.factor
        self.columns = tuple(term.columns)
        self.names = list(term.names)
        self.cov = pd.DataFrame(np.asarray(cov, float), index=self.names, columns=self.names)
        self.ranef = pd.DataFrame(np.asarray(b, float), index=term.labels, columns=self.names)
        self.group_sizes = term.sizes
        self._term = term
        self._condvar = condvar  # () -> (m, q, q), or the array

    @property
    def ngroups(self):
        return len(self.ranef)

    @property
    def q(self):
        return len(self.names)

    @property
    def condvar(self):
        """Conditional covariance matrices of the effects, (groups, q, q)."""
        if callable(self._condvar):
            self._condvar = np.asarray(self._condvar(), float)
        return self._condvar

    @property
    def ranef_se(self):
        se = np.sqrt(np.clip(np.diagonal(self.condvar, axis1=1, axis2=2), 0, None))
        return pd.DataFrame(se, index=self.ranef.index, columns=self.names)

    @property
    def codes(self):
        return self._term.codes

    @property
    def Z(self):
        return self._term.Z

    def effects_of_rows(self):
        """Z_i b_group(i) for every row of the fit."""
        return np.einsum("ik,ik->i", self.Z, self.ranef.to_numpy()[self.codes])

    def __repr__(self):
        return (f"<RandomTermFit ({' + '.join(self.names)} | {self.name}): "
                f"{self.ngroups} groups>")


class RandomTerms(tuple):
    """The fitted random terms of a model, in lme4's order; also indexed by name.

    >>> # m.random_terms[0], m.random_terms["lea"], [t.name for t in m.random_terms]
    """

    def __getitem__(self, key):
        if isinstance(key, str):
            for term in self:
                if term.name == key:
                    return term
            raise KeyError(
                f"{key!r} is not a random term of this model; its terms are "
                f"{', '.join(repr(t.name) for t in self)}.")
        return tuple.__getitem__(self, key)

    @property
    def names(self):
        return [t.name for t in self]


class _LazyCondvar:
    """Conditional variances of all terms, computed once on first use."""

    def __init__(self, provider):
        self._provider = provider
        self._value = None

    def term(self, k):
        def get():
            if self._value is None:
                self._value = list(self._provider())
            return self._value[k]
        return get


def fit_terms(frame_terms, covs, b, condvar):
    """RandomTermFit per term from the model frame's terms and the estimates."""
    lazy = _LazyCondvar(condvar)
    return RandomTerms(RandomTermFit(t, c, bk, lazy.term(k))
                       for k, (t, c, bk) in enumerate(zip(frame_terms, covs, b)))


class MixedResults:
    """What every fitted mixed model of the library has (see the module docstring).

    Attributes
    ----------
    formula : str
        The fixed part, ``"y ~ x"``; ``lme4_formula`` the whole model as lme4
        writes it.
    fe_params : pandas.Series
        Fixed effects, named as patsy names the terms (``Intercept``,
        ``schgend[T.boysch]``).
    bse_fe (alias ``bse``), tvalues, pvalues : pandas.Series
        Standard errors (lme4's), Wald statistics and two-sided normal p-values.
    cov_params_fe : pandas.DataFrame
        Covariance matrix of the fixed effects (lme4's ``vcov()``).
    random_terms : RandomTerms
        The fitted random terms (:class:`RandomTermFit`), also by name:
        ``m.random_terms["school"].cov``.
    llf, deviance, aic, bic : float
        Log-likelihood, ``-2 llf``, and the information criteria.
    nobs, k_params, df_resid : int
    ngrps : pandas.Series
        Number of groups of each grouping factor (lme4's ``ngrps()``).
    singular, converged : bool
    warnings : list of str
        What the fit warned about.
    optinfo : FitRecord or None
        The optimiser's evidence: evaluations, the largest projected
        gradient, the attempts (restarts) tried, the boundary check.
    cov_re, ranef, ranef_se, ngroups, groups, re_names, group_sizes
        Conveniences for a model with one random term (see the module
        docstring).
    """

    _statistic = "t value"
    _p_in_table = False
    family = "gaussian"
    reml = False

    # -- construction ------------------------------------------------------------
    def _set_common(self, *, frame, beta, vcov, llf, terms, converged, singular, notes,
                    optinfo=None):
        names = list(frame.exog_names)
        self.formula = frame.fixed
        self.lme4_formula = frame.formula
        self.response = frame.response
        self.exog_names = names
        self.fe_params = pd.Series(np.asarray(beta, float), index=names, name="Estimate")
        self.cov_params_fe = pd.DataFrame(np.asarray(vcov, float), index=names, columns=names)
        self.random_terms = RandomTerms(terms)
        self.llf = float(llf)
        self.nobs = int(frame.n)
        self.rows = frame.rows
        self.converged = bool(converged)
        self.singular = bool(singular)
        self.warnings = list(notes)
        self.optinfo = optinfo
        self._X, self._y = frame.X, frame.y
        self._design_info = frame.design_info
        self._variables = frame.variables
        self._frame = frame.frame

    # -- one random term: the conveniences -------------------------------------------
    def _single(self, attribute):
        if len(self.random_terms) == 1:
            return self.random_terms[0]
        names = self.random_terms.names
        raise AttributeError(
            f"`{attribute}` is for a model with one random term; this one has "
            f"{len(names)} ({', '.join(names)}). Ask for one of them, e.g. "
            f"result.random_terms[{names[-1]!r}].{_TERM_ATTRIBUTE.get(attribute, attribute)}, "
            "or use the tables, which show every term: random_effects(result), "
            "group_effects(result).")

    @property
    def groups(self):
        """The grouping column (one random term)."""
        return self._single("groups").factor

    @property
    def re_names(self):
        """The random terms' names, ``(Intercept)``, ``standlrt`` (one random term)."""
        return list(self._single("re_names").names)

    @property
    def cov_re(self):
        """Covariance matrix of the random effects (one random term)."""
        return self._single("cov_re").cov

    @property
    def ranef(self):
        """Predicted group effects, one row per group (one random term)."""
        return self._single("ranef").ranef

    @property
    def ranef_se(self):
        """Conditional standard errors of ``ranef`` (one random term)."""
        return self._single("ranef_se").ranef_se

    @property
    def condvar(self):
        """Conditional covariances of ``ranef``, (groups, q, q) (one random term)."""
        return self._single("condvar").condvar

    @property
    def ngroups(self):
        """Number of groups (one random term; ``ngrps`` for any model)."""
        return self._single("ngroups").ngroups

    @property
    def group_sizes(self):
        """Rows per group (one random term)."""
        return self._single("group_sizes").group_sizes

    @property
    def _codes(self):
        return self._single("groups").codes

    @property
    def _Z(self):
        return self._single("re_names").Z

    @property
    def ngrps(self):
        """Number of groups of each grouping factor, as lme4's ``ngrps()``."""
        out = {}
        for term in self.random_terms:
            out.setdefault(term.factor, term.ngroups)
        return pd.Series(out, name="groups", dtype=int)

    @property
    def re_blocks(self):
        """[(lme4's name of the term, [term names])] for every random term."""
        return [(t.name, list(t.names)) for t in self.random_terms]

    # -- derived quantities --------------------------------------------------------
    @property
    def bse_fe(self):
        return pd.Series(np.sqrt(np.diag(self.cov_params_fe.to_numpy())),
                         index=self.exog_names, name="Std. Error")

    @property
    def bse(self):
        """Standard errors of the fixed effects (the same as ``bse_fe``)."""
        return self.bse_fe

    @property
    def tvalues(self):
        return (self.fe_params / self.bse_fe).rename(self._statistic)

    @property
    def pvalues(self):
        """Two-sided p-values of the Wald statistics against the normal distribution."""
        return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues.to_numpy())),
                         index=self.exog_names, name="Pr(>|z|)")

    @property
    def n_variance_params(self):
        return sum(t.q * (t.q + 1) // 2 for t in self.random_terms)

    @property
    def k_params(self):
        """Number of estimated parameters (lme4's ``logLik()`` df)."""
        return len(self.exog_names) + self.n_variance_params + (
            1 if self.family == "gaussian" else 0)

    @property
    def deviance(self):
        return -2.0 * self.llf

    @property
    def aic(self):
        return _format.criteria(self.llf, self.k_params, self.nobs)[0]

    @property
    def bic(self):
        return _format.criteria(self.llf, self.k_params, self.nobs)[1]

    @property
    def df_resid(self):
        return self.nobs - self.k_params

    @property
    def params(self):
        """Fixed effects followed by the random-part variances and covariances."""
        names, values = [], []
        for term in self.random_terms:
            cov = term.cov.to_numpy()
            for i, a in enumerate(term.names):
                for j in range(i + 1):
                    names.append(f"Var({term.name}: {a})" if i == j
                                 else f"Cov({term.name}: {term.names[j]}, {a})")
                    values.append(cov[i, j])
        return pd.concat([self.fe_params, pd.Series(values, index=names)]).rename("params")

    @property
    def random_effects(self):
        raise AttributeError(_RANDOM_EFFECTS_TRAP)

    # -- tables ------------------------------------------------------------------------
    def conf_int(self, alpha=0.05):
        """Wald confidence intervals for the fixed effects.

        Parameters
        ----------
        alpha : float, default 0.05
            1 - confidence level (0.05 gives 95% intervals).

        Returns
        -------
        pandas.DataFrame with columns ``lower`` and ``upper``, indexed by term.
        """
        alpha = check_alpha("conf_int()", alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame({"lower": self.fe_params - z * self.bse_fe,
                             "upper": self.fe_params + z * self.bse_fe})

    def cov_params(self):
        """Covariance matrix of the fixed effects (DataFrame)."""
        return self.cov_params_fe.copy()

    def fixed_effects(self):
        """The fixed-effects table; see :func:`mlmhelpers.fixed_effects`."""
        out = pd.DataFrame({"Estimate": self.fe_params, "Std. Error": self.bse_fe,
                            self._statistic: self.tvalues})
        if self._p_in_table:
            out["Pr(>|z|)"] = self.pvalues
        out.index = pd.Index(self.exog_names, dtype=object)
        return _format.Table(out)

    def varcorr(self):
        """Variances, SDs and correlations of the random part (lme4's ``VarCorr``).

        The table :func:`mlmhelpers.random_effects` returns: one row per term
        of every random term, then the residual (linear models).
        """
        rows = []
        for term in self.random_terms:
            cov = term.cov.to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            for k, name in enumerate(term.names):
                corr = (np.nan if k == 0 or sd[0] == 0 or sd[k] == 0
                        else cov[0, k] / (sd[0] * sd[k]))
                rows.append(dict(Groups=term.name, Name=name, Variance=cov[k, k],
                                 **{"Std.Dev.": sd[k]}, Corr=corr))
        residual = self._residual_variance()
        if residual is not None:
            rows.append(dict(Groups="Residual", Name="", Variance=residual,
                             **{"Std.Dev.": float(np.sqrt(residual))}, Corr=np.nan))
        out = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
        out["Groups"] = out["Groups"].astype(object)
        out["Name"] = out["Name"].astype(object)
        return out

    def _residual_variance(self):
        return None

    def group_effects(self, alpha=0.05):
        """Predicted group effects with intervals; see :func:`mlmhelpers.group_effects`.

        With several random terms the table starts with a ``factor`` column
        (lme4's name of the term each row belongs to).
        """
        alpha = check_alpha("group_effects()", alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        parts = []
        for term in self.random_terms:
            ses = term.ranef_se
            for name in term.names:
                eff = term.ranef[name].to_numpy(dtype=float)
                se = ses[name].to_numpy(dtype=float)
                rank = np.empty(len(eff), dtype=int)
                rank[np.argsort(eff, kind="stable")] = np.arange(1, len(eff) + 1)
                parts.append(pd.DataFrame({
                    "factor": term.name, "group": term.ranef.index.to_numpy(),
                    "term": name, "effect": eff, "se": se, "lower": eff - z * se,
                    "upper": eff + z * se, "rank": rank}))
        out = pd.concat(parts, ignore_index=True)
        for col in ("factor", "term"):
            out[col] = out[col].astype(object)
        if len(self.random_terms) == 1:
            out = out.drop(columns="factor")
        return out

    def summary(self):
        """The model laid out like lme4's ``summary()`` (printable text)."""
        return _format.summary_text(self)

    def _model_info(self):
        """What a likelihood-ratio test needs to know about this fit."""
        return dict(llf=float(self.llf), npar=int(self.k_params), nobs=int(self.nobs),
                    rows=pd.Index(self.rows), reml=bool(self.reml), family=self.family,
                    mixed=True, n_variance_params=int(self.n_variance_params),
                    response=self.response, nagq=getattr(self, "nagq", None))

    # -- predictions ------------------------------------------------------------------
    def _fixed_part(self):
        return self._X @ self.fe_params.to_numpy()

    def _random_part_of_rows(self):
        out = np.zeros(self.nobs)
        for term in self.random_terms:
            out += term.effects_of_rows()
        return out

    def _design(self, frame):
        import patsy

        try:
            (X,) = patsy.build_design_matrices([self._design_info], frame, NA_action="raise")
        except patsy.PatsyError as exc:
            raise ValueError(
                f"Could not build the model's covariates {list(self._variables)} from the new "
                f"data: {exc}") from None
        return np.asarray(X, dtype=float)

    def _random_part(self, exog):
        """Z b for new rows: every term's group effects (0 for groups not in the fit)."""
        out = np.zeros(len(exog))
        for term in self.random_terms:
            missing = [c for c in term.columns if c not in exog.columns]
            if missing:
                raise ValueError(
                    f"exog has no {missing[0]!r} column: add it, or use include_random=False "
                    "for an average group.")
            pos = term.ranef.index.get_indexer(term._term.keys(exog))
            unseen = int((pos < 0).sum())
            if unseen:
                warn(f"predict(): {unseen} of {len(exog)} rows belong to {term.name} groups "
                     "not in the fit (check the ids and their type, e.g. 1 vs '1'); they get "
                     "the average group effect 0.")
            b = np.vstack([term.ranef.to_numpy(), np.zeros((1, term.q))])[pos]
            try:
                Z = term._term.design(exog)
            except Exception as exc:  # patsy's errors: say which term
                raise ValueError(
                    f"Could not build the random part {' + '.join(term.names)} of "
                    f"{term.name} from the new data: {exc}") from None
            out += np.einsum("ik,ik->i", Z, b)
        return out


# the attribute of a RandomTermFit each convenience stands for
_TERM_ATTRIBUTE = {"cov_re": "cov", "re_names": "names", "groups": "factor",
                   "condvar": "condvar", "ngroups": "ngroups", "var_re": "cov"}


class LinearMixedResults(MixedResults):
    """Results of :func:`mlmhelpers.fit_mixedlm` (a linear mixed model, as ``lmer``).

    Besides the attributes of every mixed model (``fe_params``, ``bse``,
    ``random_terms``, ``llf``, ``aic``, ``bic``, ``warnings``, ``optinfo``,
    ... - see :class:`MixedResults`) it has ``scale`` (the residual
    variance), ``fittedvalues`` and ``resid`` (level 1, group effects
    included), ``reml``, lme4's ``theta`` and, for one random term and built
    on first use, ``statsmodels``: the same fit as a statsmodels
    ``MixedLMResults`` for going further.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_mixedlm("normexam ~ standlrt", mlm.load_dataset("tutorial"),
    ...                     groups="school")
    >>> type(m).__name__, m.nobs, m.ngroups
    ('LinearMixedResults', 4059, 65)
    >>> m.conf_int(alpha=0.1).round(3)
               lower  upper
    Intercept -0.063  0.068
    standlrt   0.543  0.584
    >>> list(m.ranef.columns), m.ranef["(Intercept)"].head(2).round(3).tolist()
    (['(Intercept)'], [0.374, 0.502])
    >>> chem = mlm.load_dataset("chem97")
    >>> m3 = mlm.fit_mixedlm("score ~ gcsecnt + (1 | lea/school)", chem)
    >>> m3.random_terms.names, m3.ngrps.to_dict()
    (['school:lea', 'lea'], {'school:lea': 2410, 'lea': 131})
    >>> round(float(m3.random_terms["lea"].cov.iloc[0, 0]), 4)
    0.0136
    """

    def __init__(self, frame, est, *, reml, optinfo=None, verdict=None):
        terms = fit_terms(frame.terms, est.covs, est.b, est.condvar)
        self._set_common(frame=frame, beta=est.beta, vcov=est.vcov, llf=-0.5 * est.dev,
                         terms=terms,
                         converged=True if verdict is None else verdict.converged,
                         singular=False if verdict is None else verdict.singular,
                         notes=() if verdict is None else verdict.notes, optinfo=optinfo)
        self.reml = bool(reml)
        self.method = "REML" if reml else "ML"
        self.scale = float(est.sigma2)
        self.theta = np.asarray(est.theta, dtype=float)
        self._model_frame = frame      # for profiles and refits (mlmhelpers.uncertainty)
        self._statsmodels = None

    @property
    def cov_re_unscaled(self):
        """``cov_re`` divided by the residual variance (one random term)."""
        cov = self.cov_re
        return cov / self.scale if self.scale > 0 else cov

    def _residual_variance(self):
        return self.scale

    def _summary_header(self):
        return ["Linear mixed model fit by REML" if self.reml
                else "Linear mixed model fit by maximum likelihood"]

    # -- fitted values ------------------------------------------------------------------
    @property
    def fittedvalues(self):
        """Fitted values including each group's predicted effects."""
        return pd.Series(self._fixed_part() + self._random_part_of_rows(), index=self.rows,
                         name="fitted")

    @property
    def resid(self):
        """Level-1 residuals: observed minus fitted (group effects included)."""
        return pd.Series(self._y - self.fittedvalues.to_numpy(), index=self.rows, name="resid")

    def scaled_residuals(self):
        return self.resid.to_numpy() / np.sqrt(self.scale)

    def predict(self, exog=None, include_random=True):
        """Predicted means.

        Parameters
        ----------
        exog : pandas.DataFrame, optional
            New data with the covariates (and the grouping columns when
            ``include_random``).  Default: the rows used in the fit.
        include_random : bool, default True
            Add each row's predicted group effects (0 for groups not in the
            fit); with False, the prediction for an average group.

        Returns
        -------
        pandas.Series
        """
        if exog is None:
            value = self._fixed_part()
            if include_random:
                value = value + self._random_part_of_rows()
            return pd.Series(value, index=self.rows, name="predicted")
        if not isinstance(exog, pd.DataFrame):
            raise TypeError("predict(): exog must be a pandas DataFrame with the model's "
                            "covariates.")
        value = self._design(exog) @ self.fe_params.to_numpy()
        if include_random:
            value = value + self._random_part(exog)
        return pd.Series(value, index=exog.index, name="predicted")

    # -- variance partition ---------------------------------------------------------------
    def vpc(self, at=None, **kwargs):
        """Variance partition coefficient; see :func:`mlmhelpers.vpc`."""
        if kwargs:
            raise TypeError(
                f"vpc(): unexpected argument(s) {', '.join(kwargs)} for a linear model. "
                "method=, n_sim= and seed= are for logistic models from fit_logit_mixed(); "
                "a linear random-intercept model has one VPC: vpc(result).")
        sigma2 = self.scale
        intercepts = all(t.names == ["(Intercept)"] for t in self.random_terms)
        if len(self.random_terms) > 1:
            if at is not None:
                raise TypeError("vpc(): a model with several random terms takes no `at`.")
            if not intercepts:
                slopes = [t.name for t in self.random_terms if t.names != ["(Intercept)"]]
                raise ValueError(
                    f"vpc(): the random part of {', '.join(slopes)} has slopes, so the "
                    "variance at that level changes with the covariate; there is no single "
                    "share. Use a model with random intercepts only, or compute it from "
                    "the terms' covariance matrices (result.random_terms[...].cov).")
            var = {t.name: float(t.cov.iloc[0, 0]) for t in self.random_terms}
            var["Residual"] = sigma2
            total = sum(var.values())
            return pd.Series({k: v / total for k, v in var.items()}, name="vpc")
        cov = self.cov_re.to_numpy()
        names = self.re_names
        if intercepts:
            if at is not None:
                raise ValueError("vpc(): `at` is only for random-slope models; this one "
                                 "has a random intercept only.")
            return float(cov[0, 0] / (cov[0, 0] + sigma2))
        slopes = ", ".join(n for n in names if n != "(Intercept)")
        if at is not None and (names[0] != "(Intercept)" or cov.shape[0] != 2):
            raise ValueError(
                f"vpc(): `at` works for a random intercept with one random slope; this "
                f"model's random part is {', '.join(names)}. Compute the level-2 variance "
                "at your covariate values from the covariance matrix result.cov_re instead.")
        if at is not None and not (is_number(at) and np.isfinite(at)):
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

    # -- statsmodels, for going further ---------------------------------------------------
    @property
    def statsmodels(self):
        """The same fit as a statsmodels ``MixedLMResults`` (one random term; built on
        first use).

        Its estimates are this fit's; its fixed-effect covariance
        (``bse_fe``, ``cov_params()``) is lme4's.
        """
        if len(self.random_terms) > 1:
            raise AttributeError(
                "A model with several random terms has no statsmodels equivalent built "
                "here; use its own tables (summary, random_effects, group_effects).")
        if self._statsmodels is None:
            from ._statsmodels import to_statsmodels
            self._statsmodels = to_statsmodels(self)
        return self._statsmodels

    @property
    def model(self):
        """The statsmodels ``MixedLM`` behind :attr:`statsmodels` (built on first use)."""
        return self.statsmodels.model

    def __repr__(self):
        groups = (f"ngroups={self.ngroups}" if len(self.random_terms) == 1
                  else f"ngrps={self.ngrps.to_dict()}")
        return (f"<LinearMixedResults: {self.lme4_formula}, nobs={self.nobs}, {groups}, "
                f"llf={self.llf:.3f}, {self.method}>")
