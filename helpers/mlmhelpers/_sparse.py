"""Several random terms (nested or crossed factors): lme4's profiled deviance.

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

**Factorising A by blocks.**  lme4 orders the terms by their number of
groups, so the first factor (pupils' schools, children, ...) has by far the
most.  Every row belongs to exactly one group of it, so the part of ``A``
that belongs to it (``A11``, with the other terms of the same factor, e.g.
the two halves of ``(1 + x || g)``) is block diagonal: one small ``qL x qL``
block per group.  Eliminating those blocks leaves the Schur complement of
the other factors,

    S = A22 - A21 A11^-1 A12          (dense, as large as the other factors' effects)
    log|A| = sum_j log|A11_j| + log|S|

and ``A12`` is nonzero only where a group of the first factor meets a group
of another (a school's LEA; the secondary schools a primary school's pupils
went to), so every product runs over those *pairs*.  Everything is formed
from cross-products computed once, so an evaluation never touches the n
rows.  The gradient is analytic: with ``G = A^-1`` on the pattern of ``A``
(its diagonal blocks and the pairs), ``d log|A| / dT_k[a, b] = 2 sum_j
[G Lambda' Z'Z]_(kj, b), (kj, a)``; ``d pwrss = -2 sum_j [Z'r]_(kj, a)
u_(kj, b)`` (envelope theorem, ``r`` the residual); and for REML ``d log|M|
= -2 sum_j [(Z'X - Z'Z Lambda H) M^-1 H']_(kj, a), (kj, b)`` with ``H = A^-1
Lambda' Z'X``.  The diagonal blocks of ``G`` are also the conditional
variances of the modes.

When the other factors together have more than ``SCHUR_MAX`` effects (two
large crossed factors), ``S`` would be too big to hold dense; then a
sparse LU with a fill-reducing ordering (``splu(..., permc_spec=
"MMD_AT_PLUS_A", diag_pivot_thresh=0)``, on a symmetric positive definite
matrix the Cholesky factorisation up to a diagonal scaling) factorises the
whole of ``A`` and the gradient is taken by differences.

:class:`SparseDeviance` is the engine of the pipeline's deviance stage for
several random terms (:mod:`mlmhelpers._deviance` describes the interface).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.lapack import dpotri
from scipy.sparse.linalg import splu

from ._deviance import DevianceModel, Estimates

SCHUR_MAX = 2500   # most effects of the non-leading factors for the block elimination


def _group_cross(codes, m, U, V):
    """Per-group sums of outer products: out[j] = sum_{i in j} U_i V_i' (m, a, b)."""
    out = np.empty((m, U.shape[1], V.shape[1]))
    for a in range(U.shape[1]):
        for b in range(V.shape[1]):
            out[:, a, b] = np.bincount(codes, U[:, a] * V[:, b], minlength=m)
    return out


class _Scatter:
    """Sums of many small blocks into a few positions, as one sparse product.

    ``index`` holds the target position of every element of the values that
    will be added (any shape); ``size`` is the number of positions.  Only the
    positions that are hit are stored.
    """

    def __init__(self, index, size):
        flat = np.asarray(index, dtype=np.int64).ravel()
        self.targets, inverse = np.unique(flat, return_inverse=True)
        self.op = sp.csr_matrix((np.ones(len(flat)), (inverse.ravel(), np.arange(len(flat)))),
                                shape=(len(self.targets), len(flat)))
        self.size = size

    def sums(self, values):
        """The sums at ``targets`` of ``values`` (same shape as ``index``)."""
        return self.op @ np.asarray(values, float).ravel()


def _chol_inv(A):
    """Inverses and log-determinants of a stack of SPD matrices (m, q, q)."""
    q = A.shape[1]
    if q == 1:
        return 1.0 / A, np.log(A[:, 0, 0])
    if q == 2:
        a, b, d = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        det = a * d - b * b
        if np.any(det <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        inv = np.empty_like(A)
        inv[:, 0, 0] = d / det
        inv[:, 1, 1] = a / det
        inv[:, 0, 1] = inv[:, 1, 0] = -b / det
        return inv, np.log(det)
    L = np.linalg.cholesky(A)
    Linv = np.linalg.inv(L)
    return (np.swapaxes(Linv, 1, 2) @ Linv,
            2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))


