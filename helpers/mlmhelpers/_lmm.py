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
and ``N_j = B_j M^-1 B_j'``.  A quasi-Newton optimiser with this gradient needs a
few dozen evaluations.

:class:`DenseDeviance` is the engine of the pipeline's deviance stage for
one random term (:mod:`mlmhelpers._deviance` describes the interface).
Several random terms (crossed or nested factors) use the general sparse
form of the same deviance, :mod:`mlmhelpers._sparse`.
"""

from __future__ import annotations

import numpy as np

from ._deviance import DevianceModel, Estimates


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


class DenseDeviance(DevianceModel):
    """lme4's profiled deviance for one random term, from per-group cross-products.

    Stored with the groups last: ``ZtZ[a, b, j]`` is ``(Z_j'Z_j)[a, b]``.
    Build it with :meth:`from_arrays`.
    """

    def __init__(self, *, n, p, q, m, ZtZ, ZtX, Zty, XtX, Xty, yty, reml=False):
        self.n, self.p, self.q, self.m = n, p, q, m
        self.ZtZ, self.ZtX, self.Zty = ZtZ, ZtX, Zty      # (q,q,m), (q,p,m), (q,m)
        self.XtX, self.Xty, self.yty = XtX, Xty, yty
        self.reml = bool(reml)
        self.qs = [q]
        self.tril = np.tril_indices(q)

    @classmethod
    def from_arrays(cls, y, X, Z, codes, m, reml=False):
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
                   Xty=X.T @ y, yty=float(y @ y), reml=reml)

    def scales(self):
        rms = np.sqrt(np.maximum(self.ZtZ[range(self.q), range(self.q)].sum(axis=1), 1e-300)
                      / self.n)
        return 1.0 / rms[self.tril[1]]

    def lam(self, theta):
        """The q x q lower-triangular relative covariance factor T of theta."""
        T = np.zeros((self.q, self.q))
        T[self.tril] = theta
        return T

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
        return dict(T=T, TS=TS, G=G, logdet=float(logdetA.sum()), M=M, RX=RX, beta=beta,
                    u=u, pwrss=pwrss)

    def deviance_and_gradient(self, theta):
        """The profiled deviance and its analytic gradient over theta."""
        theta = np.asarray(theta, float)
        try:
            with np.errstate(all="ignore"):
                s = self._solve(theta)
                dev = self._dev(s)
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
        if self.reml:
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
    def estimates(self, theta):
        """beta, sigma^2, vcov(beta), the covariance of the random effects, the
        conditional modes (m, q) and their conditional covariances (m, q, q)."""
        theta = np.asarray(theta, dtype=float)
        s = self._solve(theta)
        dof = self.n - self.p if self.reml else self.n
        sigma2 = s["pwrss"] / dof
        T = s["T"]
        RXinv = np.linalg.inv(s["RX"])
        TGTt = np.tensordot(_left(T, s["G"]), T.T, axes=([1], [0])).transpose(0, 2, 1)
        condvar = sigma2 * np.moveaxis(TGTt, 2, 0)     # sigma2 T G_j T'
        return Estimates(beta=s["beta"], sigma2=float(sigma2), vcov=sigma2 * (RXinv.T @ RXinv),
                         dev=float(self._dev(s)), theta=theta, covs=[sigma2 * (T @ T.T)],
                         b=[(T @ s["u"]).T], condvar=lambda: [condvar])
