"""How sure are we of a variance?  Profile-likelihood intervals and the parametric bootstrap.

A standard error is a poor summary of the uncertainty of a variance: its
sampling distribution is skewed and bounded by zero.  lme4 offers two better
tools, and this module gives both for the linear models of
:func:`mlmhelpers.fit_mixedlm`:

* :func:`confint` with ``method="profile"`` (lme4's ``confint(m, method =
  "profile")``): for each parameter, the values it can take before the
  deviance - minimised over every other parameter - rises by the
  chi-square(1) critical value (3.84 for 95%).  The interval is found by
  root-finding on the signed square root of that rise (lme4's *zeta*), so it
  is the exact profile interval that lme4 approximates with splines.
* :func:`bootstrap` (lme4's ``bootMer``): simulate new responses from the
  fitted model (:func:`simulate`), refit, and keep whatever statistic you
  like; :func:`confint` with ``method="boot"`` gives percentile intervals and
  :func:`bootstrap_lr_test` a likelihood-ratio test whose null distribution
  is simulated rather than assumed (the chi-square is wrong on the boundary).

:func:`vpc_confint` profiles the variance partition coefficient of a model
with random intercepts only: the VPC depends on theta alone, so its profile
is the profiled deviance along theta.

The parameters are named as lme4 names them with ``signames = FALSE``:
``sd_(Intercept)|school``, ``cor_standlrt.(Intercept)|school``, ``sigma``, then the fixed
effects.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["confint", "vpc_confint", "simulate", "bootstrap", "bootstrap_lr_test",
           "BootstrapResult", "BootstrapLRTest"]


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _linear(func, model, what="this"):
    """The LinearMixedResults behind ``model`` or a clear error."""
    from .tables import as_mixed
    from .results import LinearMixedResults
    mixed = as_mixed(model)
    if isinstance(mixed, LinearMixedResults) and getattr(mixed, "_model_frame", None) is not None:
        return mixed
    if mixed is not None and getattr(mixed, "family", None) in ("binomial", "poisson"):
        raise NotImplementedError(
            f"{func}(): {what} is implemented for linear mixed models (fit_mixedlm) only. "
            "For a model from fit_glmm or fit_logit_mixed use confint(model, method='wald') "
            "for the fixed effects (or odds_ratios / rate_ratios for their exponentials).")
    raise TypeError(
        f"{func}(): expected a model from mlmhelpers.fit_mixedlm(...), got "
        f"{type(model).__name__}. Fit the model with fit_mixedlm(formula, data, groups=...) "
        "and pass the result.")


def _check_level(func, level):
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"{func}(): `level` must be a number between 0 and 1, such as 0.95; "
                         f"got {level!r}.")
    return float(level)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# The deviance as a function of the model's parameters
# ---------------------------------------------------------------------------

def _deviance_model(frame, reml, y=None, X=None):
    from .modular import deviance_model
    if y is None and X is None:
        return deviance_model(frame, reml=reml)
    from dataclasses import replace
    return deviance_model(replace(frame, y=frame.y if y is None else y,
                                  X=frame.X if X is None else X), reml=reml)


class _Profiler:
    """The deviance of one fitted linear model over theta and sigma, and the
    profile of each parameter on lme4's scale (SDs, correlations, sigma,
    fixed effects)."""

    def __init__(self, m):
        if m.reml:
            raise ValueError("profiles are of the likelihood: refit by maximum likelihood first")
        self.m = m
        self.frame = m._model_frame
        self.model = _deviance_model(self.frame, reml=False)
        self.theta = np.asarray(m.theta, float)
        self.N = self.model.n
        self.dev0 = self.model.deviance(self.theta)
        self.sigma0 = float(np.sqrt(m.scale))
        self.params = self._names()

    # -- names, estimates ----------------------------------------------------------
    def _names(self):
        out = []
        for k, term in enumerate(self.m.random_terms):
            q = len(term.names)
            rows, cols = np.tril_indices(q)
            order = np.lexsort((rows, cols))        # lme4: column by column
            cov = term.cov.to_numpy()
            sd = np.sqrt(np.clip(np.diag(cov), 0, None))
            for i in order:
                a, b = rows[i], cols[i]
                if a == b:
                    out.append(dict(name=f"sd_{term.names[a]}|{term.name}", kind="sd",
                                    term=k, a=a, estimate=sd[a]))
                else:
                    est = cov[a, b] / (sd[a] * sd[b]) if sd[a] > 0 and sd[b] > 0 else np.nan
                    out.append(dict(name=f"cor_{term.names[a]}.{term.names[b]}|{term.name}",
                                    kind="cor", term=k, a=b, b=a, estimate=est))
        if self.sigma0 is not None:
            out.append(dict(name="sigma", kind="sigma", estimate=self.sigma0))
        for j, name in enumerate(self.m.exog_names):
            out.append(dict(name=name, kind="beta", j=j,
                            estimate=float(self.m.fe_params.iloc[j]),
                            se=float(self.m.bse_fe.iloc[j])))
        return out

    # -- deviance with sigma not profiled ------------------------------------------------
    def full(self, theta, sigma):
        """lme4's deviance at theta and sigma (the fixed effects profiled out)."""
        dev, pw = self.model.deviance_and_pwrss(theta)
        if not (np.isfinite(dev) and sigma > 0):
            return np.inf
        s2hat = pw / self.N
        return float(dev + self.N * (np.log(sigma ** 2 / s2hat) + s2hat / sigma ** 2 - 1.0))

    def _minimise(self, f, x0):
        x0 = np.asarray(x0, float)
        if len(x0) == 0:
            return f(x0), x0
        best = optimize.minimize(f, x0, method="BFGS", options=dict(gtol=1e-7))
        if not (best.success and np.isfinite(best.fun)):
            # a line search that failed (a kink, the edge of the domain): polish without
            # derivatives and keep the lower of the two
            res = optimize.minimize(f, best.x if np.isfinite(best.fun) else x0,
                                    method="Nelder-Mead",
                                    options=dict(xatol=1e-9, fatol=1e-10, maxiter=4000))
            if res.fun <= best.fun:
                best = res
        return float(best.fun), np.asarray(best.x)

    # -- the profile of each kind of parameter ------------------------------------------
    def profile_fn(self, par):
        """A function value -> minimum deviance with the parameter held there,
        warm-started from the last point it was called at."""
        kind = par["kind"]
        state = dict(x=None)
        if kind == "sigma":
            def f(v):
                g = lambda th: self.full(th, v)
                x0 = self.theta if state["x"] is None else state["x"]
                dev, state["x"] = self._minimise(g, x0)
                return dev
            return f
        if kind == "sd":
            k, a = par["term"], par["a"]
            sl = self.model.term_slices[k]
            q = self.model.qs[k]
            rows, cols = np.tril_indices(q)
            in_row = np.arange(sl.start, sl.stop)[rows == a]

            def g_of(v):
                def g(th):
                    norm = np.sqrt(np.sum(th[in_row] ** 2))
                    if norm <= 1e-12:
                        return np.inf
                    return self.full(th, v / norm)
                return g

            def f(v):
                if v <= 0:
                    # the boundary: this entry's row of T is zero, sigma free
                    def g0(x):
                        th = np.array(x[:-1])
                        th[in_row] = 0.0
                        return self.full(th, np.exp(x[-1]))
                    x0 = np.r_[self.theta, np.log(self.sigma0)]
                    return self._minimise(g0, x0)[0]
                x0 = self.theta if state["x"] is None else state["x"]
                dev, state["x"] = self._minimise(g_of(v), x0)
                return dev
            return f
        if kind == "cor":
            return self._cor_profile(par, state)
        if kind == "beta":
            j = par["j"]
            X = self.frame.X
            Xj, Xrest = X[:, j], np.delete(X, j, axis=1)

            def f(v):
                from ._optimize import optimize_deviance
                model = _deviance_model(self.frame, False, y=self.frame.y - v * Xj,
                                        X=Xrest)
                x0 = self.theta if state["x"] is None else state["x"]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rec = optimize_deviance(model, start=x0)
                state["x"] = rec.theta
                return float(rec.deviance)
            return f
        raise ValueError(kind)

    def _cor_profile(self, par, state):
        k, a, b = par["term"], par["a"], par["b"]       # a < b
        q = self.model.qs[k]
        sl = self.model.term_slices[k]
        perm = [a, b] + [i for i in range(q) if i not in (a, b)]
        inv = np.argsort(perm)
        rows, cols = np.tril_indices(q)
        # free entries of the permuted factor L: all but row 1 (replaced by rho, and r fixed)
        free = [(i, c) for i, c in zip(rows, cols) if i != 1]
        T0 = self.model.block_T(self.theta, k)
        C0 = (T0 @ T0.T)[np.ix_(perm, perm)]
        try:
            L0 = np.linalg.cholesky(C0 + 1e-12 * np.eye(q))
        except np.linalg.LinAlgError:
            L0 = np.eye(q)
        x_free0 = np.array([L0[i, c] for i, c in free] + [np.hypot(L0[1, 0], L0[1, 1])])

        def theta_of(x, r):
            L = np.zeros((q, q))
            for (i, c), val in zip(free, x[:len(free)]):
                L[i, c] = val
            rho = abs(x[len(free)])
            L[0, 0] = abs(L[0, 0])
            L[1, 0], L[1, 1] = r * rho, np.sqrt(max(1 - r * r, 0.0)) * rho
            C = (L @ L.T)[np.ix_(inv, inv)]
            try:
                T = np.linalg.cholesky(C)
            except np.linalg.LinAlgError:
                return None
            th = np.array(x[len(free) + 1:], float)
            full = np.empty(self.model.ntheta)
            other = np.ones(self.model.ntheta, bool)
            other[sl] = False
            full[other] = th
            full[sl] = T[rows, cols]
            return full

        other = np.ones(self.model.ntheta, bool)
        other[sl] = False

        def f(v):
            def g(x):
                th = theta_of(x, v)
                return np.inf if th is None else self.model.deviance(th)
            x0 = (np.r_[x_free0, self.theta[other]] if state["x"] is None else state["x"])
            dev, state["x"] = self._minimise(g, x0)
            return dev
        return f

    # -- zeta and the interval --------------------------------------------------------
    def bounds(self, par, zcrit):
        """The two ends of the profile interval of one parameter."""
        est = par["estimate"]
        kind = par["kind"]
        lo_lim, hi_lim = {"sd": (0.0, np.inf), "sigma": (0.0, np.inf),
                          "cor": (-1.0, 1.0)}.get(kind, (-np.inf, np.inf))
        if not np.isfinite(est):
            return np.nan, np.nan

        def zeta_of(f):
            def zeta(v):
                d = f(v) - self.dev0
                return np.sign(v - est) * np.sqrt(max(d, 0.0))
            return zeta

        # a first step size from the curvature near the estimate
        if kind == "beta":
            h = par["se"]
        else:
            delta = 1e-2 * (abs(est) if kind != "cor" and est > 0 else 1.0)
            if kind == "cor":
                delta = 1e-2 * max(1 - abs(est), 1e-3)
            probe = est + delta if est + delta < hi_lim else est - delta
            z1 = zeta_of(self.profile_fn(par))(probe)
            h = abs(delta / z1) if z1 != 0 else max(abs(est) / 2, 0.1)
        out = []
        for direction, limit in ((-1, lo_lim), (1, hi_lim)):
            zeta = zeta_of(self.profile_fn(par))
            target = direction * zcrit
            prev_v, found = est, None
            step = h * zcrit / 2
            for _ in range(60):
                v = prev_v + direction * step
                if direction * (v - limit) >= 0:
                    v = limit - direction * 1e-9 * (kind == "cor")
                    if direction * (zeta(v) - target) >= 0:
                        found = (prev_v, v)
                    break
                if direction * (zeta(v) - target) >= 0:
                    found = (prev_v, v)
                    break
                prev_v = v
                step *= 1.5
            if found is None:
                out.append(limit if np.isfinite(limit) else np.nan)
                continue
            lo, hi = sorted(found)
            out.append(optimize.brentq(lambda v: zeta(v) - target, lo, hi, xtol=1e-9,
                                       rtol=1e-10))
        return out[0], out[1]


