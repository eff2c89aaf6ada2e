"""Numerical core of :func:`mlmhelpers.fit_mixedlm`: lme4's profiled deviance.

The model (Bates et al. 2015, *J. Stat. Softw.* 67(1), section 3) for one
grouping factor with ``q`` random terms: the random effects of group ``j``
are ``b_j = T u_j`` with spherical ``u_j ~ N(0, sigma^2 I)`` and ``T``
lower triangular with entries ``theta`` (lme4's relative covariance factor,
``Lambda`` restricted to one block).  For a given ``theta`` the penalised
least-squares problem is solved from per-group cross-products only
(``S_j = Z_j'Z_j``, ``B_j = Z_j'X_j``, ``c_j = Z_j'y_j``, computed once, so
memory is linear in the rows and every deviance evaluation costs a few
batched ``q x q`` operations, whatever the number of rows):

    A_j = T' S_j T + I,      G_j = A_j^-1,      W_j = T G_j T'
    M   = X'X - sum_j B_j' W_j B_j               (lme4's R_X'R_X)
    beta = M^-1 (X'y - sum_j B_j' W_j c_j)
    u_j = G_j T' (c_j - B_j beta)
    pwrss = |y - X beta|^2 - sum_j (c_j - B_j beta)' W_j (c_j - B_j beta)
    ML:   dev = sum_j log|A_j| + n (1 + log(2 pi pwrss / n))
    REML: dev = sum_j log|A_j| + log|M| + (n-p) (1 + log(2 pi pwrss / (n-p)))

The gradient over ``theta`` is analytic.  Write ``E`` for the derivative of
``T`` by one entry ``(a, b)`` of theta.  Then ``d log|A_j| = 2 [G_j T' S_j]_ba``;
by the envelope theorem (beta and u are optimal) ``d pwrss = -2 sum_j
[Z_j'r_j]_a u_jb`` with ``Z_j'r_j = c_j - B_j beta - S_j T u_j``; and for
REML ``d log|M| = -2 [sum_j P_j' N_j (I - P_j T' S_j)]_ba`` with ``P_j = T G_j``
and ``N_j = B_j M^-1 B_j'``.  L-BFGS-B with this gradient and lme4's bounds
(diagonal of ``T`` >= 0) needs a few dozen evaluations.

This is the fast path for one grouping factor.  Several random factors
(crossed or nested, lme4's formula syntax) use the general sparse form of
the same deviance in :mod:`mlmhelpers._sparse`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

SINGULAR_TOL = 1e-4  # lme4's check.conv.singular tolerance on theta
GRAD_TOL = 1e-3      # largest projected-gradient entry accepted as an optimum


def _inv_logdet(A):
    """Inverses and log-determinants of symmetric positive definite blocks.

    ``A`` is (q, q, m): block ``j`` is ``A[:, :, j]`` (groups last, so every
    operation below runs over contiguous vectors of length m).
    """
    q = A.shape[0]
    if q == 1:
        return 1.0 / A, np.log(A[0, 0])
    if q == 2:
        a, b, d = A[0, 0], A[0, 1], A[1, 1]
        det = a * d - b * b
        inv = np.empty_like(A)
        inv[0, 0] = d / det
        inv[1, 1] = a / det
        inv[0, 1] = inv[1, 0] = -b / det
        return inv, np.log(det)
    stack = np.moveaxis(A, 2, 0)
    L = np.linalg.cholesky(stack)
    Linv = np.linalg.inv(L)
    inv = np.matmul(np.swapaxes(Linv, 1, 2), Linv)
    return np.moveaxis(inv, 0, 2), 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)


def _bmm(A, B):
    """Blockwise products A_j B_j of (r, s, m) and (s, t, m) stacks -> (r, t, m)."""
    out = np.zeros((A.shape[0], B.shape[1], A.shape[2]))
    for k in range(A.shape[1]):
        out += A[:, k, None, :] * B[None, k, :, :]
    return out


def _bmv(A, v):
    """Blockwise products A_j v_j of (r, s, m) and (s, m) -> (r, m)."""
    return np.einsum("rsm,sm->rm", A, v) if A.shape[1] > 1 else A[:, 0, :] * v[0]


def _left(T, A):
    """T A_j for a fixed (r, s) matrix T and an (s, t, m) stack -> (r, t, m)."""
    return np.tensordot(T, A, axes=([1], [0]))


def profiled_deviance(logdet, RX, pwrss, n, p, reml):
    """lme4's profiled deviance (ML) or REML criterion from log|A|, R_X and the
    penalised residual sum of squares; shared by the dense and sparse engines."""
    if reml:
        dof = n - p
        return logdet + 2.0 * np.sum(np.log(np.diag(RX))) + dof * (1.0 + np.log(2.0 * np.pi * pwrss / dof))
    return logdet + n * (1.0 + np.log(2.0 * np.pi * pwrss / n))


@dataclass
class Crossprods:
    """Per-group cross-products of the design: all the deviance needs.

    Stored with the groups last: ``ZtZ[a, b, j]`` is ``(Z_j'Z_j)[a, b]``.
    """

    n: int
    p: int
    q: int
    m: int
    ZtZ: np.ndarray   # (q, q, m)
    ZtX: np.ndarray   # (q, p, m)
    Zty: np.ndarray   # (q, m)
    XtX: np.ndarray   # (p, p)
    Xty: np.ndarray   # (p,)
    yty: float
    tril: tuple = field(default=None)

    @classmethod
    def from_arrays(cls, y, X, Z, codes, m):
        """Cross-products from the response, the two designs and 0-based group codes."""
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        Z = np.asarray(Z, dtype=float)
        n, p = X.shape
        q = Z.shape[1]
        ZtZ = np.empty((q, q, m))
        ZtX = np.empty((q, p, m))
        Zty = np.empty((q, m))
        for a in range(q):
            za = Z[:, a]
            for b in range(a, q):
                ZtZ[a, b] = ZtZ[b, a] = np.bincount(codes, za * Z[:, b], minlength=m)
            for b in range(p):
                ZtX[a, b] = np.bincount(codes, za * X[:, b], minlength=m)
            Zty[a] = np.bincount(codes, za * y, minlength=m)
        return cls(n=n, p=p, q=q, m=m, ZtZ=ZtZ, ZtX=ZtX, Zty=Zty, XtX=X.T @ X,
                   Xty=X.T @ y, yty=float(y @ y), tril=np.tril_indices(q))

    # -- theta <-> T -----------------------------------------------------------
    def lam(self, theta):
        """The q x q lower-triangular relative covariance factor T of theta."""
        T = np.zeros((self.q, self.q))
        T[self.tril] = theta
        return T

    def lower_bounds(self):
        rows, cols = self.tril
        return np.where(rows == cols, 0.0, -np.inf)

    def start(self):
        """lme4's starting value: T = identity."""
        return np.eye(self.q)[self.tril]

    # -- the penalised least-squares solution -------------------------------------
    def _solve(self, theta):
        q = self.q
        T = self.lam(theta)
        TS = _left(T.T, self.ZtZ)                       # T' S_j          (q, q, m)
        A = np.tensordot(TS, T, axes=([1], [0])).transpose(0, 2, 1)  # T' S_j T
        A[range(q), range(q)] += 1.0
        G, logdetA = _inv_logdet(A)
        TB = _left(T.T, self.ZtX)                       # T' B_j          (q, p, m)
        Tc = T.T @ self.Zty                             # T' c_j          (q, m)
        GTB = _bmm(G, TB)
        GTc = _bmv(G, Tc)
        M = self.XtX - np.einsum("qpm,qrm->pr", TB, GTB)
        rhs = self.Xty - np.einsum("qpm,qm->p", TB, GTc)
        RX = np.linalg.cholesky(M)                      # M = RX RX'
        beta = np.linalg.solve(RX.T, np.linalg.solve(RX, rhs))
        d = Tc - np.einsum("qpm,p->qm", TB, beta)       # T'(c_j - B_j beta)
        u = _bmv(G, d)
        r0 = self.yty - 2.0 * beta @ self.Xty + beta @ self.XtX @ beta
        pwrss = float(r0 - np.sum(d * u))
        return dict(T=T, TS=TS, G=G, logdetA=float(logdetA.sum()), M=M, RX=RX, beta=beta,
                    u=u, pwrss=pwrss)

    def _dev(self, s, reml):
        return profiled_deviance(s["logdetA"], s["RX"], s["pwrss"], self.n, self.p, reml)

    def deviance(self, theta, reml=False):
        """The profiled deviance at theta (inf where it cannot be evaluated)."""
        try:
            with np.errstate(all="ignore"):
                dev = self._dev(self._solve(theta), reml)
        except np.linalg.LinAlgError:
            return np.inf
        return float(dev) if np.isfinite(dev) else np.inf

    def deviance_and_gradient(self, theta, reml=False):
        """The profiled deviance and its analytic gradient over theta."""
        try:
            with np.errstate(all="ignore"):
                s = self._solve(theta)
                dev = self._dev(s, reml)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(len(theta))
        if not np.isfinite(dev) or s["pwrss"] <= 0:
            return np.inf, np.zeros(len(theta))
        T, G, u, beta = s["T"], s["G"], s["u"], s["beta"]
        # d log|A_j| / dT_ab = 2 [sum_j G_j T' S_j]_ba
        H = np.einsum("abm,bcm->ac", G, s["TS"])
        g_logdet = 2.0 * H.T
        # d pwrss / dT_ab = -2 sum_j [Z_j'r_j]_a u_jb
        ztr = (self.Zty - np.einsum("qpm,p->qm", self.ZtX, beta)
               - _bmv(self.ZtZ, T @ u))
        g_pwrss = -2.0 * ztr @ u.T
        if reml:
            dof = self.n - self.p
            Minv = np.linalg.inv(s["M"])
            N = np.einsum("apm,pr,brm->abm", self.ZtX, Minv, self.ZtX, optimize=True)
            P = _left(T, G)                                   # T G_j
            IQt = -_bmm(P, s["TS"])                           # I - P_j T' S_j
            IQt[range(self.q), range(self.q)] += 1.0
            PtN = _bmm(P.transpose(1, 0, 2), N)
            K = np.einsum("acm,cdm->ad", PtN, IQt)            # sum_j P_j' N_j (I - Q_j')
            grad = g_logdet - 2.0 * K.T + (dof / s["pwrss"]) * g_pwrss
        else:
            grad = g_logdet + (self.n / s["pwrss"]) * g_pwrss
        return float(dev), grad[self.tril]

    # -- what lme4 reports at the optimum -----------------------------------------
    def estimates(self, theta, reml=False):
        """beta, sigma^2, vcov(beta), conditional modes b and their covariances.

        ``b`` is (m, q) and ``condvar`` (m, q, q), groups first.
        """
        s = self._solve(theta)
        dof = self.n - self.p if reml else self.n
        sigma2 = s["pwrss"] / dof
        T = s["T"]
        RXinv = np.linalg.inv(s["RX"])
        vcov = sigma2 * (RXinv.T @ RXinv)
        b = (T @ s["u"]).T
        TGTt = np.tensordot(_left(T, s["G"]), T.T, axes=([1], [0])).transpose(0, 2, 1)
        condvar = sigma2 * np.moveaxis(TGTt, 2, 0)     # sigma2 T G_j T'
        return dict(beta=s["beta"], sigma2=float(sigma2), vcov=vcov, b=b, condvar=condvar,
                    cov_re=sigma2 * (T @ T.T), dev=float(self._dev(s, reml)),
                    theta=np.asarray(theta, dtype=float))

    def is_singular(self, theta):
        return is_singular(theta, self.q)


def is_singular(theta, q):
    """lme4's isSingular(): a diagonal entry of T (practically) zero."""
    rows, cols = np.tril_indices(q)
    return bool(np.any(np.asarray(theta)[rows == cols] < SINGULAR_TOL))


def _projected_gradient(x, g, lower):
    """The gradient with components pointing out of the feasible box removed."""
    pg = g.copy()
    at_bound = (x <= lower + 1e-12) & (g > 0)
    pg[at_bound] = 0.0
    return pg


def optimise(cp: Crossprods, reml=False):
    """Minimise the profiled deviance over theta.

    L-BFGS-B with the analytic gradient from lme4's start (T = identity), then
    a check that it stopped at an optimum: the projected gradient must be
    small.  Only when it is not does a second run start from the point
    reached (and, if still not, from a rescaled start and a derivative-free
    polish); the best deviance wins.  A variance that is practically zero is
    finally set to exactly zero when that does not worsen the deviance (lme4's
    bounded optimiser lands on the bound the same way).

    Returns (theta, deviance, info) where info has ``evaluations`` and
    ``gradient`` (the largest projected-gradient entry at the result).
    """
    lower = cp.lower_bounds()
    bounds = [(None if np.isinf(lb) else lb, None) for lb in lower]
    fg = lambda t: cp.deviance_and_gradient(np.maximum(t, lower), reml)  # noqa: E731
    count = [0]

    def counted(t):
        count[0] += 1
        return fg(t)

    opts = dict(maxiter=2000, ftol=1e-15, gtol=1e-8, maxcor=20)

    def run(x0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(counted, x0, jac=True, method="L-BFGS-B",
                                    bounds=bounds, options=opts)
        x = np.maximum(res.x, lower)
        f, g = fg(x)
        return x, f, np.max(np.abs(_projected_gradient(x, g, lower)), initial=0.0)

    best = run(cp.start())
    # A diagonal entry of T on its bound 0 may be a saddle rather than an
    # optimum (the deviance is even in it, so its derivative there is 0):
    # look again from a point off the bound.
    rows, cols = cp.tril
    on_bound = [i for i in range(len(best[0])) if rows[i] == cols[i] and best[0][i] <= 1e-8]
    if on_bound and np.isfinite(best[1]):
        x0 = best[0].copy()
        x0[on_bound] = 0.5
        cand = run(x0)
        if cand[1] < best[1] - 1e-10:
            best = cand
    if not (np.isfinite(best[1]) and best[2] < GRAD_TOL):
        for x0 in (best[0], 0.5 * cp.start(), 2.0 * cp.start()):
            if not np.all(np.isfinite(x0)):
                continue
            cand = run(x0)
            if cand[1] < best[1] - 1e-10 or (cand[1] <= best[1] + 1e-10 and cand[2] < best[2]):
                best = cand
            if np.isfinite(best[1]) and best[2] < GRAD_TOL:
                break
    if not np.isfinite(best[1]):
        raise RuntimeError(
            "fit_mixedlm: the optimiser found no finite log-likelihood; check the "
            "response for extreme values and the model for redundant terms.")
    x, f, gmax = best
    if gmax >= GRAD_TOL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(lambda t: cp.deviance(np.maximum(t, lower), reml), x,
                                    method="Nelder-Mead",
                                    options=dict(xatol=1e-8, fatol=1e-11 * max(1.0, abs(f)),
                                                 maxiter=400 * cp.q))
        count[0] += res.nfev
        xn = np.maximum(res.x, lower)
        fn, gn = fg(xn)
        if fn < f:
            x, f, gmax = xn, fn, np.max(np.abs(_projected_gradient(xn, gn, lower)))
    # Snap variances that are practically zero to exactly zero.
    rows, cols = cp.tril
    for i in range(len(x)):
        if rows[i] == cols[i] and x[i] < SINGULAR_TOL:
            trial = x.copy()
            trial[i] = 0.0
            for k in range(len(trial)):  # with it, negligible entries of its row
                if rows[k] == rows[i] and cols[k] < cols[i] and abs(trial[k]) < SINGULAR_TOL:
                    trial[k] = 0.0
            if np.array_equal(trial, x):
                continue
            ft = cp.deviance(trial, reml)
            if np.isfinite(ft) and ft <= f + 1e-8:
                x, f = trial, ft
    return x, f, dict(evaluations=count[0], gradient=float(gmax))
