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
from scipy.linalg.lapack import dpotrf, dpotri, dpotrs
from scipy.sparse.linalg import splu

from ._deviance import DevianceModel, Estimates, _tril

SCHUR_MAX = 2500   # most effects of the non-leading factors for the block elimination
DENSE_SUM_MAX = 40_000    # entries of a dense summing matrix (pairs to groups) at most
DENSE_B_MAX = 5_000_000  # entries of a dense leading-by-other block (A12) at most
DENSE_C22_MAX = 200      # other factors' effects up to which Z2'WZ2 is a dense array


def _group_cross(codes, m, U, V):
    """Per-group sums of outer products: out[j] = sum_{i in j} U_i V_i' (m, a, b)."""
    out = np.empty((m, U.shape[1], V.shape[1]))
    for a in range(U.shape[1]):
        for b in range(V.shape[1]):
            out[:, a, b] = np.bincount(codes, U[:, a] * V[:, b], minlength=m)
    return out


def _summing(index, m):
    """The (m, len(index)) 0/1 matrix that sums entries by ``index``: dense where
    that is small (a matrix product then costs less than a sparse one's overhead)."""
    op = sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))),
                       shape=(m, len(index)))
    return op.toarray() if m * len(index) <= DENSE_SUM_MAX else op


def _cholesky(S):
    """The lower Cholesky factor of a symmetric positive definite S, as LAPACK
    leaves it (the upper triangle is not cleared), with the flag ``lower``."""
    c, info = dpotrf(S, lower=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError("not positive definite")
    return c, True


def _chol_solve(cf, B):
    x, info = dpotrs(cf[0], B, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("the Cholesky solve failed")
    return x


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

    @property
    def all_rows(self):
        return self.rows(np.arange(self.m))


class Cross:
    """Weighted cross-products of the designs, by blocks (see :meth:`BlockSystem.cross`)."""

    def __init__(self, **parts):
        self.__dict__.update(parts)


def theta_layout(qs):
    """The slice of theta of each term (lower triangles, term after term)."""
    out, off = [], 0
    for q in qs:
        k = q * (q + 1) // 2
        out.append(slice(off, off + k))
        off += k
    return out


class BlockSystem:
    """The block structure of ``Lambda' Z' W Z Lambda + I`` for a list of random terms.

    Everything that does not depend on the data's weights is set up once:
    which terms form the leading block (the factor with the most groups and
    its other terms), where the other terms' effects sit, the pairs of groups
    that share rows and the scatter operators over them.  :meth:`cross`
    forms the weighted cross-products (once for a linear model, every PIRLS
    iteration for a generalised one), and :meth:`factor`, :meth:`solve`,
    :meth:`inverse_on_pattern` and :meth:`ztz_lam` do the block elimination.
    """

    def __init__(self, terms):
        self.blocks = list(terms)
        self.qs = [t.q for t in self.blocks]
        self.slices = theta_layout(self.qs)
        first = self.blocks[0]
        self.n = len(first.codes)
        self.lead = [k for k, t in enumerate(self.blocks)
                     if t.factor == first.factor and np.array_equal(t.codes, first.codes)]
        self.lead_off = np.cumsum([0] + [self.qs[k] for k in self.lead])
        self.qL = int(self.lead_off[-1])
        self.m0 = first.m
        self.codes0 = first.codes
        self.rest, off = [], 0
        for k in range(len(self.blocks)):
            if k not in self.lead:
                self.rest.append(_Rest(k, self.blocks[k], off))
                off += self.blocks[k].m * self.blocks[k].q
        self.Q2 = off
        self.Q = self.m0 * self.qL + self.Q2
        self.schur = self.Q2 <= SCHUR_MAX
        # A12 as a dense (groups x qL x Q2) array where that is small: its products
        # are then matrix products; otherwise over the pairs of groups that share rows
        self.dense_B = bool(self.rest) and self.m0 * self.qL * self.Q2 <= DENSE_B_MAX
        self.ZL = np.column_stack([self.blocks[k].Z for k in self.lead])
        if self.schur:
            self._setup()

    def _setup(self):
        c0 = self.codes0
        rows, cols, vals = [], [], []
        for r in self.rest:
            for a in range(r.q):
                rows.append(np.arange(self.n))
                cols.append(r.off + r.term.codes * r.q + a)
                vals.append(r.term.Z[:, a])
        self.Z2 = (sp.csr_matrix((np.concatenate(vals),
                                  (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(self.n, self.Q2)) if self.rest else None)
        # Z2'WZ2 on a fixed pattern: for every pair of rest terms and of their columns,
        # where each row's product lands in the matrix's data (weights change, the
        # pattern does not)
        combos, prow, pcol = [], [], []
        for ra in self.rest:
            for rb in self.rest:
                for ca in range(ra.q):
                    for cb in range(rb.q):
                        combos.append((ra, ca, rb, cb))
                        prow.append(ra.off + ra.term.codes * ra.q + ca)
                        pcol.append(rb.off + rb.term.codes * rb.q + cb)
        if self.rest:
            flat = np.stack(prow).astype(np.int64) * self.Q2 + np.stack(pcol)
            uniq, inv = np.unique(flat, return_inverse=True)
            pat = sp.csr_matrix((np.arange(1.0, len(uniq) + 1),
                                 (uniq // self.Q2, uniq % self.Q2)), shape=(self.Q2, self.Q2))
            pat.sort_indices()
            order = np.empty(len(uniq), dtype=np.intp)
            order[pat.data.astype(np.intp) - 1] = np.arange(len(uniq))
            self._c22 = (pat.indices.copy(), pat.indptr.copy(), len(uniq),
                         [(ra, ca, rb, cb, order[inv.reshape(len(combos), -1)[i]])
                          for i, (ra, ca, rb, cb) in enumerate(combos)])
            # small: a dense array, filled at the flat positions directly
            self._c22_dense = self.Q2 <= DENSE_C22_MAX
            if self._c22_dense:
                self._c22_flat = [(ra, ca, rb, cb, flat_i) for (ra, ca, rb, cb), flat_i
                                  in zip(combos, flat)]
        # pairs (group j of the leading factor, level l of a rest term) that share rows
        for r in self.rest:
            key = c0.astype(np.int64) * r.m + r.term.codes
            uniq, inv = np.unique(key, return_inverse=True)
            r.j, r.l = (uniq // r.m).astype(np.intp), (uniq % r.m).astype(np.intp)
            r.pair = inv.ravel().astype(np.intp)                          # pair of every row
            r.rows_p = r.rows(r.l)                                        # (np, q)
            r.order = np.argsort(r.j, kind="stable")
            r.count = np.bincount(r.j, minlength=self.m0)
            r.start = np.concatenate([[0], np.cumsum(r.count)[:-1]])
            r.to_groups = _summing(r.j, self.m0)
            r.to_levels = _summing(r.l, r.m)
        # dense products cost m0 qL Q2^2; the pairs of pairs cost their number (each
        # with more overhead): nested factors have few, crossed ones many
        if self.dense_B:
            npp = sum(int(ra.count @ rb.count) * ra.q * rb.q
                      for ra in self.rest for rb in self.rest)
            self.dense_B = self.m0 * self.qL * self.Q2**2 <= 20 * npp
        # pairs of pairs sharing a group of the leading factor: the blocks of A21 A11^-1 A12
        self.pp, self.pp_scatter = {}, {}
        for a, ra in enumerate(self.rest if not self.dense_B else []):
            for b, rb in enumerate(self.rest):
                reps = rb.count[ra.j]                       # partners of every pair of ra
                pa = np.repeat(np.arange(len(ra.j)), reps)
                within = np.arange(len(pa)) - np.repeat(np.cumsum(reps) - reps, reps)
                pb = rb.order[rb.start[ra.j[pa]] + within]
                self.pp[a, b] = (pa, pb)
                pos = ra.rows_p[pa][:, :, None] * self.Q2 + rb.rows_p[pb][:, None, :]
                self.pp_scatter[a, b] = _Scatter(pos, self.Q2 * self.Q2)
        # the Lambda of the rest terms, on a fixed pattern
        lr, lc, li = [], [], []
        for r in self.rest:
            tr, tc = _tril(r.q)
            base = r.off + np.arange(r.m)[:, None] * r.q
            lr.append((base + tr).ravel())
            lc.append((base + tc).ravel())
            sl = self.slices[r.k]
            li.append(np.tile(np.arange(sl.start, sl.stop), r.m))
        self._lam2_pattern = ((np.concatenate(lr), np.concatenate(lc), np.concatenate(li))
                              if self.rest else None)
        self._lam2_diagonal = all(r.q == 1 for r in self.rest)

    # -- cross-products ------------------------------------------------------------------
    def zt(self, r):
        """Z' r by blocks: (m0, qL) and (Q2,) (no weights)."""
        rL = _group_cross(self.codes0, self.m0, self.ZL, r[:, None])[:, :, 0]
        r2 = np.empty(self.Q2)
        for rr in self.rest:
            for c in range(rr.q):
                r2[rr.off + np.arange(rr.m) * rr.q + c] = np.bincount(
                    rr.term.codes, rr.term.Z[:, c] * r, minlength=rr.m)
        return rL, r2

    def cross(self, w, X, r):
        """Cross-products with row weights ``w`` of the designs, ``X`` and ``r``."""
        w = np.asarray(w, float)
        c0, m0 = self.codes0, self.m0
        wZL = self.ZL * w[:, None]
        wX = X * w[:, None]
        out = dict(CL=_group_cross(c0, m0, wZL, self.ZL), XL=_group_cross(c0, m0, wZL, X),
                   rL=_group_cross(c0, m0, wZL, r[:, None])[:, :, 0],
                   C=[_group_cross(rr.pair, len(rr.j), wZL, rr.term.Z) for rr in self.rest],
                   XtX=X.T @ wX, Xtr=wX.T @ r, rtr=float(r @ (w * r)))
        if self.rest:
            indices, indptr, nnz, combos = self._c22
            if self._c22_dense:
                C22 = np.zeros(self.Q2 * self.Q2)
                for ra, ca, rb, cb, flat in self._c22_flat:
                    C22 += np.bincount(flat, w * ra.term.Z[:, ca] * rb.term.Z[:, cb],
                                       minlength=self.Q2 * self.Q2)
                C22 = C22.reshape(self.Q2, self.Q2)
            else:
                data = np.zeros(nnz)
                for ra, ca, rb, cb, target in combos:
                    data += np.bincount(target, w * ra.term.Z[:, ca] * rb.term.Z[:, cb],
                                        minlength=nnz)
                C22 = sp.csr_matrix((data, indices, indptr), shape=(self.Q2, self.Q2))
            X2 = np.empty((self.Q2, X.shape[1]))
            r2 = np.empty(self.Q2)
            for rr in self.rest:
                for c in range(rr.q):
                    wz = w * rr.term.Z[:, c]
                    pos = rr.off + np.arange(rr.m) * rr.q + c
                    for j in range(X.shape[1]):
                        X2[pos, j] = np.bincount(rr.term.codes, wz * X[:, j], minlength=rr.m)
                    r2[pos] = np.bincount(rr.term.codes, wz * r, minlength=rr.m)
            out.update(C22=C22, X2=X2, r2=r2)
        else:
            out.update(C22=sp.csr_matrix((0, 0)), X2=np.zeros((0, X.shape[1])), r2=np.zeros(0))
        return Cross(**out)

    # -- Lambda ----------------------------------------------------------------------------
    def T(self, theta, k):
        q = self.qs[k]
        T = np.zeros((q, q))
        T[_tril(q)] = np.asarray(theta, float)[self.slices[k]]
        return T

    def TL(self, theta):
        TL = np.zeros((self.qL, self.qL))
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            TL[a:b, a:b] = self.T(theta, k)
        return TL

    def lam2(self, theta):
        r, c, i = self._lam2_pattern
        return sp.csr_matrix((np.asarray(theta, float)[i], (r, c)), shape=(self.Q2, self.Q2))

    def l2t(self, f, M):
        """Lambda_2' M (Lambda_2 is diagonal when every other term has one column)."""
        if self._lam2_diagonal:
            lam = f["lam2"]
            return lam[:, None] * M if M.ndim == 2 else lam * M
        return np.asarray(f["L2"].T @ M)

    def l2(self, f, M):
        """Lambda_2 M."""
        if self._lam2_diagonal:
            lam = f["lam2"]
            return lam[:, None] * M if M.ndim == 2 else lam * M
        return np.asarray(f["L2"] @ M)

    def lam_t(self, f, V1, V2):
        """Lambda' [V1; V2]: TL' V1_j per group and Lambda_2' V2."""
        out1 = np.einsum("ba,jb...->ja...", f["TL"], V1) if V1.ndim != 3 else f["TL"].T @ V1
        out2 = self.l2t(f, V2) if self.rest else V2
        return out1, out2

    def lam(self, f, V1, V2):
        """Lambda [V1; V2] (the effects b of the spherical u)."""
        out1 = np.einsum("ab,jb...->ja...", f["TL"], V1) if V1.ndim != 3 else f["TL"] @ V1
        out2 = self.l2(f, V2) if self.rest else V2
        return out1, out2

    # -- the block elimination ---------------------------------------------------------
    def factor(self, theta, cross):
        """Factor Lambda' Z'WZ Lambda + I by blocks (a dict the other methods read)."""
        TL = self.TL(theta)
        A11 = TL.T @ cross.CL @ TL
        A11[:, range(self.qL), range(self.qL)] += 1.0
        G1, logdet1 = _chol_inv(A11)
        f = dict(TL=TL, G1=G1, T={}, B={}, V={})
        S = np.eye(self.Q2)
        if self.rest:
            if self._lam2_diagonal:
                lam = np.asarray(theta, float)[self._lam2_pattern[2]]
                f["lam2"] = lam
                C = cross.C22
                if isinstance(C, np.ndarray):
                    S += lam[:, None] * C * lam[None, :]
                else:
                    rows = np.repeat(np.arange(self.Q2), np.diff(C.indptr))
                    S[rows, C.indices] += C.data * lam[rows] * lam[C.indices]
            else:
                L2 = self.lam2(theta)
                P = L2.T @ (cross.C22 @ L2)
                S += P.toarray() if sp.issparse(P) else np.asarray(P)
                f["L2"] = L2
            if self.dense_B:
                Bd = np.zeros((self.m0, self.qL, self.Q2))
            for a, r in enumerate(self.rest):
                T = self.T(theta, r.k)
                B = TL.T @ cross.C[a] @ T                                # TL' C T
                f["T"][a], f["B"][a] = T, B
                if self.dense_B:
                    Bd[r.j[:, None], :, r.rows_p] = np.swapaxes(B, 1, 2)
                else:
                    f["V"][a] = G1[r.j] @ B
            if self.dense_B:
                Vd = G1 @ Bd                                          # A11^-1 A12
                n1 = self.m0 * self.qL
                S -= Bd.reshape(n1, self.Q2).T @ Vd.reshape(n1, self.Q2)
                f["Bd"], f["Vd"] = Bd, Vd
                for a, r in enumerate(self.rest):
                    f["V"][a] = np.swapaxes(Vd[r.j[:, None], :, r.rows_p], 1, 2)
            else:
                flat = S.reshape(-1)
                for (a, b), (pa, pb) in self.pp.items():
                    prod = np.swapaxes(f["B"][a][pa], 1, 2) @ f["V"][b][pb]  # (npp, qa, qb)
                    sc = self.pp_scatter[a, b]
                    flat[sc.targets] -= sc.sums(prod)
            cf = _cholesky(S)
            logdet2 = 2.0 * np.sum(np.log(np.diag(cf[0])))
        else:
            cf, logdet2 = None, 0.0
        f["cf"] = cf
        f["logdet"] = float(logdet1.sum() + logdet2)
        return f

    def solve(self, f, R1, R2):
        """A^-1 [R1; R2] for R1 (m0, qL, r) and R2 (Q2, r)."""
        y1 = f["G1"] @ R1
        if not self.rest:
            return y1, R2
        R2 = R2.copy()
        for a, r in enumerate(self.rest):
            part = np.swapaxes(f["B"][a], 1, 2) @ y1[r.j]                # (np, q, k)
            R2[r.off:r.off + r.m * r.q] -= self.to_levels(r, part)
        x2 = _chol_solve(f["cf"], R2)
        x1 = y1.copy()
        for a, r in enumerate(self.rest):
            x1 -= self.to_groups(r, f["V"][a] @ x2[r.rows_p])
        return x1, x2

    def to_groups(self, r, values):
        """Sums over the pairs of every group of the leading factor: (m0, ...)."""
        out = r.to_groups @ values.reshape(len(r.j), -1)
        return out.reshape((self.m0,) + values.shape[1:])

    def to_levels(self, r, values):
        """Sums over the pairs of every level of rest term r, as rows (m q, ...)."""
        out = r.to_levels @ values.reshape(len(r.l), -1)
        return out.reshape((r.m * r.q,) + values.shape[2:])

    def inverse_on_pattern(self, f):
        """The diagonal blocks of A^-1 (leading groups: (m0, qL, qL)), its blocks on the
        pairs (per rest term: (np, qL, q)) and the inverse Schur complement (Q2, Q2)."""
        G1 = f["G1"]
        if not self.rest:
            return G1, {}, np.zeros((0, 0))
        inv, info = dpotri(f["cf"][0], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("not positive definite")
        Sinv = np.tril(inv) + np.tril(inv, -1).T
        if self.dense_B:
            n1 = self.m0 * self.qL
            G12d = -(f["Vd"].reshape(n1, self.Q2) @ Sinv).reshape(self.m0, self.qL, self.Q2)
            G11 = G1 - np.einsum("jaq,jbq->jab", G12d, f["Vd"], optimize=True)
            G12 = {a: np.swapaxes(G12d[r.j[:, None], :, r.rows_p], 1, 2)
                   for a, r in enumerate(self.rest)}
            return G11, G12, Sinv
        G12 = {a: np.zeros_like(f["V"][a]) for a in range(len(self.rest))}
        for (a, b), (pa, pb) in self.pp.items():
            ra, rb = self.rest[a], self.rest[b]
            Sblk = Sinv[ra.rows_p[pa][:, :, None], rb.rows_p[pb][:, None, :]]  # (npp, qa, qb)
            np.subtract.at(G12[b], pb, f["V"][a][pa] @ Sblk)
        G11 = G1.copy()
        for a, r in enumerate(self.rest):
            G11 -= self.to_groups(r, G12[a] @ np.swapaxes(f["V"][a], 1, 2))
        return G11, G12, Sinv

    def ztz_lam(self, f, cross, V1, V2):
        """Z'WZ Lambda [V1; V2] for V1 (m0, qL, r), V2 (Q2, r): the same two parts."""
        LV1, LV2 = self.lam(f, V1, V2)
        out1 = cross.CL @ LV1
        if not self.rest:
            return out1, V2
        out2 = np.asarray(cross.C22 @ LV2)
        for a, r in enumerate(self.rest):
            out1 += self.to_groups(r, cross.C[a] @ LV2[r.rows_p])
            out2[r.off:r.off + r.m * r.q] += self.to_levels(
                r, np.swapaxes(cross.C[a], 1, 2) @ LV1[r.j])
        return out1, out2

    def logdet_gradient(self, f, cross, G):
        """d log|Lambda' Z'WZ Lambda + I| / d theta at fixed weights:
        2 sum_j [G Lambda' Z'WZ]_(kj, b), (kj, a) for every entry (a, b) of every T_k."""
        G11, G12, Sinv = G
        TL = f["TL"]
        DL = np.einsum("jab,cb,jcd->jad", G11, TL, cross.CL, optimize=True)
        Drest = {}
        if self.rest:
            K2 = self.l2t(f, cross.C22 if isinstance(cross.C22, np.ndarray)
                          else cross.C22.toarray())             # Lambda_2' C22
            M2 = Sinv @ K2                                      # Sinv Lambda_2' C22
            for a, r in enumerate(self.rest):
                idx = r.all_rows                                # (m, q)
                D = M2[idx[:, :, None], idx[:, None, :]]        # (m, q, q)
                T = f["T"][a]
                # pairs: G_(j),(l) T' C_(l),(j) into the leading groups, and back
                DL += self.to_groups(r, G12[a] @ T.T @ np.swapaxes(cross.C[a], 1, 2))
                D += (r.to_levels @ (np.swapaxes(G12[a], 1, 2) @ TL.T @ cross.C[a]).reshape(
                    len(r.l), -1)).reshape(D.shape)
                Drest[a] = D
        grad = np.zeros(self.slices[-1].stop)
        gL = 2.0 * DL.sum(axis=0).T
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            grad[self.slices[k]] = gL[a:b, a:b][_tril(self.qs[k])]
        for a, r in enumerate(self.rest):
            grad[self.slices[r.k]] = (2.0 * Drest[a].sum(axis=0).T)[_tril(r.q)]
        return grad

    def outer_gradient(self, A1, A2, B1, B2):
        """-2 sum_j A_(kj, a) . B_(kj, b) for every entry (a, b) of every T_k (A, B split as
        by :meth:`split`; a trailing axis is summed): the derivative of a penalised sum of
        squares by the envelope theorem."""
        grad = np.zeros(self.slices[-1].stop)
        A1 = A1.reshape(A1.shape[0], A1.shape[1], -1)
        B1 = B1.reshape(B1.shape[0], B1.shape[1], -1)
        gL = -2.0 * np.einsum("jak,jbk->ab", A1, B1)
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            grad[self.slices[k]] = gL[a:b, a:b][_tril(self.qs[k])]
        for r in self.rest:
            idx = r.all_rows
            a2 = A2[idx].reshape(r.m, r.q, -1)
            b2 = B2[idx].reshape(r.m, r.q, -1)
            g = -2.0 * np.einsum("lak,lbk->ab", a2, b2)
            grad[self.slices[r.k]] = g[_tril(r.q)]
        return grad

    def ztz(self, cross, V1, V2):
        """Z'WZ [V1; V2] (no Lambda) for V1 (m0, qL, r), V2 (Q2, r)."""
        out1 = cross.CL @ V1
        if not self.rest:
            return out1, V2
        out2 = np.asarray(cross.C22 @ V2)
        for a, r in enumerate(self.rest):
            out1 += self.to_groups(r, cross.C[a] @ V2[r.rows_p])
            out2[r.off:r.off + r.m * r.q] += self.to_levels(
                r, np.swapaxes(cross.C[a], 1, 2) @ V1[r.j])
        return out1, out2

    def z_times(self, V1, V2):
        """Z [V1; V2] for every row: (n, r) for V1 (m0, qL, r), V2 (Q2, r) (b-space)."""
        out = np.einsum("iq,iqr->ir", self.ZL, V1[self.codes0])
        for r in self.rest:
            out += np.einsum("iq,iqr->ir", r.term.Z, V2[r.rows(r.term.codes)])
        return out

    def entry_positions(self):
        """For every entry (a, b) of every T_k, the positions (in the split layout:
        ``("L", j, qL-index)`` as flat lead indices, rest as Q2 rows) of a and of b for
        all groups: a list of (k, side, pos_a, pos_b)."""
        out = []
        for k in range(len(self.blocks)):
            q = self.qs[k]
            rows, cols = _tril(q)
            if k in self.lead:
                lo = self.lead_off[self.lead.index(k)]
                base = np.arange(self.m0) * self.qL + lo
                for a, b in zip(rows, cols):
                    out.append((k, "L", base + a, base + b))
            else:
                r = next(r for r in self.rest if r.k == k)
                base = r.off + np.arange(r.m) * r.q
                for a, b in zip(rows, cols):
                    out.append((k, "R", base + a, base + b))
        return out

    def leverages(self, f, G):
        """h_i = z_i' Lambda A^-1 Lambda' z_i for every row (A^-1 on the pattern ``G``)."""
        G11, G12, Sinv = G
        vL = self.ZL @ f["TL"]                                   # (n, qL) = (TL' z)'
        h = np.einsum("ra,rab,rb->r", vL, G11[self.codes0], vL)
        vs = []
        for a, r in enumerate(self.rest):
            v = r.term.Z @ f["T"][a]                             # (n, q)
            h += 2.0 * np.einsum("ra,rab,rb->r", vL, G12[a][r.pair], v)
            vs.append((r, v))
        for r1, v1 in vs:
            i1 = r1.rows(r1.term.codes)
            for r2, v2 in vs:
                i2 = r2.rows(r2.term.codes)
                blk = Sinv[i1[:, :, None], i2[:, None, :]]
                h += np.einsum("ra,rab,rb->r", v1, blk, v2)
        return h

    def split(self, v):
        """A Q-vector (or Q x r) as (m0, qL, ...) and (Q2, ...)."""
        n1 = self.m0 * self.qL
        return v[:n1].reshape((self.m0, self.qL) + v.shape[1:]), v[n1:]

    def pls(self, theta, cross, p):
        """The penalised least-squares solution for fixed effects and spherical effects
        together, at theta (lme4's ``solve()``): a dict with f, logdet, M, RX, beta, u,
        pwrss and WX (A^-1 Lambda' Z'WX)."""
        f = self.factor(theta, cross)
        F1 = np.concatenate([np.einsum("ba,jbc->jac", f["TL"], cross.XL),
                             np.einsum("ba,jb->ja", f["TL"], cross.rL)[:, :, None]], axis=2)
        F2 = (self.l2t(f, np.column_stack([cross.X2, cross.r2]))
              if self.rest else np.zeros((0, p + 1)))
        W1, W2 = self.solve(f, F1, F2)
        FX = np.concatenate([F1[:, :, :p].reshape(-1, p), F2[:, :p]])
        Fy = np.concatenate([F1[:, :, p].ravel(), F2[:, p]])
        WX = np.concatenate([W1[:, :, :p].reshape(-1, p), W2[:, :p]])
        Wy = np.concatenate([W1[:, :, p].ravel(), W2[:, p]])
        M = cross.XtX - FX.T @ WX
        RX = np.linalg.cholesky(M)
        rhs = cross.Xtr - FX.T @ Wy
        beta = np.linalg.solve(RX.T, np.linalg.solve(RX, rhs))
        d = Fy - FX @ beta
        u = Wy - WX @ beta
        r0 = cross.rtr - 2.0 * beta @ cross.Xtr + beta @ cross.XtX @ beta
        pwrss = float(r0 - d @ u)
        return dict(f=f, logdet=f["logdet"], M=M, RX=RX, beta=beta, u=u, pwrss=pwrss, WX=WX)

    def modes(self, f, u):
        """b = Lambda u per term (groups x q), in the terms' order (u: a Q-vector)."""
        u1, u2 = self.split(u)
        out = [None] * len(self.blocks)
        bL = u1 @ f["TL"].T
        for i, k in enumerate(self.lead):
            out[k] = bL[:, self.lead_off[i]:self.lead_off[i + 1]]
        for a, r in enumerate(self.rest):
            out[r.k] = u2[r.all_rows] @ f["T"][a].T
        return out

    def conditional_covariances(self, theta, f, scale):
        """Per term, scale * T_k [A^-1]_jj T_k' for every level j: (m, q, q) arrays."""
        G11, _, Sinv = self.inverse_on_pattern(f)
        out = [None] * len(self.blocks)
        for i, k in enumerate(self.lead):
            a, b = self.lead_off[i], self.lead_off[i + 1]
            T = self.T(theta, k)
            out[k] = scale * np.einsum("ab,mbc,dc->mad", T, G11[:, a:b, a:b], T)
        for a, r in enumerate(self.rest):
            idx = r.all_rows
            D = Sinv[idx[:, :, None], idx[:, None, :]]
            T = f["T"][a]
            out[r.k] = scale * np.einsum("ab,mbc,dc->mad", T, D, T)
        return out

    def lam_parts(self, theta):
        """The T's of theta as :meth:`modes` and :meth:`linear_predictor` read them."""
        return dict(TL=self.TL(theta), T={a: self.T(theta, r.k) for a, r in enumerate(self.rest)})

    def linear_predictor(self, f, u):
        """Z Lambda u for every row (``f``: a factorisation or :meth:`lam_parts`)."""
        b = self.modes(f, u)
        out = np.zeros(self.n)
        for blk, bk in zip(self.blocks, b):
            if blk.q == 1:
                out += blk.Z[:, 0] * bk[blk.codes, 0]
            else:
                out += np.einsum("ik,ik->i", blk.Z, bk[blk.codes])
        return out


class SparseDeviance(DevianceModel):
    """lme4's profiled deviance for several random terms, by block elimination.

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
        self.system = BlockSystem(self.blocks)
        self.schur = self.system.schur
        if self.schur:
            self.cross = self.system.cross(np.ones(self.n), X, y)
        else:
            self._setup_lu(y, X)

    # -- theta ---------------------------------------------------------------------
    def scales(self):
        out = []
        for blk in self.blocks:
            rms = np.sqrt(np.maximum(np.mean(blk.Z**2, axis=0), 1e-300))
            out.append(1.0 / rms[_tril(blk.q)[1]])
        return np.concatenate(out)

    # -- the deviance -------------------------------------------------------------------
    def _solve(self, theta):
        if not self.schur:
            return self._solve_lu(theta)
        return self.system.pls(theta, self.cross, self.p)

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

    def _gradient(self, theta, s):
        sysm, cross, f = self.system, self.cross, s["f"]
        G = sysm.inverse_on_pattern(f)
        grad = sysm.logdet_gradient(f, cross, G)
        # Z'r and u, per block
        u1, u2 = sysm.split(s["u"])
        beta = s["beta"]
        zz1, zz2 = sysm.ztz_lam(f, cross, u1[:, :, None], u2[:, None])
        ztr1 = cross.rL - cross.XL @ beta - zz1[:, :, 0]
        ztr2 = cross.r2 - cross.X2 @ beta - zz2[:, 0] if sysm.rest else np.zeros(0)
        dof = (self.n - self.p) if self.reml else self.n
        grad += (dof / s["pwrss"]) * sysm.outer_gradient(ztr1, ztr2, u1, u2)
        if self.reml:
            H1, H2 = sysm.split(s["WX"])
            yy1, yy2 = sysm.ztz_lam(f, cross, H1, H2)
            Minv = np.linalg.inv(s["M"])
            Y1 = (cross.XL - yy1) @ Minv                         # (m0, qL, p)
            Y2 = (cross.X2 - yy2) @ Minv if sysm.rest else np.zeros((0, self.p))
            grad += sysm.outer_gradient(Y1, Y2, H1, H2)
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
        if self.schur:
            b = self.system.modes(s["f"], s["u"])
        else:
            b_all = np.asarray(self.lam(theta) @ s["u"]).ravel()
            b = [b_all[self.offsets[k]:self.offsets[k] + blk.m * blk.q].reshape(blk.m, blk.q)
                 for k, blk in enumerate(self.blocks)]
        covs = []
        for k in range(len(self.blocks)):
            T = self.block_T(theta, k)
            covs.append(sigma2 * (T @ T.T))
        return Estimates(beta=s["beta"], sigma2=float(sigma2), vcov=sigma2 * (RXinv.T @ RXinv),
                         dev=float(self._dev(s)), theta=theta, covs=covs, b=b,
                         condvar=lambda: self.conditional_variances(theta, sigma2))

    def conditional_variances(self, theta, sigma2):
        """Per term, sigma^2 T_k [A^-1]_jj T_k' for every level j: (m, q, q) arrays."""
        theta = np.asarray(theta, float)
        if not self.schur:
            return self._conditional_variances_lu(theta, sigma2)
        f = self.system.factor(theta, self.cross)
        return self.system.conditional_covariances(theta, f, sigma2)

    # -- two large crossed factors: a sparse LU of the whole of A -------------------------
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
            tr, tc = _tril(q)
            base = off + np.arange(m)[:, None] * q
            lrow.append((base + tr[None, :]).ravel())
            lcol.append((base + tc[None, :]).ravel())
            sl = self.term_slices[k]
            lidx.append(np.tile(np.arange(sl.start, sl.stop), m))
            self.offsets.append(off)
            off += m * q
        self.Q = off
        Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n, off))
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtX = np.asarray(Z.T @ X)
        self.Zty = np.asarray(Z.T @ y).ravel()
        self._lam = (np.concatenate(lrow), np.concatenate(lcol), np.concatenate(lidx))
        self._Apattern = None

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