# ---------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------

def confint(model, method="profile", level=0.95, *, parm=None, nsim=500, seed=None):
    """Confidence intervals for every parameter of a linear mixed model (lme4's ``confint``).

    Parameters
    ----------
    model : fitted model
        From :func:`mlmhelpers.fit_mixedlm` (every method), or from
        :func:`mlmhelpers.fit_glmm` / :func:`mlmhelpers.fit_logit_mixed`
        (``method="wald"``).
    method : {"profile", "wald", "boot"}, default "profile"
        ``"profile"``: profile-likelihood intervals, for the SDs, correlations
        and residual SD as well as the fixed effects (lme4's default).
        ``"wald"``: estimate +- z * SE, fixed effects only (the random part
        gets NaN, as in lme4: a symmetric interval suits a variance badly);
        the one method for models from :func:`mlmhelpers.fit_glmm`.
        ``"boot"``: percentile intervals from a parametric bootstrap of
        ``nsim`` refits (see :func:`bootstrap`).
    level : float, default 0.95
    parm : str or list of str, optional
        Only these parameters (names as in the result's index; ``"theta_"``
        for the random part and sigma, ``"beta_"`` for the fixed effects).
    nsim, seed : int
        ``method="boot"`` only: number of simulations and the random seed.

    Notes
    -----
    For a model fitted by REML, the profile is that of the likelihood, as in
    lme4 (whose ``profile`` refits by maximum likelihood): the ``estimate``
    column then holds the maximum-likelihood estimates the intervals surround.

    Returns
    -------
    pandas.DataFrame
        One row per parameter (``sd_(Intercept)|school``, ``sigma``, fixed
        effects, ...), columns ``estimate``, ``lower``, ``upper``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> exam = mlm.load_dataset("tutorial")
    >>> m = mlm.fit_mixedlm("normexam ~ standlrt + (1 | school)", exam)
    >>> mlm.confint(m).round(3)
                           estimate  lower  upper
    sd_(Intercept)|school     0.304  0.251  0.373
    sigma                     0.752  0.736  0.769
    Intercept                 0.002 -0.078  0.082
    standlrt                  0.563  0.539  0.588
    """
    func = "confint"
    level = _check_level(func, level)
    if method not in ("profile", "wald", "boot"):
        raise ValueError(f"{func}(): `method` must be 'profile', 'wald' or 'boot'; got "
                         f"{method!r}.")
    if method == "wald":
        from .tables import as_mixed
        m = as_mixed(model)
        if m is None:
            _linear(func, model)                  # the error that says what to pass
    else:
        m = _linear(func, model, f"method={method!r}")
    if method == "profile" and m.reml:
        # lme4 profiles a REML fit on the likelihood itself: its profile() refits by
        # maximum likelihood (the REML criterion changes with the fixed part), and so
        # does this function, to give lme4's intervals.
        m = _refit_ml(m)
    prof = _Profiler(m) if method == "profile" else None
    params = prof.params if prof is not None else _param_table(m)
    names = [p["name"] for p in params]
    wanted = _select(func, names, parm, params)
    zcrit = stats.norm.ppf(0.5 + level / 2)
    rows = []
    if method == "profile":
        for p in wanted:
            lo, hi = prof.bounds(p, zcrit)
            rows.append((p["name"], p["estimate"], lo, hi))
    elif method == "wald":
        for p in wanted:
            if p["kind"] == "beta":
                rows.append((p["name"], p["estimate"], p["estimate"] - zcrit * p["se"],
                             p["estimate"] + zcrit * p["se"]))
            else:
                rows.append((p["name"], p["estimate"], np.nan, np.nan))
    else:
        boot = bootstrap(m, nsim=nsim, seed=seed)
        table = boot.replicates
        a = (1 - level) / 2
        for p in wanted:
            col = table[p["name"]].dropna()
            rows.append((p["name"], p["estimate"], float(np.quantile(col, a)),
                         float(np.quantile(col, 1 - a))))
    out = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows], dtype=object),
                       columns=["estimate", "lower", "upper"])
    out.attrs.update(level=level, method=method)
    return out


