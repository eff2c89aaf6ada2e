"""Numerical core of :func:`mlmhelpers.fit_logit_mixed`.

The model is a two-level logistic regression with a random intercept,

    logit P(y_ij = 1) = x_ij' beta + u_j,      u_j ~ N(0, theta^2).

As in lme4 the group effects are written ``u_j = theta * v_j`` with ``v_j``
standard normal ("spherical" effects).  The likelihood of group ``j`` is a
one-dimensional integral over ``v_j``::

    L_j = int exp(h_j(v)) dv / sqrt(2 pi),
    h_j(v) = sum_i [y_ij eta_ij - log(1 + exp(eta_ij))] - v^2 / 2,

with ``eta_ij = x_ij' beta + theta * v``.  Around the conditional mode
``v_j`` the integral is approximated by adaptive Gauss-Hermite quadrature
with ``K`` nodes, centred at the mode and scaled by ``1 / sqrt(D_j)`` where
``D_j = 1 + theta^2 sum_i mu_ij (1 - mu_ij)`` is the curvature of ``-h_j``;
``K = 1`` is the Laplace approximation.  Because the groups are independent,
every step below works on all groups at once (sums within groups are
``np.bincount`` calls).

How glmer evaluates this deviance, and why we copy it
------------------------------------------------------
glmer finds the modes by penalised iteratively reweighted least squares
(PIRLS): every evaluation starts from the linear predictor ``lp0`` of its
first, ``nAGQ = 0`` stage, stops when the penalised deviance changes by less
than 1e-7 (relative), and takes the curvature ``D_j`` from the weights of the
*previous* PIRLS iterate.  The resulting deviance differs from an exactly
converged Laplace approximation by about 1e-3, enough to move glmer's standard
errors by 0.1-0.2%.  To agree with glmer we therefore (1) reproduce its first
stage to get ``lp0``, (2) find the optimum of the exactly converged Laplace
deviance (smooth, with an analytic gradient: quick to optimise by BFGS), and
(3) polish that optimum with Newton steps on glmer's own version of the
deviance with ``nagq`` nodes, whose finite-difference Hessian over
``(theta, beta)`` (lme4's ``deriv12`` rule, step 1e-4) gives the standard
errors: ``vcov(beta) = 2 * [H^-1]_beta,beta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from ._deviance import DevianceModel
from ._optimize import optimize_deviance


def _loglik(y, eta):
    """Bernoulli log-probabilities ``y * eta - log(1 + exp(eta))`` for 0/1 ``y``,
    computed stably as ``-softplus(z)`` with ``z = -eta`` (y = 1) or ``eta`` (y = 0)."""
    z = (1.0 - 2.0 * y) * eta
    return -(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))))


class LogitRandomIntercept:
    """Deviance of a random-intercept logistic model for one data set.

    Parameters
    ----------
    X : (n, p) array, fixed-effects design.
    y : (n,) array of 0/1.
    codes : (n,) int array, group index 0..ngroups-1 of every row.
    ngroups : int
    nagq : int, number of quadrature nodes (1 = Laplace).
    """

    def __init__(self, X, y, codes, ngroups, nagq=1):
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.codes = np.asarray(codes, dtype=np.intp)
        self.ngroups = int(ngroups)
        self.nagq = int(nagq)
        # Gauss-Hermite rule for the standard normal density (weights sum to 1).
        z, w = np.polynomial.hermite_e.hermegauss(self.nagq)
        self.z, self.logw = z, np.log(w / w.sum())
        self.v_warm = np.zeros(self.ngroups)  # warm start for exact modes
        self.lp0 = None  # glmer's PIRLS starting point (set by stage1)
        self.pirls_failures = 0

    # -- small helpers ---------------------------------------------------
    def _gsum(self, a):
        """Sum ``a`` within each group."""
        return np.bincount(self.codes, weights=a, minlength=self.ngroups)

    def _gsum_cols(self, A):
        """Sum every column of ``A`` within each group -> (ngroups, ncols)."""
        return np.stack([self._gsum(A[:, k]) for k in range(A.shape[1])], axis=1)

    def _curvature(self, eta, theta):
        mu = special.expit(eta)
        return 1.0 + theta**2 * self._gsum(mu * (1.0 - mu))

    # -- conditional modes -------------------------------------------------
    def modes_exact(self, beta, theta):
        """Conditional modes by Newton's method, converged to 1e-10.

        Returns the modes ``v``, the curvature ``D`` at the modes and the
        fixed part of the linear predictor.
        """
        offset = self.X @ beta
        v = self.v_warm.copy()

        def h(v):
            return self._gsum(_loglik(self.y, offset + theta * v[self.codes])) - 0.5 * v**2

        hv = h(v)
        for _ in range(100):
            mu = special.expit(offset + theta * v[self.codes])
            step = (theta * self._gsum(self.y - mu) - v) / (
                1.0 + theta**2 * self._gsum(mu * (1.0 - mu)))
            for _ in range(30):  # step halving for any group that got worse
                h_new = h(v + step)
                worse = h_new < hv - 1e-12 * (1.0 + np.abs(hv))
                if not worse.any():
                    break
                step = np.where(worse, 0.5 * step, step)
            v, hv = v + step, h_new
            if np.max(np.abs(step)) < 1e-10:
                break
        if np.all(np.isfinite(v)):
            self.v_warm = v
        return v, self._curvature(offset + theta * v[self.codes], theta), offset

    def modes_glmer(self, beta, theta):
        """Conditional modes as glmer's PIRLS finds them (see module notes).

        Falls back to :meth:`modes_exact` if PIRLS fails (where glmer stops
        with an error).
        """
        offset = self.X @ beta
        eta = self.lp0.copy()
        mu = special.expit(eta)
        old_pdev, v_old = np.inf, None
        for _ in range(30):
            w = mu * (1.0 - mu)
            curv = 1.0 + theta**2 * self._gsum(w)  # weights of this iterate
            v = theta * self._gsum(w * (eta - offset) + (self.y - mu)) / curv
            eta = offset + theta * v[self.codes]
            pdev = -2.0 * np.sum(_loglik(self.y, eta)) + np.sum(v**2)
            if abs((old_pdev - pdev) / pdev) < 1e-7:
                return v, curv, offset
            for _ in range(10):  # glmer's step halving
                if not (np.isnan(pdev) or pdev > old_pdev):
                    break
                v = 0.5 * (v_old + v)
                eta = offset + theta * v[self.codes]
                pdev = -2.0 * np.sum(_loglik(self.y, eta)) + np.sum(v**2)
            mu = special.expit(eta)
            old_pdev, v_old = pdev, v
        self.pirls_failures += 1
        return self.modes_exact(beta, theta)

    # -- approximate likelihood ---------------------------------------------
    def group_loglik(self, params, glmer=True, laplace=False):
        """Approximate log-likelihood of every group at ``(theta, *beta)``:
        glmer's evaluation or the exactly converged one, with ``nagq`` nodes
        or (``laplace=True``) one."""
        theta, beta = float(params[0]), np.asarray(params[1:], dtype=float)
        if glmer and self.lp0 is not None:
            v, curv, offset = self.modes_glmer(beta, theta)
        else:
            v, curv, offset = self.modes_exact(beta, theta)
        if laplace or self.nagq == 1:  # Laplace approximation
            eta = offset + theta * v[self.codes]
            return self._gsum(_loglik(self.y, eta)) - 0.5 * v**2 - 0.5 * np.log(curv)
        scale = 1.0 / np.sqrt(curv)
        nodes = v[:, None] + scale[:, None] * self.z[None, :]  # (groups, K)
        eta = offset[:, None] + theta * nodes[self.codes]  # (n, K)
        K = self.nagq
        flat = (self.codes[:, None] * K + np.arange(K)[None, :]).ravel()
        sums = np.bincount(flat, weights=_loglik(self.y[:, None], eta).ravel(),
                           minlength=self.ngroups * K).reshape(self.ngroups, K)
        terms = sums - 0.5 * nodes**2 + 0.5 * self.z**2 + self.logw
        return np.log(scale) + special.logsumexp(terms, axis=1)

    def deviance(self, params, glmer=True, laplace=False):
        """-2 x approximate log-likelihood at ``params = (theta, *beta)``."""
        d = -2.0 * float(np.sum(self.group_loglik(params, glmer, laplace)))
        return d if np.isfinite(d) else 1e300

    def laplace_gradient(self, params):
        """Exact gradient of the (exactly converged) Laplace deviance.

        With ``l_j = h_j(v_j) - log(D_j) / 2`` at the mode ``v_j``, the
        envelope theorem gives the ``h_j`` part; ``D_j`` depends on the
        parameters directly and through the mode (implicit differentiation of
        ``h_j'(v_j) = 0``).
        """
        theta, beta = float(params[0]), np.asarray(params[1:], dtype=float)
        v, curv, offset = self.modes_exact(beta, theta)
        X, g = self.X, self._gsum
        eta = offset + theta * v[self.codes]
        mu = special.expit(eta)
        w = mu * (1.0 - mu)
        w1 = w * (1.0 - 2.0 * mu)  # derivative of w with respect to eta
        resid = self.y - mu
        S, T, r = g(w), g(w1), g(resid)
        a = theta * self._gsum_cols(w[:, None] * X) / curv[:, None]  # -dv/dbeta
        dv_dtheta = (r - theta * v * S) / curv
        w1x = self._gsum_cols(w1[:, None] * X)
        d_beta = X.T @ resid - np.sum(
            (theta**2 / (2 * curv))[:, None] * (w1x - theta * T[:, None] * a), axis=0)
        d_theta = np.sum(r * v - (2 * theta * S + theta**2 * T * (v + theta * dv_dtheta))
                         / (2 * curv))
        return -2.0 * np.r_[d_theta, d_beta]

    def conditional_effects(self, params):
        """Conditional modes of ``u_j`` and their conditional SDs, as glmer's
        ``ranef(condVar = TRUE)`` reports them."""
        theta, beta = float(params[0]), np.asarray(params[1:], dtype=float)
        if self.lp0 is not None:
            v, curv, _ = self.modes_glmer(beta, theta)
        else:
            v, curv, _ = self.modes_exact(beta, theta)
        return theta * v, abs(theta) / np.sqrt(curv)

    def fitted_linear_predictor(self, params):
        theta, beta = float(params[0]), np.asarray(params[1:], dtype=float)
        u, _ = self.conditional_effects(params)
        return self.X @ beta + u[self.codes]

    # -- glmer's first stage (nAGQ = 0) ----------------------------------------
    def _joint_pirls(self, theta, beta, v):
        """Modes of beta and v together for fixed theta (penalised IRLS)."""
        X, y = self.X, self.y

        def pdev(beta, v):
            eta = X @ beta + theta * v[self.codes]
            return -2.0 * np.sum(_loglik(y, eta)) + np.sum(v**2)

        old = pdev(beta, v)
        for _ in range(100):
            eta = X @ beta + theta * v[self.codes]
            mu = special.expit(eta)
            w = mu * (1.0 - mu)
            wz = w * eta + (y - mu)  # weights times working response
            curv = 1.0 + theta**2 * self._gsum(w)
            xw = self._gsum_cols(w[:, None] * X)  # (groups, p)
            zw = self._gsum(wz)
            A = X.T @ (w[:, None] * X) - theta**2 * (xw.T / curv) @ xw
            b = X.T @ wz - theta**2 * xw.T @ (zw / curv)
            try:
                beta_new = np.linalg.solve(A, b)
            except np.linalg.LinAlgError:
                beta_new = np.linalg.lstsq(A, b, rcond=None)[0]
            v_new = theta * (zw - xw @ beta_new) / curv
            db, dv = beta_new - beta, v_new - v
            for _ in range(30):
                new = pdev(beta + db, v + dv)
                if new <= old + 1e-10 * abs(old):
                    break
                db, dv = 0.5 * db, 0.5 * dv
            beta, v = beta + db, v + dv
            done = abs(old - new) < 1e-11 * abs(new)
            old = new
            if done:
                break
        eta = X @ beta + theta * v[self.codes]
        dev = -2.0 * np.sum(_loglik(y, eta)) + np.sum(v**2) + np.sum(np.log(self._curvature(eta, theta)))
        return beta, v, dev

    def stage1(self):
        """glmer's first stage: theta by the ``nAGQ = 0`` criterion.

        Sets ``lp0`` (glmer's PIRLS starting point) and returns starting
        values ``(theta, *beta)`` for the second stage.
        """
        beta, v = logistic_start(self.X, self.y), np.zeros(self.ngroups)
        state = {"beta": beta, "v": v}

        def crit(theta):
            b, vv, dev = self._joint_pirls(theta, state["beta"], state["v"])
            if np.all(np.isfinite(b)):
                state["beta"], state["v"] = b, vv
            return dev

        res = optimize.minimize_scalar(crit, bounds=(0.0, 10.0), method="bounded",
                                       options={"xatol": 1e-7})
        theta = float(res.x)
        beta, v, _ = self._joint_pirls(theta, state["beta"], state["v"])
        self.lp0 = self.X @ beta + theta * v[self.codes]
        self.v_warm = v.copy()
        return np.r_[theta, beta]


class LaplaceDeviance(DevianceModel):
    """The exactly converged Laplace deviance over ``(theta, *beta)``, for the
    library's optimiser (:func:`mlmhelpers._optimize.optimize_deviance`):
    theta is the one entry of a 1 x 1 ``T``, the fixed effects are extra
    parameters (not profiled out, as in glmer's second stage)."""

    def __init__(self, problem, start):
        self.problem = problem
        self.n, self.p = problem.X.shape
        self.reml = False
        self.qs = [1]
        self.n_extra = self.p
        self._start = np.asarray(start, dtype=float)

    def start(self):
        return self._start.copy()

    def scales(self):
        return np.ones(1 + self.p)

    def deviance(self, x):
        return self.problem.deviance(x, glmer=False, laplace=True)

    def deviance_and_gradient(self, x):
        return self.deviance(x), self.problem.laplace_gradient(x)


def finite_difference(fun, x, delta=1e-4, fx=None):
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


def logistic_start(X, y, iterations=10):
    """A few IRLS steps of the single-level logistic model (few enough that
    a perfectly separating covariate stays finite)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iterations):
        mu = special.expit(X @ beta)
        w = np.maximum(mu * (1 - mu), 1e-10)
        z = X @ beta + (y - mu) / w
        beta_new = np.linalg.pinv(X.T @ (w[:, None] * X)) @ (X.T @ (w * z))
        if np.max(np.abs(beta_new - beta)) < 1e-10:
            return beta_new
        beta = beta_new
    return beta


@dataclass
class FitOutput:
    params: np.ndarray  # (theta, *beta), theta >= 0
    deviance: float
    gradient: np.ndarray
    hessian: np.ndarray
    cov_beta: np.ndarray
    cov_from_hessian: bool
    max_grad: float
    converged: bool
    message: str
    n_evaluations: int
    record: object = None   # the optimiser's FitRecord of the Laplace stage


def _central_gradient(fun, x, step=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (fun(up) - fun(down)) / (2 * h)
    return g


def _newton(dev, x, f, grad, hess, max_iter=8):
    """Newton steps with step halving on ``dev`` from ``x`` (gradient and
    Hessian by finite differences).  theta stays >= 0 (the deviance is even
    in theta).  Returns the new point, its deviance, gradient and Hessian."""
    for _ in range(max_iter):
        try:
            np.linalg.cholesky(hess)
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-3:
            x_new = x - t * step
            x_new[0] = abs(x_new[0])
            f_new = dev(x_new)
            if f_new <= f:
                break
            t *= 0.5
        else:
            break
        moved = np.max(np.abs(t * step))
        x, f = x_new, f_new
        if moved < 1e-5:
            # The Hessian barely changes over so short a step: refresh the
            # gradient only, then stop.
            grad = _central_gradient(dev, x, 1e-4)
            break
        grad, hess = finite_difference(dev, x, fx=f)
    return x, f, grad, hess


def fit(problem: LogitRandomIntercept, grad_tol=1e-3):
    """Minimise the deviance over ``(theta, beta)``; return estimates and the
    glmer-style covariance matrix of ``beta``."""
    count = [0]

    def dev(x, glmer=True, laplace=False):
        count[0] += 1
        return problem.deviance(x, glmer, laplace)

    x0 = problem.stage1()
    messages = []

    # (2) exactly converged Laplace deviance (cheap and smooth), minimised by the
    # library's optimiser: theta is left free (the deviance is even in theta) and
    # a theta near zero is checked off the boundary before it is believed.
    laplace = LaplaceDeviance(problem, x0)
    try:
        record = optimize_deviance(laplace)
        x = record.theta.copy()
        count[0] += record.evaluations
        optimizer_ok = bool(np.isfinite(record.deviance))
    except RuntimeError as exc:
        x, record, optimizer_ok = x0.copy(), None, False
        messages.append(str(exc))

    # (3) Newton steps on glmer's deviance with nagq nodes.
    f = dev(x)
    grad, hess = finite_difference(dev, x, fx=f)
    x, f, grad, hess = _newton(dev, x, f, grad, hess)
    if x[0] < 1e-4:  # lme4's boundary check: is theta = 0 at least as good?
        x_zero = np.r_[0.0, x[1:]]
        f_zero = dev(x_zero)
        if f_zero <= f:
            x, f = x_zero, f_zero
            grad, hess = finite_difference(dev, x, fx=f)

    # lme4's convergence check on the scaled gradient.
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(hess), grad)
        max_grad = float(np.max(np.minimum(np.abs(scaled), np.abs(grad))))
        hess_pd = True
    except np.linalg.LinAlgError:
        max_grad = float(np.max(np.abs(grad)))
        hess_pd = False
    if not hess_pd:
        messages.append("the Hessian of the deviance is not positive definite")
    if max_grad > grad_tol:
        messages.append(f"max|grad| = {max_grad:.3g} (tol = {grad_tol:g})")

    cov_from_hessian = False
    cov = None
    try:
        cov = 2.0 * np.linalg.inv(hess)[1:, 1:]
        cov = 0.5 * (cov + cov.T)
        cov_from_hessian = bool(np.all(np.isfinite(cov)) and np.linalg.eigvalsh(cov).min() > 0)
    except np.linalg.LinAlgError:
        pass
    if not cov_from_hessian:
        cov = conditional_cov_beta(problem, x)

    converged = bool(optimizer_ok and max_grad <= grad_tol and np.isfinite(f))
    return FitOutput(
        params=x, deviance=f, gradient=grad, hessian=hess, cov_beta=cov,
        cov_from_hessian=cov_from_hessian, max_grad=max_grad, converged=converged,
        message="; ".join(messages), n_evaluations=count[0], record=record,
    )


def conditional_cov_beta(problem, params):
    """Covariance of beta given theta (lme4's ``RX``-based ``vcov``), the
    fallback when the Hessian is not positive definite."""
    theta, beta = float(params[0]), np.asarray(params[1:], dtype=float)
    eta = problem.fitted_linear_predictor(params)
    mu = special.expit(eta)
    w = mu * (1.0 - mu)
    X = problem.X
    curv = 1.0 + theta**2 * problem._gsum(w)
    xw = problem._gsum_cols(w[:, None] * X)
    info = X.T @ (w[:, None] * X) - theta**2 * (xw.T / curv) @ xw
    try:
        return np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return np.full((X.shape[1], X.shape[1]), np.nan)
