"""Linear multilevel (mixed) models fitted the way R's lme4 fits them.

:func:`fit_mixedlm` runs lme4's modular pipeline (:mod:`mlmhelpers.modular`:
formula -> model frame -> profiled deviance -> optimiser -> convergence
check -> results) and returns a :class:`~mlmhelpers.results.LinearMixedResults`
whose numbers agree with ``lmer(..., REML = FALSE)``.  statsmodels' own
``MixedLM`` optimiser is not used (its default stops short of the optimum
on the course's very first model, ``normexam ~ 1``); the statsmodels result
is still there, built on first use, as ``result.statsmodels``, and a
statsmodels fit can be read the lme4 way with :func:`from_statsmodels`.
"""

from __future__ import annotations

import functools
import inspect
import weakref

import numpy as np
import pandas as pd

from . import modular
from ._checks import ConvergenceWarning, SingularFitWarning
from ._deviance import Estimates
from ._frame import GroupingTerm, ModelFrame
from ._lmm import DenseDeviance
from ._validate import ColumnNotFoundError, warn
from .results import LinearMixedResults

__all__ = ["fit_mixedlm", "from_statsmodels", "SingularFitWarning", "ConvergenceWarning",
           "ColumnNotFoundError"]


# statsmodels results already read: each is read once
_READ: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def keyword_only_after_data(func):
    """Arguments after ``data`` must be named: a clear error when they are not."""
    params = list(inspect.signature(func).parameters.values())
    named = [p.name for p in params if p.kind is p.KEYWORD_ONLY]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if len(args) > 2:
            given = ", ".join(f"{n}={v!r}" for n, v in zip(named, args[2:]))
            raise TypeError(
                f"{func.__name__}: write the arguments after `data` with their names, "
                f"e.g. {func.__name__}(formula, data, {given}); they are "
                f"{', '.join(named)}.")
        return func(*args, **kwargs)

    return wrapper


@keyword_only_after_data
def fit_mixedlm(formula, data, *, groups=None, re_formula=None, reml=False):
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
    groups : str, optional (by name)
        Name of the column identifying the level-2 units (e.g. ``"school"``);
        omitted when the formula has lme4's random terms.
    re_formula : str, optional (by name)
        With ``groups``: ``None`` (default) gives a random intercept;
        ``"1 + standlrt"`` adds a random slope of ``standlrt`` that is
        correlated with the intercept (lme4's ``(1 + standlrt | school)``).
    reml : bool, default False (by name)
        Maximum likelihood (``False``, needed to compare models with
        :func:`lr_test`) or restricted maximum likelihood (``True``).

    Returns
    -------
    LinearMixedResults
        ``.fe_params``, ``.bse``, ``.scale``, ``.llf``, ``.aic``, ``.bic``,
        ``.random_terms`` (per random term: ``.cov``, ``.ranef``,
        ``.ranef_se``), ``.summary()``, ``.conf_int()``, ``.predict()``,
        ``.optinfo`` (the optimiser's evidence); with one random term also
        ``.cov_re``, ``.ranef`` (each group's predicted effects) and
        ``.statsmodels`` (the same fit as a statsmodels ``MixedLMResults``).
        Read it with :func:`summary`, :func:`fixed_effects`,
        :func:`random_effects` (the variance table) and :func:`group_effects`.

    Warns
    -----
    SingularFitWarning
        When the optimum has a random-effect variance of (practically) zero
        or a correlation of +-1 (lme4's "boundary (singular) fit").  The
        optimiser reports it only after checking that no point off the
        boundary is better; test whether the term is needed with
        :func:`lr_test`.
    ConvergenceWarning
        When the gradient of the deviance at the estimates is not zero
        (lme4's "Model failed to converge").
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
    >>> m4b.optinfo.boundary_checked, m4b.singular
    (False, False)
    """
    if not isinstance(reml, (bool, np.bool_)):
        raise TypeError(
            f"fit_mixedlm: `reml` must be True or False, not {reml!r}. The course "
            "uses reml=False (maximum likelihood) so that models can be compared "
            "with lr_test().")
    try:
        result, verdict = modular.fit(formula, data, groups=groups, re_formula=re_formula,
                                      reml=bool(reml))
    except RuntimeError as exc:
        raise RuntimeError(f"fit_mixedlm: {exc}") from None
    for category, text in verdict.messages:
        warn(text, category)
    return result


def from_statsmodels(sm_result) -> LinearMixedResults:
    """A statsmodels ``MixedLM`` fit, read the lme4 way at its own estimates.

    The estimates are statsmodels' own (theta from the Cholesky factor of
    ``cov_re / scale``); lme4's standard errors, conditional modes and
    variances are computed at them by the pipeline's deviance stage.

    Examples
    --------
    >>> import statsmodels.formula.api as smf, mlmhelpers as mlm
    >>> exam = mlm.load_dataset("tutorial")
    >>> sm = smf.mixedlm("normexam ~ standlrt", exam, groups="school").fit(reml=False)
    >>> m = from_statsmodels(sm)
    >>> m.re_names, round(m.llf, 1)
    (['(Intercept)'], -4678.6)
    """
    from ._statsmodels import read_mixedlm

    inner = getattr(sm_result, "_results", sm_result)
    cached = _READ.get(inner)
    if cached is not None:
        return cached
    data = read_mixedlm(sm_result)
    term = GroupingTerm(name=data["group"], factor=data["group"], columns=(data["group"],),
                        names=data["re_names"], codes=data["codes"],
                        labels=pd.Index(data["labels"], name=data["group"]), Z=data["Z"])
    frame = ModelFrame(y=data["y"], X=data["X"], exog_names=data["exog_names"], terms=[term],
                       rows=data["rows"], frame=data["frame"], fixed=data["formula"],
                       formula=f"{data['formula']} + ({' + '.join(data['re_names'])} | "
                               f"{data['group']})".replace("(Intercept)", "1"),
                       response=data["response"], design_info=data["design_info"],
                       variables={})
    model = DenseDeviance.from_arrays(frame.y, frame.X, term.Z, term.codes, term.m,
                                      reml=data["reml"])
    est: Estimates = model.estimates(model.canonical(data["theta"]))
    result = LinearMixedResults(frame, est, reml=data["reml"])
    result._statsmodels = sm_result
    _READ[inner] = result
    return result
