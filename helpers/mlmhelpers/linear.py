"""Linear multilevel (mixed) models fitted the way R's lme4 fits them.

:func:`fit_mixedlm` builds a statsmodels ``MixedLM`` from a formula, but does
not trust statsmodels' own optimiser (its default stops short of the optimum on
the course's very first model, ``normexam ~ 1``; ``lbfgs`` alone can return an
infinite log-likelihood).  Instead it minimises lme4's *profiled deviance*
over the relative covariance factor (lme4's ``theta``) and hands the optimum
to statsmodels, so the result is an ordinary statsmodels ``MixedLMResults``
whose numbers agree with ``lmer(..., REML = FALSE)``.

How the deviance is computed (Bates et al. 2015, *J. Stat. Softw.* 67(1),
section 3) for one grouping factor with ``q`` random terms: the random effects
of group ``j`` are ``b_j = sigma * Lambda u_j`` with ``u_j ~ N(0, I)`` and
``Lambda`` lower triangular (entries ``theta``).  For a given ``theta`` the
penalised least-squares problem is solved group by group from the per-group
cross-products ``Z_j'Z_j``, ``Z_j'X_j`` and ``Z_j'y_j`` (Cholesky factors of
``Lambda' Z_j'Z_j Lambda + I``), which makes one evaluation cost a few
batched ``q x q`` operations - fast even for 2,410 schools.
"""

from __future__ import annotations

import difflib
import keyword
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

__all__ = ["fit_mixedlm", "SingularFitWarning", "ColumnNotFoundError"]


class SingularFitWarning(UserWarning):
    """A variance estimate is (nearly) zero or a correlation is (nearly) +-1."""