def _refit_ml(m):
    """The REML fit ``m`` refitted by maximum likelihood (same data and designs)."""
    from . import modular
    frame = m._model_frame
    model = modular.deviance_model(frame, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = modular.optimize_deviance(model)
        verdict = modular.check_convergence(record, model, frame)
    return modular.make_results(frame, model, record, verdict)


def _param_table(m):
    p = _Profiler.__new__(_Profiler)
    scale = getattr(m, "scale", None)
    p.m, p.sigma0 = m, (None if scale is None else float(np.sqrt(scale)))
    return p._names()


def _select(func, names, parm, params):
    if parm is None:
        return params
    if parm == "theta_":
        return [p for p in params if p["kind"] != "beta"]
    if parm == "beta_":
        return [p for p in params if p["kind"] == "beta"]
    wanted = [parm] if isinstance(parm, str) else list(parm)
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(f"{func}(): no parameter named {unknown[0]!r}; this model's "
                         f"parameters are {names}.")
    return [p for p in params if p["name"] in wanted]


def vpc_confint(model, level=0.95):
    """Profile-likelihood confidence interval for the variance partition coefficient.

    For a model whose random effects are intercepts only, each VPC (the share
    of the total variance at one level) is a function of theta alone, so its
    profile is the profiled deviance with the VPC held fixed: the interval
    is the set of VPCs not rejected by a likelihood-ratio test at ``1 - level``.
    A VPC on the boundary (a variance estimated as zero) gets a lower bound of 0.
    A model fitted by REML is refitted by maximum likelihood first, as
    :func:`confint` does.

    Parameters
    ----------
    model : fitted model
        From :func:`mlmhelpers.fit_mixedlm`, random intercepts only (one or
        several grouping factors).
    level : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        One row per grouping factor; columns ``vpc``, ``lower``, ``upper``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> m0 = mlm.fit_mixedlm("normexam ~ 1 + (1 | school)", mlm.load_dataset("tutorial"))
    >>> mlm.vpc_confint(m0).round(3)
              vpc  lower  upper
    school  0.166  0.121  0.229
    """
    func = "vpc_confint"
    level = _check_level(func, level)
    m = _linear(func, model)
    if any(len(t.names) != 1 or t.names[0] != "(Intercept)" for t in m._model_frame.terms):
        raise ValueError(
            "vpc_confint(): the VPC is a single number only when the random effects are "
            "intercepts: in a random-slope model it changes with the slope variable. Use "
            "confint(model) for the SDs, or vpc(model, at=x) for the VPC at one value.")
    if m.reml:
        m = _refit_ml(m)          # as confint (and lme4's profile) do
    prof = _Profiler(m)
    zcrit2 = stats.norm.ppf(0.5 + level / 2) ** 2
    th0 = np.abs(prof.theta)
    K = len(th0)
    rows = []
    for k, term in enumerate(m._model_frame.terms):
        est = th0[k] ** 2 / (1 + np.sum(th0 ** 2))
        others = [i for i in range(K) if i != k]

        state = {}

        def prof_dev(v):
            # theta_k^2 = v (1 + sum_{j != k} theta_j^2) / (1 - v)
            def g(x):
                th = np.empty(K)
                th[others] = x
                th[k] = np.sqrt(v * (1 + np.sum(x ** 2)) / (1 - v))
                return prof.model.deviance(th)
            if not others:
                return g(np.empty(0))
            x0 = state.get("x", th0[others])
            dev, state["x"] = prof._minimise(g, x0)
            return dev

        def rise(v):
            return prof_dev(v) - prof.dev0 - zcrit2

        lower = 0.0 if rise(0.0) <= 0 else optimize.brentq(rise, 0.0, est, xtol=1e-10)
        hi_end = est + (1 - est) * 0.5
        while rise(hi_end) < 0 and hi_end < 1 - 1e-9:
            hi_end += (1 - hi_end) * 0.5
        upper = optimize.brentq(rise, est, hi_end, xtol=1e-10) if rise(hi_end) > 0 else 1.0
        rows.append((term.name, est, lower, upper))
    out = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows], dtype=object),
                       columns=["vpc", "lower", "upper"])
    out.attrs.update(level=level)
    return out


