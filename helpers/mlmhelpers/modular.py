"""Fitting a linear mixed model stage by stage, as lme4's ``R/modular.R`` does.

:func:`mlmhelpers.fit_mixedlm` is these six stages in a row; each is a
function of its own, so a maintainer (or a curious student) can run them one
at a time, look at what each returns, and swap one out:

========================  =====================  ===========================================
stage                     lme4                   returns
========================  =====================  ===========================================
:func:`model_spec`        ``lFormula`` (formula) a :class:`ModelSpec`: fixed part, random terms
:func:`model_frame`       ``lFormula`` (data)    a :class:`ModelFrame`: y, X, per term Z, groups
:func:`deviance_model`    ``mkLmerDevfun``       a :class:`DevianceModel` over theta
:func:`optimize_deviance` ``optimizeLmer``       a :class:`FitRecord`: optimum and evidence
:func:`check_convergence` ``checkConv``          a :class:`Verdict`: converged? singular?
:func:`make_results`      ``mkMerMod``           a :class:`~mlmhelpers.LinearMixedResults`
========================  =====================  ===========================================

The logistic fitter, :func:`mlmhelpers.fit_logit_mixed`, shares the first
two stages, the convergence messages and the results class.

Examples
--------
>>> import mlmhelpers as mlm
>>> from mlmhelpers import modular
>>> exam = mlm.load_dataset("tutorial")
>>> spec = modular.model_spec("normexam ~ standlrt + (standlrt | school)")
>>> frame = modular.model_frame(spec, exam)
>>> frame.n, [(t.name, t.names, t.m) for t in frame.terms]
(4059, [('school', ['(Intercept)', 'standlrt'], 65)])
>>> devfun = modular.deviance_model(frame, reml=False)
>>> record = modular.optimize_deviance(devfun)
>>> round(-record.deviance / 2, 2)
-4658.44
>>> verdict = modular.check_convergence(record, devfun)
>>> verdict.converged, verdict.singular
(True, False)
>>> m = modular.make_results(frame, devfun, record, verdict)
>>> round(m.llf, 2)
-4658.44
"""

from __future__ import annotations

from . import _checks
from ._checks import Verdict
from ._deviance import DevianceModel, Estimates
from ._formula import ModelSpec, RandomTerm
from ._formula import model_spec as _model_spec
from ._frame import GroupingTerm, ModelFrame, check_arguments, check_groups_argument
from ._frame import model_frame as _model_frame
from ._lmm import DenseDeviance
from ._optimize import FitRecord, optimize_deviance
from ._sparse import SparseDeviance
from .results import LinearMixedResults

__all__ = ["model_spec", "model_frame", "deviance_model", "optimize_deviance",
           "check_convergence", "make_results", "ModelSpec", "RandomTerm", "ModelFrame",
           "GroupingTerm", "DevianceModel", "DenseDeviance", "SparseDeviance", "Estimates",
           "FitRecord", "Verdict"]

FUNC = "fit_mixedlm"
_EXAMPLE = dict(formula="normexam ~ standlrt", groups="school")


def model_spec(formula, *, groups=None, re_formula=None, func=FUNC):
    """Stage 1: the formula as a :class:`ModelSpec` (lme4's ``lFormula``, formula part).

    ``formula`` in lme4's syntax (``"y ~ x + (1 + x | g)"``), or the fixed
    part with ``groups=`` and ``re_formula=`` (statsmodels' way); both give
    the same specification.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            f"{func}: `formula` must be a string such as 'normexam ~ standlrt' "
            "(response on the left of '~', fixed-effect terms on the right).")
    return _model_spec(func, formula, groups=groups, re_formula=re_formula, example=_EXAMPLE)


def model_frame(spec, data, *, family="gaussian", func=FUNC):
    """Stage 2: check the data and build the designs (a :class:`ModelFrame`)."""
    return _model_frame(func, spec, data, family=family)


def deviance_model(frame, reml=False):
    """Stage 3: the profiled deviance over theta (lme4's ``mkLmerDevfun``).

    One random term: :class:`DenseDeviance` (per-group cross-products, an
    analytic gradient); several: :class:`SparseDeviance` (a sparse Cholesky
    factor of the whole random-effects system).  Both agree where both apply.
    """
    if len(frame.terms) == 1:
        term = frame.terms[0]
        return DenseDeviance.from_arrays(frame.y, frame.X, term.Z, term.codes, term.m,
                                         reml=reml)
    return SparseDeviance(frame.y, frame.X, frame.terms, reml=reml)


def check_convergence(record, model, frame=None):
    """Stage 5: is the optimum converged, is it singular (lme4's ``checkConv``)?

    ``frame`` names the terms in the messages (default ``term 1``, ...).
    """
    est = model.estimates(record.theta)
    names = ([(t.name, t.names) for t in frame.terms] if frame is not None
             else [(f"term {k + 1}", [f"b{j + 1}" for j in range(q)])
                   for k, q in enumerate(model.qs)])
    terms = [(name, labels, cov) for (name, labels), cov in zip(names, est.covs)]
    return _checks.check_convergence(record, model, terms)


def make_results(frame, model, record, verdict=None):
    """Stage 6: the results object (lme4's ``mkMerMod``)."""
    if verdict is None:
        verdict = check_convergence(record, model, frame)
    est = model.estimates(record.theta)
    return LinearMixedResults(frame, est, reml=model.reml, optinfo=record, verdict=verdict)


def fit(formula, data, *, groups=None, re_formula=None, reml=False, func=FUNC):
    """The six stages in a row; :func:`mlmhelpers.fit_mixedlm` is this with its checks."""
    check_arguments(func, formula, data)
    check_groups_argument(func, groups, data)
    spec = _model_spec(func, formula, groups=groups, re_formula=re_formula, example=_EXAMPLE)
    frame = _model_frame(func, spec, data, family="gaussian")
    model = deviance_model(frame, reml=reml)
    record = optimize_deviance(model)
    verdict = check_convergence(record, model, frame)
    return make_results(frame, model, record, verdict), verdict
