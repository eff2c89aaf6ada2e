"""Stage 4 of fitting: the optimiser (lme4's ``optimizeLmer``).

:func:`optimize_deviance` minimises a :class:`~mlmhelpers._deviance.DevianceModel`
over theta and returns a :class:`FitRecord`: the optimum and the evidence
that it is one.  It is the only optimiser of the linear models.

1. **Descent.**  A quasi-Newton method (BFGS, with the engine's gradient)
   from lme4's start, over *unconstrained* theta.  lme4 keeps the diagonal
   entries of each ``T_k`` non-negative, but the deviance is even in every
   column of ``T_k`` (a column and its negative give the same covariance
   matrix), so no bound is needed: the optimum is reached from either
   side, and the signs are put right afterwards.  A bounded gradient method
   would be trapped instead: on the bound the derivative of an even
   function is zero, so a step that lands there stops, even when the
   deviance falls off the bound (a saddle, not an optimum).
2. **Boundary check.**  Whenever a diagonal entry of some ``T_k`` ends
   below ``CHECK_TOL`` - the fit would look singular - the boundary must be
   shown to be the optimum before it is reported: the deviance is probed
   at points off the boundary along those entries (from a hundredth to three
   times the entry's natural size, 1 / the root mean square of its
   covariate) and a new descent starts from the lowest probe if it is
   lower; and a descent restarts from an interior point (every small entry
   at its natural size).  When either restart finds a lower deviance than
   the first descent - the surface has trapped it once - a derivative-free
   method (COBYQA, the successor of lme4's BOBYQA, bounded, in lme4's
   parametrisation) also runs from lme4's start, its end polished by a
   descent.  The lowest deviance wins.  Away from the boundary none of this
   runs.
3. A diagonal entry below lme4's singular tolerance is set to exactly zero
   when that does not raise the deviance (lme4's bounded optimisers land on
   the bound the same way).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ._deviance import SINGULAR_TOL, DevianceModel

CHECK_TOL = 1e-3        # a diagonal entry below this triggers the boundary check
PROBES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # points off the boundary, in natural units
IMPROVES = 1e-7         # a deviance this much lower counts as a better point


@dataclass
class Attempt:
    """One run of the optimiser: where it started and what it reached."""

    start: str
    deviance: float
    evaluations: int
    seconds: float = 0.0

    def __str__(self):
        return (f"{self.start}: deviance {self.deviance:.6f} ({self.evaluations} evaluations, "
                f"{self.seconds:.2f} s)")


@dataclass
class FitRecord:
    """The optimum and the evidence for it.

    Attributes
    ----------
    theta : ndarray
        lme4's parameters at the optimum (diagonal entries >= 0).
    deviance : float
        The deviance (or REML criterion) there.
    evaluations : int
        Deviance evaluations in all (gradients by differences included).
    gradient : float
        The largest entry of the gradient at ``theta``, projected onto lme4's
        bounds (an entry at 0 whose derivative points outwards counts 0).
    attempts : list of Attempt
        The descent from lme4's start and every restart tried.
    boundary_checked : bool
        True when a diagonal entry ended near zero and the boundary check
        ran; ``boundary`` then lists the entries still at zero after it.
    """

    theta: np.ndarray
    deviance: float
    evaluations: int
    gradient: float
    attempts: list = field(default_factory=list)
    boundary_checked: bool = False
    boundary: list = field(default_factory=list)
    method: str = "BFGS"

    @property
    def restarts(self):
        """The attempts after the first descent."""
        return self.attempts[1:]

    def __str__(self):
        lines = [f"optimum: deviance {self.deviance:.6f} after {self.evaluations} evaluations, "
                 f"largest projected gradient {self.gradient:.2g}"]
        if self.boundary_checked:
            where = (f"entries {self.boundary} of theta stay at 0" if self.boundary
                     else "the optimum is off the boundary")
            lines.append(f"boundary check: {len(self.restarts)} restarts; {where}")
        lines += [f"  {a}" for a in self.attempts]
        return "\n".join(lines)


class _Counted:
    """The deviance model's functions, counting evaluations; inf -> a large value.

    The last point evaluated with its gradient is remembered, so that asking
    again for the deviance or gradient there (at the end of a descent) costs
    nothing.
    """

    def __init__(self, model: DevianceModel):
        self.model = model
        self.count = 0
        self._last = None

    def _memo(self, x):
        last = self._last
        if last is not None and np.array_equal(last[0], x):
            return last
        return None

    def f(self, x):
        memo = self._memo(x)
        if memo is not None:
            return memo[1]
        self.count += 1
        value = self.model.deviance(x)
        return value if np.isfinite(value) else 1e300

    def fg(self, x):
        memo = self._memo(x)
        if memo is not None:
            return memo[1], memo[2].copy()
        self.count += 1 if type(self.model).deviance_and_gradient is not \
            DevianceModel.deviance_and_gradient else 2 * len(x) + 1
        value, grad = self.model.deviance_and_gradient(x)
        if not np.isfinite(value):
            value, grad = 1e300, np.zeros(len(x))
        self._last = (np.array(x, dtype=float), value, np.array(grad, dtype=float))
        return value, grad


def _descend(fun: _Counted, x0, gtol=1e-6, hessian=None):
    """BFGS over unconstrained theta from x0: (x, f).

    BFGS starts from the inverse of ``hessian`` when one is given and is
    positive definite (its first step is then Newton's).  Otherwise the first
    step is scaled to move the largest entry by at most 0.5 (BFGS's identity
    start would step by the whole gradient, hundreds for a deviance in the
    thousands, and spend its line search coming back).
    """
    x0 = np.asarray(x0, float)
    hess_inv0 = None
    if hessian is not None:
        try:
            np.linalg.cholesky(hessian)
            hess_inv0 = np.linalg.inv(hessian)
            hess_inv0 = 0.5 * (hess_inv0 + hess_inv0.T)
        except np.linalg.LinAlgError:
            hess_inv0 = None
    if hess_inv0 is None:
        f0, g0 = fun.fg(x0)
        scale = 0.5 / max(float(np.max(np.abs(g0), initial=0.0)), 0.5)
        hess_inv0 = scale * np.eye(len(x0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(fun.fg, x0, jac=True, method="BFGS",
                                options=dict(gtol=gtol, maxiter=1000, norm=np.inf,
                                             hess_inv0=hess_inv0))
    x = fun.model.canonical(res.x)
    return x, float(fun.f(x))


def _derivative_free(fun: _Counted, model: DevianceModel):
    """A second opinion from lme4's start by a derivative-free method in lme4's
    parametrisation (bounded; COBYQA, the successor of lme4's BOBYQA)."""
    lower = model.lower_bounds()
    bounds = optimize.Bounds(lower, np.full(len(lower), np.inf))
    x0 = model.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(fun.f, x0, method="COBYQA", bounds=bounds,
                                options=dict(maxfev=200 * (len(x0) + 1), f_target=-np.inf))
    return np.maximum(res.x, lower)


def projected_gradient(model: DevianceModel, theta, grad):
    """The gradient with the entries pointing out of lme4's bounds removed."""
    pg = np.array(grad, dtype=float)
    at_bound = model.diagonal & (np.asarray(theta) <= 1e-12) & (pg > 0)
    pg[at_bound] = 0.0
    return pg


def optimize_deviance(model: DevianceModel, start=None, *, gtol=1e-6,
                      check_boundary=True, hessian=None) -> FitRecord:
    """Minimise the deviance over theta; see the module docstring.

    Parameters
    ----------
    model : DevianceModel
    start : array, optional
        Where to start (default lme4's start, every T_k the identity).
    gtol : float, default 1e-6
        The descent stops when no entry of the gradient is larger.
    check_boundary : bool, default True
        Run the boundary check (off only for a preliminary fit whose optimum
        is checked later, as glmer's first stage).
    hessian : array, optional
        The Hessian at ``start`` (or an approximation), when the caller has
        it: the descent then starts with Newton steps.

    Returns
    -------
    FitRecord
    """
    fun = _Counted(model)
    x0 = model.start() if start is None else np.asarray(start, float)
    clock = time.perf_counter()
    x, f = _descend(fun, x0, gtol, hessian)
    attempts = [Attempt("lme4's start" if start is None else "the start given", f, fun.count,
                        time.perf_counter() - clock)]
    if not np.isfinite(f) or f >= 1e300:
        raise RuntimeError(
            "the optimiser found no finite log-likelihood; check the response for "
            "extreme values and the model for redundant terms.")
    diag = model.diagonal
    checked = check_boundary and bool(np.any(diag & (np.abs(x) < CHECK_TOL)))
    if checked:
        x, f = _boundary_check(fun, model, x, f, attempts)
    x, f = _snap(fun, model, x, f)
    _, g = fun.fg(x)
    pg = projected_gradient(model, x, g)
    return FitRecord(theta=x, deviance=float(f), evaluations=fun.count,
                     gradient=float(np.max(np.abs(pg), initial=0.0)), attempts=attempts,
                     boundary_checked=checked,
                     boundary=[int(i) for i in np.flatnonzero(diag & (x == 0.0))])


def _boundary_check(fun, model, x, f, attempts):
    """Show that a small diagonal entry is at the optimum, or leave the boundary."""
    diag = model.diagonal
    scales = model.scales()
    small = np.flatnonzero(diag & (np.abs(x) < CHECK_TOL))

    def attempt(label, start):
        nonlocal x, f
        before, clock = fun.count, time.perf_counter()
        xn, fn = _descend(fun, start)
        attempts.append(Attempt(label, fn, fun.count - before, time.perf_counter() - clock))
        if fn < f - IMPROVES:
            x, f = xn, fn

    # (a) probes off the boundary along each small entry; a new descent from the
    #     lowest probe that is lower than the optimum found
    best_probe = None
    for i in small:
        for c in PROBES:
            trial = x.copy()
            trial[i] = c * scales[i]
            ft = fun.f(trial)
            if ft < f - IMPROVES and (best_probe is None or ft < best_probe[1]):
                best_probe = (trial, ft, i)
    if best_probe is not None:
        attempt(f"the lowest point off the boundary (entry {best_probe[2]} of theta)",
                best_probe[0])
    # (b) a restart from an interior point: every small entry at its natural size
    start = x.copy()
    start[small] = scales[small]
    attempt("an interior point (small entries at their natural size)", start)
    # (c) when a restart had to leave a point the first descent stopped at, the
    #     surface is treacherous here: a derivative-free second opinion from lme4's
    #     start as well, polished by a descent
    if any(a.deviance < attempts[0].deviance - IMPROVES for a in attempts[1:]):
        before, clock = fun.count, time.perf_counter()
        xn, fn = _descend(fun, _derivative_free(fun, model))
        attempts.append(Attempt("COBYQA from lme4's start", fn, fun.count - before,
                                time.perf_counter() - clock))
        if fn < f - IMPROVES:
            x, f = xn, fn
    return x, f


def _snap(fun, model, x, f):
    """Diagonal entries below lme4's tolerance to exactly 0 when that costs nothing,
    with the negligible entries of their row (a slope variance of 1e-22 is 0)."""
    row_of = {int(r[-1]): r for r in model.rows}
    for i in np.flatnonzero(model.diagonal & (np.abs(x) < SINGULAR_TOL)):
        row = row_of[int(i)]
        trial = x.copy()
        trial[row[np.abs(x[row]) < SINGULAR_TOL]] = 0.0
        if np.array_equal(trial, x):
            continue
        ft = fun.f(trial)
        if ft <= f + 1e-8:
            x, f = trial, min(f, ft)
    return x, f