# ---------------------------------------------------------------------------
# Simulation and the parametric bootstrap
# ---------------------------------------------------------------------------

def _draw(m, rng):
    """One response vector simulated from the fitted linear model ``m``."""
    frame = m._model_frame
    mu = frame.X @ m.fe_params.to_numpy()
    for term, fit in zip(frame.terms, m.random_terms):
        cov = fit.cov.to_numpy()
        q = cov.shape[0]
        w, V = np.linalg.eigh(cov)                     # cov may be singular
        root = V * np.sqrt(np.clip(w, 0, None))
        b = rng.standard_normal((len(term.labels), q)) @ root.T
        mu = mu + np.sum(term.Z * b[term.codes], axis=1)
    return mu + rng.normal(0.0, np.sqrt(m.scale), size=len(mu))


def simulate(model, nsim=1, seed=None):
    """Responses simulated from a fitted linear mixed model (lme4's ``simulate``).

    New random effects for every group and new residuals for every row are
    drawn from the fitted distributions and added to the fixed part: what the
    data could have looked like if the fitted model were the truth.

    Parameters
    ----------
    model : fitted model
        From :func:`mlmhelpers.fit_mixedlm`.
    nsim : int, default 1
        Number of simulated responses.
    seed : int or numpy.random.Generator, optional
        For reproducible draws.

    Returns
    -------
    pandas.DataFrame
        One row per row of the fit (same index), one column per simulation
        (``sim_1``, ``sim_2``, ...).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> exam = mlm.load_dataset("tutorial")
    >>> m = mlm.fit_mixedlm("normexam ~ standlrt + (1 | school)", exam)
    >>> sims = mlm.simulate(m, nsim=2, seed=1)
    >>> sims.shape, list(sims.columns)
    ((4059, 2), ['sim_1', 'sim_2'])
    """
    m = _linear("simulate", model)
    nsim = _check_nsim("simulate", nsim)
    rng = _rng(seed)
    data = np.column_stack([_draw(m, rng) for _ in range(nsim)])
    return pd.DataFrame(data, index=m.rows, columns=[f"sim_{i + 1}" for i in range(nsim)])


