"""fit_logit_mixed and friends against R's glmer (lme4 1.1-31).

Reference values: tests/fixtures/lme4_reference.json (Contraception and
guImmun models) and tests/fixtures/glmer_small_reference.json (small
constructed data sets, made by tests/fixtures/glmer_small_reference.R).
Tolerances from issue 3: fixed effects, standard errors and the variance
within 1e-3 (relative), log-likelihood within 1e-3 (absolute), conditional
modes within 1e-3 (absolute) and their standard errors within 1e-2 (relative).
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import statsmodels.api as sm  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402
from scipy import special  # noqa: E402

import mlmhelpers as mlm  # noqa: E402
from conftest import FIXTURES  # noqa: E402

MODELS = {
    "contra_g0": ("contraception", "use ~ 1", "district", 1),
    "contra_g1": ("contraception", "use ~ age + urban", "district", 1),
    "contra_g1_q25": ("contraception", "use ~ age + urban", "district", 25),
    "immun_b0": ("guimmun", "immun ~ 1", "comm", 1),
    "immun_b1": ("guimmun", "immun ~ kid2p + mom25p + ethn + momEd + rural", "comm", 1),
}
SMALL = {
    "allsame": ("y ~ x + f", 1),
    "allsame_q5": ("y ~ x + f", 5),
    "zerovar": ("y ~ x", 1),
}


def r_name(term):
    """patsy's term name -> R's (Intercept, urban[T.Y] -> (Intercept), urbanY)."""
    return "(Intercept)" if term == "Intercept" else re.sub(r"\[T\.(.*)\]$", r"\1", term)


@functools.lru_cache(maxsize=None)
def reference():
    with open(FIXTURES / "lme4_reference.json") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=None)
def small_reference():
    with open(FIXTURES / "glmer_small_reference.json") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=None)
def small_data(name):
    return pd.read_csv(FIXTURES / f"glmer_small_{name}.csv")


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlm.fit_logit_mixed(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def fitted(key):
    dataset, formula, groups, nagq = MODELS[key]
    return quiet_fit(formula, mlm.load_dataset(dataset), groups=groups, nagq=nagq)


@functools.lru_cache(maxsize=None)
def fitted_small(key):
    formula, nagq = SMALL[key]
    return quiet_fit(formula, small_data(key.split("_")[0]), groups="g", nagq=nagq)


def check_against_glmer(m, ref, variance, near_zero=1e-6):
    """Compare with glmer; an estimate near zero may instead differ by
    ``near_zero`` x its standard error (glmer's Nelder-Mead stops a little
    short of the optimum: e.g. an intercept of -0.02 with SE 0.33)."""
    fe = {r_name(k): v for k, v in m.fe_params.items()}
    se = {r_name(k): v for k, v in m.bse_fe.items()}
    assert set(fe) == set(ref["fixef"])
    for term, value in ref["fixef"].items():
        slack = max(1e-6, near_zero * ref["se"][term])
        assert fe[term] == pytest.approx(value, rel=1e-3, abs=slack), term
        assert se[term] == pytest.approx(ref["se"][term], rel=1e-3), term
    assert m.var_re == pytest.approx(variance, rel=1e-3, abs=1e-8)
    assert m.llf == pytest.approx(ref["logLik"], abs=1e-3)
    ranef = pd.DataFrame(ref["ranef"])
    keep = m.ranef.index.astype(str).isin(ranef["group"])
    ours, ours_se = m.ranef.loc[keep, "(Intercept)"], m.ranef_se.loc[keep, "(Intercept)"]
    assert list(ours.index.astype(str)) == list(ranef["group"])
    np.testing.assert_allclose(ours, ranef["u"], atol=1e-3, rtol=0)
    if variance > 0:
        np.testing.assert_allclose(ours_se, ranef["se"], rtol=1e-2)


# --------------------------------------------------------------------------
# Agreement with glmer
# --------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(MODELS))
def test_agrees_with_glmer(key):
    ref = reference()[key]
    m = fitted(key)
    assert m.converged
    assert m.nobs == ref["nobs"]
    check_against_glmer(m, ref, ref["varcorr"][0]["vcov"])
    assert m.aic == pytest.approx(ref["AIC"], abs=2e-3)
    assert m.bic == pytest.approx(ref["BIC"], abs=2e-3)


def test_conditional_variance_se_would_be_too_small():
    # glmer's SEs use the joint Hessian over beta and theta; the SE with the
    # variance held fixed is smaller.  Ours must be the joint one.
    ref = reference()["contra_g1"]
    m = fitted("contra_g1")
    from mlmhelpers import _glmm
    conditional = np.sqrt(np.diag(_glmm.conditional_vcov(m._problem, m._fit.x)))
    assert conditional[0] < ref["se"]["(Intercept)"] * 0.999
    assert m.bse_fe["Intercept"] == pytest.approx(ref["se"]["(Intercept)"], rel=1e-3)


@pytest.mark.parametrize("key", sorted(SMALL))
def test_small_data_sets_agree_with_glmer(key):
    ref = small_reference()[key]
    m = fitted_small(key)
    check_against_glmer(m, ref, ref["vcov"], near_zero=1e-3)


def test_groups_with_all_or_nothing_are_noted_once_and_agree():
    # information, not a problem: no warning (a notebook would show it twice), one note in the summary
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mlm.fit_logit_mixed("y ~ x + f", small_data("allsame"), groups="g")
    (note,) = [w for w in m.warnings if "have the same outcome" in w]
    assert note.startswith("4 of 24 g groups have the same outcome for every member")
    assert str(mlm.summary(m)).count("have the same outcome") == 1
    ref = small_reference()["allsame"]
    # the all-1 groups get positive modes, the all-0 group a negative one
    assert (m.ranef.loc[[1, 2], "(Intercept)"] > 0).all() and m.ranef.loc[3, "(Intercept)"] < 0
    assert ref["ranef"][0]["u"] > 0


def test_zero_variance_is_a_singular_fit_equal_to_glm():
    ref = small_reference()["zerovar"]
    assert ref["singular"]
    with pytest.warns(UserWarning, match="singular"):
        m = mlm.fit_logit_mixed("y ~ x", small_data("zerovar"), groups="g")
    assert m.singular and m.var_re == 0.0 and m.converged
    assert m.llf == pytest.approx(ref["glm_logLik"], abs=1e-3)
    assert "singular" in mlm.summary(m).__str__()
    assert mlm.vpc(m) == 0.0


def test_perfect_separation_warns_and_reports_a_huge_estimate():
    ref = small_reference()["separation"]
    data = small_data("separation")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mlm.fit_logit_mixed("y ~ x + z", data, groups="g")
    assert any("perfectly" in str(w.message) and "z[T.yes]" in str(w.message) for w in caught)
    assert ref["fixef"]["zyes"] > 10  # glmer: also a huge estimate with a huge SE
    assert m.fe_params["z[T.yes]"] > 10
    assert m.bse_fe["z[T.yes]"] > 100
    # the other terms and the likelihood still agree with glmer
    assert m.llf == pytest.approx(ref["logLik"], abs=1e-3)
    assert m.fe_params["x"] == pytest.approx(ref["fixef"]["x"], rel=1e-2)
    assert m.var_re == pytest.approx(ref["vcov"], rel=1e-2)


def test_non_convergence_is_never_silent():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mlm.fit_logit_mixed("y ~ x + z", small_data("separation"), groups="g")
    text = str(mlm.summary(m))
    assert not m.converged
    assert "Model failed to converge" in text
    assert any("failed to converge" in str(w.message) for w in caught)
    assert "NOT converged" in repr(m)


def test_summary_is_laid_out_like_glmer():
    m = fitted("contra_g1")
    text = str(mlm.summary(m))
    for piece in ["Laplace Approximation", "Family: binomial  ( logit )",
                  "Formula: use ~ age + urban + (1 | district)", "Scaled residuals:",
                  "Random effects:", "Number of obs: 1934, groups:  district, 60",
                  "Fixed effects:", "Pr(>|z|)", "Correlation of Fixed Effects:"]:
        assert piece in text, piece
    # logLik and AIC printed with glmer's values
    ref = reference()["contra_g1"]
    assert f"{ref['logLik']:.1f}" in text and f"{ref['AIC']:.1f}" in text
    assert "nAGQ = 25" in str(mlm.summary(fitted("contra_g1_q25")))


def test_scaled_residuals_match_glmer():
    ref = small_reference()["contra_g1_scaled_residuals"]["value"]
    text = str(fitted("contra_g1").summary())
    block = text.split("Scaled residuals:")[1].splitlines()[2]
    np.testing.assert_allclose([float(v) for v in block.split()], ref, atol=2e-4)


# --------------------------------------------------------------------------
# The library's table and plot functions
# --------------------------------------------------------------------------
def test_fixed_and_random_effects_tables():
    ref = reference()["contra_g1"]
    fe = mlm.fixed_effects(fitted("contra_g1"))
    assert list(fe.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    assert list(fe.index) == ["Intercept", "urban[T.Y]", "age"]
    z = ref["fixef"]["urbanY"] / ref["se"]["urbanY"]
    assert fe.loc["urban[T.Y]", "z value"] == pytest.approx(z, rel=1e-3)
    assert fe.loc["urban[T.Y]", "Pr(>|z|)"] == pytest.approx(2 * special.ndtr(-z), rel=1e-2)
    re_ = mlm.random_effects(fitted("contra_g1"))
    assert list(re_.columns) == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert re_.loc[0, "Groups"] == "district" and re_.loc[0, "Name"] == "(Intercept)"
    assert re_.loc[0, "Variance"] == pytest.approx(ref["varcorr"][0]["vcov"], rel=1e-3)
    assert re_.loc[0, "Std.Dev."] == pytest.approx(ref["varcorr"][0]["sdcor"], rel=1e-3)


def test_group_effects_and_caterpillar():
    m = fitted("contra_g1")
    ge = mlm.group_effects(m)
    assert list(ge.columns) == ["group", "term", "effect", "se", "lower", "upper", "rank"]
    ref = pd.DataFrame(reference()["contra_g1"]["ranef"])
    np.testing.assert_allclose(ge["effect"], ref["u"], atol=1e-3)
    np.testing.assert_allclose(ge["upper"] - ge["lower"], 2 * 1.959964 * ref["se"], rtol=1e-2)
    assert sorted(ge["rank"]) == list(range(1, 61))
    assert ge.loc[ge["effect"].idxmin(), "rank"] == 1
    ax = mlm.plot_caterpillar(m)
    assert ax.get_title()
    plt.close("all")


def test_lr_test_against_glm_and_between_mixed_models():
    data = mlm.load_dataset("contraception")
    glm = smf.glm("use ~ 1", data, family=sm.families.Binomial()).fit()
    ref = reference()
    assert glm.llf == pytest.approx(ref["contra_single_logLik"], abs=1e-6)
    test = mlm.lr_test(glm, fitted("contra_g0"))
    expected = 2 * (ref["contra_g0"]["logLik"] - ref["contra_single_logLik"])
    assert test.statistic == pytest.approx(expected, abs=2e-3)
    assert test.df == 1
    assert test.pvalue_boundary == pytest.approx(test.pvalue / 2, rel=1e-9)
    test2 = mlm.lr_test(fitted("contra_g0"), fitted("contra_g1"))
    expected2 = 2 * (ref["contra_g1"]["logLik"] - ref["contra_g0"]["logLik"])
    assert test2.statistic == pytest.approx(expected2, abs=2e-3)
    assert test2.df == 2
    table = mlm.compare_models(fitted("contra_g0"), fitted("contra_g1"), names=["g0", "g1"])
    assert len(table) == 2


def test_model_info_contract():
    m = fitted("contra_g1")
    info = m._model_info()
    assert info["npar"] == 4 and info["nobs"] == 1934 and info["n_variance_params"] == 1
    assert info["family"] == "binomial" and info["mixed"] and not info["reml"]
    assert isinstance(info["rows"], pd.Index) and len(info["rows"]) == 1934


# --------------------------------------------------------------------------
# Variance partition coefficients
# --------------------------------------------------------------------------
def test_vpc_latent_variable_method():
    s2 = reference()["contra_g1"]["varcorr"][0]["vcov"]
    m = fitted("contra_g1")
    assert mlm.vpc(m) == pytest.approx(s2 / (s2 + math.pi**2 / 3), rel=1e-3)
    assert mlm.vpc(m, method="latent") == mlm.vpc(m)


def test_vpc_linearisation_method():
    ref = reference()["contra_g1"]
    s2, b = ref["varcorr"][0]["vcov"], ref["fixef"]
    m = fitted("contra_g1")
    p = special.expit(b["(Intercept)"] + b["urbanY"] + 10 * b["age"])
    expected = s2 * (p * (1 - p)) ** 2 / (s2 * (p * (1 - p)) ** 2 + p * (1 - p))
    got = mlm.vpc(m, method="linearisation", at={"urban": "Y", "age": 10})
    assert got == pytest.approx(expected, rel=2e-3)
    # default pattern: covariates at zero / reference category
    p0 = special.expit(b["(Intercept)"])
    expected0 = s2 * (p0 * (1 - p0)) ** 2 / (s2 * (p0 * (1 - p0)) ** 2 + p0 * (1 - p0))
    assert mlm.vpc(m, method="linearisation") == pytest.approx(expected0, rel=2e-3)
    frame = pd.DataFrame({"urban": ["Y"], "age": [10.0]})
    assert mlm.vpc(m, method="linearisation", at=frame) == pytest.approx(got, rel=1e-12)


def test_vpc_methods_of_an_empty_model():
    ref = reference()["contra_g0"]
    s2, p = ref["varcorr"][0]["vcov"], special.expit(ref["fixef"]["(Intercept)"])
    m = fitted("contra_g0")
    lin = s2 * (p * (1 - p)) ** 2 / (s2 * (p * (1 - p)) ** 2 + p * (1 - p))
    assert mlm.vpc(m, method="linearisation") == pytest.approx(lin, rel=2e-3)
    sim = mlm.vpc(m, method="simulation")
    assert sim == mlm.vpc(m, method="simulation")  # default seed: reproducible
    assert 0.8 * lin < sim < 1.2 * lin


def test_vpc_simulation_method_is_reproducible_and_right():
    ref = reference()["contra_g1"]
    s2, b = ref["varcorr"][0]["vcov"], ref["fixef"]
    m = fitted("contra_g1")
    at = {"urban": "Y"}
    a = mlm.vpc(m, method="simulation", at=at, n_sim=200_000, seed=1)
    assert a == mlm.vpc(m, method="simulation", at=at, n_sim=200_000, seed=1)
    assert a != mlm.vpc(m, method="simulation", at=at, n_sim=200_000, seed=2)
    # The quantity the simulation estimates, by Gauss-Hermite integration.
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    p = special.expit(b["(Intercept)"] + b["urbanY"] + math.sqrt(s2) * z)
    mean = np.sum(w * p)
    var = np.sum(w * (p - mean) ** 2)
    exact = var / (var + np.sum(w * p * (1 - p)))
    assert a == pytest.approx(exact, rel=0.02)


def test_vpc_rejects_unknown_methods_and_covariates():
    m = fitted("contra_g1")
    with pytest.raises(ValueError, match="'latent', 'simulation', 'linearisation'"):
        mlm.vpc(m, method="icc")
    with pytest.raises(ValueError, match="not covariates of the model"):
        mlm.vpc(m, method="linearisation", at={"education": 3})


# --------------------------------------------------------------------------
# Odds ratios, coefficient plot, predictions
# --------------------------------------------------------------------------
def test_odds_ratios_match_glmer():
    ref = reference()["contra_g1"]
    table = mlm.odds_ratios(fitted("contra_g1"))
    assert list(table.columns) == ["odds ratio", "lower", "upper"]
    b, se = ref["fixef"]["urbanY"], ref["se"]["urbanY"]
    row = table.loc["urban[T.Y]"]
    assert row["odds ratio"] == pytest.approx(math.exp(b), rel=1e-3)
    assert row["lower"] == pytest.approx(math.exp(b - 1.959964 * se), rel=1e-3)
    assert row["upper"] == pytest.approx(math.exp(b + 1.959964 * se), rel=1e-3)
    glm = smf.glm("use ~ urban", mlm.load_dataset("contraception"),
                  family=sm.families.Binomial()).fit()
    assert mlm.odds_ratios(glm).loc["urban[T.Y]", "odds ratio"] == pytest.approx(
        math.exp(glm.params["urban[T.Y]"]))


def test_plot_coefficients():
    m = fitted("contra_g1")
    ax = mlm.plot_coefficients(m, odds=True)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["urban[T.Y]", "age"]
    assert any(np.allclose(line.get_xdata(), 1.0) for line in ax.get_lines())
    # the log axis is labelled with plain numbers (1, 2), not 10^0 or 2x10^0
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)]
    shown = [text for text in labels if text]
    assert "1" in shown and "2" in shown
    assert not any("times" in text or "^" in text for text in shown), shown
    fig, ax2 = plt.subplots()
    assert mlm.plot_coefficients(m, ax=ax2) is ax2
    assert any(np.allclose(line.get_xdata(), 0.0) for line in ax2.get_lines())
    linear = mlm.fit_mixedlm("normexam ~ standlrt", mlm.load_dataset("tutorial"), groups="school")
    ax3 = mlm.plot_coefficients(linear)
    assert [t.get_text() for t in ax3.get_yticklabels()] == ["standlrt"]
    with pytest.raises(TypeError, match="logistic"):
        mlm.plot_coefficients(linear, odds=True)
    plt.close("all")


def test_predict():
    m = fitted("contra_g1")
    b = m.fe_params
    p = m.predict()
    assert len(p) == 1934 and ((p > 0) & (p < 1)).all()
    link = m.predict(which="link")
    np.testing.assert_allclose(special.expit(link), p)
    new = pd.DataFrame({"age": [0.0, 0.0], "urban": ["N", "Y"], "district": [1, 999]})
    pop = m.predict(new, include_random=False, which="link")
    np.testing.assert_allclose(pop, [b["Intercept"], b["Intercept"] + b["urban[T.Y]"]])
    with pytest.warns(UserWarning, match=r"1 of 2 rows belong to district groups not in the fit"):
        cond = m.predict(new, which="link")
    assert cond.iloc[0] == pytest.approx(pop.iloc[0] + m.ranef.loc[1, "(Intercept)"])
    assert cond.iloc[1] == pytest.approx(pop.iloc[1])  # unseen district: average group
    with pytest.raises(ValueError, match="include_random=False"):
        m.predict(new.drop(columns="district"))


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def test_outcome_must_be_zero_one():
    data = mlm.load_dataset("contraception")
    text = data.assign(use=np.where(data["use"] == 1, "Y", "N"))
    with pytest.raises(ValueError, match=r"\(data\['use'\] == 'Y'\)\.astype\(int\)"):
        mlm.fit_logit_mixed("use ~ age", text, groups="district")
    three = data.assign(use=data["use"] + (data["age"] > 10))
    with pytest.raises(ValueError, match="0/1"):
        mlm.fit_logit_mixed("use ~ age", three, groups="district")
    # a missing outcome is dropped like a missing covariate (R's na.omit), with a warning
    missing = data.assign(use=data["use"].astype(float).where(data["age"] < 15))
    n_missing = int(missing["use"].isna().sum())
    with pytest.warns(UserWarning, match=rf"dropped {n_missing} of 1934 rows with missing "
                                         r"values in use;"):
        m = mlm.fit_logit_mixed("use ~ age", missing, groups="district")
    assert m.nobs == 1934 - n_missing
    boolean = quiet_fit("use ~ urban", data.assign(use=data["use"] == 1), groups="district")
    integer = quiet_fit("use ~ urban", data, groups="district")
    assert boolean.llf == pytest.approx(integer.llf, abs=1e-9)


def test_rows_with_missing_covariates_are_dropped_with_a_message():
    data = mlm.load_dataset("contraception")
    data.loc[[0, 5, 7], "age"] = np.nan
    data.loc[9, "district"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mlm.fit_logit_mixed("use ~ age", data, groups="district")
    assert any("4 of 1934 rows" in str(w.message) for w in caught)
    assert m.nobs == 1930
    assert not set(m._model_info()["rows"]) & {0, 5, 7, 9}


@pytest.mark.parametrize("nagq", [0, -1, 2.5, True, "25"])
def test_nagq_must_be_a_positive_integer(nagq):
    data = mlm.load_dataset("contraception")
    with pytest.raises(ValueError, match="nagq must be a positive whole number"):
        mlm.fit_logit_mixed("use ~ age", data, groups="district", nagq=nagq)


def test_formula_and_groups_errors():
    data = mlm.load_dataset("contraception")
    with pytest.raises(ValueError, match="leave out `groups`"):
        mlm.fit_logit_mixed("use ~ age + (1 | district)", data, groups="district")
    # the same exception type and wording as fit_mixedlm: a ColumnNotFoundError,
    # which is both a KeyError and a ValueError
    with pytest.raises(mlm.ColumnNotFoundError, match=r"groups='county' is not a column"):
        mlm.fit_logit_mixed("use ~ age", data, groups="county")
    with pytest.raises(ValueError, match=r"'used' in formula 'used ~ age' is not a column "
                                         r"of `data`\. Did you mean 'use'"):
        mlm.fit_logit_mixed("used ~ age", data, groups="district")


def test_misspelt_covariate_and_groups_get_suggestions():
    data = mlm.load_dataset("contraception")
    with pytest.raises(KeyError, match=r"'agee' in formula .* Did you mean 'age'"):
        mlm.fit_logit_mixed("use ~ agee + urban", data, groups="district")
    with pytest.raises(ValueError, match=r"groups='distrct' is not a column of `data`\. "
                                         r"Did you mean 'district'"):
        mlm.fit_logit_mixed("use ~ age", data, groups="distrct")
    # a Series instead of a column name: named by type, not printed in full
    with pytest.raises(TypeError, match=r"groups='district'\), got a Series\. Columns"):
        mlm.fit_logit_mixed("use ~ age", data, groups=data["district"])


def test_one_group_one_row_per_group_and_no_rows_are_refused():
    data = mlm.load_dataset("contraception")
    with pytest.raises(ValueError, match=r"only one value.*logit\(formula, data\)"):
        mlm.fit_logit_mixed("use ~ age", data[data["district"] == 1], groups="district")
    with pytest.raises(ValueError, match=r"1934 observations but 1934 groups of 'woman'"):
        mlm.fit_logit_mixed("use ~ age", data, groups="woman")
    with pytest.raises(ValueError, match=r"data has no rows"):
        mlm.fit_logit_mixed("use ~ age", data.iloc[:0], groups="district")


def test_plot_coefficients_checks_ax():
    data = mlm.load_dataset("contraception")
    m = quiet_fit("use ~ age + urban", data, groups="district")
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes"):
        mlm.plot_coefficients(m, ax="left")
    _, ax = plt.subplots()
    assert mlm.plot_coefficients(m, ax=ax) is ax
    plt.close("all")


def test_docstring_examples_run():
    import doctest

    import mlmhelpers.binary as binary_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the contraception fits note all-0/all-1 districts
        failures, tried = doctest.testmod(binary_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
    plt.close("all")


def test_unused_categories_after_filtering_are_dropped_like_glmer():
    data = mlm.load_dataset("contraception")
    fewer = data[data["livch"] != "3+"]
    explicit = fewer.assign(livch=fewer["livch"].cat.remove_unused_categories())
    m = quiet_fit("use ~ age + livch", fewer, groups="district")
    ref = quiet_fit("use ~ age + livch", explicit, groups="district")
    assert list(m.fe_params.index) == ["Intercept", "livch[T.1]", "livch[T.2]", "age"]
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    np.testing.assert_allclose(m.fe_params, ref.fe_params, rtol=1e-8)
    np.testing.assert_allclose(m.predict(), ref.predict(), rtol=1e-8)


@pytest.mark.parametrize("alpha", ["0.05", 0, 1.5, None])
def test_alpha_must_be_a_proportion(alpha):
    data = mlm.load_dataset("contraception")
    m = quiet_fit("use ~ urban", data, groups="district")
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1"):
        mlm.odds_ratios(m, alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha must be between 0 and 1"):
        m.conf_int(alpha=alpha)


def test_nullable_columns_with_missing_values():
    # convert_dtypes() gives Int64/Float64 columns holding pd.NA, which patsy
    # cannot drop by itself (it raised "boolean value of NA is ambiguous")
    data = mlm.load_dataset("contraception")
    nullable = data.convert_dtypes()
    nullable.loc[[3, 10], "age"] = pd.NA
    plain = data.drop(index=[3, 10])
    m = quiet_fit("use ~ age + urban", nullable, groups="district")
    ref = quiet_fit("use ~ age + urban", plain, groups="district")
    assert m.nobs == 1932
    assert list(m.rows) == list(plain.index)
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    np.testing.assert_allclose(m.fe_params, ref.fe_params, rtol=1e-8)
    assert list(m.ranef.index) == list(ref.ranef.index)


def test_lr_test_refuses_mixed_models_with_different_nagq():
    data = mlm.load_dataset("contraception")
    laplace = quiet_fit("use ~ age", data, groups="district")
    agq = quiet_fit("use ~ age + urban", data, groups="district", nagq=9)
    agq0 = quiet_fit("use ~ age", data, groups="district", nagq=9)
    with pytest.raises(ValueError, match=r"different nagq \(1, 9\).*same nagq"):
        mlm.lr_test(laplace, agq)
    with pytest.raises(ValueError, match=r"different nagq"):
        mlm.compare_models(laplace, agq)
    # same nagq: fine, and a single-level GLM has no approximation to clash with
    assert mlm.lr_test(agq0, agq).df == 1
    glm = smf.glm("use ~ age", data, family=sm.families.Binomial()).fit()
    assert mlm.lr_test(glm, agq).df == 2


def test_vpc_method_given_by_position_gets_a_hint():
    data = mlm.load_dataset("contraception")
    m = quiet_fit("use ~ urban", data, groups="district")
    with pytest.raises(TypeError, match=r"vpc\(result, method='simulation'\)"):
        mlm.vpc(m, "simulation")


def test_predict_warns_about_groups_not_in_the_fit():
    data = mlm.load_dataset("contraception")
    m = quiet_fit("use ~ urban", data, groups="district")
    new = data.head(3).assign(district=data["district"].head(3).astype(str))
    with pytest.warns(UserWarning, match=r"3 of 3 rows belong to district groups not in the fit"):
        p = m.predict(new)
    np.testing.assert_allclose(p, m.predict(new, include_random=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.predict(data.head(3))  # known groups: no warning


def test_groups_in_the_index_gets_a_reset_index_hint():
    data = mlm.load_dataset("contraception").set_index("district")
    with pytest.raises(ValueError, match=r"'district' is the index of `data`.*reset_index"):
        mlm.fit_logit_mixed("use ~ age", data, groups="district")


def test_nagq_is_at_most_100_like_glmer():
    # glmer: GHrule() stops with "ord < 101L is not TRUE"; here 500 nodes used to
    # overflow into a log-likelihood of -5e299 without an error
    data = mlm.load_dataset("contraception")
    with pytest.raises(ValueError, match=r"nagq=101 is too many.*at most 100"):
        mlm.fit_logit_mixed("use ~ age", data, groups="district", nagq=101)
    # 100 nodes still work, and are as accurate as glmer's 25
    assert quiet_fit("use ~ age + urban", data, groups="district", nagq=100).llf == pytest.approx(
        reference()["contra_g1_q25"]["logLik"], abs=1e-3)


def test_swapped_formula_and_data_get_the_right_order():
    data = mlm.load_dataset("contraception")
    with pytest.raises(TypeError, match=r"formula comes first.*fit_logit_mixed\('use ~ 1', data"):
        mlm.fit_logit_mixed(data, "use ~ 1", groups="district")