class _Rest:
    """A non-leading term: where its effects sit in the Schur complement."""

    def __init__(self, k, term, off):
        self.k, self.term, self.off = k, term, off
        self.q, self.m = term.q, term.m

    def rows(self, levels):
        """Positions in the Schur complement of the effects of the given levels (.., q)."""
        return self.off + np.asarray(levels)[..., None] * self.q + np.arange(self.q)


class SparseDeviance(DevianceModel):
    """Cross-products and the deviance for several random terms.

    ``terms`` are the model frame's :class:`~mlmhelpers._frame.GroupingTerm`
    in lme4's order (anything with ``factor``, ``codes``, ``Z``, ``m`` and
    ``q``).
    """

    def __init__(self, y, X, terms, reml=False):
        y = np.asarray(y, float)
        X = np.asarray(X, float)
        self.n, self.p = X.shape
        self.reml = bool(reml)
        self.blocks = list(terms)
        self.qs = [t.q for t in self.blocks]
        self.XtX, self.Xty, self.yty = X.T @ X, X.T @ y, float(y @ y)
        first = self.blocks[0]
        self.lead = [k for k, t in enumerate(self.blocks)
                     if t.factor == first.factor and np.array_equal(t.codes, first.codes)]
        self.lead_off = np.cumsum([0] + [self.qs[k] for k in self.lead])
        self.qL = int(self.lead_off[-1])
        self.m0 = first.m
        self.codes0 = first.codes
        rest_k = [k for k in range(len(self.blocks)) if k not in self.lead]
        self.rest, off = [], 0
        for k in rest_k:
            self.rest.append(_Rest(k, self.blocks[k], off))
            off += self.blocks[k].m * self.blocks[k].q
        self.Q2 = off
        self.Q = self.m0 * self.qL + self.Q2
        self.schur = self.Q2 <= SCHUR_MAX
        ZL = np.column_stack([self.blocks[k].Z for k in self.lead])
        self._ZL = ZL
        if self.schur:
            self._setup_schur(y, X, ZL)
        else:
            self._setup_lu(y, X)

    # -- set-up -------------------------------------------------------------------------
    def _setup_schur(self, y, X, ZL):
        c0, m0 = self.codes0, self.m0
        self.CL = _group_cross(c0, m0, ZL, ZL)
        self.XL = _group_cross(c0, m0, ZL, X)
        self.yL = _group_cross(c0, m0, ZL, y[:, None])[:, :, 0]
        rows, cols, vals = [], [], []
        for r in self.rest:
            for a in range(r.q):
                rows.append(np.arange(self.n))
                cols.append(r.off + r.term.codes * r.q + a)
                vals.append(r.term.Z[:, a])
        if self.rest:
            Z2 = sp.csc_matrix((np.concatenate(vals),
                                (np.concatenate(rows), np.concatenate(cols))),
                               shape=(self.n, self.Q2))
            self.C22 = (Z2.T @ Z2).tocsr()
            self.X2 = np.asarray(Z2.T @ X)
            self.y2 = np.asarray(Z2.T @ y).ravel()
        else:
            self.C22 = sp.csr_matrix((0, 0))
            self.X2, self.y2 = np.zeros((0, self.p)), np.zeros(0)
        # pairs (group j of the leading factor, level l of a rest term) that share rows
        for r in self.rest:
            key = c0.astype(np.int64) * r.m + r.term.codes
            uniq, inv = np.unique(key, return_inverse=True)
            r.j, r.l = (uniq // r.m).astype(np.intp), (uniq % r.m).astype(np.intp)
            r.C = _group_cross(inv.ravel(), len(uniq), ZL, r.term.Z)   # (np, qL, q)
            r.rows_p = r.rows(r.l)                                        # (np, q)
            order = np.argsort(r.j, kind="stable")
            r.order = order
            r.count = np.bincount(r.j, minlength=self.m0)
            r.start = np.concatenate([[0], np.cumsum(r.count)[:-1]])
        # pairs of pairs sharing a group of the leading factor: the blocks of A21 A11^-1 A12
        self.pp = {}
        for a, ra in enumerate(self.rest):
            for b, rb in enumerate(self.rest):
                reps = rb.count[ra.j]                       # partners of every pair of ra
                pa = np.repeat(np.arange(len(ra.j)), reps)
                within = np.arange(len(pa)) - np.repeat(np.cumsum(reps) - reps, reps)
                pb = rb.order[rb.start[ra.j[pa]] + within]
                self.pp[a, b] = (pa, pb)
        self.pp_scatter = {}
        for (a, b), (pa, pb) in self.pp.items():
            ra, rb = self.rest[a], self.rest[b]
            pos = ra.rows_p[pa][:, :, None] * self.Q2 + rb.rows_p[pb][:, None, :]
            self.pp_scatter[a, b] = _Scatter(pos, self.Q2 * self.Q2)
        for r in self.rest:   # pairs -> groups of the leading factor, pairs -> rest effects
            r.to_groups = sp.csr_matrix((np.ones(len(r.j)), (r.j, np.arange(len(r.j)))),
                                        shape=(self.m0, len(r.j)))
            r.to_levels = sp.csr_matrix((np.ones(len(r.l)), (r.l, np.arange(len(r.l)))),
                                        shape=(r.m, len(r.l)))
        # the Lambda of the rest terms, on a fixed pattern
        lr, lc, li = [], [], []
        for r in self.rest:
            tr, tc = np.tril_indices(r.q)
            base = r.off + np.arange(r.m)[:, None] * r.q
            lr.append((base + tr).ravel())
            lc.append((base + tc).ravel())
            sl = self.term_slices[r.k]
            li.append(np.tile(np.arange(sl.start, sl.stop), r.m))
        self._lam2_pattern = ((np.concatenate(lr), np.concatenate(lc), np.concatenate(li))
                              if self.rest else None)

    def _setup_lu(self, y, X):
        rows, cols, vals = [], [], []
        lrow, lcol, lidx = [], [], []
        off = 0
        self.offsets = []
        for k, blk in enumerate(self.blocks):
            q, m = blk.q, blk.m
            for t in range(q):
                rows.append(np.arange(self.n))
                cols.append(off + blk.codes * q + t)
                vals.append(blk.Z[:, t])
            tr, tc = np.tril_indices(q)
            base = off + np.arange(m)[:, None] * q
            lrow.append((base + tr[None, :]).ravel())
            lcol.append((base + tc[None, :]).ravel())
            sl = self.term_slices[k]
            lidx.append(np.tile(np.arange(sl.start, sl.stop), m))
            self.offsets.append(off)
            off += m * q
        Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n, off))
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtX = np.asarray(Z.T @ X)
        self.Zty = np.asarray(Z.T @ y).ravel()
        self._lam = (np.concatenate(lrow), np.concatenate(lcol), np.concatenate(lidx))
        self._Apattern = None

    # -- theta ---------------------------------------------------------------------
    def scales(self):
        out = []
        for blk in self.blocks:
            rms = np.sqrt(np.maximum(np.mean(blk.Z**2, axis=0), 1e-300))
            out.append(1.0 / rms[np.tril_indices(blk.q)[1]])
        return np.concatenate(out)

    def _TL(self, theta):
        TL = np.zeros((self.qL, self.qL))
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            TL[a:b, a:b] = self.block_T(theta, k)
        return TL

    def _lam2(self, theta):
        r, c, i = self._lam2_pattern
        return sp.csr_matrix((np.asarray(theta, float)[i], (r, c)), shape=(self.Q2, self.Q2))

    # -- the block elimination ---------------------------------------------------------
    def _factor(self, theta):
        TL = self._TL(theta)
        A11 = np.einsum("ba,jbc,cd->jad", TL, self.CL, TL, optimize=True)
        A11[:, range(self.qL), range(self.qL)] += 1.0
        G1, logdet1 = _chol_inv(A11)
        f = dict(TL=TL, G1=G1, T={}, B={}, V={})
        S = np.eye(self.Q2)
        if self.rest:
            L2 = self._lam2(theta)
            S += (L2.T @ self.C22 @ L2).toarray()
            f["L2"] = L2
            for a, r in enumerate(self.rest):
                T = self.block_T(theta, r.k)
                B = np.einsum("ba,pbc,cd->pad", TL, r.C, T, optimize=True)  # TL' C T
                f["T"][a], f["B"][a] = T, B
                f["V"][a] = G1[r.j] @ B
            flat = S.reshape(-1)
            for (a, b), (pa, pb) in self.pp.items():
                prod = np.swapaxes(f["B"][a][pa], 1, 2) @ f["V"][b][pb]   # (npp, qa, qb)
                sc = self.pp_scatter[a, b]
                flat[sc.targets] -= sc.sums(prod)
            cf = cho_factor(S, lower=True)
            logdet2 = 2.0 * np.sum(np.log(np.diag(cf[0])))
        else:
            cf, logdet2 = None, 0.0
        f["cf"] = cf
        f["logdet"] = float(logdet1.sum() + logdet2)
        return f

    def _solve_blocks(self, f, R1, R2):
        """A^-1 [R1; R2] for R1 (m0, qL, r) and R2 (Q2, r)."""
        y1 = f["G1"] @ R1
        if not self.rest:
            return y1, R2
        R2 = R2.copy()
        for a, r in enumerate(self.rest):
            part = np.swapaxes(f["B"][a], 1, 2) @ y1[r.j]                # (np, q, k)
            R2[r.off:r.off + r.m * r.q] -= self._to_levels(r, part)
        x2 = cho_solve(f["cf"], R2)
        x1 = y1.copy()
        for a, r in enumerate(self.rest):
            x1 -= self._to_groups(r, f["V"][a] @ x2[r.rows_p])
        return x1, x2

    def _to_groups(self, r, values):
        """Sums over the pairs of every group of the leading factor: (m0, ...)."""
        out = r.to_groups @ values.reshape(len(r.j), -1)
        return out.reshape((self.m0,) + values.shape[1:])

    def _to_levels(self, r, values):
        """Sums over the pairs of every level of rest term r, as rows (m q, ...)."""
        out = r.to_levels @ values.reshape(len(r.l), -1)
        return out.reshape((r.m * r.q,) + values.shape[2:])

    def _lam_t_rest(self, f, M):
        """Lambda_2' M for the rest terms' rows of M."""
        return np.asarray(f["L2"].T @ M) if self.rest else M

    def _solve(self, theta):
        if not self.schur:
            return self._solve_lu(theta)
        f = self._factor(theta)
        TL = f["TL"]
        F1 = np.concatenate([np.einsum("ba,jbc->jac", TL, self.XL),
                             np.einsum("ba,jb->ja", TL, self.yL)[:, :, None]], axis=2)
        F2 = self._lam_t_rest(f, np.column_stack([self.X2, self.y2]))
        W1, W2 = self._solve_blocks(f, F1, F2)
        p = self.p
        FX = np.concatenate([F1[:, :, :p].reshape(-1, p), F2[:, :p]])
        Fy = np.concatenate([F1[:, :, p].ravel(), F2[:, p]])
        WX = np.concatenate([W1[:, :, :p].reshape(-1, p), W2[:, :p]])
        Wy = np.concatenate([W1[:, :, p].ravel(), W2[:, p]])
        M = self.XtX - FX.T @ WX
        RX = np.linalg.cholesky(M)
        rhs = self.Xty - FX.T @ Wy
        beta = np.linalg.solve(RX.T, np.linalg.solve(RX, rhs))
        d = Fy - FX @ beta
        u = Wy - WX @ beta
        r0 = self.yty - 2.0 * beta @ self.Xty + beta @ self.XtX @ beta
        pwrss = float(r0 - d @ u)
        return dict(f=f, logdet=f["logdet"], M=M, RX=RX, beta=beta, u=u, pwrss=pwrss, WX=WX)

    # -- A^-1 on the pattern of A --------------------------------------------------------
    def _inverse_on_pattern(self, f):
        """The diagonal blocks of A^-1 (leading groups: (m0, qL, qL)), its blocks on the
        pairs (per rest term: (np, qL, q)) and the inverse Schur complement (Q2, Q2)."""
        G1 = f["G1"]
        if not self.rest:
            return G1, {}, np.zeros((0, 0))
        inv, info = dpotri(f["cf"][0], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("not positive definite")
        Sinv = np.tril(inv) + np.tril(inv, -1).T
        G12 = {a: np.zeros_like(f["V"][a]) for a in range(len(self.rest))}
        for (a, b), (pa, pb) in self.pp.items():
            ra, rb = self.rest[a], self.rest[b]
            Sblk = Sinv[ra.rows_p[pa][:, :, None], rb.rows_p[pb][:, None, :]]  # (npp, qa, qb)
            np.subtract.at(G12[b], pb, f["V"][a][pa] @ Sblk)
        G11 = G1.copy()
        for a, r in enumerate(self.rest):
            G11 -= self._to_groups(r, G12[a] @ np.swapaxes(f["V"][a], 1, 2))
        return G11, G12, Sinv

    def _ztz_lam(self, f, V1, V2):
        """Z'Z Lambda [V1; V2] for V1 (m0, qL, r), V2 (Q2, r): the same two parts."""
        TL = f["TL"]
        LV1 = TL @ V1
        out1 = self.CL @ LV1
        if not self.rest:
            return out1, V2
        LV2 = np.asarray(f["L2"] @ V2)
        out2 = np.asarray(self.C22 @ LV2)
        for a, r in enumerate(self.rest):
            out1 += self._to_groups(r, r.C @ LV2[r.rows_p])
            out2[r.off:r.off + r.m * r.q] += self._to_levels(
                r, np.swapaxes(r.C, 1, 2) @ LV1[r.j])
        return out1, out2

    def deviance_and_gradient(self, theta):
        """The profiled deviance and its analytic gradient over theta."""
        theta = np.asarray(theta, float)
        if not self.schur:
            return super().deviance_and_gradient(theta)
        try:
            with np.errstate(all="ignore"):
                s = self._solve(theta)
                dev = self._dev(s)
                if not np.isfinite(dev) or s["pwrss"] <= 0:
                    return np.inf, np.zeros(len(theta))
                grad = self._gradient(theta, s)
        except self._failures:
            return np.inf, np.zeros(len(theta))
        return float(dev), grad

    def _split(self, v):
        """A Q-vector (or Q x r) as (m0, qL, ...) and (Q2, ...)."""
        n1 = self.m0 * self.qL
        return v[:n1].reshape((self.m0, self.qL) + v.shape[1:]), v[n1:]

    def _gradient(self, theta, s):
        f = s["f"]
        TL = f["TL"]
        G11, G12, Sinv = self._inverse_on_pattern(f)
        # d log|A|: D blocks of G Lambda' Z'Z on the diagonal
        DL = np.einsum("jab,cb,jcd->jad", G11, TL, self.CL, optimize=True)
        Drest = {}
        if self.rest:
            K2 = (f["L2"].T @ self.C22).tocsc()                 # Lambda_2' C22
            M2 = np.asarray((K2.T @ Sinv.T).T)                  # Sinv Lambda_2' C22
            for a, r in enumerate(self.rest):
                idx = r.rows(np.arange(r.m))                    # (m, q)
                D = M2[idx[:, :, None], idx[:, None, :]]        # (m, q, q)
                T = f["T"][a]
                # pairs: G_(j),(l) T' C_(l),(j) into the leading groups, and back
                DL += self._to_groups(r, G12[a] @ T.T @ np.swapaxes(r.C, 1, 2))
                D += (r.to_levels @ (np.swapaxes(G12[a], 1, 2) @ TL.T @ r.C).reshape(
                    len(r.l), -1)).reshape(D.shape)
                Drest[a] = D
        # Z'r and u, per block
        u1, u2 = self._split(s["u"])
        beta = s["beta"]
        zz1, zz2 = self._ztz_lam(f, u1[:, :, None], u2[:, None])
        ztr1 = self.yL - self.XL @ beta - zz1[:, :, 0]
        ztr2 = self.y2 - self.X2 @ beta - zz2[:, 0] if self.rest else np.zeros(0)
        if self.reml:
            H1, H2 = self._split(s["WX"])
            yy1, yy2 = self._ztz_lam(f, H1, H2)
            Minv = np.linalg.inv(s["M"])
            Y1 = (self.XL - yy1) @ Minv                          # (m0, qL, p)
            Y2 = (self.X2 - yy2) @ Minv if self.rest else np.zeros((0, self.p))
        dof = (self.n - self.p) if self.reml else self.n
        c = dof / s["pwrss"]
        grad = np.zeros(len(theta))
        # leading block (every lead term is a diagonal block of TL)
        gL = 2.0 * DL.sum(axis=0).T - 2.0 * c * np.einsum("ja,jb->ab", ztr1, u1)
        if self.reml:
            gL -= 2.0 * np.einsum("jap,jbp->ab", Y1, H1)
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            grad[self.term_slices[k]] = gL[a:b, a:b][np.tril_indices(self.qs[k])]
        for a, r in enumerate(self.rest):
            idx = r.rows(np.arange(r.m))
            ur, zr = u2[idx], ztr2[idx]                          # (m, q)
            g = 2.0 * Drest[a].sum(axis=0).T - 2.0 * c * np.einsum("la,lb->ab", zr, ur)
            if self.reml:
                g -= 2.0 * np.einsum("lap,lbp->ab", Y2[idx], H2[idx])
            grad[self.term_slices[r.k]] = g[np.tril_indices(r.q)]
        return grad

    # -- what lme4 reports ------------------------------------------------------------
    def estimates(self, theta):
        """beta, sigma^2, vcov(beta), and per term the covariance and the modes (m, q).

        The conditional variances of the modes are computed on first use of
        ``condvar()`` (they need the diagonal blocks of A^-1).
        """
        theta = np.asarray(theta, float)
        s = self._solve(theta)
        dof = self.n - self.p if self.reml else self.n
        sigma2 = s["pwrss"] / dof
        RXinv = np.linalg.inv(s["RX"])
        b = self._modes(theta, s)
        covs = []
        for k in range(len(self.blocks)):
            T = self.block_T(theta, k)
            covs.append(sigma2 * (T @ T.T))
        return Estimates(beta=s["beta"], sigma2=float(sigma2), vcov=sigma2 * (RXinv.T @ RXinv),
                         dev=float(self._dev(s)), theta=theta, covs=covs, b=b,
                         condvar=lambda: self.conditional_variances(theta, sigma2))

    def _modes(self, theta, s):
        """b = Lambda u, per term (m, q)."""
        if not self.schur:
            b_all = np.asarray(self.lam(theta) @ s["u"]).ravel()
            return [b_all[self.offsets[k]:self.offsets[k] + blk.m * blk.q].reshape(blk.m, blk.q)
                    for k, blk in enumerate(self.blocks)]
        u1, u2 = self._split(s["u"])
        out = [None] * len(self.blocks)
        bL = u1 @ s["f"]["TL"].T
        for i, k in enumerate(self.lead):
            out[k] = bL[:, self.lead_off[i]:self.lead_off[i + 1]]
        for a, r in enumerate(self.rest):
            out[r.k] = u2[r.rows(np.arange(r.m))] @ s["f"]["T"][a].T
        return out

    def conditional_variances(self, theta, sigma2):
        """Per term, sigma^2 T_k [A^-1]_jj T_k' for every level j: (m, q, q) arrays."""
        theta = np.asarray(theta, float)
        if not self.schur:
            return self._conditional_variances_lu(theta, sigma2)
        f = self._factor(theta)
        G11, _, Sinv = self._inverse_on_pattern(f)
        out = [None] * len(self.blocks)
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            T = self.block_T(theta, k)
            out[k] = sigma2 * np.einsum("ab,mbc,dc->mad", T, G11[:, a:b, a:b], T)
        for a, r in enumerate(self.rest):
            idx = r.rows(np.arange(r.m))
            D = Sinv[idx[:, :, None], idx[:, None, :]]
            T = f["T"][a]
            out[r.k] = sigma2 * np.einsum("ab,mbc,dc->mad", T, D, T)
        return out

    # -- two large crossed factors: a sparse LU of the whole of A -------------------------
    def lam(self, theta):
        r, c, i = self._lam
        return sp.csc_matrix((np.asarray(theta, float)[i], (r, c)), shape=(self.Q, self.Q))

    def _factor_lu(self, theta):
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

    def _solve_lu(self, theta):
        solve, logdet = self._factor_lu(theta)
        L = self.lam(theta)
        LZX = np.asarray(L.T @ self.ZtX)
        LZy = np.asarray(L.T @ self.Zty).ravel()
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

    def _conditional_variances_lu(self, theta, sigma2, chunk=None):
        """The q x q diagonal blocks of A^-1 by unit solves (about 80 MB at a time)."""
        solve, _ = self._factor_lu(theta)
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
                S = solve(E)[c0:c1].reshape(nj, q, nj, q)
                D[j0:j1] = S[np.arange(nj), :, np.arange(nj), :]
            T = self.block_T(theta, k)
            out.append(sigma2 * np.einsum("ab,mbc,dc->mad", T, D, T))
        return out