def _check_nsim(func, nsim):
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ValueError(f"{func}(): `nsim` must be a positive whole number such as 500; "
                         f"got {nsim!r}.")
    return int(nsim)


def _refit(m, y):
    """The model ``m`` refitted to the response ``y`` (same rows and designs)."""
    from dataclasses import replace
    from . import modular
    frame = replace(m._model_frame, y=np.asarray(y, float))
    model = modular.deviance_model(frame, reml=m.reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = modular.optimize_deviance(model, start=m.theta)
        verdict = modular.check_convergence(record, model, frame)
    return modular.make_results(frame, model, record, verdict)


def _default_statistics(fit):
    return {p["name"]: p["estimate"] for p in _param_table(fit)}


class BootstrapResult:
    """The replicates of a parametric bootstrap (what :func:`bootstrap` returns).

    Attributes
    ----------
    estimate : pandas.Series
        The statistics of the original fit.
    replicates : pandas.DataFrame
        One row per simulation, one column per statistic.
    nsim, singular : int
        Simulations run; refits that were singular (lme4's ``bootMer``
        reports these too).
    """

    def __init__(self, estimate, replicates, singular):
        self.estimate = estimate
        self.replicates = replicates
        self.nsim = len(replicates)
        self.singular = int(singular)

    @property
    def se(self):
        """Bootstrap standard errors: the SD of each statistic over the replicates."""
        return self.replicates.std(ddof=1).rename("se")

    def ci(self, level=0.95):
        """Percentile intervals (``boot.ci(type = "perc")``): columns estimate, lower, upper."""
        level = _check_level("BootstrapResult.ci", level)
        a = (1 - level) / 2
        out = pd.DataFrame({"estimate": self.estimate,
                            "lower": self.replicates.quantile(a),
                            "upper": self.replicates.quantile(1 - a)})
        out.attrs.update(level=level, method="boot")
        return out

    def __repr__(self):
        return (f"<BootstrapResult: {self.nsim} simulations, {self.singular} singular refits; "
                f"statistics {list(self.replicates.columns)}>")


def bootstrap(model, statistic=None, nsim=500, seed=None):
    """Parametric bootstrap of a linear mixed model (lme4's ``bootMer``).

    Simulates ``nsim`` responses from the fitted model (:func:`simulate`),
    refits the model to each and records ``statistic`` of every refit.

    Parameters
    ----------
    model : fitted model
        From :func:`mlmhelpers.fit_mixedlm`.
    statistic : callable, optional
        A function of a fitted model returning a number, a dict or a pandas
        Series (for example ``mlm.vpc``).  Default: every parameter, named as
        :func:`confint` names them (SDs, correlations, ``sigma``, fixed effects).
    nsim : int, default 500
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    BootstrapResult
        ``.replicates`` (one row per simulation), ``.estimate``, ``.se`` and
        ``.ci(level)`` (percentile intervals).

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> exam = mlm.load_dataset("tutorial")
    >>> m = mlm.fit_mixedlm("normexam ~ standlrt + (1 | school)", exam)
    >>> boot = mlm.bootstrap(m, statistic=mlm.vpc, nsim=20, seed=1)
    >>> boot.replicates.shape
    (20, 1)
    """
    func = "bootstrap"
    m = _linear(func, model)
    nsim = _check_nsim(func, nsim)
    if statistic is None:
        statistic = _default_statistics
    elif not callable(statistic):
        raise TypeError(f"{func}(): `statistic` must be a function of a fitted model, such "
                        "as mlm.vpc; got " + type(statistic).__name__ + ".")

    def as_series(value):
        if isinstance(value, pd.Series):
            return value.astype(float)
        if isinstance(value, dict):
            return pd.Series(value, dtype=float)
        if np.ndim(value) == 0:
            return pd.Series({getattr(statistic, "__name__", "statistic"): float(value)})
        raise TypeError(f"{func}(): `statistic` returned {type(value).__name__}; it must "
                        "return a number, a dict or a pandas Series.")

    t0 = as_series(statistic(m))
    rng = _rng(seed)
    rows, singular = [], 0
    for _ in range(nsim):
        fit = _refit(m, _draw(m, rng))
        singular += bool(fit.singular)
        rows.append(as_series(statistic(fit)))
    replicates = pd.DataFrame(rows).reset_index(drop=True)
    replicates.index.name = "simulation"
    return BootstrapResult(t0, replicates[t0.index], singular)


class BootstrapLRTest:
    """A likelihood-ratio test with a simulated null distribution (:func:`bootstrap_lr_test`).

    Attributes
    ----------
    statistic : float
        The observed LR statistic, ``2 (logL_alt - logL_null)``.
    p_value : float
        ``(1 + #{LR* >= LR}) / (nsim + 1)`` over the simulated statistics ``LR*``.
    null_distribution : numpy.ndarray
        The ``nsim`` statistics simulated under the null model.
    df : int
        Parameters added by the alternative (for the chi-square p-value, ``p_chisq``).
    """

    def __init__(self, statistic, null_distribution, df):
        self.statistic = float(statistic)
        self.null_distribution = np.asarray(null_distribution, float)
        self.nsim = len(self.null_distribution)
        self.df = int(df)
        self.p_value = float((1 + np.sum(self.null_distribution >= self.statistic))
                             / (self.nsim + 1))
        self.p_chisq = float(stats.chi2.sf(self.statistic, self.df))

    def to_frame(self):
        """One row: LR statistic, df, the chi-square p-value and the bootstrap p-value."""
        return pd.DataFrame([dict(statistic=self.statistic, df=self.df, p_chisq=self.p_chisq,
                                  p_bootstrap=self.p_value, nsim=self.nsim)])

    def plot(self, ax=None, boundary=True):
        """Histogram of the simulated null distribution with the chi-square(df) density and,
        with ``boundary=True``, the 50:50 mixture of chi-square(df - 1) and chi-square(df)
        that theory gives for a test of one variance and its covariances (the
        chi-bar-square); the observed statistic as a vertical line.  Returns the Axes.
        """
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        stat = self.null_distribution
        top = max(np.quantile(stat, 0.995), stats.chi2.ppf(0.99, self.df))
        heights, _, _ = ax.hist(stat, bins=np.linspace(0, top, 30), density=True, color="0.8",
                                label=f"simulated under the null ({self.nsim})")
        x = np.linspace(1e-3, top, 300)
        ax.plot(x, stats.chi2.pdf(x, self.df), color="C0", label=f"chi-square, {self.df} df")
        if boundary and self.df >= 2:
            mix = 0.5 * stats.chi2.pdf(x, self.df - 1) + 0.5 * stats.chi2.pdf(x, self.df)
            ax.plot(x, mix, color="C1", linestyle="-.",
                    label=f"50:50 chi-square {self.df - 1} and {self.df} df")
        if self.statistic <= top:
            ax.axvline(self.statistic, color="black", linestyle="--", label="observed LR")
        # the chi-square(1) part of the mixture is infinite at 0: keep the histogram in view
        ax.set_ylim(0, 1.3 * max(float(np.max(heights)), 0.3))
        ax.set_xlabel("likelihood-ratio statistic")
        ax.set_ylabel("density")
        ax.set_title("Null distribution of the LR statistic")
        ax.legend(frameon=False)
        return ax

    def __repr__(self):
        return (f"<BootstrapLRTest: LR = {self.statistic:.3f}, bootstrap p = {self.p_value:.4g} "
                f"({self.nsim} simulations), chi-square({self.df}) p = {self.p_chisq:.4g}>")


def bootstrap_lr_test(null, alt, nsim=500, seed=None):
    """Likelihood-ratio test with a parametric-bootstrap null distribution.

    The chi-square reference of :func:`mlmhelpers.lr_test` assumes the null
    value is inside the parameter space; a test of a variance (is the slope
    variance zero?) puts it on the boundary, where the LR statistic is often
    exactly 0 and the chi-square is too conservative.  Here the null model is
    simulated from ``nsim`` times, both models are refitted to every
    simulated response, and the observed statistic is placed among the
    simulated ones (lme4 users do this with ``pbkrtest::PBmodcomp`` or
    ``bootMer``).

    Parameters
    ----------
    null, alt : fitted models
        Two linear mixed models from :func:`mlmhelpers.fit_mixedlm`, fitted by
        maximum likelihood to the same rows, ``null`` nested in ``alt``.
    nsim : int, default 500
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    BootstrapLRTest
        ``.statistic``, ``.p_value``, ``.null_distribution``, ``.p_chisq``,
        ``.to_frame()`` and ``.plot(ax)``.

    Examples
    --------
    >>> import mlmhelpers as mlm
    >>> exam = mlm.load_dataset("tutorial")
    >>> m0 = mlm.fit_mixedlm("normexam ~ standlrt + (1 | school)", exam)
    >>> m1 = mlm.fit_mixedlm("normexam ~ standlrt + (standlrt | school)", exam)
    >>> test = mlm.bootstrap_lr_test(m0, m1, nsim=19, seed=1)
    >>> test.p_value
    0.05
    """
    func = "bootstrap_lr_test"
    m0 = _linear(func, null)
    m1 = _linear(func, alt)
    nsim = _check_nsim(func, nsim)
    if m0.reml or m1.reml:
        raise ValueError(f"{func}(): likelihood-ratio tests need maximum-likelihood fits; "
                         "refit both models with fit_mixedlm(..., reml=False).")
    if m0.nobs != m1.nobs or not m0.rows.equals(m1.rows) or \
            not np.allclose(m0._model_frame.y, m1._model_frame.y):
        raise ValueError(f"{func}(): the two models must be fitted to the same rows and "
                         "response (check for missing values in a covariate only one "
                         "model uses).")
    df = m1.k_params - m0.k_params
    if df <= 0:
        raise ValueError(f"{func}(): `alt` must have more parameters than `null` (the null "
                         "model first, then the larger one).")
    observed = max(0.0, 2.0 * (m1.llf - m0.llf))
    rng = _rng(seed)
    out = np.empty(nsim)
    for i in range(nsim):
        y = _draw(m0, rng)
        out[i] = max(0.0, 2.0 * (_refit(m1, y).llf - _refit(m0, y).llf))
    return BootstrapLRTest(observed, out, df)
