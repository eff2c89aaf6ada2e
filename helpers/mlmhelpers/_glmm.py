"""Numerical core of :func:`mlmhelpers.fit_glmm`: glmer's Laplace approximation.

The model (Bates et al. 2015; lme4's ``glmer``): the linear predictor is
``eta = offset + X beta + Z Lambda u`` with spherical random effects
``u ~ N(0, I)`` and ``Lambda`` built from ``theta`` exactly as in the linear
models; given ``u`` the responses are independent, binomial or Poisson
(:mod:`mlmhelpers._family`).  The likelihood integrates over ``u``; the
Laplace approximation replaces the integrand by a Gaussian at the
conditional mode ``u~``:

    deviance(theta, beta) = -2 sum_i log p(y_i | u~) + |u~|^2 + log|L|^2,
    L L' = Lambda' Z' W Z Lambda + I,    W = the working weights at u~,

the same ``Lambda' Z' W Z Lambda + I`` as the linear model's, with weights:
it is factorised by the same block elimination
(:class:`mlmhelpers._sparse.BlockSystem`).  The mode is found by penalised
iteratively reweighted least squares (PIRLS).  With one scalar random term
``nagq > 1`` replaces the Laplace approximation by adaptive Gauss-Hermite
quadrature around each group's mode (glmer's ``nAGQ``).

How glmer evaluates its deviance, and why we copy it
------------------------------------------------------
glmer's PIRLS (``pwrssUpdate`` in lme4's ``external.cpp``) starts every
evaluation from the linear predictor ``lp0`` of its first stage, stops when
the penalised deviance changes by less than 1e-7 (relative), and takes
``log|L|^2`` from the factorisation made with the weights of the
*previous* iterate.  That deviance differs from an exactly converged
Laplace approximation by about 1e-3, enough to move glmer's standard errors
(computed from a finite-difference Hessian of *its* deviance) by 0.1-0.2%.
So the fit follows glmer's two stages: (1) theta alone with the fixed
effects inside PIRLS (glmer's ``nAGQ = 0`` criterion), which gives ``lp0``;
(2) theta and beta together on the exactly converged Laplace deviance
(smooth, so the library's optimiser, :func:`mlmhelpers._optimize.optimize_deviance`,
with its boundary check, works on it); then (3) glmer's own deviance is
evaluated at that optimum, with Newton steps on it and its finite-difference
Hessian (lme4's ``deriv12`` rule, step 1e-4), which gives the standard errors
``vcov(beta) = 2 [H^-1]_beta,beta`` - or, for a singular fit or a Hessian that
is not positive definite, ``(X'WX - X'WZ Lambda A^-1 Lambda' Z'WX)^-1``, as lme4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ._deviance import SINGULAR_TOL, DevianceModel
from ._optimize import FitRecord, optimize_deviance
from ._sparse import BlockSystem

PIRLS_TOL = 1e-7        # glmer's tolPwrss
EXACT_TOL = 1e-13       # relative change of the penalised deviance of an exact mode
MAXIT = 100
STEP_HALVINGS = 20
DERIV_STEP = 1e-4       # lme4's deriv12 step
STAGE1_GTOL = 1e-1      # glmer's first stage only starts the second one and gives lp0
STAGE1_STEP = 1e-6      # so its modes need not be converged to machine precision either


class PirlsFailure(RuntimeError):
    """PIRLS did not converge (glmer stops with an error then)."""


class GlmmProblem:
    """A generalised linear mixed model for one data set: PIRLS and the deviances.

    ``frame`` is the pipeline's :class:`~mlmhelpers._frame.ModelFrame` (with
    ``n_trials``, ``weights`` and ``offset``); ``family`` a
    :class:`~mlmhelpers._family.Family`.
    """

    def __init__(self, frame, family, nagq=1):
        self.family = family
        self.y = np.asarray(frame.y, float)
        self.ntr = np.asarray(frame.n_trials, float)
        self.wt = np.asarray(frame.weights, float)
        self.off = np.asarray(frame.offset, float)
        self.X = np.asarray(frame.X, float)
        self.n, self.p = self.X.shape
        self.terms = list(frame.terms)
        self.system = BlockSystem(self.terms)
        if not self.system.schur:
            raise ValueError(
                "the random terms other than the one with the most groups have "
                f"{self.system.Q2} effects together, more than the logistic/Poisson fitter "
                "handles (2,500): fit a simpler random part, or lme4's glmer in R.")
        self.qs = [t.q for t in self.terms]
        self.nagq = int(nagq)
        if self.nagq > 1:
            z, w = np.polynomial.hermite_e.hermegauss(self.nagq)
            z = (z - z[::-1]) / 2.0          # as lme4's GHrule: symmetric to the last bit
            w = (w + w[::-1]) / 2.0
            self.ghz, self.ghw = z, w / w.sum()
        self.lp0 = None
        self._rand_warm = None  # Z Lambda u at the last mode: PIRLS starts there (b-space,
        self._beta_warm = None  # so whatever theta is next, even its sign, it is near)
        self.evaluations = 0

    # -- the family -------------------------------------------------------------------
    def _state(self, eta):
        """mu, dmu/deta and the working weights at eta."""
        fam = self.family
        mu = fam.linkinv(eta)
        mueta = fam.mu_eta(eta)
        W = mueta**2 * self.wt / fam.variance(mu)
        return mu, mueta, W

    def dev_resid(self, mu):
        return self.family.dev_resid(self.y, mu, self.wt)

    def aic(self, mu):
        """lme4's ``aic()``: -2 x the log-probability of the data given mu."""
        return -2.0 * float(np.sum(self.family.loglik(self.y, self.ntr, mu, self.wt)))

    def saturated_aic(self):
        """-2 x the log-probability of the data at mu = y (the saturated model)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.nan_to_num(self.family.loglik(self.y, self.ntr, self.y, self.wt))
        return -2.0 * float(np.sum(ll))

    def mustart_eta(self):
        return self.family.link.linkfun(self.family.mustart(self.y, self.wt))

    # -- one PIRLS iteration --------------------------------------------------------------
    def _u_step(self, theta, fixed, eta):
        """The PLS solution for u with beta fixed (in ``fixed`` = offset + X beta)."""
        mu, mueta, W = self._state(eta)
        z = eta - fixed + (self.y - mu) / mueta
        cross = self.system.cross(W, self.X[:, :0], z)
        f = self.system.factor(theta, cross)
        R1, R2 = self.system.lam_t(f, cross.rL[:, :, None], cross.r2[:, None])
        u1, u2 = self.system.solve(f, R1, R2)
        f["W"] = W
        return np.concatenate([u1.ravel(), u2.ravel()]), f

    def _joint_step(self, theta, eta):
        """The PLS solution for beta and u together (glmer's first stage)."""
        mu, mueta, W = self._state(eta)
        z = eta - self.off + (self.y - mu) / mueta
        cross = self.system.cross(W, self.X, z)
        s = self.system.pls(theta, cross, self.p)
        s["f"]["W"] = W
        return s["u"], s["beta"], s["f"]

    def _eta(self, theta, f, u, fixed):
        return fixed + self.system.linear_predictor(f, u)

    def _pdev(self, u, mu):
        return float(np.sum(self.dev_resid(mu)) + u @ u)

    # -- PIRLS -----------------------------------------------------------------------
    def pirls(self, theta, beta, eta, tol, joint=False, exact=0.0):
        """glmer's PIRLS from ``eta`` (``pwrssUpdate``): the mode and its factorisation.

        With ``joint`` beta is estimated with u (glmer's first stage, beta
        is then only the starting value's length).  Returns a dict with
        ``u``, ``beta``, ``mu``, ``eta``, ``f`` (the factorisation of the last
        iteration, made with the weights of the iterate before it, as glmer's)
        and ``pdev``.
        """
        fixed = self.off + (self.X @ beta if not joint else 0.0)
        old, u_old, b_old = np.inf, None, None
        for it in range(MAXIT):
            self.evaluations += 1
            if joint:
                u, b, f = self._joint_step(theta, eta)
                fixed = self.off + self.X @ b
            else:
                u, f = self._u_step(theta, fixed, eta)
                b = beta
            eta_new = fixed + self.system.linear_predictor(f, u)
            mu = self.family.linkinv(eta_new)
            pdev = self._pdev(u, mu)
            if exact:
                # the mode to machine precision: the step itself is negligible (PIRLS
                # converges only linearly with a link that is not canonical)
                moved = np.max(np.abs(u - u_old), initial=0.0) if u_old is not None else np.inf
                if joint and b_old is not None:
                    moved = max(moved, np.max(np.abs(b - b_old), initial=0.0))
                if moved < exact * (1.0 + np.max(np.abs(u), initial=0.0)):
                    return dict(u=u, beta=b, mu=mu, eta=eta_new, f=f, pdev=pdev)
                if pdev >= old - 1e-14 * abs(old) and moved < 1e-7:
                    return dict(u=u, beta=b, mu=mu, eta=eta_new, f=f, pdev=pdev)
                if it >= 40 and abs(old - pdev) <= 1e-12 * abs(pdev):
                    # the deviance no longer moves though the estimates do (a perfectly
                    # separated outcome: a coefficient heading to infinity)
                    return dict(u=u, beta=b, mu=mu, eta=eta_new, f=f, pdev=pdev)
            elif abs((old - pdev) / pdev) < tol:
                return dict(u=u, beta=b, mu=mu, eta=eta_new, f=f, pdev=pdev)
            noise = 1e-10 * abs(old) if exact else 0.0   # rounding of a sum of n terms
            if not np.isfinite(pdev) or pdev > old + noise:
                if u_old is None:
                    raise PirlsFailure("PIRLS: the first step gave no finite deviance")
                for _ in range(STEP_HALVINGS):
                    u = 0.5 * (u_old + u)
                    if joint:
                        b = 0.5 * (b_old + b)
                        fixed = self.off + self.X @ b
                    eta_new = fixed + self.system.linear_predictor(f, u)
                    mu = self.family.linkinv(eta_new)
                    pdev = self._pdev(u, mu)
                    if np.isfinite(pdev) and pdev <= old + noise:
                        break
                if not np.isfinite(pdev) or pdev - old > max(tol, 1e-10 * abs(old)):
                    raise PirlsFailure("PIRLS step-halvings failed to reduce the deviance")
            old, u_old, b_old, eta = pdev, u, b, eta_new
        raise PirlsFailure(f"PIRLS did not converge in {MAXIT} iterations")

    def exact_mode(self, theta, beta, joint=False, step_tol=1e-10):
        """PIRLS converged to machine precision from the last mode (a smooth deviance),
        with the factorisation redone at the mode's own weights."""
        if joint:
            b0 = self._beta_warm if self._beta_warm is not None else np.zeros(self.p)
            fixed = self.off + self.X @ b0
        else:
            fixed = self.off + self.X @ beta
        if self._rand_warm is not None:
            eta = fixed + self._rand_warm
        else:   # the first mode: from R's starting values, as glmer
            eta = self.mustart_eta()
        s = self.pirls(theta, beta if not joint else None, eta, EXACT_TOL, joint=joint,
                       exact=step_tol)
        mu, mueta, W = self._state(s["eta"])
        cross = self.system.cross(W, self.X, np.zeros(self.n))
        s["f"], s["cross"], s["W"] = self.system.factor(theta, cross), cross, W
        if np.all(np.isfinite(s["eta"])):
            b = s["beta"] if joint else beta
            self._rand_warm = s["eta"] - self.off - self.X @ b
            if joint:
                self._beta_warm = s["beta"]
        return s

    # -- the deviances ------------------------------------------------------------------
    def laplace(self, s):
        """glmer's Laplace deviance from a PIRLS result: log|L|^2 + |u|^2 + aic."""
        return float(s["f"]["logdet"] + s["u"] @ s["u"] + self.aic(s["mu"]))

    def agq(self, s, theta, beta):
        """glmer's adaptive Gauss-Hermite deviance (one scalar term; ``glmerAGQ``)."""
        term = self.terms[0]
        codes, m = term.codes, term.m
        u = s["u"]
        fixed = self.off + self.X @ beta
        t = float(theta[0])
        devc0 = u**2 + np.bincount(codes, self.dev_resid(s["mu"]), minlength=m)
        sd = np.sqrt(s["f"]["G1"][:, 0, 0])          # 1 / L_jj
        mult = np.zeros(m)
        zcol = term.Z[:, 0]
        for z, w in zip(self.ghz, self.ghw):
            if z == 0:
                mult += w
                continue
            uk = u + z * sd
            mu = self.family.linkinv(fixed + t * zcol * uk[codes])
            devc = uk**2 + np.bincount(codes, self.dev_resid(mu), minlength=m)
            ldnorm = -0.5 * z * z - 0.5 * np.log(2 * np.pi)
            mult += np.exp(-0.5 * (devc - devc0) - ldnorm) * w / np.sqrt(2 * np.pi)
        return float(devc0.sum() + s["f"]["logdet"] - 2.0 * np.sum(np.log(mult)))

    def deviance_exact(self, x, quadrature=True):
        """The exactly converged Laplace (or, with ``nagq > 1``, AGQ) deviance at
        ``x = (theta, beta)``."""
        theta, beta = self.split(x)
        try:
            s = self.exact_mode(theta, beta)
        except (PirlsFailure, np.linalg.LinAlgError, FloatingPointError):
            return np.inf
        value = self.agq(s, theta, beta) if self.nagq > 1 and quadrature else self.laplace(s)
        return value if np.isfinite(value) else np.inf

    def _r_tilde(self, eta):
        """d log p(y | eta) / d eta for every row: wt (y - mu) mu' / V(mu)."""
        mu, mueta, _ = self._state(eta)
        return self.wt * (self.y - mu) * mueta / self.family.variance(mu)

    def _canonical(self):
        return (self.family.name, self.family.link.name) in (("binomial", "logit"),
                                                              ("poisson", "log"))

    def deviance_and_gradient_exact(self, x):
        """The exactly converged Laplace deviance and its gradient over (theta, beta).

        The penalised deviance part by the envelope theorem; log|L|^2 through
        theta directly (the linear model's formula with the weights) and
        through the weights, which move with the mode: ``sum_i W'_i h_i
        d eta_i``, with the leverages ``h_i = z_i' Lambda A^-1 Lambda' z_i``
        and ``d eta = direct + Z Lambda du``, ``du`` from the mode's
        equations (implicit differentiation).
        """
        theta, beta = self.split(x)
        try:
            s = self.exact_mode(theta, beta)
            value = self.laplace(s)
            if not np.isfinite(value):
                return np.inf, np.zeros(len(x))
            grad = self._laplace_gradient(theta, s)
        except (PirlsFailure, np.linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(len(x))
        return value, grad

    def _laplace_gradient(self, theta, s, joint=False):
        """The gradient of the exact Laplace deviance at a mode ``s``: over (theta,
        beta), or over theta with beta at its joint mode too (``joint``, glmer's first
        stage)."""
        sysm = self.system
        f, cross, u, eta = s["f"], s["cross"], s["u"], s["eta"]
        G = sysm.inverse_on_pattern(f)
        rt = self._r_tilde(eta)
        # envelope part: -2 log p(y | u) + |u|^2 at the mode, u (and beta) held fixed
        ztr_L, ztr_2 = sysm.zt(rt)
        u1, u2 = sysm.split(u)
        g_theta = sysm.outer_gradient(ztr_L, ztr_2, u1, u2)
        g_theta = g_theta + sysm.logdet_gradient(f, cross, G)      # log|A| at fixed weights
        g_beta = -2.0 * self.X.T @ rt
        # log|A| through the weights: sum_i W'_i h_i d eta_i
        h = 1e-5 * (1.0 + np.abs(eta))
        Wp = (self._state(eta + h)[2] - self._state(eta - h)[2]) / (2 * h)
        c = Wp * sysm.leverages(f, G)
        if self._canonical():
            f_obs, cross_obs = f, cross
        else:
            W_obs = -(self._r_tilde(eta + h) - self._r_tilde(eta - h)) / (2 * h)
            cross_obs = sysm.cross(W_obs, self.X, np.zeros(self.n))
            f_obs = sysm.factor(theta, cross_obs)
        entries = sysm.entry_positions()
        n1, m0, qL, p = sysm.m0 * sysm.qL, sysm.m0, sysm.qL, self.p
        nb = 0 if joint else p                       # beta columns of the derivative
        k = nb + len(entries)
        # right-hand sides of the mode's equations for u
        R = np.zeros((sysm.Q, k))
        F1, F2 = sysm.lam_t(f_obs, cross_obs.XL, cross_obs.X2)       # Lambda' Z'W X
        F = np.concatenate([F1.reshape(n1, p), F2])
        if not joint:
            R[:, :p] = F
        zr = np.concatenate([ztr_L.ravel(), ztr_2])                # Z' r~
        Eu = np.zeros((sysm.Q, len(entries)))                       # E_i u
        for c_i, (_, side, pa, pb) in enumerate(entries):
            off = 0 if side == "L" else n1
            Eu[off + pa, c_i] = u[off + pb]
            R[off + pb, nb + c_i] -= zr[off + pa]                   # -E_i' Z' r~
        E1 = Eu[:n1].reshape(m0, qL, -1)
        ZEu1, ZEu2 = sysm.ztz(cross_obs, E1, Eu[n1:])
        L1, L2 = sysm.lam_t(f_obs, ZEu1, ZEu2)
        R[:n1, nb:] += L1.reshape(n1, -1)
        R[n1:, nb:] += L2

        def solve(rhs):
            a1, a2 = sysm.solve(f_obs, rhs[:n1].reshape(m0, qL, -1), rhs[n1:])
            return np.concatenate([a1.reshape(n1, -1), a2])

        a = solve(R)
        if joint:
            # and the equations for beta: [A F; F' X'WX] [du; db] = -[R; X'WZ E u]
            Rb = np.einsum("jqp,jqk->pk", cross_obs.XL, E1) + cross_obs.X2.T @ Eu[n1:]
            Fa = solve(F)
            M = cross_obs.XtX - F.T @ Fa
            db = np.linalg.solve(M, F.T @ a - Rb)
            dU = -a - Fa @ db
        else:
            dU = -a
        B1, B2 = sysm.lam(f_obs, dU[:n1].reshape(m0, qL, k), dU[n1:])
        deta = sysm.z_times(B1, B2)                                 # Z Lambda du
        deta[:, nb:] += sysm.z_times(E1, Eu[n1:])                  # Z E_i u
        if joint:
            deta += self.X @ db
        else:
            deta[:, :p] += self.X
        g_w = c @ deta
        if joint:
            return g_theta + g_w
        return np.r_[g_theta + g_w[p:], g_beta + g_w[:p]]

    def stage1_deviance_and_gradient(self, theta):
        """glmer's first-stage criterion and its gradient over theta."""
        theta = np.asarray(theta, float)
        try:
            s = self.exact_mode(theta, None, joint=True, step_tol=STAGE1_STEP)
            value = self.laplace(s)
            if not np.isfinite(value):
                return np.inf, np.zeros(len(theta))
            return value, self._laplace_gradient(theta, s, joint=True)
        except (PirlsFailure, np.linalg.LinAlgError, FloatingPointError):
            return np.inf, np.zeros(len(theta))

    def glmer_state(self, x):
        """glmer's PIRLS at ``x`` from ``lp0`` (its evaluation of the deviance)."""
        theta, beta = self.split(x)
        return self.pirls(theta, beta, self.off + self.lp0, PIRLS_TOL)

    def deviance_glmer(self, x):
        """glmer's own deviance at ``x = (theta, beta)`` (see the module notes)."""
        theta, beta = self.split(x)
        try:
            s = self.glmer_state(x)
        except (PirlsFailure, np.linalg.LinAlgError, FloatingPointError):
            return np.inf
        value = self.agq(s, theta, beta) if self.nagq > 1 else self.laplace(s)
        return value if np.isfinite(value) else 1e300

    def stage1_deviance(self, theta):
        """glmer's first-stage criterion (``nAGQ = 0``), exactly converged."""
        try:
            s = self.exact_mode(np.asarray(theta, float), None, joint=True,
                                step_tol=STAGE1_STEP)
        except (PirlsFailure, np.linalg.LinAlgError, FloatingPointError):
            return np.inf
        return self.laplace(s)

    @property
    def ntheta(self):
        return sum(q * (q + 1) // 2 for q in self.qs)

    def split(self, x):
        x = np.asarray(x, float)
        return x[:self.ntheta], x[self.ntheta:]


class _Stage1(DevianceModel):
    """glmer's first stage as a deviance over theta, for the library's optimiser."""

    def __init__(self, problem):
        self.problem = problem
        self.n, self.p, self.reml = problem.n, problem.p, False
        self.qs = problem.qs

    def scales(self):
        out = []
        for t in self.problem.terms:
            rms = np.sqrt(np.maximum(np.mean(t.Z**2, axis=0), 1e-300))
            out.append(1.0 / rms[np.tril_indices(t.q)[1]])
        return np.concatenate(out)

    def deviance(self, theta):
        return self.problem.stage1_deviance(theta)

    def deviance_and_gradient(self, theta):
        return self.problem.stage1_deviance_and_gradient(theta)


class _Stage2(_Stage1):
    """The exactly converged Laplace deviance over (theta, beta) (also for a
    quadrature fit: its optimum is the start of Newton steps on the quadrature
    deviance)."""

    def __init__(self, problem, start):
        super().__init__(problem)
        self.n_extra = problem.p
        self._start = np.asarray(start, float)

    def start(self):
        return self._start.copy()

    def scales(self):
        return np.r_[super().scales(), np.ones(self.problem.p)]

    def deviance(self, x):
        return self.problem.deviance_exact(x, quadrature=False)

    def deviance_and_gradient(self, x):
        return self.problem.deviance_and_gradient_exact(x)


def finite_difference(fun, x, delta=DERIV_STEP, fx=None):
    """Central-difference gradient and Hessian (the rule of lme4's ``deriv12``)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    fx = fun(x) if fx is None else fx
    grad, hess = np.zeros(n), np.zeros((n, n))

    def at(*moves):
        z = x.copy()
        for i, s in moves:
            z[i] += s * delta
        return fun(z)

    for j in range(n):
        fp, fm = at((j, 1)), at((j, -1))
        grad[j] = (fp - fm) / (2 * delta)
        hess[j, j] = (fp - 2 * fx + fm) / delta**2
        for i in range(j):
            hess[i, j] = hess[j, i] = (
                at((i, 1), (j, 1)) - at((i, 1), (j, -1))
                - at((i, -1), (j, 1)) + at((i, -1), (j, -1))
            ) / (4 * delta**2)
    return grad, hess


def _hessian_of_gradient(fg, x, step=1e-5):
    """The Hessian by central differences of an analytic gradient (symmetrised)."""
    k = len(x)
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = step * max(1.0, abs(x[i]))
        H[:, i] = (fg(x + e)[1] - fg(x - e)[1]) / (2 * e[i])
    return 0.5 * (H + H.T)


@dataclass
class GlmmFit:
    """What the fit found (see :func:`fit`)."""

    x: np.ndarray                   # (theta, beta) at the optimum
    deviance: float                 # glmer's deviance there (-2 logLik)
    vcov: np.ndarray                # covariance of beta
    vcov_from_hessian: bool
    gradient: np.ndarray            # of glmer's deviance (None when not computed)
    hessian: np.ndarray
    record: FitRecord               # the optimiser's evidence (stage 2)
    state: dict                     # glmer's PIRLS state at the optimum (modes, factor)
    messages: list = field(default_factory=list)
    evaluations: int = 0


def _stage1_optimum(stage1):
    """glmer's first stage: bounded L-BFGS-B from lme4's start (as glmer's bounded
    optimiser: the even deviance's barrier at zero stays uncrossed, which saves
    evaluations), or, where it stops near the bound, the library's unconstrained
    optimiser.  Only a start and lp0 come from it; the second stage checks the
    boundary."""
    lower = stage1.lower_bounds()
    bounds = [(None if np.isinf(lb) else lb, None) for lb in lower]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(stage1.deviance_and_gradient, stage1.start(), jac=True,
                                method="L-BFGS-B", bounds=bounds,
                                options=dict(pgtol=STAGE1_GTOL, maxiter=200))
    theta = np.maximum(res.x, lower)
    if np.isfinite(res.fun) and not np.any(stage1.diagonal & (theta < 1e-3)):
        return theta
    return optimize_deviance(stage1, gtol=STAGE1_GTOL, check_boundary=False).theta


def _positive_definite(H):
    try:
        np.linalg.cholesky(H)
        return bool(np.all(np.isfinite(H)))
    except np.linalg.LinAlgError:
        return False


def _diagonal_mask(qs):
    return np.concatenate([np.eye(q, dtype=bool)[np.tril_indices(q)] for q in qs])


def fit(problem: GlmmProblem) -> GlmmFit:
    """glmer's two stages (see the module notes) and the standard errors."""
    messages = []
    # (1) theta with beta inside PIRLS (glmer's nAGQ = 0 stage); its optimum gives lp0
    stage1 = _Stage1(problem)
    theta1 = _stage1_optimum(stage1)
    s1 = problem.exact_mode(theta1, None, joint=True)
    problem.lp0 = problem.X @ s1["beta"] + problem.system.linear_predictor(s1["f"], s1["u"])
    # (2) theta and beta on the exactly converged Laplace (AGQ) deviance
    stage2 = _Stage2(problem, np.r_[theta1, s1["beta"]])
    # the curvature at the start (differences of analytic gradients): the descent
    # starts with Newton steps, and the step onto glmer's optimum below reuses it
    H0 = _hessian_of_gradient(stage2.deviance_and_gradient, stage2.start())
    record = optimize_deviance(stage2, stage2.start(), hessian=H0)
    x = record.theta.copy()
    # (3) glmer's deviance at that optimum: Newton steps on it, its Hessian
    glmer = problem.deviance_glmer
    f = glmer(x)
    diag = _diagonal_mask(problem.qs)
    theta = x[:problem.ntheta]
    grad = hess = None
    if True:  # lme4 1.1-31 takes derivatives at singular fits too (later ones do not)
        # glmer's optimum of its own deviance is a few 1e-6 from the exact one, and its
        # Hessian (lme4's deriv12, from which the standard errors come) is taken there:
        # where the finite differences of its deviance are taken matters at the 1e-4
        # level of the standard errors.  A Newton step onto it: the gradient of glmer's
        # deviance by differences, the curvature of the exact deviance (analytic
        # gradients), then deriv12 once at the point reached.
        g0 = np.array([(glmer(x + e) - glmer(x - e)) / (2 * DERIV_STEP)
                       for e in np.eye(len(x)) * DERIV_STEP])
        if record.boundary_checked or not _positive_definite(H0):
            H0 = _hessian_of_gradient(stage2.deviance_and_gradient, x)
        try:
            np.linalg.cholesky(H0)
            x_new = x - np.linalg.solve(H0, g0)
            f_new = glmer(x_new)
            if f_new <= f:
                x, f = x_new, f_new
        except np.linalg.LinAlgError:
            pass
        grad, hess = finite_difference(glmer, x, fx=f)
        # then steps with glmer's own curvature while they are still worth one (the
        # quadrature optimum is further from the Laplace one than glmer's deviance is)
        for _ in range(6):
            try:
                np.linalg.cholesky(hess)
                step = np.linalg.solve(hess, grad)
            except np.linalg.LinAlgError:
                break
            if np.max(np.abs(step)) <= 1e-5:
                break
            x_new = x - step
            f_new = glmer(x_new)
            if not f_new <= f:
                break
            x, f = x_new, f_new
            grad, hess = finite_difference(glmer, x, fx=f)
    p = problem.p
    vcov, from_hessian = None, False
    if hess is not None:
        try:
            cov = 2.0 * np.linalg.inv(hess)[-p:, -p:]
            cov = 0.5 * (cov + cov.T)
            if np.all(np.isfinite(cov)) and np.linalg.eigvalsh(cov).min() > 0:
                vcov, from_hessian = cov, True
        except np.linalg.LinAlgError:
            pass
        if not from_hessian:
            messages.append("the standard errors come from the curvature with the variance "
                            "parameters held fixed: the full Hessian was not positive "
                            "definite")
    state = problem.glmer_state(x)
    if vcov is None:
        vcov = conditional_vcov(problem, x, state)
    if problem.nagq > 1:
        # glmer's quadrature deviance sums deviance residuals: it leaves out the saturated
        # model's -2 log-likelihood (0 for 0/1 outcomes, not for counts; lme4 issues #161,
        # #567).  Put back, the log-likelihood is the same quantity as the Laplace fit's.
        f = f + problem.saturated_aic()
    return GlmmFit(x=x, deviance=f, vcov=vcov, vcov_from_hessian=from_hessian, gradient=grad,
                   hessian=hess, record=record, state=state, messages=messages,
                   evaluations=problem.evaluations)


def conditional_vcov(problem, x, state=None):
    """vcov(beta) with theta held fixed: (X'WX - X'WZ Lambda A^-1 Lambda' Z'WX)^-1 at the
    weights of glmer's last PIRLS iterate (lme4's fallback, from ``RX``)."""
    theta, beta = problem.split(x)
    state = state or problem.glmer_state(x)
    W = state["f"]["W"]      # the weights of glmer's last decomposition
    cross = problem.system.cross(W, problem.X, np.zeros(problem.n))
    s = problem.system.pls(theta, cross, problem.p)
    try:
        return np.linalg.inv(s["M"])
    except np.linalg.LinAlgError:
        return np.full((problem.p, problem.p), np.nan)
