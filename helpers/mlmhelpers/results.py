"""The library's results classes: one model for linear and logistic mixed models.

:class:`MixedResults` holds what both kinds share - the fixed effects with
their covariance, the random part (``cov_re``, lme4's VarCorr table), the
predicted group effects with conditional standard errors, the fit criteria,
the warnings - and the methods that present them (``summary()``,
``fixed_effects()``, ``varcorr()``, ``group_effects()``, ``conf_int()``).
:class:`LinearMixedResults` (from :func:`mlmhelpers.fit_mixedlm`) and
:class:`mlmhelpers.LogitMixedResults` (from :func:`mlmhelpers.fit_logit_mixed`)
add what is particular to each.  The library's free functions (``summary``,
``fixed_effects``, ``random_effects``, ``vpc``, ``lr_test``, the plots) call
these methods, so a table is the same whichever way it is asked for.

The random part is kept as a list of blocks ``re_blocks = [(grouping
factor, [term names])]``, named as lme4's ``VarCorr()`` names them: one
block for one grouping factor, several for a model written with several
random terms (:class:`MultiLinearMixedResults`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from . import _format
from ._lmm import is_singular
from ._validate import check_alpha, is_number

__all__ = ["MixedResults", "LinearMixedResults", "MultiLinearMixedResults"]

_RANDOM_EFFECTS_TRAP = (
    "This result has no .random_effects attribute, to avoid a trap: in statsmodels it "
    "means the per-group effects, in this library random_effects(m) is the variance "
    "table. Use mlm.random_effects(m) (or m.varcorr()) for the variances, m.ranef for "
    "each group's predicted effects (mlm.group_effects(m) with intervals), or "
    "m.statsmodels.random_effects for statsmodels' own dictionary.")


class MixedResults:
    """What every fitted mixed model of the library has (see the module docstring).

    Attributes
    ----------
    formula : str
        The fixed part, ``"y ~ x"``; ``groups`` the grouping column.
    fe_params : pandas.Series
        Fixed effects, named as patsy names the terms (``Intercept``,
        ``schgend[T.boysch]``).
    bse_fe (alias ``bse``), tvalues, pvalues : pandas.Series
        Standard errors (lme4's), Wald statistics and two-sided normal p-values.
    cov_params_fe : pandas.DataFrame
        Covariance matrix of the fixed effects (lme4's ``vcov()``).
    cov_re : pandas.DataFrame
        Covariance matrix of the random effects (terms x terms).
    llf, deviance, aic, bic : float
        Log-likelihood, ``-2 llf``, and the information criteria.
    nobs, ngroups, k_params, df_resid : int
    ranef, ranef_se : pandas.DataFrame
        Predicted group effects (conditional modes, lme4's ``ranef()``) and
        their conditional standard errors: one row per group, one column per
        random term.
    singular, converged : bool
    warnings : list of str
        What the fit warned about.
    re_blocks : list of (str, list of str)
        The random part: (grouping column, random term names) per factor.
    """

    _statistic = "t value"
    _p_in_table = False
    family = "gaussian"
    reml = False

    # -- construction ------------------------------------------------------------
    def _set_common(self, *, design, beta, vcov, cov_re, llf, b, b_se, converged,
                    singular, notes):
        names = list(design.exog_names)
        self.formula = design.formula
        self.response = design.response
        self.groups = design.groups
        self.re_names = list(design.re_names)
        self.re_blocks = [(design.groups, list(design.re_names))]
        self.exog_names = names
        self.fe_params = pd.Series(np.asarray(beta, float), index=names, name="Estimate")
        self.cov_params_fe = pd.DataFrame(np.asarray(vcov, float), index=names, columns=names)
        self.cov_re = pd.DataFrame(np.asarray(cov_re, float), index=self.re_names,
                                   columns=self.re_names)
        self.llf = float(llf)
        self.nobs = int(design.n)
        self.ngroups = int(design.ngroups)
        labels = design.group_labels
        self.ranef = pd.DataFrame(np.asarray(b, float), index=labels, columns=self.re_names)
        self.ranef_se = pd.DataFrame(np.asarray(b_se, float), index=labels,
                                     columns=self.re_names)
        self.group_sizes = pd.Series(np.bincount(design.codes, minlength=design.ngroups),
                                     index=labels, name="n")
        self.rows = design.rows
        self.converged = bool(converged)
        self.singular = bool(singular)
        self.warnings = list(notes)
        self._X, self._y, self._codes, self._Z = design.X, design.y, design.codes, design.Z
        self._design_info = design.design_info
        self._re_design_info = design.re_design_info
        self._variables = design.variables
        self._frame = design.frame
        self._group_dtype = design.frame[design.groups].dtype

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
        q = len(self.re_names)
        return q * (q + 1) // 2

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
        cov = self.cov_re.to_numpy()
        names, values = [], []
        for i, a in enumerate(self.re_names):
            for j in range(i + 1):
                b = self.re_names[j]
                names.append(f"Var({self.groups}: {a})" if i == j
                             else f"Cov({self.groups}: {b}, {a})")
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

        The table :func:`mlmhelpers.random_effects` returns.
        """
        rows = []
        for group, names in self.re_blocks:
            cov = self.cov_re.loc[names, names].to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            for k, name in enumerate(names):
                if k == 0 or sd[0] == 0 or sd[k] == 0:
                    corr = np.nan
                else:
                    corr = cov[0, k] / (sd[0] * sd[k])
                rows.append(dict(Groups=group, Name=name, Variance=cov[k, k],
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
        """Predicted group effects with intervals; see :func:`mlmhelpers.group_effects`."""
        alpha = check_alpha("group_effects()", alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        labels = self.ranef.index.to_numpy()
        m, q = self.ranef.shape
        eff = self.ranef.to_numpy().T.ravel()            # term by term
        se = self.ranef_se.to_numpy().T.ravel()
        ranks = np.empty(m * q, dtype=int)
        for k in range(q):
            block = eff[k * m:(k + 1) * m]
            order = np.argsort(block, kind="stable")
            r = np.empty(m, dtype=int)
            r[order] = np.arange(1, m + 1)
            ranks[k * m:(k + 1) * m] = r
        out = pd.DataFrame({"group": np.tile(labels, q),
                            "term": np.repeat(np.asarray(self.re_names, dtype=object), m),
                            "effect": eff, "se": se, "lower": eff - z * se,
                            "upper": eff + z * se, "rank": ranks})
        out["term"] = out["term"].astype(object)
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

    # -- design for new data ----------------------------------------------------------
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
        """Z b for new rows: each row's group effects (0 for groups not in the fit)."""
        import warnings

        import patsy

        if self.groups not in exog.columns:
            raise ValueError(
                f"exog has no {self.groups!r} column: add it, or use include_random=False "
                "for an average group.")
        pos = self.ranef.index.get_indexer(exog[self.groups])
        unseen = int((pos < 0).sum())
        if unseen:
            warnings.warn(
                f"predict(): {unseen} of {len(exog)} rows belong to {self.groups} groups not "
                "in the fit (check the ids and their type, e.g. 1 vs '1'); they get the "
                "average group effect 0.", UserWarning, stacklevel=3)
        b = np.vstack([self.ranef.to_numpy(), np.zeros((1, len(self.re_names)))])[pos]
        if self._re_design_info is None:
            Z = np.ones((len(exog), 1))
        else:
            (Z,) = patsy.build_design_matrices([self._re_design_info], exog, NA_action="raise")
            Z = np.asarray(Z, dtype=float)
        return np.einsum("ik,ik->i", Z, b)


class LinearMixedResults(MixedResults):
    """Results of :func:`mlmhelpers.fit_mixedlm` (a linear mixed model, as ``lmer``).

    Besides the attributes of every mixed model (``fe_params``, ``bse``,
    ``cov_re``, ``llf``, ``aic``, ``bic``, ``ranef``, ``warnings``, ... - see
    :class:`MixedResults`) it has ``scale`` (the residual variance),
    ``fittedvalues`` and ``resid`` (level 1, group effects included),
    ``reml``, lme4's ``theta`` and, built on first use, ``statsmodels``: the
    same fit as a statsmodels ``MixedLMResults`` for going further.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m = mlm.fit_mixedlm("normexam ~ standlrt", mlm.load_dataset("tutorial"), "school")
    >>> type(m).__name__, m.nobs, m.ngroups
    ('LinearMixedResults', 4059, 65)
    >>> m.conf_int(alpha=0.1).round(3)
               lower  upper
    Intercept -0.063  0.068
    standlrt   0.543  0.584
    >>> list(m.ranef.columns), m.ranef["(Intercept)"].head(2).round(3).tolist()
    (['(Intercept)'], [0.374, 0.502])
    """

    def __init__(self, design, est, *, reml, theta, optimizer=None, notes=(), converged=True):
        se = np.sqrt(np.clip(np.diagonal(est["condvar"], axis1=1, axis2=2), 0, None))
        self._set_common(design=design, beta=est["beta"], vcov=est["vcov"],
                         cov_re=est["cov_re"], llf=-0.5 * est["dev"], b=est["b"], b_se=se,
                         converged=converged,
                         singular=is_singular(theta, len(design.re_names)),
                         notes=notes)
        self.reml = bool(reml)
        self.method = "REML" if reml else "ML"
        self.scale = float(est["sigma2"])
        self.theta = np.asarray(theta, dtype=float)
        self.cov_re_unscaled = self.cov_re / self.scale if self.scale > 0 else self.cov_re
        self.condvar = est["condvar"]
        self.optimizer = dict(optimizer or {})
        self._statsmodels = None

    def _residual_variance(self):
        return self.scale

    def _summary_header(self):
        return ["Linear mixed model fit by REML" if self.reml
                else "Linear mixed model fit by maximum likelihood"]

    # -- fitted values ------------------------------------------------------------------
    def _fitted_parts(self):
        fixed = self._X @ self.fe_params.to_numpy()
        rand = np.einsum("ik,ik->i", self._Z, self.ranef.to_numpy()[self._codes])
        return fixed, rand

    @property
    def fittedvalues(self):
        """Fitted values including each group's predicted effects."""
        fixed, rand = self._fitted_parts()
        return pd.Series(fixed + rand, index=self.rows, name="fitted")

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
            New data with the covariates (and the group column when
            ``include_random``).  Default: the rows used in the fit.
        include_random : bool, default True
            Add each row's predicted group effects (0 for groups not in the
            fit); with False, the prediction for an average group.

        Returns
        -------
        pandas.Series
        """
        if exog is None:
            fixed, rand = self._fitted_parts()
            return pd.Series(fixed + rand if include_random else fixed, index=self.rows,
                             name="predicted")
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
        cov = self.cov_re.to_numpy()
        sigma2 = self.scale
        names = self.re_names
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
        """The same fit as a statsmodels ``MixedLMResults`` (built on first use).

        Its estimates are this fit's; its fixed-effect covariance
        (``bse_fe``, ``cov_params()``) is lme4's.
        """
        if self._statsmodels is None:
            from .linear import _to_statsmodels
            self._statsmodels = _to_statsmodels(self)
        return self._statsmodels

    @property
    def model(self):
        """The statsmodels ``MixedLM`` behind :attr:`statsmodels` (built on first use)."""
        return self.statsmodels.model

    def __repr__(self):
        return (f"<LinearMixedResults: {_format.lme4_formula(self)}, nobs={self.nobs}, "
                f"ngroups={self.ngroups}, llf={self.llf:.3f}, {self.method}>")


def as_mixed(result):
    """``result`` as a :class:`MixedResults`, or None for anything else.

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


class MultiLinearMixedResults(LinearMixedResults):
    """A linear mixed model with several random-effects blocks (lme4 formula syntax).

    What :class:`LinearMixedResults` has, with the random part kept per block
    (``re_blocks``: lme4's ``VarCorr`` name of the grouping factor and the
    terms): ``cov_re`` is a dict {factor: covariance DataFrame}, ``ranef`` and
    ``ranef_se`` dicts {factor: DataFrame} (lme4's ``ranef()`` list),
    ``ngroups`` a dict {factor: number of levels}.  It is fitted by
    :func:`mlmhelpers.fit_mixedlm` when the formula has several random terms,
    e.g. ``"score ~ gcsecnt + (1 | lea) + (1 | school)"``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> chem = mlm.load_dataset("chem97")
    >>> m = mlm.fit_mixedlm("score ~ gcsecnt + (1 | lea/school)", chem)
    >>> m.ngroups
    {'school:lea': 2410, 'lea': 131}
    >>> mlm.vpc(m).round(3)
    school:lea    0.184
    lea           0.002
    Residual      0.814
    Name: vpc, dtype: float64
    """

    def __init__(self, design, blocks, est, *, reml, theta, formula, condvar_of,
                 optimizer=None, notes=(), converged=True, singular=False):
        names = list(design.exog_names)
        self.formula = design.formula
        self.lme4_formula = formula
        self.response = design.response
        self.groups = blocks[0].name
        self.re_blocks = [(b.name, list(b.terms)) for b in blocks]
        self.re_names = [t for b in blocks for t in b.terms]
        self.exog_names = names
        self.fe_params = pd.Series(np.asarray(est["beta"], float), index=names, name="Estimate")
        self.cov_params_fe = pd.DataFrame(np.asarray(est["vcov"], float), index=names,
                                          columns=names)
        self.llf = -0.5 * float(est["dev"])
        self.nobs = int(design.n)
        self.cov_re, self.ranef, self.ngroups = {}, {}, {}
        for b, e in zip(blocks, est["blocks"]):
            labels = pd.Index(b.labels, name=b.name)
            self.cov_re[b.name] = pd.DataFrame(e["cov_re"], index=b.terms, columns=b.terms)
            self.ranef[b.name] = pd.DataFrame(e["b"], index=labels, columns=b.terms)
            self.ngroups.setdefault(b.factor or b.name, int(b.m))  # as lme4's ngrps()
        self._condvar_of = condvar_of
        self._condvar = None
        self.rows = design.rows
        self.converged = bool(converged)
        self.singular = bool(singular)
        self.warnings = list(notes)
        self._X, self._y = design.X, design.y
        self._blocks = blocks
        self._design_info = design.design_info
        self._re_design_info = None
        self._variables = design.variables
        self._frame = design.frame
        self.reml = bool(reml)
        self.method = "REML" if reml else "ML"
        self.scale = float(est["sigma2"])
        self.theta = np.asarray(theta, dtype=float)
        self.optimizer = dict(optimizer or {})
        self._statsmodels = None

    @property
    def condvar(self):
        """{factor: (levels, q, q) conditional covariances of the effects} (on first use)."""
        if self._condvar is None:
            arrays = self._condvar_of()
            self._condvar = {b.name: a for b, a in zip(self._blocks, arrays)}
        return self._condvar

    @property
    def ranef_se(self):
        """{factor: DataFrame} conditional standard errors of ``ranef`` (lme4's condVar)."""
        out = {}
        for name, cv in self.condvar.items():
            se = np.sqrt(np.clip(np.diagonal(cv, axis1=1, axis2=2), 0, None))
            ref = self.ranef[name]
            out[name] = pd.DataFrame(se, index=ref.index, columns=ref.columns)
        return out

    @property
    def n_variance_params(self):
        return sum(len(t) * (len(t) + 1) // 2 for _, t in self.re_blocks)

    @property
    def params(self):
        names, values = [], []
        for group, terms in self.re_blocks:
            cov = self.cov_re[group].to_numpy()
            for i, a in enumerate(terms):
                for j in range(i + 1):
                    names.append(f"Var({group}: {a})" if i == j
                                 else f"Cov({group}: {terms[j]}, {a})")
                    values.append(cov[i, j])
        return pd.concat([self.fe_params, pd.Series(values, index=names)]).rename("params")

    def varcorr(self):
        """Variances, SDs and correlations per block (lme4's ``VarCorr``)."""
        rows = []
        for group, names in self.re_blocks:
            cov = self.cov_re[group].to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            for k, name in enumerate(names):
                corr = (np.nan if k == 0 or sd[0] == 0 or sd[k] == 0
                        else cov[0, k] / (sd[0] * sd[k]))
                rows.append(dict(Groups=group, Name=name, Variance=cov[k, k],
                                 **{"Std.Dev.": sd[k]}, Corr=corr))
        rows.append(dict(Groups="Residual", Name="", Variance=self.scale,
                         **{"Std.Dev.": float(np.sqrt(self.scale))}, Corr=np.nan))
        out = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
        out["Groups"] = out["Groups"].astype(object)
        out["Name"] = out["Name"].astype(object)
        return out

    def group_effects(self, alpha=0.05):
        """Predicted effects of every level of every factor; a ``factor`` column first."""
        alpha = check_alpha("group_effects()", alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        parts = []
        ses = self.ranef_se
        for group, terms in self.re_blocks:
            eff_df, se_df = self.ranef[group], ses[group]
            for term in terms:
                eff = eff_df[term].to_numpy()
                se = se_df[term].to_numpy()
                rank = np.empty(len(eff), dtype=int)
                rank[np.argsort(eff, kind="stable")] = np.arange(1, len(eff) + 1)
                parts.append(pd.DataFrame({
                    "factor": group, "group": eff_df.index.to_numpy(dtype=object),
                    "term": term, "effect": eff, "se": se, "lower": eff - z * se,
                    "upper": eff + z * se, "rank": rank}))
        out = pd.concat(parts, ignore_index=True)
        for col in ("factor", "term"):
            out[col] = out[col].astype(object)
        return out

    def _fitted_parts(self):
        fixed = self._X @ self.fe_params.to_numpy()
        rand = np.zeros(len(fixed))
        for blk in self._blocks:
            b = self.ranef[blk.name].to_numpy()[blk.codes]
            rand += np.einsum("ik,ik->i", blk.Z, b)
        return fixed, rand

    def predict(self, exog=None, include_random=True):
        """Predicted means (new data: for an average unit, ``include_random=False``)."""
        if exog is not None and include_random:
            raise ValueError(
                "predict(): for new data a model with several random factors predicts for "
                "an average unit only: use predict(exog, include_random=False).")
        return super().predict(exog, include_random=include_random)

    def vpc(self, at=None, **kwargs):
        """The share of the total variance at each level (random intercepts only).

        Returns a Series: one entry per grouping factor and ``Residual``,
        summing to 1.
        """
        if kwargs or at is not None:
            raise TypeError("vpc(): a model with several random factors takes no `at` "
                            "or other arguments.")
        slopes = [g for g, t in self.re_blocks if t != ["(Intercept)"]]
        if slopes:
            raise ValueError(
                f"vpc(): the random part of {', '.join(slopes)} has slopes, so the "
                "variance at that level changes with the covariate; there is no single "
                "share. Use a model with random intercepts only, or compute it from "
                "result.cov_re.")
        var = {g: float(self.cov_re[g].iloc[0, 0]) for g, _ in self.re_blocks}
        var["Residual"] = self.scale
        total = sum(var.values())
        return pd.Series({k: v / total for k, v in var.items()}, name="vpc")

    @property
    def statsmodels(self):
        raise AttributeError(
            "A model with several random factors has no statsmodels equivalent built "
            "here; use its own tables (summary, random_effects, group_effects).")

    def __repr__(self):
        return (f"<MultiLinearMixedResults: {self.lme4_formula}, nobs={self.nobs}, "
                f"llf={self.llf:.3f}, {self.method}>")
