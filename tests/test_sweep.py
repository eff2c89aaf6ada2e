"""A sweep of random-slope and several-factor linear mixed models against lme4's best optimum.

Reference values: tests/fixtures/sweep/sweep_reference.json, written by
tests/fixtures/sweep/sweep_reference.R (lme4 1.1-31, ML fits).  For every model lme4 was run
with bobyqa and Nelder_Mead (tight tolerances) from four starts each; ``best`` is the fit
with the highest logLik, so the reference is the optimum itself, not whatever lme4's default
optimiser stopped at.  The data are CSV files in tests/fixtures/sweep/data/ (or the course's
data/ folder for ``course:<name>``), read by R and here alike.

Every model is fitted once (module-scoped cache) with ``fit_mixedlm(formula, data)``; the
tests compare the logLik, the fixed effects and their standard errors, the variances and
covariances, the names in the variance table, and the singular verdict (and its warning)
with lme4's best fit.

Run time: about 35-60 s with one BLAS thread (``OPENBLAS_NUM_THREADS=1``, as ``make test``
sets); several BLAS threads make these small fits much slower on a shared machine.
``benchmarks/sweep.py`` prints the same comparison as a table.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mlm

REPO = Path(__file__).resolve().parents[1]
SWEEP = Path(__file__).resolve().parent / "fixtures" / "sweep"
REF = json.loads((SWEEP / "sweep_reference.json").read_text())
MODELS = {m["key"]: m for m in REF["models"]}
KEYS = list(MODELS)

REL = 1e-3        # relative tolerance of estimates, SEs, variances and covariances
LOGLIK_ABS = 1e-3
# A variance v of a random term z adds v * z**2 to the variance of y at z.  Below 1e-6 of
# the residual variance at a typical value of z (mean of z**2 over the data) it is zero for
# all practical purposes, whatever the units of z: that is the absolute floor of the
# comparison of variances (it matters for lme4's zero and near-zero variances only).
VAR_FLOOR = 1e-6
# Covariances: an error of 1e-3 in the correlation, i.e. 1e-3 * sqrt(v1 * v2) with each
# variance raised by its floor (so that a covariance next to a zero variance is compared
# with the same absolute precision).
CORR_ABS = 1e-3


# ---------------------------------------------------------------------------------------------
# our side: all access to the fitted model's random part is in this one helper
# ---------------------------------------------------------------------------------------------

def our_varcorr(m):
    """``{(grp, var1, var2): value}`` laid out like lme4's ``as.data.frame(VarCorr(m))``.

    Variances are keyed ``(grp, term, None)`` and read from ``mlm.random_effects(m)``
    (lme4's group names: ``school``, ``school:lea``, ``g.1`` for the second block of a
    ``||`` term); the residual variance is ``("Residual", None, None)``.  Covariances
    ``(grp, term1, term2)`` (lme4's order: ``term1`` before ``term2`` in the block) come from
    the block's covariance matrix (the variance table only has correlations with a block's
    first term, and none next to a zero variance): ``m.random_terms[grp].cov``.
    """
    table = mlm.random_effects(m)
    out = {}
    blocks = {}
    for row in table.itertuples(index=False):
        grp, name, var = row.Groups, row.Name, float(row.Variance)
        if grp == "Residual":
            out[("Residual", None, None)] = var
            continue
        out[(grp, name, None)] = var
        blocks.setdefault(grp, []).append(name)
    for grp, names in blocks.items():
        cov = m.random_terms[grp].cov
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                out[(grp, a, b)] = float(cov.loc[b, a])
    return out


# ---------------------------------------------------------------------------------------------
# data and fits
# ---------------------------------------------------------------------------------------------

_DATA = {}


def load_data(name):
    """A data file of the sweep (``course:<name>`` = the course's ``data/<name>.csv``)."""
    if name not in _DATA:
        if name.startswith("course:"):
            path = REPO / "data" / f"{name.removeprefix('course:')}.csv"
        else:
            path = SWEEP / "data" / name
        _DATA[name] = pd.read_csv(path)
    return _DATA[name]


class Fit:
    """One model fitted with ``fit_mixedlm(formula, data)``, its warnings recorded."""

    def __init__(self, key):
        spec = MODELS[key]
        self.data = load_data(spec["data"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.model = mlm.fit_mixedlm(spec["formula"], self.data)
        self.warnings = list(caught)


@pytest.fixture(scope="module")
def fitted():
    """``fitted(key)``: each model fitted once per module (an error too: raised again)."""
    cache = {}

    def get(key):
        if key not in cache:
            try:
                cache[key] = Fit(key)
            except Exception as exc:  # noqa: BLE001 - the tests of this model all fail
                cache[key] = exc
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]

    return get


def _term_scale(data, term):
    """Mean of z**2 over the data for a random term z (1 for the intercept)."""
    if term == "(Intercept)":
        return 1.0
    return float(np.mean(np.square(data[term].to_numpy(dtype=float))))


# ---------------------------------------------------------------------------------------------
# the fixture itself
# ---------------------------------------------------------------------------------------------

def test_the_sweep_covers_what_it_should():
    best = [m["best"] for m in MODELS.values()]
    assert len(MODELS) >= 36
    assert sum(b["singular"] for b in best) >= 5
    slopes = [m for m in MODELS.values()  # a random term other than an intercept
              if any(r.get("var1") not in (None, "(Intercept)") for r in m["best"]["varcorr"])]
    assert sum(not m["best"]["singular"] for m in slopes) >= 20
    hsb = MODELS["hsb_cses"]
    assert hsb["formula"] == "mAch ~ cses + (1 + cses | school)"
    assert hsb["best"]["logLik"] == pytest.approx(-23355.49, abs=0.01)
    assert not hsb["best"]["singular"]
    for m in MODELS.values():  # lme4's best is at least as good as every run
        lls = [r["logLik"] for r in m["fits"]["runs"] if r["logLik"] is not None]
        assert m["best"]["logLik"] >= max(lls + [m["fits"]["default"]["logLik"]]) - 1e-9


# ---------------------------------------------------------------------------------------------
# our fits against lme4's best
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_loglik(fitted, key):
    fit, ref = fitted(key), MODELS[key]["best"]
    assert fit.model.nobs == MODELS[key]["nobs"]
    assert fit.model.llf == pytest.approx(ref["logLik"], abs=LOGLIK_ABS), (
        f"ours - lme4's best = {fit.model.llf - ref['logLik']:+.4g}")


@pytest.mark.parametrize("key", KEYS)
def test_fixed_effects_and_se(fitted, key):
    m, ref = fitted(key).model, MODELS[key]["best"]
    assert sorted(m.fe_params.index) == sorted(
        "Intercept" if t == "(Intercept)" else t for t in ref["fixef"])
    bad = []
    for term, value in ref["fixef"].items():
        ours = "Intercept" if term == "(Intercept)" else term
        se = ref["se"][term]
        if m.fe_params[ours] != pytest.approx(value, rel=REL, abs=REL * se):
            bad.append(f"{term}: {m.fe_params[ours]:.7g} vs {value:.7g} (se {se:.3g})")
        if m.bse[ours] != pytest.approx(se, rel=REL):
            bad.append(f"se({term}): {m.bse[ours]:.7g} vs {se:.7g}")
    assert not bad, "; ".join(bad)


def _factor(grp):
    """``g`` for lme4's ``g.1``, ``g.2`` (the further blocks of a ``||`` term)."""
    return re.sub(r"\.\d+$", "", grp)


@pytest.mark.parametrize("key", KEYS)
def test_variances_and_covariances(fitted, key):
    """The numbers, matched by (factor, term(s)); test_varcorr_names checks lme4's names."""
    fit, ref = fitted(key), MODELS[key]["best"]
    ours = {(_factor(g), v1, v2): v for (g, v1, v2), v in our_varcorr(fit.model).items()}
    sigma2 = ref["sigma"] ** 2
    var = {(r["grp"], r.get("var1")): r["vcov"] for r in ref["varcorr"] if "var2" not in r}

    def floor(grp, term):
        return VAR_FLOOR * sigma2 / _term_scale(fit.data, term)

    bad = []
    expected = set()
    for row in ref["varcorr"]:
        grp, v1, v2 = row["grp"], row.get("var1"), row.get("var2")
        k = (_factor(grp), v1, v2)
        expected.add(k)
        if k not in ours:
            bad.append(f"{k} missing (ours: {sorted(ours, key=str)})")
            continue
        if grp == "Residual":
            tol = dict(rel=REL)
        elif v2 is None:
            tol = dict(rel=REL, abs=floor(grp, v1))
        else:
            scale = np.sqrt((var[(grp, v1)] + floor(grp, v1)) * (var[(grp, v2)] + floor(grp, v2)))
            tol = dict(rel=REL, abs=CORR_ABS * scale)
        if ours[k] != pytest.approx(row["vcov"], **tol):
            bad.append(f"{k}: {ours[k]:.7g} vs {row['vcov']:.7g}")
    extra = set(ours) - expected
    assert not extra, f"terms lme4 does not have: {sorted(extra, key=str)}"
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("key", KEYS)
def test_varcorr_names(fitted, key):
    """The variance rows in lme4's order with lme4's group names (``g``, ``g.1``, ``b:a``)."""
    ref = [(r["grp"], r.get("var1", "")) for r in MODELS[key]["best"]["varcorr"]
           if "var2" not in r]
    table = mlm.random_effects(fitted(key).model)
    ours = [(g, n if g != "Residual" else "") for g, n in zip(table["Groups"], table["Name"])]
    assert ours == ref


@pytest.mark.parametrize("key", KEYS)
def test_singular_verdict_and_warning(fitted, key):
    fit, ref = fitted(key), MODELS[key]["best"]
    warned = [w for w in fit.warnings if issubclass(w.category, mlm.SingularFitWarning)]
    assert fit.model.singular == ref["singular"], (
        f"ours singular={fit.model.singular}, lme4's best singular={ref['singular']} "
        f"(ours - best logLik = {fit.model.llf - ref['logLik']:+.3g})")
    assert bool(warned) == ref["singular"], [str(w.message) for w in warned]
    # reported singular only after the boundary check, worded as a fact with its check
    if fit.model.singular:
        assert fit.model.optinfo.boundary_checked
        assert fit.model.optinfo.boundary  # the entries of theta left at zero
        assert "lr_test()" in str(warned[0].message)
        assert "no evidence" not in str(warned[0].message)
    assert fit.model.converged, fit.model.warnings