class ColumnNotFoundError(KeyError, ValueError):
    """A name in a formula or `groups` is not a column of the data.

    A ``KeyError`` (like pandas' missing-column error) that prints its
    message without quotes.
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


# Identifiers that may appear in a formula without being data columns.
_FORMULA_FUNCTIONS = {
    "C", "I", "Q", "np", "numpy", "log", "exp", "sqrt", "center", "standardize",
    "scale", "bs", "cr", "cc", "te", "Treatment", "Sum", "Diff", "Poly",
    "Helmert", "levels", "Intercept", "abs", "pow", "len", "str", "int", "float",
    "True", "False", "None",
}

_SINGULAR_TOL = 1e-4  # lme4's check.conv.singular tolerance on theta


# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------

def _identifiers(formula: str) -> list[str]:
    """Names in a formula that could refer to columns (in order, unique)."""
    # Q("name") quotes a column name; other string literals are level names
    names = [m.group(2) for m in re.finditer(r"\bQ\(\s*(['\"])(.*?)\1\s*\)", formula)]
    text = re.sub(r"(['\"]).*?\1", " ", formula)  # drop string literals
    for match in re.finditer(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)", text):
        name = match.group(1)
        # attribute access such as np.log: skip the part after the dot
        if match.start() > 0 and text[match.start() - 1] == ".":
            continue
        if name not in names:
            names.append(name)
    return names


def _unknown_names(formula: str, columns) -> list[str]:
    cols = set(map(str, columns))
    return [n for n in _identifiers(formula)
            if n not in cols and n not in _FORMULA_FUNCTIONS and not keyword.iskeyword(n)]


def _suggest(name: str, columns, data=None) -> str:
    if data is not None and name in [n for n in data.index.names if n is not None]:
        return (f" {name!r} is the index of `data` (after set_index or groupby?): "
                "make it a column again with data.reset_index().")
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=3)
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?"
    return ""


def _check_inputs(formula, data, groups, re_formula, reml):
    if isinstance(formula, pd.DataFrame) and isinstance(data, str):
        raise TypeError(
            "fit_mixedlm: the formula comes first and the data second: "
            f"fit_mixedlm({data!r}, data, groups=...).")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "fit_mixedlm: `data` must be a pandas DataFrame (for example "
            "load_dataset('tutorial')), not " + type(data).__name__ + ".")
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            "fit_mixedlm: `formula` must be a string such as 'normexam ~ standlrt' "
            "(response on the left of '~', fixed-effect terms on the right).")
    if "|" in formula:
        raise ValueError(
            "fit_mixedlm: write the formula without lme4's '(1 | school)' part. Give "
            "the fixed part as `formula`, the grouping column as groups='school' and "
            "random slopes as re_formula='1 + standlrt'.")
    if not isinstance(reml, (bool, np.bool_)):
        raise TypeError(
            f"fit_mixedlm: `reml` must be True or False, not {reml!r}. The course "
            "uses reml=False (maximum likelihood) so that models can be compared "
            "with lr_test().")
    if not isinstance(groups, str):
        raise TypeError(
            "fit_mixedlm: `groups` must be the name of a column of `data` that "
            "identifies the level-2 units, e.g. groups='school' (got "
            f"{type(groups).__name__}).")
    if groups not in data.columns:
        raise ColumnNotFoundError(
            f"fit_mixedlm: groups={groups!r} is not a column of `data`."
            + _suggest(groups, data.columns, data)
            + f" Columns available: {', '.join(map(str, data.columns))}.")
    if re_formula is not None and not isinstance(re_formula, str):
        raise TypeError(
            "fit_mixedlm: `re_formula` must be a string such as '1 + standlrt' "
            "(random intercept and random slope of standlrt) or None (random "
            "intercept only).")
    for label, text in (("formula", formula), ("re_formula", re_formula or "")):
        bare = _identifiers(re.sub(r"(['\"]).*?\1", " ", text))  # outside Q("...")
        clash = [n for n in bare if keyword.iskeyword(n) and n in data.columns]
        if clash:
            raise ValueError(
                f"fit_mixedlm: the column name {clash[0]!r} in {label} is a Python "
                f"keyword, which a formula cannot use as it is: write Q({clash[0]!r}) "
                "in the formula, or rename the column.")
    lhs, rhs = formula.split("~", 1)
    if not lhs.strip():
        raise ValueError(
            "fit_mixedlm: the formula has no response. Put the outcome on the left "
            "of '~', e.g. 'normexam ~ 1'.")
    if not rhs.strip():
        raise ValueError(
            "fit_mixedlm: the formula has nothing right of '~'. Write the explanatory "
            f"variables there, or 1 for the empty model: '{lhs.strip()} ~ 1'.")
    for label, text in (("formula", formula), ("re_formula", re_formula or "")):
        unknown = _unknown_names(text, data.columns)
        if unknown:
            name = unknown[0]
            raise ColumnNotFoundError(
                f"fit_mixedlm: {name!r} in {label} {text!r} is not a column of `data`."
                + _suggest(name, data.columns, data)
                + " Check the spelling (names are case-sensitive).")
    for name in [n for n in _identifiers(lhs) if n in data.columns]:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise TypeError(
                f"fit_mixedlm: the response {name!r} must be numeric, but it has "
                f"dtype {col.dtype}. A linear mixed model needs a numeric outcome; "
                "for a 0/1 outcome use fit_logit_mixed().")


def _normalise_re_formula(re_formula):
    if re_formula is None:
        return None
    text = re_formula.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if not text:
        raise ValueError("fit_mixedlm: `re_formula` is empty; use None for a random intercept.")
    return text


def _prepare_data(formula, data, groups, re_formula):
    """Copy the used columns, drop incomplete rows, make types patsy-safe."""
    used = [n for n in _identifiers(formula) + _identifiers(re_formula or "")
            if n in data.columns]
    used = list(dict.fromkeys(used + [groups]))
    frame = data.loc[:, used].copy()
    for name in used:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            continue
        if pd.api.types.is_string_dtype(col.dtype) or col.dtype == object:
            if name == groups:
                frame[name] = col.astype(object)
            else:
                # keep a stable level order (sorted, as R does for character data)
                levels = sorted(col.dropna().unique().tolist(), key=str)
                frame[name] = pd.Categorical(col, categories=levels)
        elif pd.api.types.is_bool_dtype(col.dtype):
            frame[name] = col.astype(float)
    complete = frame.notna().all(axis=1)
    n_drop = int((~complete).sum())
    if n_drop:
        bad = [n for n in used if frame[n].isna().any()]
        warnings.warn(
            f"fit_mixedlm: dropped {n_drop} of {len(frame)} rows with missing values "
            f"in {', '.join(bad)}; the model uses the remaining {int(complete.sum())} rows.",
            UserWarning, stacklevel=3)
        frame = frame.loc[complete]
    if len(frame) == 0:
        raise ValueError("fit_mixedlm: no complete rows left after dropping missing values.")
    # categories with no rows left (e.g. after filtering the data) would give
    # all-zero dummy columns; R's model.frame drops unused levels, so do we
    for name in used:
        col = frame[name]
        if name != groups and isinstance(col.dtype, pd.CategoricalDtype):
            if col.nunique(dropna=True) < len(col.cat.categories):
                frame[name] = col.cat.remove_unused_categories()
    return frame


# ---------------------------------------------------------------------------
# lme4's profiled deviance for one grouping factor
# ---------------------------------------------------------------------------

@dataclass
class _Crossprods:
    """Per-group cross-products of the design: all the deviance needs."""

    n: int
    p: int
    q: int
    m: int
    ZtZ: np.ndarray   # (m, q, q)
    ZtX: np.ndarray   # (m, q, p)
    Zty: np.ndarray   # (m, q)
    XtX: np.ndarray   # (p, p)
    Xty: np.ndarray   # (p,)
    yty: float
    tril: tuple = field(default=None)

    @classmethod
    def from_arrays(cls, y, X, Z, gidx, m):
        n, p = X.shape
        q = Z.shape[1]
        ZtZ = np.empty((m, q, q))
        ZtX = np.empty((m, q, p))
        Zty = np.empty((m, q))
        for a in range(q):
            for b in range(q):
                ZtZ[:, a, b] = np.bincount(gidx, Z[:, a] * Z[:, b], minlength=m)
            for b in range(p):
                ZtX[:, a, b] = np.bincount(gidx, Z[:, a] * X[:, b], minlength=m)
            Zty[:, a] = np.bincount(gidx, Z[:, a] * y, minlength=m)
        return cls(n=n, p=p, q=q, m=m, ZtZ=ZtZ, ZtX=ZtX, Zty=Zty, XtX=X.T @ X,
                   Xty=X.T @ y, yty=float(y @ y), tril=np.tril_indices(q))

    @classmethod
    def from_model(cls, model):
        y = np.asarray(model.endog, dtype=float)
        X = np.asarray(model.exog, dtype=float)
        Z = np.asarray(model.exog_re, dtype=float)
        gidx = np.empty(len(y), dtype=np.intp)
        for j, label in enumerate(model.group_labels):
            gidx[model.row_indices[label]] = j
        return cls.from_arrays(y, X, Z, gidx, len(model.group_labels))

    def lam(self, theta):
        L = np.zeros((self.q, self.q))
        L[self.tril] = theta
        return L

    def lower_bounds(self):
        rows, cols = self.tril
        return [0.0 if r == c else None for r, c in zip(rows, cols)]

    def solve(self, theta, reml=False):
        """Penalised least squares at theta; returns a dict of everything."""
        q, p, n, m = self.q, self.p, self.n, self.m
        Lam = self.lam(theta)
        if q == 1:
            lam = Lam[0, 0]
            A = lam * lam * self.ZtZ + 1.0                      # (m, 1, 1)
            L = np.sqrt(A)
            RZX = (lam * self.ZtX) / L                           # (m, 1, p)
            cu = (lam * self.Zty) / L[:, 0, :]                   # (m, 1)
        else:
            # A_j = Lam' Z_j'Z_j Lam + I
            A = Lam.T @ self.ZtZ @ Lam + np.eye(q)
            L = np.linalg.cholesky(A)
            RZX = _batched_lower_solve(L, Lam.T @ self.ZtX)       # (m, q, p)
            cu = _batched_lower_solve(L, (self.Zty @ Lam)[..., None])[..., 0]
        RZX2 = RZX.reshape(m * q, p)
        XtX = self.XtX - RZX2.T @ RZX2
        Xty = self.Xty - RZX2.T @ cu.reshape(m * q)
        RX = np.linalg.cholesky(XtX)          # lower: XtX = RX RX'
        cbeta = np.linalg.solve(RX, Xty)
        beta = np.linalg.solve(RX.T, cbeta)
        pwrss = self.yty - np.sum(cu * cu) - cbeta @ cbeta
        ldL2 = 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)))
        if reml:
            ldRX2 = 2.0 * np.sum(np.log(np.diag(RX)))
            dof = n - p
            dev = ldL2 + ldRX2 + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
            sigma2 = pwrss / dof
        else:
            dev = ldL2 + n * (1.0 + np.log(2.0 * np.pi * pwrss / n))
            sigma2 = pwrss / n
        return dict(dev=dev, beta=beta, sigma2=sigma2, L=L, RZX=RZX, cu=cu,
                    RX=RX, Lam=Lam, pwrss=pwrss)

    def deviance(self, theta, reml=False):
        try:
            out = self.solve(theta, reml)
        except np.linalg.LinAlgError:
            return np.inf
        dev = out["dev"]
        return dev if np.isfinite(dev) else np.inf


def _batched_lower_solve(L, B):
    """Solve L_j x_j = B_j for lower-triangular L_j, batched over j."""
    m, q, _ = L.shape
    if q == 1:
        return B / L
    X = np.empty_like(B)
    for i in range(q):
        acc = B[:, i, :].copy()
        for k in range(i):
            acc -= L[:, i, k, None] * X[:, k, :]
        X[:, i, :] = acc / L[:, i, i, None]
    return X


def _lme4_quantities(cp: _Crossprods, theta, reml=False):
    """Estimates lme4 reports at theta: beta, sigma2, vcov(beta), modes, condVar."""
    out = cp.solve(theta, reml)
    Lam, L, RZX, cu, RX = out["Lam"], out["L"], out["RZX"], out["cu"], out["RX"]
    sigma2 = out["sigma2"]
    RXinv = np.linalg.inv(RX)
    vcov = sigma2 * (RXinv.T @ RXinv)
    # conditional modes: u_j = L_j^-T (cu_j - RZX_j beta); b_j = Lam u_j
    rhs = cu - np.einsum("jap,p->ja", RZX, out["beta"])
    Lt = np.transpose(L, (0, 2, 1))
    u = np.linalg.solve(Lt, rhs[..., None])[..., 0]
    b = u @ Lam.T
    # conditional variances (lme4's condVar): sigma2 * Lam (L L')^-1 Lam'
    Linv = np.linalg.inv(L)
    Ainv = np.einsum("jba,jbc->jac", Linv, Linv)
    condvar = sigma2 * np.einsum("ab,jbc,dc->jad", Lam, Ainv, Lam)
    cov_re = sigma2 * (Lam @ Lam.T)
    return dict(beta=out["beta"], sigma2=sigma2, vcov=vcov, b=b, condvar=condvar,
                cov_re=cov_re, dev=out["dev"], theta=np.asarray(theta, float))


def _optimise_theta(cp: _Crossprods, reml=False):
    """Minimise the profiled deviance over theta; return (theta, deviance).

    The deviance is cheap (a few batched q x q operations), so robustness is
    bought with redundancy.  From lme4's start (theta = identity) a bounded
    Powell search (derivative-free: it does not stick to the boundary the way
    L-BFGS-B with numerical gradients did on the chem97 random-slope model) is
    followed by L-BFGS-B; L-BFGS-B also runs from two rescaled starts.  All
    candidates are compared on the deviance itself, the best is polished with
    Nelder-Mead, and a variance that is practically zero is set to exactly
    zero when that does not worsen the deviance.
    """
    lower = np.array([-np.inf if lb is None else lb for lb in cp.lower_bounds()])
    bounds = [(None if np.isinf(lb) else lb, None) for lb in lower]
    fun = lambda t: cp.deviance(np.maximum(t, lower), reml)  # noqa: E731
    start = np.eye(cp.q)[cp.tril]
    best_x, best_f = None, np.inf

    def consider(x):
        nonlocal best_x, best_f
        x = np.maximum(np.asarray(x, dtype=float), lower)
        f = fun(x)
        if np.isfinite(f) and f < best_f:
            best_x, best_f = x, f

    lbfgs = dict(ftol=1e-15, gtol=1e-10, maxiter=2000)
    for k, s in enumerate((start, 0.3 * start, 3.0 * start)):
        consider(s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if k == 0:
                    res = optimize.minimize(fun, s, method="Powell", bounds=bounds,
                                            options=dict(xtol=1e-6, ftol=1e-12, maxfev=20000))
                    consider(res.x)
                    s = res.x
                res = optimize.minimize(fun, s, method="L-BFGS-B", bounds=bounds,
                                        options=lbfgs)
                consider(res.x)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                continue
    if best_x is None:
        raise RuntimeError(
            "fit_mixedlm: the optimiser found no finite log-likelihood; check the "
            "response for extreme values and the model for redundant terms.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(fun, best_x, method="Nelder-Mead",
                                options=dict(xatol=1e-7, fatol=1e-10 * max(1.0, abs(best_f)),
                                             maxiter=300 * cp.q))
    consider(res.x)
    # Snap variances that are practically zero to exactly zero (as lme4's
    # bounded optimiser lands on the bound), if that does not worsen the fit.
    rows, cols = cp.tril
    for i in range(len(best_x)):
        if rows[i] == cols[i] and best_x[i] < _SINGULAR_TOL:
            trial = best_x.copy()
            trial[i] = 0.0
            for k in range(len(trial)):  # with it, negligible entries of its row
                if rows[k] == rows[i] and cols[k] < cols[i] and abs(trial[k]) < _SINGULAR_TOL:
                    trial[k] = 0.0
            if np.array_equal(trial, best_x):
                continue
            f = fun(trial)
            if np.isfinite(f) and f <= best_f + 1e-8:
                best_x, best_f = trial, f
    return best_x, best_f


def _is_singular(theta, cp: _Crossprods):
    rows, cols = cp.tril
    diag = np.array([theta[i] for i, (r, c) in enumerate(zip(rows, cols)) if r == c])
    return bool(np.any(diag < _SINGULAR_TOL))


# ---------------------------------------------------------------------------
# Building the statsmodels result
# ---------------------------------------------------------------------------

def _build_results(model, cp, theta, reml):
    from statsmodels.regression.mixed_linear_model import (
        MixedLMParams, MixedLMResults, MixedLMResultsWrapper)

    est = _lme4_quantities(cp, theta, reml)
    scale = est["sigma2"]
    # the state MixedLM.fit() would have set on the model
    model.reml = reml
    model.cov_pen = None
    model.fe_pen = None
    model._cov_sing = 0
    model._freepat = None
    Lam = cp.lam(theta)
    cov_re_unscaled = Lam @ Lam.T
    params = MixedLMParams.from_components(est["beta"], cov_re=cov_re_unscaled,
                                           vcomp=np.zeros(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hess, _ = model.hessian(params)
            pcov = np.linalg.inv(-hess)
            if not np.all(np.isfinite(pcov)):
                raise np.linalg.LinAlgError
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError):
            k = len(params.get_packed(use_sqrt=False, has_fe=True))
            pcov = np.full((k, k), np.nan)
    # the fixed-effects block as lme4 computes it
    p = cp.p
    pcov[:p, :p] = est["vcov"]
    pcov[:p, p:] = 0.0
    pcov[p:, :p] = 0.0
    params_packed = params.get_packed(use_sqrt=False, has_fe=True)
    results = MixedLMResults(model, params_packed, pcov / scale)
    results.params_object = params
    results.fe_params = est["beta"]
    results.cov_re = scale * cov_re_unscaled
    results.vcomp = np.zeros(0)
    results.scale = scale
    results.cov_re_unscaled = cov_re_unscaled
    results.method = "REML" if reml else "ML"
    results.converged = True
    results.hist = None
    results.reml = reml
    results.cov_pen = None
    results.k_fe = model.k_fe
    results.k_re = model.k_re
    results.k_re2 = model.k_re2
    results.k_vc = model.k_vc
    results.use_sqrt = True
    results.freepat = None
    # statsmodels' loglike() is infinite when a variance is exactly zero; the
    # profiled deviance is not, and equals -2 llf everywhere else.
    if getattr(results, "_cache", None) is None:
        results._cache = {}
    results._cache["llf"] = -0.5 * float(est["dev"])
    # Conditional modes and variances as lme4 computes them (statsmodels'
    # own code gives the same numbers but fails on a singular fit).
    re_names = list(model.data.exog_re_names)
    results._cache["random_effects"] = {
        label: pd.Series(est["b"][j], index=re_names)
        for j, label in enumerate(model.group_labels)}
    if _is_singular(theta, cp):
        results._cache["random_effects_cov"] = {
            label: pd.DataFrame(est["condvar"][j], index=re_names, columns=re_names)
            for j, label in enumerate(model.group_labels)}
    return MixedLMResultsWrapper(results), est


def _lme4_cache(result):
    """lme4-style estimates of any single-grouping-factor MixedLMResults.

    Fits made by :func:`fit_mixedlm` carry them; for a result fitted with
    statsmodels directly they are computed at its estimates (theta from the
    Cholesky factor of ``cov_re / scale``).
    """
    inner = getattr(result, "_results", result)
    cache = getattr(inner, "_mlmhelpers", None)
    if cache is not None:
        return cache
    model = inner.model
    if getattr(model, "k_vc", 0):
        raise ValueError(
            "This model has variance components (vc_formula); the course helpers "
            "handle one grouping factor with random intercept/slopes only.")
    cp = _Crossprods.from_model(model)
    cov_un = np.asarray(inner.cov_re_unscaled, dtype=float)
    try:
        Lam = np.linalg.cholesky(cov_un)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov_un)
        Lam = np.linalg.cholesky(v @ np.diag(np.maximum(w, 1e-12)) @ v.T)
    theta = Lam[cp.tril]
    est = _lme4_quantities(cp, theta, bool(inner.reml))
    cache = _make_cache(model, est, cp, bool(inner.reml), formula=None,
                        groups=None, rows=_model_rows(model))
    inner._mlmhelpers = cache
    return cache


def _model_rows(model):
    labels = getattr(model.data, "row_labels", None)
    if labels is None:
        return pd.RangeIndex(model.nobs)
    return pd.Index(labels)


def _make_cache(model, est, cp, reml, formula, groups, rows):
    return dict(
        beta=est["beta"], vcov=est["vcov"], sigma2=est["sigma2"], b=est["b"],
        condvar=est["condvar"], cov_re=est["cov_re"], theta=est["theta"],
        deviance=est["dev"], reml=reml, formula=formula, groups=groups,
        rows=rows, group_labels=list(model.group_labels),
        singular=_is_singular(est["theta"], cp),
        n_groups=cp.m,
    )


def fit_mixedlm(formula, data, groups, re_formula=None, reml=False):
    """Fit a two-level linear mixed model and return it at lme4's optimum.

    The equivalent of ``lmer(y ~ x + (1 + z | g), data, REML = FALSE)`` in R.
    The estimates are found by minimising lme4's profiled deviance (so they
    agree with lme4, unlike statsmodels' default optimiser on some models);
    the returned object is an ordinary statsmodels ``MixedLMResults``, with
    ``.fe_params``, ``.cov_re``, ``.scale``, ``.llf``, ``.aic``, ``.bic``,
    ``.random_effects`` and ``.fittedvalues``.  Its fixed-effect covariance
    (``.bse_fe``, ``.cov_params()``) is lme4's ``vcov()``.

    Parameters
    ----------
    formula : str
        The fixed part, patsy style: ``"normexam ~ standlrt + schgend"``.
        Use ``"normexam ~ 1"`` for the empty (null) model.  Categorical
        columns are dummy-coded with their first level as the reference.
    data : pandas.DataFrame
        One row per level-1 unit (e.g. pupil).
    groups : str
        Name of the column identifying the level-2 units (e.g. ``"school"``).
    re_formula : str, optional
        Random part: ``None`` (default) gives a random intercept;
        ``"1 + standlrt"`` adds a random slope of ``standlrt`` that is
        correlated with the intercept (lme4's ``(1 + standlrt | school)``).
    reml : bool, default False
        Maximum likelihood (``False``, needed to compare models with
        :func:`lr_test`) or restricted maximum likelihood (``True``).

    Returns
    -------
    statsmodels.regression.mixed_linear_model.MixedLMResultsWrapper
        Use :func:`summary`, :func:`fixed_effects`, :func:`random_effects`
        and :func:`group_effects` to read it.

    Warns
    -----
    SingularFitWarning
        When a random-effect variance is estimated as (almost) zero or a
        correlation as (almost) +-1, like lme4's "boundary (singular) fit".
    UserWarning
        When rows with missing values in the variables used are dropped.

    Examples
    --------
    >>> from mlmhelpers import load_dataset, fit_mixedlm
    >>> exam = load_dataset("tutorial")
    >>> m1 = fit_mixedlm("normexam ~ 1", exam, groups="school")
    >>> round(m1.llf, 3)
    -5505.324
    >>> round(float(m1.cov_re.iloc[0, 0]), 4)
    0.1686
    >>> m4 = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school",
    ...                  re_formula="1 + standlrt")
    >>> round(m4.llf, 2)
    -4652.89
    """
    from patsy import PatsyError
    from statsmodels.regression.mixed_linear_model import MixedLM

    _check_inputs(formula, data, groups, re_formula, reml)
    re_text = _normalise_re_formula(re_formula)
    frame = _prepare_data(formula, data, groups, re_text)
    if frame[groups].nunique() < 2:
        raise ValueError(
            f"fit_mixedlm: the grouping column {groups!r} has only one value; a "
            "multilevel model needs several groups. Use statsmodels' ols() instead.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MixedLM.from_formula(
                formula, data=frame, groups=groups,
                re_formula=None if re_text is None else "~" + re_text)
    except PatsyError as err:
        raise ValueError(
            f"fit_mixedlm: could not read the formula {formula!r}"
            + ("" if re_text is None else f" / re_formula {re_text!r}")
            + f": {err.message if hasattr(err, 'message') else err}") from None
    if model.endog.ndim != 1 or not np.all(np.isfinite(model.endog)):
        raise TypeError(
            "fit_mixedlm: the response must be one numeric column without "
            "infinite values.")
    if np.ptp(model.endog) == 0:
        raise ValueError(
            f"fit_mixedlm: the response {model.endog_names!r} has the same value "
            f"({model.endog[0]:g}) in every row used; there is no variation to model.")
    cp = _Crossprods.from_model(model)
    if cp.m * cp.q >= cp.n:
        # lme4 refuses these too: the random effects alone fit every observation
        raise ValueError(
            f"fit_mixedlm: {cp.n} observations but {cp.m} groups of {groups!r}"
            + (f" x {cp.q} random terms" if cp.q > 1 else "")
            + " - there must be more observations than random effects, or the "
            "level-2 and level-1 variances cannot be told apart (e.g. one row "
            "per group). Check that `groups` names the level-2 units (not an "
            "id of each row)" + (", or drop the random slope (re_formula=None)."
                                 if cp.q > 1 else "."))
    rank = np.linalg.matrix_rank(cp.XtX)
    if rank < cp.p:
        raise ValueError(
            "fit_mixedlm: the fixed-effects design is rank deficient (some "
            "terms are perfectly collinear, e.g. a variable constant within the "
            "data or a duplicated column); remove the redundant terms from "
            f"{formula!r}. Columns: {', '.join(model.exog_names)}.")
    theta, _ = _optimise_theta(cp, reml)
    result, est = _build_results(model, cp, theta, reml)
    cache = _make_cache(model, est, cp, reml, formula=formula, groups=groups,
                        rows=frame.index)
    cache["re_formula"] = re_text
    cache["data"] = frame
    result._results._mlmhelpers = cache
    if cache["singular"]:
        _warn_singular(result, est, groups)
    else:
        cov = est["cov_re"]
        sd = np.sqrt(np.diag(cov))
        if cov.shape[0] > 1 and np.all(sd > 0):
            corr = cov / np.outer(sd, sd)
            off = corr[np.triu_indices(cov.shape[0], 1)]
            if np.any(np.abs(off) > 1 - 1e-4):
                _warn_singular(result, est, groups)
    return result


def _warn_singular(result, est, groups):
    names = _re_term_names(result.model)
    cov = np.asarray(est["cov_re"], dtype=float)
    var = np.diag(cov)
    bits = [f"Var({groups}: {n}) = {v:.3g}" for n, v in zip(names, var)]
    for k in range(1, len(names)):
        if var[0] > 0 and var[k] > 0:
            corr = cov[0, k] / np.sqrt(var[0] * var[k])
            bits.append(f"Corr({names[0]}, {names[k]}) = {corr:.3f}")
    warnings.warn(
        "boundary (singular) fit: a random-effect variance is estimated as "
        "(practically) zero or a correlation as +-1 (" + "; ".join(bits) + "). "
        "The data carry no evidence for this part of the random structure; "
        "consider a simpler random part (e.g. drop the random slope) and "
        "check lr_test() against the model without it.",
        SingularFitWarning, stacklevel=3)


def _re_term_names(model):
    """Random-term names as lme4 prints them: ``(Intercept)``, ``standlrt``.

    statsmodels names the random intercept after the grouping column; the
    column of ones in the random design is the intercept whatever its name.
    """
    Z = np.asarray(model.exog_re)
    names = []
    for k, name in enumerate(model.data.exog_re_names):
        if np.all(Z[:, k] == 1.0):
            names.append("(Intercept)")
        else:
            names.append(str(name))
    return names


def _group_name(result):
    """Name of the grouping column of a MixedLM result."""
    inner = getattr(result, "_results", result)
    cache = getattr(inner, "_mlmhelpers", None)
    if cache and cache.get("groups"):
        return cache["groups"]
    model = inner.model
    Z = np.asarray(model.exog_re)
    for k, name in enumerate(model.data.exog_re_names):
        if np.all(Z[:, k] == 1.0) and name != "Group":
            return str(name)
    return "Group"
