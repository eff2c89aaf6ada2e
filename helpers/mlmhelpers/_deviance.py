"""Stage 3 of fitting: the deviance function (lme4's ``mkLmerDevfun``).

A linear mixed model's log-likelihood, profiled over the fixed effects and
the residual variance, is a function of ``theta`` alone: the entries of the
lower-triangular relative covariance factors ``T_k`` of the random terms
(Bates et al. 2015, *J. Stat. Softw.* 67(1), section 3; lme4's
parametrisation, with ``T_k`` of term ``k`` giving ``Var(b_k) = sigma^2
T_k T_k'``).  :class:`DevianceModel` is what the optimiser and the results
need of such a function, whatever engine computes it:

* ``start()`` lme4's start (every ``T_k`` the identity), ``lower_bounds()``
  (0 for the diagonal entries, which lme4 keeps non-negative),
  ``diagonal`` (which entries are diagonal), ``columns`` (the entries of
  each column of each ``T_k``);
* ``deviance(theta)``, ``deviance_and_gradient(theta)``;
* ``estimates(theta)`` (an :class:`Estimates`).

Two engines implement it: :class:`mlmhelpers._lmm.DenseDeviance` for one
random term (per-group cross-products, an analytic gradient) and
:class:`mlmhelpers._sparse.SparseDeviance` for several (a sparse Cholesky
of the whole random-effects system).  :func:`deviance_model` picks one.

The deviance is unchanged when a column of any ``T_k`` changes sign (``T D
D T' = T T'`` for ``D`` diagonal with entries +-1), so it is *even* in
every column; the optimiser relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


_TRIL = {}


def _tril(q):
    """np.tril_indices(q), computed once per q (it is called in every evaluation)."""
    out = _TRIL.get(q)
    if out is None:
        out = _TRIL[q] = np.tril_indices(q)
    return out

SINGULAR_TOL = 1e-4  # lme4's isSingular() tolerance on the diagonal of theta


def profiled_deviance(logdet, RX, pwrss, n, p, reml):
    """lme4's profiled deviance (ML) or REML criterion from log|A|, R_X and the
    penalised residual sum of squares; shared by the engines."""
    if reml:
        dof = n - p
        return (logdet + 2.0 * np.sum(np.log(np.diag(RX)))
                + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof)))
    return logdet + n * (1.0 + np.log(2.0 * np.pi * pwrss / n))


@dataclass
class Estimates:
    """What lme4 reports at a value of theta.

    ``covs[k]`` is the covariance matrix of term ``k``'s random effects
    (``sigma^2 T_k T_k'``), ``b[k]`` its conditional modes (groups x terms);
    ``condvar()`` gives, per term, the conditional covariance matrices of
    the modes (groups x q x q), computed on first use.
    """

    beta: np.ndarray
    sigma2: float
    vcov: np.ndarray
    dev: float
    theta: np.ndarray
    covs: list
    b: list
    condvar: Callable = field(repr=False, default=None)


class DevianceModel:
    """The interface of a deviance function over theta (see the module docstring).

    Subclasses set ``n``, ``p``, ``reml``, ``qs`` (random effects per group
    of each term) and implement :meth:`deviance` and :meth:`estimates`.  A
    deviance that is not profiled over further parameters (a generalised
    model's fixed effects) sets ``n_extra``: they follow theta in the
    parameter vector, unbounded, and ``extra_start()`` gives their start.
    """

    n: int
    p: int
    reml: bool
    qs: list
    n_extra = 0

    def extra_start(self):
        return np.zeros(self.n_extra)

    # -- the layout of theta -----------------------------------------------------
    def _layout(self):
        cached = self.__dict__.get("_layout_cache")
        if cached is not None and cached[0] == list(self.qs):
            return cached[1]
        slices, rows, cols, off = [], [], [], 0
        for q in self.qs:
            r, c = _tril(q)
            slices.append(slice(off, off + len(r)))
            rows.append(r)
            cols.append(c)
            off += len(r)
        self.__dict__["_layout_cache"] = (list(self.qs), (slices, rows, cols, off))
        return slices, rows, cols, off

    @property
    def ntheta(self):
        """Number of entries of theta (without any extra parameters)."""
        return self._layout()[3]

    @property
    def term_slices(self):
        """The entries of theta of each term."""
        return self._layout()[0]

    @property
    def diagonal(self):
        """Boolean mask: which entries of theta are diagonal entries of a T_k."""
        _, rows, cols, _ = self._layout()
        return np.concatenate([r == c for r, c in zip(rows, cols)]
                              + [np.zeros(self.n_extra, dtype=bool)])

    @property
    def columns(self):
        """Index arrays: the entries of theta in each column of each T_k.

        Column ``j`` of ``T_k`` holds the diagonal entry first, then the
        entries below it; flipping the sign of all of them leaves the
        deviance unchanged.
        """
        slices, rows, cols, _ = self._layout()
        out = []
        for s, r, c in zip(slices, rows, cols):
            idx = np.arange(s.start, s.stop)
            for j in np.unique(c):
                members = idx[c == j]
                diag = members[r[c == j] == j]
                out.append(np.r_[diag, members[r[c == j] != j]])
        return out

    def scales(self):
        """The typical size of each entry of theta: 1 / the root mean square of the
        design column it multiplies (a covariate in thousands gives a small
        relative SD).  Used to choose points off the boundary."""
        raise NotImplementedError

    @property
    def rows(self):
        """Index arrays: the entries of theta in each row of each T_k (diagonal last)."""
        slices, rows, cols, _ = self._layout()
        out = []
        for s, r, c in zip(slices, rows, cols):
            idx = np.arange(s.start, s.stop)
            for i in np.unique(r):
                out.append(idx[r == i])
        return out

    def start(self):
        """lme4's starting value: every T_k the identity."""
        return np.concatenate([np.eye(q)[_tril(q)] for q in self.qs]
                              + [self.extra_start()])

    def lower_bounds(self):
        """lme4's bounds: 0 for the diagonal entries, none for the others."""
        return np.where(self.diagonal, 0.0, -np.inf)

    def block_T(self, theta, k):
        """T_k, the relative covariance factor of term k."""
        q = self.qs[k]
        T = np.zeros((q, q))
        T[_tril(q)] = np.asarray(theta, float)[self.term_slices[k]]
        return T

    def canonical(self, theta):
        """theta with every column of every T_k signed so its diagonal is >= 0."""
        theta = np.array(theta, dtype=float)
        for col in self.columns:
            if theta[col[0]] < 0:
                theta[col] = -theta[col]
        return theta

    def singular_terms(self, theta):
        """Indices of the terms whose T_k has a diagonal entry below lme4's tolerance."""
        theta = np.abs(np.asarray(theta, float))
        return [k for k, s in enumerate(self.term_slices)
                if np.any(theta[s][self.diagonal[s]] < SINGULAR_TOL)]

    # -- the function --------------------------------------------------------------
    # what an engine's _solve raises where the deviance cannot be evaluated
    _failures = (np.linalg.LinAlgError, RuntimeError, ValueError)

    def _solve(self, theta):  # pragma: no cover - abstract
        """The penalised least-squares solution at theta: a dict with at least
        ``logdet`` (log|A|), ``RX``, ``pwrss``."""
        raise NotImplementedError

    def _dev(self, s):
        return profiled_deviance(s["logdet"], s["RX"], s["pwrss"], self.n, self.p, self.reml)

    def deviance(self, theta):
        """The profiled deviance at theta (inf where it cannot be evaluated)."""
        return self.deviance_and_pwrss(theta)[0]

    def deviance_and_pwrss(self, theta):
        """The profiled deviance and the penalised residual sum of squares at theta
        ((inf, nan) where they cannot be evaluated)."""
        try:
            with np.errstate(all="ignore"):
                s = self._solve(np.asarray(theta, float))
                dev = self._dev(s)
        except self._failures:
            return np.inf, np.nan
        if np.isfinite(dev) and s["pwrss"] > 0:
            return float(dev), float(s["pwrss"])
        return np.inf, np.nan

    def deviance_and_gradient(self, theta):
        """The deviance and its gradient (central differences unless overridden)."""
        theta = np.asarray(theta, float)
        f0 = self.deviance(theta)
        g = np.zeros(len(theta))
        if not np.isfinite(f0):
            return f0, g
        for i in range(len(theta)):
            h = 1e-6 * max(1.0, abs(theta[i]))
            e = np.zeros(len(theta))
            e[i] = h
            g[i] = (self.deviance(theta + e) - self.deviance(theta - e)) / (2 * h)
        return f0, g

    def estimates(self, theta):  # pragma: no cover - abstract
        raise NotImplementedError
