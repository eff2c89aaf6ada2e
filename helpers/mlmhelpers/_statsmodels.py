"""The bridge to statsmodels, both ways, through statsmodels' public API only.

* :func:`to_statsmodels` gives a fit of the library as a statsmodels
  ``MixedLMResults`` at the library's estimates (``result.statsmodels``):
  statsmodels' own ``MixedLM.fit`` is started at them with every variance
  parameter held fixed (its documented ``free=`` mask), so it computes its
  results object there without moving.  The fixed effects are profiled out
  by statsmodels exactly as by lme4 (generalised least squares at the given
  covariance), so they, their standard errors and the log-likelihood are the
  same numbers.  Standard errors of the variance parameters are not given
  (NaN, blank in statsmodels' summary): held fixed, statsmodels would print
  0, and Wald errors of variances are a poor guide anyway.
* :func:`read_mixedlm` takes apart a statsmodels ``MixedLM`` result (data,
  groups, theta) for :func:`mlmhelpers.linear.from_statsmodels`, which
  reads it the lme4 way.

Nothing here imports the library's results classes, so the modules do not
depend on each other in a circle.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# Relative size of the ridge that keeps a singular covariance matrix inside
# statsmodels' parameter space (its likelihood is -inf on the boundary).
_RIDGE = 1e-10


def to_statsmodels(result):
    """``result`` (one random term) as a statsmodels ``MixedLMResults``.

    Its ``fe_params``, ``cov_re``, ``scale`` and ``llf`` are the library's
    (to about 1e-9 on a singular fit, where the covariance matrix gets a
    ridge of relative size 1e-10 so that statsmodels can evaluate it); its
    fixed-effect covariance is statsmodels' at that point, which is lme4's.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    term = result.random_terms[0]
    exog = pd.DataFrame(result._X, columns=result.exog_names)
    exog_re = pd.DataFrame(term.Z, columns=term.names)
    endog = pd.Series(result._y, name=result.response)
    groups = term.ranef.index.to_numpy()[term.codes]
    scale = result.scale
    cov_un = term.cov.to_numpy() / scale
    q = cov_un.shape[0]
    w, v = np.linalg.eigh(cov_un)
    floor = _RIDGE * max(1.0, float(np.max(np.abs(w), initial=0.0)))
    if np.min(w, initial=np.inf) < floor:
        cov_un = (v * np.maximum(w, floor)) @ v.T
    p = len(result.exog_names)
    start = MixedLMParams.from_components(result.fe_params.to_numpy(), cov_re=cov_un)
    free = MixedLMParams.from_components(np.ones(p), cov_re=np.zeros((q, q)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLM(endog, exog, groups=groups, exog_re=exog_re)
        fitted = model.fit(start_params=start, reml=result.reml, free=free, method="lbfgs")
    # in place, before anything has read it: the variance rows are not estimated here
    ncp = fitted._results.normalized_cov_params  # the array itself (the wrapper copies)
    ncp[p:, :] = np.nan
    ncp[:, p:] = np.nan
    ncp[:p, :p] = result.cov_params_fe.to_numpy() / scale
    return fitted


def read_mixedlm(sm_result):
    """The data and estimates of a statsmodels ``MixedLM`` result, as a dict.

    Keys: ``y``, ``X``, ``Z``, ``codes``, ``labels``, ``group`` (a name for
    the grouping factor), ``re_names``, ``exog_names``, ``response``,
    ``formula``, ``rows``, ``frame``, ``design_info``, ``theta`` (lme4's, from
    the Cholesky factor of ``cov_re / scale``) and ``reml``.
    """
    inner = getattr(sm_result, "_results", sm_result)
    model = inner.model
    if getattr(model, "k_vc", 0):
        raise ValueError(
            "This model has variance components (vc_formula); the course helpers "
            "read statsmodels fits with one grouping factor and random intercept/slopes. "
            "Fit it with fit_mixedlm() in lme4's syntax instead, e.g. "
            "'y ~ x + (1 | school/class)'.")
    y = np.asarray(model.endog, dtype=float)
    X = np.asarray(model.exog, dtype=float)
    Z = np.asarray(model.exog_re, dtype=float)
    labels = list(model.group_labels)
    codes = np.empty(len(y), dtype=np.intp)
    for j, label in enumerate(labels):
        codes[model.row_indices[label]] = j
    re_names = ["(Intercept)" if np.all(Z[:, k] == 1.0) else str(name)
                for k, name in enumerate(model.data.exog_re_names)]
    group = "Group"
    for k, name in enumerate(model.data.exog_re_names):
        if np.all(Z[:, k] == 1.0) and name != "Group":
            group = str(name)
    frame = getattr(model.data, "frame", None)
    rows = getattr(model.data, "row_labels", None)
    formula = getattr(model, "formula", None) or f"{model.endog_names} ~ ..."
    cov_un = np.asarray(inner.cov_re_unscaled, dtype=float)
    try:
        T = np.linalg.cholesky(cov_un)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov_un)
        T = np.linalg.cholesky(v @ np.diag(np.maximum(w, 1e-12)) @ v.T)
    return dict(
        y=y, X=X, Z=Z, codes=codes, labels=labels, group=group, re_names=re_names,
        exog_names=list(model.exog_names), response=str(model.endog_names),
        formula=formula, rows=pd.RangeIndex(len(y)) if rows is None else pd.Index(rows),
        frame=(frame if frame is not None
               else pd.DataFrame({group: np.asarray(labels, dtype=object)[codes]})),
        design_info=getattr(model.data, "design_info", None),
        theta=T[np.tril_indices(T.shape[0])], reml=bool(inner.reml))
