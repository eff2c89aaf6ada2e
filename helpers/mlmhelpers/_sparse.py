"""Several random factors (nested or crossed): lme4's profiled deviance, sparse.

The general form of Bates et al. (2015, *J. Stat. Softw.* 67(1), section 3):
the random effects are ``b = Lambda u`` with ``Lambda`` block diagonal (one
lower-triangular ``q_k x q_k`` factor ``T_k``, repeated for every level of
grouping factor ``k``) and ``Z`` the sparse n x Q random-effects design.  For
a given ``theta`` (the entries of all ``T_k``)

    A     = Lambda' Z'Z Lambda + I                      (Q x Q, sparse)
    M     = X'X - X'Z Lambda A^-1 Lambda' Z'X           (lme4's R_X'R_X)
    beta  = M^-1 (X'y - X'Z Lambda A^-1 Lambda' Z'y)
    u     = A^-1 Lambda' Z'(y - X beta)
    pwrss = |y - X beta|^2 - (y - X beta)' Z Lambda u
    ML:   dev = log|A| + n (1 + log(2 pi pwrss / n))
    REML: dev = log|A| + log|M| + (n-p) (1 + log(2 pi pwrss / (n-p)))

``A`` is factored once per evaluation.  SciPy has no sparse Cholesky, so a
sparse LU with a fill-reducing minimum-degree ordering of ``A + A'`` and
diagonal pivoting (``splu(..., permc_spec="MMD_AT_PLUS_A",
diag_pivot_thresh=0)``) plays its part: on a symmetric positive definite
matrix it is the Cholesky factorisation up to a diagonal scaling, and
``log|A|`` is the sum of the logs of the pivots.  Small systems (Q <= 400)
use a dense Cholesky.  All cross-products (``Z'Z``, ``Z'X``, ``Z'y``) are
formed once, so an evaluation never touches the n rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import optimize
from scipy.sparse.linalg import splu

from ._lmm import GRAD_TOL, SINGULAR_TOL, profiled_deviance

DENSE_MAX = 400


@dataclass
class Block:
    name: str            # lme4's name of the grouping factor
    codes: np.ndarray    # (n,) 0-based level of every row
    labels: object       # the levels, in code order
    Z: np.ndarray        # (n, q) the block's random-effects columns
    terms: list          # the names of those columns
    factor: str = ""     # the grouping factor (name without lme4's ".1" of a || term)

    @property
    def m(self):
        return len(self.labels)

    @property
    def q(self):
        return self.Z.shape[1]


class SparseModel:
    """Cross-products and the deviance for several random-effects blocks."""

    def __init__(self, y, X, blocks):
        y = np.asarray(y, float)
        X = np.asarray(X, float)
        self.n, self.p = X.shape
        self.blocks = list(blocks)
        rows, cols, vals = [], [], []
        lrow, lcol, lidx = [], [], []
        off, toff = 0, 0
        self.offsets, self.theta_slices = [], []
        n = self.n
        for blk in self.blocks:
            q, m = blk.q, blk.m
            for t in range(q):
                rows.append(np.arange(n))
                cols.append(off + blk.codes * q + t)
                vals.append(blk.Z[:, t])
            tr, tc = np.tril_indices(q)
            base = off + np.arange(m)[:, None] * q
            lrow.append((base + tr[None, :]).ravel())
            lcol.append((base + tc[None, :]).ravel())
            lidx.append(np.tile(toff + np.arange(len(tr)), m))
            self.offsets.append(off)
            self.theta_slices.append(slice(toff, toff + len(tr)))
            off += m * q
            toff += len(tr)
        self.Q, self.ntheta = off, toff
        Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, off))
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtX = np.asarray(Z.T @ X)
        self.Zty = np.asarray(Z.T @ y).ravel()
        self.XtX, self.Xty, self.yty = X.T @ X, X.T @ y, float(y @ y)
        self._lam = (np.concatenate(lrow), np.concatenate(lcol), np.concatenate(lidx))
        self.dense = off <= DENSE_MAX
        self._Apattern = None
        self.diagonal = all(blk.q == 1 for blk in self.blocks)
        if self.dense:
            self.ZtZ_dense = self.ZtZ.toarray()

    # -- theta ---------------------------------------------------------------------
    def lower_bounds(self):
        out = []
        for blk in self.blocks:
            tr, tc = np.tril_indices(blk.q)
            out.append(np.where(tr == tc, 0.0, -np.inf))
        return np.concatenate(out)

    def start(self):
        return np.concatenate([np.eye(blk.q)[np.tril_indices(blk.q)] for blk in self.blocks])

    def block_T(self, theta, k):
        q = self.blocks[k].q
        T = np.zeros((q, q))
        T[np.tril_indices(q)] = theta[self.theta_slices[k]]
        return T

    def lam(self, theta):
        r, c, i = self._lam
        return sp.csc_matrix((np.asarray(theta, float)[i], (r, c)), shape=(self.Q, self.Q))

    # -- penalised least squares -----------------------------------------------------
    def _lam_t(self, theta, M):
        """Lambda' M (Lambda is diagonal when every block has one term: no sparse product)."""
        if self.diagonal:
            lam = np.asarray(theta, float)[self._lam[2]]
            return lam[:, None] * M if M.ndim == 2 else lam * M
        return np.asarray(self.lam(theta).T @ M)

    def _factor(self, theta):
        if self.dense:
            Ld = self.lam(theta).toarray()
            A = Ld.T @ self.ZtZ_dense @ Ld
            A[np.diag_indices_from(A)] += 1.0
            C = np.linalg.cholesky(A)
            logdet = 2.0 * np.sum(np.log(np.diag(C)))

            def solve(B):
                from scipy.linalg import cho_solve
                return cho_solve((C, True), B)
            return solve, logdet
        A = self._A(theta)
        lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options=dict(SymmetricMode=True))
        diag = lu.U.diagonal()
        if np.any(diag <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        return lu.solve, float(np.sum(np.log(diag)))

    def _A(self, theta):
        """Lambda' Z'Z Lambda + I on a fixed pattern: sum_ij theta_i theta_j K_ij + I."""
        if self._Apattern is None:
            r, c, i = self._lam
            ind = [sp.csc_matrix(((i == k).astype(float), (r, c)), shape=(self.Q, self.Q))
                   for k in range(self.ntheta)]
            absL = sum(ind)
            P = (absL.T @ abs(self.ZtZ) @ absL + sp.identity(self.Q, format="csc")).tocsc()
            P.sort_indices()
            P.data[:] = 1.0
            coo = P.tocoo()
            rows, cols = coo.row, coo.col
            K = np.zeros((self.ntheta, self.ntheta, P.nnz))
            for a in range(self.ntheta):
                for b in range(self.ntheta):
                    prod = (ind[a].T @ self.ZtZ @ ind[b]).tocsr()
                    if prod.nnz:
                        K[a, b] = np.asarray(prod[rows, cols]).ravel()
            Pc = sp.csc_matrix((np.arange(1.0, P.nnz + 1), (rows, cols)), shape=P.shape)
            Pc.sort_indices()
            order = Pc.data.astype(np.intp) - 1
            self._Apattern = (Pc.indices.copy(), Pc.indptr.copy(), K[:, :, order],
                              (rows == cols)[order])
        indices, indptr, K, isdiag = self._Apattern
        t = np.asarray(theta, float)
        data = np.einsum("a,abn,b->n", t, K, t) + isdiag
        return sp.csc_matrix((data, indices, indptr), shape=(self.Q, self.Q))

    def _solve(self, theta):
        solve, logdet = self._factor(theta)
        LZX = self._lam_t(theta, self.ZtX)
        LZy = self._lam_t(theta, self.Zty).ravel()
        W = solve(np.column_stack([LZX, LZy]))
        M = self.XtX - LZX.T @ W[:, :self.p]
        RX = np.linalg.cholesky(M)
        rhs = self.Xty - LZX.T @ W[:, self.p]
        beta = np.linalg.solve(RX.T, np.linalg.solve(RX, rhs))
        d = LZy - LZX @ beta
        u = W[:, self.p] - W[:, :self.p] @ beta
        r0 = self.yty - 2.0 * beta @ self.Xty + beta @ self.XtX @ beta
        pwrss = float(r0 - d @ u)
        return dict(solve=solve, logdet=logdet, M=M, RX=RX, beta=beta, u=u, pwrss=pwrss)

    def _dev(self, s, reml):
        return profiled_deviance(s["logdet"], s["RX"], s["pwrss"], self.n, self.p, reml)

    def deviance(self, theta, reml=False):
        try:
            with np.errstate(all="ignore"):
                s = self._solve(np.asarray(theta, float))
                dev = self._dev(s, reml)
        except (np.linalg.LinAlgError, RuntimeError):
            return np.inf
        return float(dev) if np.isfinite(dev) and s["pwrss"] > 0 else np.inf

    def estimates(self, theta, reml=False):
        """beta, sigma^2, vcov(beta), and per block: cov_re and b (m, q).

        The conditional variances of b are :meth:`conditional_variances`
        (computed only when asked for: they need the diagonal blocks of A^-1).
        """
        theta = np.asarray(theta, float)
        s = self._solve(theta)
        dof = self.n - self.p if reml else self.n
        sigma2 = s["pwrss"] / dof
        RXinv = np.linalg.inv(s["RX"])
        b_all = np.asarray(self.lam(theta) @ s["u"]).ravel()
        per = []
        for k, blk in enumerate(self.blocks):
            T = self.block_T(theta, k)
            off, q, m = self.offsets[k], blk.q, blk.m
            per.append(dict(cov_re=sigma2 * (T @ T.T), b=b_all[off:off + m * q].reshape(m, q)))
        return dict(beta=s["beta"], sigma2=float(sigma2), vcov=sigma2 * (RXinv.T @ RXinv),
                    blocks=per, dev=float(self._dev(s, reml)), theta=theta)

    def conditional_variances(self, theta, sigma2):
        """Per block, sigma^2 T_k [A^-1]_jj T_k' for every level j: (m, q, q) arrays."""
        theta = np.asarray(theta, float)
        solve, _ = self._factor(theta)
        out = []
        for k, D in enumerate(self._inverse_diagonal_blocks(solve)):
            T = self.block_T(theta, k)
            out.append(sigma2 * np.einsum("ab,mbc,dc->mad", T, D, T))
        return out

    def _inverse_diagonal_blocks(self, solve, chunk=None):
        """The q x q diagonal blocks of A^-1, one per level of every factor.

        Solved for the unit vectors in chunks (at most about 80 MB at a time).
        """
        chunk = chunk or max(256, min(self.Q, 10_000_000 // max(self.Q, 1)))
        out = []
        for k, blk in enumerate(self.blocks):
            off, q, m = self.offsets[k], blk.q, blk.m
            D = np.empty((m, q, q))
            step = max(1, chunk // q)
            for j0 in range(0, m, step):
                j1 = min(m, j0 + step)
                c0, c1 = off + j0 * q, off + j1 * q
                E = np.zeros((self.Q, c1 - c0))
                E[np.arange(c0, c1), np.arange(c1 - c0)] = 1.0
                nj = j1 - j0
                S = solve(E)[c0:c1].reshape(nj, q, nj, q)        # rows/cols of the chunk
                D[j0:j1] = S[np.arange(nj), :, np.arange(nj), :]
            out.append(D)
        return out

    def singular_blocks(self, theta):
        """Names of the blocks whose T has a (practically) zero diagonal entry."""
        out = []
        for k, blk in enumerate(self.blocks):
            T = self.block_T(theta, k)
            if np.any(np.diag(T) < SINGULAR_TOL):
                out.append(k)
        return out


def _gradient(f, x, lower, f0):
    """Central differences (one-sided at a bound)."""
    g = np.zeros_like(x)
    for i in range(len(x)):
        h = 1e-6 * max(1.0, abs(x[i]))
        if x[i] - h < lower[i]:
            g[i] = (f(x + h * np.eye(len(x))[i]) - f0) / h
        else:
            e = h * np.eye(len(x))[i]
            g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def optimise(model: SparseModel, reml=False):
    """Minimise the profiled deviance over theta (bounded quasi-Newton + polish)."""
    lower = model.lower_bounds()
    bounds = [(None if np.isinf(lb) else lb, None) for lb in lower]
    count = [0]

    def f(t):
        count[0] += 1
        return model.deviance(np.maximum(t, lower), reml)

    def fg(t):
        t = np.maximum(t, lower)
        f0 = f(t)
        if not np.isfinite(f0):
            return 1e300, np.zeros(len(t))
        return f0, _gradient(f, t, lower, f0)

    def proj_grad(x):
        f0, g = fg(x)
        g = g.copy()
        g[(x <= lower + 1e-10) & (g > 0)] = 0.0
        return f0, float(np.max(np.abs(g), initial=0.0))

    def run(x0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                    options=dict(maxiter=1000, ftol=1e-14, gtol=1e-7))
        x = np.maximum(res.x, lower)
        return (x,) + proj_grad(x)

    best = run(model.start())
    diag = np.concatenate([np.tril_indices(b.q)[0] == np.tril_indices(b.q)[1]
                           for b in model.blocks])
    on_bound = diag & (best[0] <= 1e-8)
    if on_bound.any():  # a zero variance may be a saddle: look again off the bound
        x0 = best[0].copy()
        x0[on_bound] = 0.5
        cand = run(x0)
        if cand[1] < best[1] - 1e-10:
            best = cand
    if not np.isfinite(best[1]):
        raise RuntimeError(
            "fit_mixedlm: the optimiser found no finite log-likelihood; check the "
            "response for extreme values and the model for redundant terms.")
    x, fx, gmax = best
    if gmax >= GRAD_TOL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(f, x, method="Nelder-Mead",
                                    options=dict(xatol=1e-8, fatol=1e-11 * max(1.0, abs(fx)),
                                                 maxiter=2000))
        xn = np.maximum(res.x, lower)
        fn, gn = proj_grad(xn)
        if fn < fx:
            x, fx, gmax = xn, fn, gn
    for i in np.flatnonzero(diag & (x < SINGULAR_TOL) & (x != 0)):
        trial = x.copy()
        trial[i] = 0.0
        ft = model.deviance(trial, reml)
        if np.isfinite(ft) and ft <= fx + 1e-8:
            x, fx = trial, ft
    return x, fx, dict(evaluations=count[0], gradient=gmax)
