"""Within- and between-school effects (lecture 4) against lme4.

Reference values: tests/fixtures/contextual_reference.json, made by
tests/fixtures/contextual_reference.R (R 4.2.2, lme4 1.1-31, ML fits on data/tutorial.csv).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import statsmodels.formula.api as smf

import mlmhelpers as mlm

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "contextual_reference.json"
REL = 1e-4
TERM = {"(Intercept)": "Intercept", "standlrt": "standlrt", "avslrt": "avslrt", "within": "within"}
FORMULAS = {
    "exam_ctx": "normexam ~ standlrt + avslrt",
    "exam_wb": "normexam ~ within + avslrt",
}


@pytest.fixture(scope="module")
def ref():
    with open(FIXTURE) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def tutorial():
    data = mlm.load_dataset("tutorial")
    data["within"] = data["standlrt"] - data["avslrt"]
    return data


@pytest.fixture(scope="module")
def fits(tutorial):
    return {key: mlm.fit_mixedlm(formula, tutorial, groups="school") for key, formula in FORMULAS.items()}


def test_avslrt_is_the_school_mean_of_standlrt(tutorial, ref):
    gap = (tutorial["avslrt"] - tutorial.groupby("school")["standlrt"].transform("mean")).abs().max()
    assert gap == pytest.approx(ref["_avslrt_max_gap"], rel=1e-6)
    assert gap < 1e-6  # equal up to the 7 decimals the CSV stores


@pytest.mark.parametrize("key", list(FORMULAS))
def test_fixed_effects_and_standard_errors(key, fits, ref):
    table = mlm.fixed_effects(fits[key])
    assert list(table.index) == [TERM[t] for t in ref[key]["fixef"]]
    for r_name, value in ref[key]["fixef"].items():
        assert table.loc[TERM[r_name], "Estimate"] == pytest.approx(value, rel=REL, abs=1e-7)
    for r_name, value in ref[key]["se"].items():
        assert table.loc[TERM[r_name], "Std. Error"] == pytest.approx(value, rel=REL)


@pytest.mark.parametrize("key", list(FORMULAS))
def test_variances_loglik_aic_bic(key, fits, ref):
    res, r = fits[key], ref[key]
    table = mlm.random_effects(res)
    school, resid = r["varcorr"]
    assert table.loc[table["Groups"] == "school", "Variance"].item() == pytest.approx(school["vcov"], rel=REL)
    assert table.loc[table["Groups"] == "Residual", "Variance"].item() == pytest.approx(resid["vcov"], rel=REL)
    assert res.llf == pytest.approx(r["logLik"], abs=1e-4)
    assert res.aic == pytest.approx(r["AIC"], abs=1e-3)
    assert res.bic == pytest.approx(r["BIC"], abs=1e-3)
    assert res.nobs == r["nobs"]


def test_centred_model_is_a_reparametrisation(fits):
    """Same fit; between effect = within effect + contextual effect (what lecture 4 says)."""
    ctx, wb = fits["exam_ctx"].fe_params, fits["exam_wb"].fe_params
    assert fits["exam_ctx"].llf == pytest.approx(fits["exam_wb"].llf, abs=1e-6)
    assert wb["within"] == pytest.approx(ctx["standlrt"], rel=1e-6)
    assert wb["avslrt"] == pytest.approx(ctx["standlrt"] + ctx["avslrt"], rel=1e-6)


def test_within_and_between_slopes(tutorial, fits, ref, lme4_reference):
    """The within slope equals the school-dummy slope; the random-intercept slope lies between."""
    within = smf.ols("normexam ~ standlrt + C(school)", data=tutorial).fit().params["standlrt"]
    assert within == pytest.approx(ref["within_slope_fe"]["value"], rel=1e-8)
    means = tutorial.groupby("school")[["normexam", "avslrt"]].mean()
    between = smf.ols("normexam ~ avslrt", data=means).fit().params["avslrt"]
    assert between == pytest.approx(ref["between_slope_means"]["value"], rel=1e-8)
    assert fits["exam_wb"].fe_params["within"] == pytest.approx(within, rel=1e-6)
    random_intercept = lme4_reference["exam_m2"]["fixef"]["standLRT"]
    assert within < random_intercept < between
    assert np.isclose(random_intercept, 0.5634, atol=1e-4)
