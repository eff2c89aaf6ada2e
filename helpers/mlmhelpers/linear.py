"""Linear multilevel (mixed) models fitted the way R's lme4 fits them.

:func:`fit_mixedlm` minimises lme4's *profiled deviance* over the relative
covariance factor (lme4's ``theta``) with an analytic gradient (the numerical
core is :mod:`mlmhelpers._lmm`) and returns a
:class:`~mlmhelpers.results.LinearMixedResults` whose numbers agree with
``lmer(..., REML = FALSE)``.  statsmodels' own ``MixedLM`` optimiser is not
used (its default stops short of the optimum on the course's very first
model, ``normexam ~ 1``); the statsmodels result is still there, built on
first use, as ``result.statsmodels``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import _lmm, _sparse
from ._formula import lme4_blocks
from ._prepare import Design, prepare
from ._validate import ColumnNotFoundError
from .results import LinearMixedResults, MultiLinearMixedResults

__all__ = ["fit_mixedlm", "SingularFitWarning", "ColumnNotFoundError"]


class SingularFitWarning(UserWarning):
    """A variance estimate is (nearly) zero or a correlation is (nearly) +-1."""


def fit_mixedlm(formula, data, groups=None, re_formula=None, reml=False):
    """Fit a linear mixed model at lme4's optimum.

    The equivalent of ``lmer(y ~ x + (1 + z | g), data, REML = FALSE)`` in R.
    The estimates minimise lme4's profiled deviance, so they agree with lme4
    (and reach the optimum where statsmodels' default optimiser stops short).

    Parameters
    ----------
    formula : str
        Either the fixed part, patsy style, with the grouping column given as
        ``groups``: ``"normexam ~ standlrt + schgend"`` (``"normexam ~ 1"``
        for the empty model); or lme4's whole formula, random terms
        included, with ``groups`` omitted:
        ``"normexam ~ standlrt + (1 + standlrt | school)"``.  Random terms:
        ``(1 | g)``, ``(x | g)`` = ``(1 + x | g)``, ``(0 + x | g)``, several
        terms (crossed or nested factors, e.g. ``(1 | lea) + (1 | school)``),
        ``(1 + x || g)`` (uncorrelated), ``(1 | a/b)`` (= ``(1 | a) + (1 |
        a:b)``) and ``(1 | a:b)``.  Categorical columns are dummy-coded with
        their first level as the reference.
    data : pandas.DataFrame
        One row per level-1 unit (e.g. pupil).  Rows with a missing value in
        a column the model uses are dropped, with a warning.
    groups : str, optional
        Name of the column identifying the level-2 units (e.g. ``"school"``);
        omitted when the formula has lme4's random terms.
    re_formula : str, optional
        With ``groups``: ``None`` (default) gives a random intercept;
        ``"1 + standlrt"`` adds a random slope of ``standlrt`` that is
        correlated with the intercept (lme4's ``(1 + standlrt | school)``).
    reml : bool, default False
        Maximum likelihood (``False``, needed to compare models with
        :func:`lr_test`) or restricted maximum likelihood (``True``).

    Returns
    -------
    LinearMixedResults
        (a ``MultiLinearMixedResults`` when the formula has several random
        blocks: its ``cov_re``, ``ranef``, ``ngroups`` are dicts by factor)
        ``.fe_params``, ``.bse``, ``.cov_re``, ``.scale``, ``.llf``, ``.aic``,
        ``.bic``, ``.ranef`` (each group's predicted effects), ``.summary()``,
        ``.conf_int()``, ``.predict()``; read it with :func:`summary`,
        :func:`fixed_effects`, :func:`random_effects` (the variance table) and
        :func:`group_effects`.  ``.statsmodels`` is the same fit as a
        statsmodels ``MixedLMResults``.

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
    >>> m4b = fit_mixedlm("normexam ~ standlrt + schgend + (standlrt | school)", exam)
    >>> round(m4b.llf, 2)
    -4652.89
    """
    if not isinstance(reml, (bool, np.bool_)):
        raise TypeError(
            f"fit_mixedlm: `reml` must be True or False, not {reml!r}. The course "
            "uses reml=False (maximum likelihood) so that models can be compared "
            "with lr_test().")
    fixed, blocks, single = lme4_blocks("fit_mixedlm", formula, groups, re_formula,
                                        dict(formula="normexam ~ standlrt", groups="school"))
    if single is not None:
        groups, re_formula = single
        formula = fixed
    if blocks and single is None:
        return _fit_blocks(fixed, formula, blocks, data, bool(reml))
    design = prepare("fit_mixedlm", formula, data, groups, re_formula=re_formula,
                     family="gaussian")
    return _fit(design, bool(reml))


def _fit_blocks(fixed, formula, rblocks, data, reml):
    """Several random-effects blocks: the sparse engine (:mod:`mlmhelpers._sparse`)."""
    func = "fit_mixedlm"
    extra = list(dict.fromkeys(c for b in rblocks for c in b.factors + tuple(b.slopes)))
    design = prepare(func, fixed, data, rblocks[0].factors[0], family="gaussian",
                     extra=extra)
    frame = design.frame
    for name in dict.fromkeys(t for b in rblocks for t in b.slopes):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise TypeError(
                f"{func}: the random slope {name!r} must be a numeric column; make a 0/1 "
                "column of a category first.")
    names = [b.group for b in rblocks]
    seen = {}
    blocks = []
    for rb, name in zip(rblocks, names):
        k = seen.get(name, 0)
        seen[name] = k + 1
        label = name if k == 0 else f"{name}.{k}"  # lme4: g, g.1 for (1 + x || g)
        parts = name.split(":")  # lme4 prints nested levels inner first: school:lea
        key = frame[parts[0]]
        if len(parts) > 1:
            key = frame[parts[0]].astype(str)
            for f in parts[1:]:
                key = key + ":" + frame[f].astype(str)
        codes, labels = pd.factorize(key, sort=True)
        if hasattr(labels, "categories"):
            labels = np.asarray(labels)
        Z = np.column_stack([np.ones(design.n) if t == "(Intercept)"
                             else frame[t].to_numpy(dtype=float) for t in rb.terms])
        if len(labels) < 2:
            raise ValueError(
                f"{func}: the grouping factor {name!r} has only one level in the rows used; "
                "a random term needs several groups.")
        blocks.append(_sparse.Block(label, codes.astype(np.intp), labels, Z, list(rb.terms),
                                    factor=name))
    blocks.sort(key=lambda b: -b.m)  # lme4 orders the terms by their number of levels
    if sum(b.m * b.q for b in blocks) >= design.n:
        raise ValueError(
            f"{func}: {design.n} observations but {sum(b.m * b.q for b in blocks)} random "
            "effects; there must be more observations than random effects.")
    model = _sparse.SparseModel(design.y, design.X, blocks)
    theta, _, info = _sparse.optimise(model, reml)
    est = model.estimates(theta, reml)
    notes = []
    sing = model.singular_blocks(theta)
    message = None
    if sing:
        parts = ", ".join(blocks[k].name for k in sing)
        message = (f"boundary (singular) fit: a random-effect variance of {parts} is "
                   "estimated as (practically) zero or a correlation as +-1. The data carry "
                   "no evidence for this part of the random structure; consider dropping "
                   "it and check lr_test() against the model without it.")
        notes.append(message)
    converged = info["gradient"] < _lmm.GRAD_TOL * max(1.0, abs(est["dev"]) / 1e4)
    if not converged:
        notes.append(
            "Model failed to converge: the largest gradient of the deviance at the "
            f"estimates is {info['gradient']:.2g}. Do not trust these estimates; try "
            "rescaling covariates or a simpler random part.")
    result = MultiLinearMixedResults(design, blocks, est, reml=reml, theta=theta,
                                     formula=formula, optimizer=info, notes=notes,
                                     condvar_of=lambda: model.conditional_variances(
                                         theta, est["sigma2"]),
                                     converged=converged, singular=bool(sing))
    for note in notes:
        warnings.warn(note, SingularFitWarning if note is message else UserWarning,
                      stacklevel=3)
    return result


def _fit(design: Design, reml: bool):
    cp = _lmm.Crossprods.from_arrays(design.y, design.X, design.Z, design.codes,
                                     design.ngroups)
    theta, _, info = _lmm.optimise(cp, reml)
    est = cp.estimates(theta, reml)
    notes = []
    message = _singular_message(design, est, cp.is_singular(theta))
    if message:
        notes.append(message)
    converged = info["gradient"] < _lmm.GRAD_TOL
    if not converged:
        notes.append(
            "Model failed to converge: the largest gradient of the deviance at the "
            f"estimates is {info['gradient']:.2g} (lme4 checks 0.002). Do not trust these "
            "estimates; try rescaling covariates or a simpler random part.")
    result = LinearMixedResults(design, est, reml=reml, theta=theta, optimizer=info,
                                notes=notes, converged=converged)
    for note in notes:
        warnings.warn(note, SingularFitWarning if note is message else UserWarning,
                      stacklevel=3)
    return result


def _singular_message(design, est, singular):
    """lme4's "boundary (singular) fit" message, or None for a regular fit."""
    cov = np.asarray(est["cov_re"], dtype=float)
    var = np.diag(cov)
    sd = np.sqrt(np.clip(var, 0, None))
    if not singular:
        if cov.shape[0] < 2 or not np.all(sd > 0):
            return None
        corr = cov / np.outer(sd, sd)
        if not np.any(np.abs(corr[np.triu_indices(cov.shape[0], 1)]) > 1 - 1e-4):
            return None
    names = design.re_names
    bits = [f"Var({design.groups}: {n}) = {v:.3g}" for n, v in zip(names, var)]
    for k in range(1, len(names)):
        if var[0] > 0 and var[k] > 0:
            bits.append(f"Corr({names[0]}, {names[k]}) = {cov[0, k] / (sd[0] * sd[k]):.3f}")
    return ("boundary (singular) fit: a random-effect variance is estimated as "
            "(practically) zero or a correlation as +-1 (" + "; ".join(bits) + "). "
            "The data carry no evidence for this part of the random structure; "
            "consider a simpler random part (e.g. drop the random slope) and "
            "check lr_test() against the model without it.")


# ---------------------------------------------------------------------------
# statsmodels, both ways
# ---------------------------------------------------------------------------

def _to_statsmodels(result: LinearMixedResults):
    """The fit as a statsmodels ``MixedLMResults`` at this fit's estimates."""
    from statsmodels.regression.mixed_linear_model import (
        MixedLM, MixedLMParams, MixedLMResults, MixedLMResultsWrapper)

    exog = pd.DataFrame(result._X, columns=result.exog_names)
    exog_re = pd.DataFrame(result._Z, columns=result.re_names)
    endog = pd.Series(result._y, name=result.response)
    groups = np.asarray(result.ranef.index)[result._codes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLM(endog, exog, groups=groups, exog_re=exog_re)
    model.reml = result.reml
    model.cov_pen = None
    model.fe_pen = None
    model._cov_sing = 0
    model._freepat = None
    scale = result.scale
    cov_un = result.cov_re.to_numpy() / scale
    params = MixedLMParams.from_components(result.fe_params.to_numpy(), cov_re=cov_un,
                                           vcomp=np.zeros(0))
    packed = params.get_packed(use_sqrt=False, has_fe=True)
    k, p = len(packed), len(result.exog_names)
    pcov = np.full((k, k), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hess, _ = model.hessian(params)
            inv = np.linalg.inv(-hess)
            if np.all(np.isfinite(inv)):
                pcov = inv
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError):
            pass
    pcov[:p, :p] = result.cov_params_fe.to_numpy()
    pcov[:p, p:] = 0.0
    pcov[p:, :p] = 0.0
    res = MixedLMResults(model, packed, pcov / scale)
    res.params_object = params
    res.fe_params = result.fe_params.to_numpy()
    res.cov_re = result.cov_re.to_numpy()
    res.vcomp = np.zeros(0)
    res.scale = scale
    res.cov_re_unscaled = cov_un
    res.method = result.method
    res.converged = True
    res.hist = None
    res.reml = result.reml
    res.cov_pen = None
    res.k_fe, res.k_re, res.k_re2, res.k_vc = model.k_fe, model.k_re, model.k_re2, 0
    res.use_sqrt = True
    res.freepat = None
    # statsmodels' loglike() is infinite when a variance is exactly zero; the
    # profiled deviance is not, and equals -2 llf everywhere else.
    if getattr(res, "_cache", None) is None:
        res._cache = {}
    res._cache["llf"] = result.llf
    res._cache["random_effects"] = {
        label: pd.Series(row, index=result.re_names)
        for label, row in zip(result.ranef.index, result.ranef.to_numpy())}
    return MixedLMResultsWrapper(res)


def from_statsmodels(sm_result) -> LinearMixedResults:
    """A MixedLM result fitted with statsmodels directly, read the lme4 way.

    The estimates are statsmodels' own (theta from the Cholesky factor of
    ``cov_re / scale``); lme4's standard errors, conditional modes and
    variances are computed at them.
    """
    inner = getattr(sm_result, "_results", sm_result)
    cached = getattr(inner, "_mlmhelpers_result", None)
    if cached is not None:
        return cached
    model = inner.model
    if getattr(model, "k_vc", 0):
        raise ValueError(
            "This model has variance components (vc_formula); the course helpers "
            "handle one grouping factor with random intercept/slopes only.")
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
    design_info = getattr(model.data, "design_info", None)
    design = Design(
        y=y, X=X, exog_names=list(model.exog_names), Z=Z, re_names=re_names, codes=codes,
        group_labels=pd.Index(labels, name=group),
        rows=pd.RangeIndex(len(y)) if rows is None else pd.Index(rows),
        frame=frame if frame is not None else pd.DataFrame({group: np.asarray(labels)[codes]}),
        formula=formula, response=str(model.endog_names), groups=group, re_formula=None,
        design_info=design_info, re_design_info=None, variables={})
    cp = _lmm.Crossprods.from_arrays(y, X, Z, codes, len(labels))
    cov_un = np.asarray(inner.cov_re_unscaled, dtype=float)
    try:
        T = np.linalg.cholesky(cov_un)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov_un)
        T = np.linalg.cholesky(v @ np.diag(np.maximum(w, 1e-12)) @ v.T)
    theta = T[cp.tril]
    reml = bool(inner.reml)
    est = cp.estimates(theta, reml)
    result = LinearMixedResults(design, est, reml=reml, theta=theta)
    result._statsmodels = sm_result
    inner._mlmhelpers_result = result
    return result
