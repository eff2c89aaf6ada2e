"""Generalised linear mixed models (issue #19) against glmer at its best optimum.

Reference values: tests/fixtures/glmm/glmm_reference.json, written by
tests/fixtures/glmm/glmm_reference.R (lme4 1.1-31): every model fitted with
glmer's two optimiser pairs (bobyqa/bobyqa and bobyqa/Nelder_Mead, each also with
tight tolerances); ``best`` is the run with the highest log-likelihood.  Data:
tests/fixtures/glmm/data/ (read by R and here alike).
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

HERE = Path(__file__).resolve().parent
GLMM = HERE / "fixtures" / "glmm"
REF = json.loads((GLMM / "glmm_reference.json").read_text())
MODELS = {m["key"]: m for m in REF["models"]}
REL = 1e-3

_DATA = {}


def load(name):
    if name not in _DATA:
        _DATA[name] = pd.read_csv(GLMM / "data" / name)
    return _DATA[name]


_FITS = {}


def fitted(key):
    """Each model fitted once (its warnings recorded)."""
    if key not in _FITS:
        ref = MODELS[key]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = mlm.fit_glmm(ref["formula"], load(ref["data"]), family=ref["family"],
                             link=ref["link"], nagq=ref["nAGQ"])
        _FITS[key] = (m, list(caught))
    return _FITS[key]


def _name(term):
    return "Intercept" if term == "(Intercept)" else term


def _factor(grp):
    return re.sub(r"\.\d+$", "", grp)


@pytest.mark.parametrize("key", list(MODELS))
def test_estimates_agree_with_glmer(key):
    ref, (m, _) = MODELS[key]["best"], fitted(key)
    assert m.nobs == MODELS[key]["nobs"]
    assert sorted(m.fe_params.index) == sorted(_name(t) for t in ref["fixef"])
    bad = []
    for term, value in ref["fixef"].items():
        ours, se = m.fe_params[_name(term)], ref["se"][term]
        if ours != pytest.approx(value, rel=REL, abs=REL * se):
            bad.append(f"{term}: {ours:.7g} vs {value:.7g}")
        if m.bse[_name(term)] != pytest.approx(se, rel=REL):
            bad.append(f"se({term}): {m.bse[_name(term)]:.7g} vs {se:.7g}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("key", list(MODELS))
def test_variances_agree_with_glmer(key):
    ref, (m, _) = MODELS[key]["best"], fitted(key)
    table = mlm.random_effects(m)
    ours = {(_factor(g), n): v for g, n, v in zip(table["Groups"], table["Name"],
                                                  table["Variance"])}
    for row in ref["varcorr"]:
        if row.get("var2"):
            cov = m.random_terms[row["grp"]].cov
            scale = np.sqrt(cov.loc[row["var1"], row["var1"]] * cov.loc[row["var2"], row["var2"]])
            assert cov.loc[row["var1"], row["var2"]] == pytest.approx(
                row["vcov"], rel=REL, abs=REL * max(scale, 1e-8)), row
        else:
            key_ = (_factor(row["grp"]), row["var1"])
            assert ours[key_] == pytest.approx(row["vcov"], rel=REL, abs=1e-6), row
    assert len(ours) == sum(1 for r in ref["varcorr"] if not r.get("var2"))


@pytest.mark.parametrize("key", list(MODELS))
def test_loglik_agrees_with_glmer(key):
    ref, (m, _) = MODELS[key]["best"], fitted(key)
    full = ref.get("agq_full", {}).get("logLik_full")
    if MODELS[key]["nAGQ"] > 1 and full is not None and abs(full - ref["logLik"]) > 1e-6:
        # glmer leaves the saturated model's log-likelihood out of its adaptive-quadrature
        # deviance for counts (lme4 issues #161, #567); the library puts it back, so that
        # the log-likelihood is the same quantity as the Laplace fit's
        assert m.llf == pytest.approx(full, abs=1e-3)
    else:
        assert m.llf == pytest.approx(ref["logLik"], abs=1e-3)
    assert m.aic == pytest.approx(-2 * m.llf + 2 * ref["df"], abs=1e-9)


@pytest.mark.parametrize("key", list(MODELS))
def test_singular_exactly_when_glmer_is(key):
    ref, (m, caught) = MODELS[key]["best"], fitted(key)
    assert m.singular == ref["singular"]
    warned = [w for w in caught if issubclass(w.category, mlm.SingularFitWarning)]
    assert bool(warned) == ref["singular"]
    assert m.converged, m.warnings


@pytest.mark.parametrize("key", [k for k, m in MODELS.items() if m["best"].get("ranef")])
def test_group_effects_agree_with_glmer(key):
    ref, (m, _) = MODELS[key]["best"], fitted(key)
    rows = pd.DataFrame(ref["ranef"])
    ge = mlm.group_effects(m)
    for term, part in rows.groupby("term") if "term" in rows else [("(Intercept)", rows)]:
        sub = ge[ge["term"] == term]
        sub = sub.set_index(sub["group"].astype(str))
        groups = part["grp" if "grp" in part else "group"].astype(str).tolist()
        np.testing.assert_allclose(sub.loc[groups, "effect"], part["condval"], rtol=REL,
                                   atol=1e-4)
        np.testing.assert_allclose(sub.loc[groups, "se"], part["condsd"], rtol=REL, atol=1e-5)


@pytest.mark.parametrize("key", [k for k, m in MODELS.items() if m["family"] == "poisson"
                                 and m["best"].get("overdispersion")])
def test_overdispersion_is_measured_as_the_glmm_faq_does(key):
    ref, (m, caught) = MODELS[key]["best"]["overdispersion"], fitted(key)
    od = mlm.overdispersion(m)
    assert od["chisq"] == pytest.approx(ref["pearson_chi2"], rel=REL)
    assert od["df"] == ref["df_residual"]
    assert od["ratio"] == pytest.approx(ref["ratio"], rel=REL)
    warned = any("Overdispersion" in str(w.message) for w in caught)
    assert warned == (ref["p_value"] < 0.05 and ref["ratio"] > 1)


def test_overdispersion_names_its_remedy():
    m, caught = fitted("poisson_no_olre")
    text = next(str(w.message) for w in caught if "Overdispersion" in str(w.message))
    assert "observation-level random effect" in text and "(1 | obs)" in text
    olre, _ = fitted("poisson_olre")
    assert olre.llf > m.llf + 90  # the observation-level effect is the remedy here


def test_fit_logit_mixed_is_fit_glmm_with_the_logit_link():
    contra = mlm.load_dataset("contraception")
    a = mlm.fit_logit_mixed("use ~ age + urban + (urban | district)", contra)
    b = mlm.fit_glmm("use ~ age + urban + (urban | district)", contra, family="binomial")
    assert type(a) is type(b) is mlm.LogitMixedResults is mlm.GlmmResults
    assert a.llf == b.llf and a.family == "binomial" and a.link == "logit"


def test_cbind_and_proportions_with_weights_are_the_same_model():
    ref = MODELS["binom_counts"]
    cbpp = load("cbpp.csv")
    a, _ = fitted("binom_counts")
    size = cbpp["incidence"] + cbpp["noninc"]
    b = mlm.fit_glmm("prop ~ period2 + period3 + period4 + (1 | herd)",
                     cbpp.assign(prop=cbpp["incidence"] / size), weights=size)
    c = mlm.fit_glmm("cbind(incidence, size - incidence) ~ period2 + period3 + period4 "
                     "+ (1 | herd)", cbpp.assign(size=size))
    assert a.llf == pytest.approx(ref["best"]["logLik"], abs=1e-3)
    for other in (b, c):
        assert other.llf == pytest.approx(a.llf, abs=1e-8)
        pd.testing.assert_series_equal(other.fe_params, a.fe_params, rtol=1e-6)


def test_offset_in_the_formula_or_as_an_argument():
    mm = load("mmmec.csv")
    a, _ = fitted("poisson_offset")
    b = mlm.fit_glmm("deaths ~ uvb + (1 | region)", mm, family="poisson",
                     offset=np.log(mm["expected"]))
    assert b.llf == pytest.approx(a.llf, abs=1e-8)
    rates = mlm.rate_ratios(a)
    assert list(rates.columns) == ["rate ratio", "lower", "upper"]
    assert rates.loc["uvb", "rate ratio"] == pytest.approx(np.exp(a.fe_params["uvb"]))
    # predictions for new data use the offset of the formula
    new = mm.head(3)
    np.testing.assert_allclose(a.predict(new, include_random=False),
                               new["expected"] * np.exp(a.fe_params["Intercept"]
                                                        + a.fe_params["uvb"] * new["uvb"]))


def test_tables_and_plots_take_a_glmm():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, _ = fitted("immun3")
    vc = mlm.random_effects(m)
    assert list(vc["Groups"]) == ["mom:comm", "comm"]
    shares = mlm.vpc(m)                      # latent scale, one share per level
    assert list(shares.index) == ["mom:comm", "comm", "Residual (latent)"]
    assert shares.sum() == pytest.approx(1.0)
    assert shares["Residual (latent)"] == pytest.approx(
        (np.pi**2 / 3) / (np.pi**2 / 3 + vc["Variance"].sum()))
    ge = mlm.group_effects(m)
    assert set(ge["factor"]) == {"mom:comm", "comm"}
    ax = mlm.plot_caterpillar(m, factor="comm")
    assert ax.get_xlabel().startswith("comm ")
    assert "Family: binomial  ( logit )" in mlm.summary(m)
    odds = mlm.odds_ratios(m)
    assert odds.loc["kid2p", "odds ratio"] == pytest.approx(np.exp(m.fe_params["kid2p"]))
    two, _ = fitted("immun2")
    test = mlm.lr_test(two, m)
    assert test.df == 1 and test.statistic == pytest.approx(
        2 * (MODELS["immun3"]["best"]["logLik"] - MODELS["immun2"]["best"]["logLik"]), abs=2e-3)
    plt.close("all")


def test_quadrature_only_for_one_scalar_term():
    with pytest.raises(ValueError, match=r"nagq=5 .*one scalar random term.*nagq=1"):
        mlm.fit_glmm(MODELS["immun3"]["formula"], load("guimmun.csv"), nagq=5)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(family="gamma"), r"family='gamma' is not one of the families"),
    (dict(family="poisson", link="logit"), r"poisson family takes the link 'log'"),
    (dict(family="binomial", link="log"), r"binomial family takes the link 'logit'"),
])
def test_families_and_links_are_checked(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        mlm.fit_glmm("use ~ age + (1 | district)", mlm.load_dataset("contraception"), **kwargs)


def test_counts_must_be_counts():
    mm = load("mmmec.csv")
    with pytest.raises(ValueError, match=r"outcome 'expected' of a poisson model must be "
                                         r"counts"):
        mlm.fit_glmm("expected ~ uvb + (1 | region)", mm, family="poisson")
    with pytest.raises(ValueError, match=r"cbind\(successes, failures\) is the response of a "
                                         "binomial model"):
        mlm.fit_glmm("cbind(deaths, deaths) ~ uvb + (1 | region)", mm, family="poisson")
    with pytest.raises(ValueError, match=r"must be 0/1 .*family='poisson'.*cbind"):
        mlm.fit_glmm("deaths ~ uvb + (1 | region)", mm)
