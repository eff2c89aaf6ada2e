"""Stage 5 of fitting: the convergence check (lme4's ``checkConv``).

:func:`check_convergence` reads a :class:`~mlmhelpers._optimize.FitRecord`
and says whether the fit converged and whether it is singular, with the
one wording of each message the library has (the linear and the logistic
fitters both use it):

* **singular** (lme4's ``isSingular``): a diagonal entry of some ``T_k`` is
  below 1e-4 - a variance of (practically) zero or a correlation of +-1.
  The optimiser only reports this after its boundary check has shown that
  the boundary is the optimum.  The message states a fact about the
  estimate and the check to run (:func:`mlmhelpers.lr_test`), as lme4's
  ``help("isSingular")`` does.
* **converged** (lme4's ``check.conv.grad``): the largest entry of the
  gradient, or of the gradient scaled by the curvature (``solve(chol(H),
  g)``), whichever is smaller, is below 0.002.  The Hessian is only
  computed when the plain gradient is not small already.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._deviance import SINGULAR_TOL

GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance


class SingularFitWarning(UserWarning):
    """A random-effect variance is estimated as zero or a correlation as +-1."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped where the gradient of the deviance is not zero."""


@dataclass
class Verdict:
    """What the convergence check found."""

    converged: bool
    singular: bool
    singular_terms: list = field(default_factory=list)  # names of the singular terms
    scaled_gradient: float = 0.0
    messages: list = field(default_factory=list)         # (warning class, text)

    @property
    def notes(self):
        return [text for _, text in self.messages]


def _term_details(name, names, cov):
    """``Var(school: cses) = 0.0004, Corr((Intercept), cses) = 1.000``."""
    cov = np.asarray(cov, dtype=float)
    var = np.diag(cov)
    sd = np.sqrt(np.clip(var, 0, None))
    bits = [f"Var({name}: {n}) = {v:.3g}" for n, v in zip(names, var)]
    for i in range(len(names)):
        for j in range(i):
            if sd[i] > 0 and sd[j] > 0:
                bits.append(f"Corr({names[j]}, {names[i]}) = {cov[i, j] / (sd[i] * sd[j]):.3f}")
    return ", ".join(bits)


def singular_message(terms):
    """The warning for a singular fit; ``terms`` is [(name, term names, cov)]."""
    which = " and ".join(name for name, _, _ in terms)
    details = "; ".join(_term_details(*t) for t in terms)
    return (f"boundary (singular) fit: the estimated covariance matrix of the random "
            f"effects of {which} is singular ({details}): a variance is estimated as "
            "zero or a correlation as +-1, on the boundary of what is possible. That is a "
            "fact about this estimate, not proof that the variance is zero in the "
            "population; to judge whether the data need this part of the random "
            "structure, fit the model without it and compare the two with lr_test().")


def convergence_message(value, tol=GRAD_TOL):
    """The warning for a fit whose gradient is not zero."""
    return (f"Model failed to converge with max|grad| = {value:.3g} (tol = {tol:g}): the "
            "deviance still falls at the estimates, so do not trust them. Try rescaling "
            "covariates (centre them, or change their units) or a simpler random part.")


def scaled_gradient(model, theta, gradient, free):
    """lme4's convergence statistic: max(min(|H^-1/2 g|, |g|)) over the free entries."""
    g = np.asarray(gradient, float)[free]
    if g.size == 0:
        return 0.0
    raw = float(np.max(np.abs(g)))
    if raw < GRAD_TOL:
        return raw
    idx = np.flatnonzero(free)
    H = np.empty((len(idx), len(idx)))
    for a, i in enumerate(idx):
        h = 1e-4 * max(1.0, abs(theta[i]))
        up, down = np.array(theta, float), np.array(theta, float)
        up[i] += h
        down[i] -= h
        H[:, a] = (model.deviance_and_gradient(up)[1][idx]
                   - model.deviance_and_gradient(down)[1][idx]) / (2 * h)
    H = 0.5 * (H + H.T)
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(H), g)
    except np.linalg.LinAlgError:
        return raw
    return float(np.max(np.minimum(np.abs(scaled), np.abs(g))))


def scaled_gradient_from(gradient, hessian):
    """lme4's statistic from a gradient and Hessian: max(min(|solve(chol(H), g)|, |g|))."""
    g = np.asarray(gradient, float)
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(np.asarray(hessian, float)), g)
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(g), initial=0.0))
    return float(np.max(np.minimum(np.abs(scaled), np.abs(g)), initial=0.0))


def check_convergence(record, model, terms):
    """Check a fit record; ``terms`` is [(name, term names, covariance)] per random term.

    Returns
    -------
    Verdict
    """
    theta = np.asarray(record.theta, float)
    singular = [terms[k] for k in model.singular_terms(theta)]
    messages = []
    if singular:
        messages.append((SingularFitWarning, singular_message(singular)))
    free = ~(model.diagonal & (theta == 0.0))
    _, grad = model.deviance_and_gradient(theta)
    value = scaled_gradient(model, theta, grad, free)
    converged = bool(np.isfinite(record.deviance) and value < GRAD_TOL)
    if not converged:
        messages.append((ConvergenceWarning, convergence_message(value)))
    return Verdict(converged=converged, singular=bool(singular),
                   singular_terms=[t[0] for t in singular], scaled_gradient=value,
                   messages=messages)


__all__ = ["SINGULAR_TOL", "GRAD_TOL", "SingularFitWarning", "ConvergenceWarning", "Verdict",
           "check_convergence", "singular_message", "convergence_message",
           "scaled_gradient_from"]
