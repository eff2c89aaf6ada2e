"""Result tables, VPC, likelihood-ratio tests and group effects against lme4.

Reference values: tests/fixtures/lme4_reference.json (lme4 1.1-31 on mlmRev's
Exam and Contraception) and tests/fixtures/lme4_ranef.json (conditional modes
and their condVar standard errors; the R script is lme4_ranef.R).
"""

from __future__ import annotations

import doctest
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

import mlmhelpers
from mlmhelpers import (
    LRTestResult,
    compare_models,
    effective_sample_size,
    fit_mixedlm,
    fixed_effects,
    group_effects,
    load_dataset,
    lr_test,
    random_effects,
    summary,
    vpc,
)
from mlmhelpers import tables as tables_module

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REL = 1e-3


@pytest.fixture(scope="module")
def exam():
    return load_dataset("tutorial")


@pytest.fixture(scope="module")
def m(exam):
    """exam_m1 ... exam_m4 and the single-level model, each fitted once."""
    f = dict(data=exam, groups="school")
    return {
        "ols": smf.ols("normexam ~ 1", data=exam).fit(),
        "m1": fit_mixedlm("normexam ~ 1", **f),
        "m2": fit_mixedlm("normexam ~ standlrt", **f),
        "m3": fit_mixedlm("normexam ~ standlrt + schgend", **f),
        "m4": fit_mixedlm("normexam ~ standlrt + schgend", re_formula="1 + standlrt", **f),
    }


@pytest.fixture(scope="module")
def ranef_ref():
    with open(FIXTURES / "lme4_ranef.json") as fh:
        return json.load(fh)


def _var(ref, term=None, grp="school"):
    for row in ref["varcorr"]:
        if row["grp"] == grp and "var2" not in row and (term is None or row.get("var1") == term):
            return row["vcov"]
    raise KeyError(term)


# --- fixed_effects / random_effects -------------------------------------------

def test_fixed_effects_random_slope_model(m, lme4_reference):
    ref = lme4_reference["exam_m4"]
    fe = fixed_effects(m["m4"])
    assert list(fe.columns) == ["Estimate", "Std. Error", "t value"]
    assert list(fe.index) == ["Intercept", "schgend[T.boysch]", "schgend[T.girlsch]", "standlrt"]
    names = {"(Intercept)": "Intercept", "standLRT": "standlrt",
             "schgendboys": "schgend[T.boysch]", "schgendgirls": "schgend[T.girlsch]"}
    for r_name, ours in names.items():
        assert fe.loc[ours, "Estimate"] == pytest.approx(ref["fixef"][r_name], rel=REL)
        # the point: lme4's SEs, not statsmodels' Hessian-based bse_fe
        assert fe.loc[ours, "Std. Error"] == pytest.approx(ref["se"][r_name], rel=REL)
        assert fe.loc[ours, "t value"] == pytest.approx(
            ref["fixef"][r_name] / ref["se"][r_name], rel=2 * REL)


def test_fixed_effects_of_an_ols_model(m):
    fe = fixed_effects(m["ols"])
    assert fe.loc["Intercept", "Estimate"] == pytest.approx(m["ols"].params["Intercept"])


def test_random_effects_layout_random_slope(m, lme4_reference):
    ref = lme4_reference["exam_m4"]
    re = random_effects(m["m4"])
    assert list(re.columns) == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    assert re["Groups"].tolist() == ["school", "school", "Residual"]
    assert re["Name"].tolist() == ["(Intercept)", "standlrt", ""]
    assert re["Variance"].tolist() == pytest.approx(
        [_var(ref, "(Intercept)"), _var(ref, "standLRT"), _var(ref, grp="Residual")], rel=REL)
    corr = [r["sdcor"] for r in ref["varcorr"] if "var2" in r][0]
    assert re.loc[1, "Corr"] == pytest.approx(corr, rel=REL)
    assert np.isnan(re.loc[0, "Corr"]) and np.isnan(re.loc[2, "Corr"])
    assert re["Std.Dev."].to_numpy() == pytest.approx(np.sqrt(re["Variance"].to_numpy()))


def test_random_effects_random_intercept(m, lme4_reference):
    ref = lme4_reference["exam_m1"]
    re = random_effects(m["m1"])
    assert re.shape == (2, 5)
    assert re.loc[0, "Variance"] == pytest.approx(_var(ref, "(Intercept)"), rel=REL)
    assert re.loc[1, "Variance"] == pytest.approx(_var(ref, grp="Residual"), rel=REL)


def test_statsmodels_fitted_result_is_read_the_lme4_way(exam, lme4_reference):
    """A MixedLM fitted with statsmodels directly is read at its own estimates."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = MixedLM.from_formula("normexam ~ standlrt", exam, groups="school").fit(reml=False)
    ref = lme4_reference["exam_m2"]
    fe = fixed_effects(res)
    assert fe.loc["standlrt", "Std. Error"] == pytest.approx(ref["se"]["standLRT"], rel=REL)
    re = random_effects(res)
    assert re.loc[0, "Name"] == "(Intercept)" and re.loc[0, "Groups"] == "school"
    assert re.loc[0, "Variance"] == pytest.approx(_var(ref, "(Intercept)"), rel=REL)


# --- summary -------------------------------------------------------------------

def test_summary_layout_like_lme4(m, lme4_reference):
    ref = lme4_reference["exam_m4"]
    text = summary(m["m4"])
    assert isinstance(text, str)
    assert repr(text) == str(text)  # shows unquoted in a notebook
    lines = text.splitlines()
    assert lines[0] == "Linear mixed model fit by maximum likelihood"
    assert lines[1] == "Formula: normexam ~ standlrt + schgend + (1 + standlrt | school)"
    assert lines[3].split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    assert lines[4].split() == [f"{ref['AIC']:.1f}", f"{ref['BIC']:.1f}",
                                f"{ref['logLik']:.1f}", f"{-2 * ref['logLik']:.1f}", "4051"]
    assert f"{ref['logLik']:.1f}" in text
    assert "Number of obs: 4059, groups:  school, 65" in text
    for block in ("Scaled residuals:", "Random effects:", "Fixed effects:"):
        assert block in text
    assert text.index("Random effects:") < text.index("Number of obs") < text.index("Fixed effects:")
    re_line = [ln for ln in lines if ln.strip().startswith("standlrt") and "0.60" in ln]
    assert re_line, "random slope row with correlation 0.60 missing"
    se = f"{ref['se']['standLRT']:.5f}"
    assert any(ln.strip().startswith("standlrt") and se in ln for ln in lines)


def test_summary_scaled_residuals_match_lme4(m, ranef_ref):
    lines = summary(m["m4"]).splitlines()
    i = lines.index("Scaled residuals: ")
    values = [float(v) for v in lines[i + 2].split()]
    assert values == pytest.approx(ranef_ref["exam_m4_resid_quantiles"], abs=2e-4)


def test_summary_fixed_effect_correlations_match_lme4(m, ranef_ref):
    ref = ranef_ref["exam_m4_fixef_corr"]
    r = dict(zip(ref["terms"], range(4)))
    lines = summary(m["m4"]).splitlines()
    i = lines.index("Correlation of Fixed Effects:")
    table = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines[i + 2:i + 5]}
    expected = {"schgend[T.boysch]": [("(Intercept)", "schgendboys")],
                "schgend[T.girlsch]": [("(Intercept)", "schgendgirls"),
                                       ("schgendboys", "schgendgirls")],
                "standlrt": [("(Intercept)", "standLRT"), ("schgendboys", "standLRT"),
                             ("schgendgirls", "standLRT")]}
    for name, pairs in expected.items():
        want = [ref["corr"][r[a]][r[b]] for a, b in pairs]
        assert table[name] == pytest.approx(want, abs=6e-4)  # printed to 3 decimals


def test_summary_random_intercept_has_no_corr_column(m):
    text = summary(m["m1"])
    assert " Groups   Name        Variance Std.Dev.\n" in text + "\n"
    assert "Corr" not in text


def test_summary_of_reml_fit(exam):
    res = fit_mixedlm("normexam ~ 1", exam, groups="school", reml=True)
    text = summary(res)
    assert text.startswith("Linear mixed model fit by REML")
    assert "REML criterion at convergence: 11014.7" in text


# --- vpc ------------------------------------------------------------------------

def test_vpc_random_intercept(m, lme4_reference):
    ref = lme4_reference["exam_m1"]
    u, e = _var(ref, "(Intercept)"), _var(ref, grp="Residual")
    assert vpc(m["m1"]) == pytest.approx(u / (u + e), rel=REL)


def test_vpc_refuses_random_slope_model(m):
    with pytest.raises(ValueError, match=r"random slope for standlrt.*depends|changes with "
                                         r"standlrt.*no single VPC"):
        vpc(m["m4"])


def test_vpc_at_a_value_of_the_slope_variable(m, lme4_reference):
    ref = lme4_reference["exam_m4"]
    v0, v1 = _var(ref, "(Intercept)"), _var(ref, "standLRT")
    c01 = [r["vcov"] for r in ref["varcorr"] if "var2" in r][0]
    e = _var(ref, grp="Residual")
    x = 1.5
    level2 = v0 + 2 * x * c01 + x * x * v1
    assert vpc(m["m4"], at=x) == pytest.approx(level2 / (level2 + e), rel=REL)


def test_vpc_at_needs_a_number_and_one_slope(exam, m):
    with pytest.raises(TypeError, match=r"`at` is a value of standlrt.*not 'high'"):
        vpc(m["m4"], at="high")
    no_intercept = fit_mixedlm("normexam ~ standlrt", exam, groups="school",
                               re_formula="0 + standlrt")
    with pytest.raises(ValueError, match=r"`at` works for a random intercept with one "
                                         r"random slope.*random part is standlrt\."):
        vpc(no_intercept, at=1.0)


def test_vpc_refuses_single_level_model(m):
    with pytest.raises(ValueError, match=r"single-level model.*fit_mixedlm"):
        vpc(m["ols"])


def test_vpc_names_the_right_fitter_and_arguments(m):
    contra = mlmhelpers.load_dataset("contraception")
    glm = smf.glm("use ~ age", contra, family=sm.families.Binomial()).fit()
    with pytest.raises(ValueError, match=r"single-level model.*fit_logit_mixed\("):
        vpc(glm)
    with pytest.raises(ValueError, match=r"single-level model.*fit_logit_mixed\("):
        vpc(smf.logit("use ~ age", contra).fit(disp=0))
    with pytest.raises(TypeError, match=r"method.*for logistic models.*vpc\(result\)"):
        vpc(m["m1"], method="latent")


def test_lr_test_and_compare_models_refuse_different_responses(exam, m):
    # same rows, same family, but another outcome: the numbers would be meaningless
    other = smf.ols("standlrt ~ 1", exam).fit()
    with pytest.raises(ValueError, match=r"different responses \('standlrt' and 'normexam'\)"):
        lr_test(other, m["m1"])
    with pytest.raises(ValueError, match=r"different responses"):
        compare_models(other, m["m1"])
    # a model built from arrays has no response name: not refused for that
    arrays = sm.OLS(exam["normexam"].to_numpy(), np.ones(len(exam))).fit()
    assert lr_test(arrays, m["m1"]).statistic == pytest.approx(
        lr_test(smf.ols("normexam ~ 1", exam).fit(), m["m1"]).statistic, rel=1e-10)


def test_vpc_refuses_other_objects():
    with pytest.raises(TypeError, match=r"vpc\(\) needs a multilevel model"):
        vpc("model")


# --- lr_test --------------------------------------------------------------------

def test_lr_test_random_slope_as_lme4_prints(m):
    res = lr_test(m["m3"], m["m4"])
    assert isinstance(res, LRTestResult)
    # the issue: "Chisq 43.643 on 2 df, p 3.335e-10"
    assert f"{res.statistic:.3f}" == "43.643"
    assert res.df == 2
    assert f"{res.pvalue:.3e}" == "3.335e-10"
    assert "Chisq = 43.643 on 2 df, p = 3.335e-10" in repr(res)
    expected = 0.5 * stats.chi2.sf(res.statistic, 1) + 0.5 * stats.chi2.sf(res.statistic, 2)
    assert res.pvalue_boundary == pytest.approx(expected, rel=1e-12)
    assert "mixture of chi2(1) and chi2(2)" in str(res)


def test_lr_test_single_level_against_random_intercept(m, lme4_reference):
    assert m["ols"].llf == pytest.approx(lme4_reference["exam_single_logLik"], abs=1e-3)
    res = lr_test(m["ols"], m["m1"])
    expected = 2 * (lme4_reference["exam_m1"]["logLik"] - lme4_reference["exam_single_logLik"])
    assert res.statistic == pytest.approx(expected, abs=2e-3)
    assert res.df == 1
    assert res.pvalue_boundary == pytest.approx(res.pvalue / 2, rel=1e-12)


def test_lr_test_fixed_effects_only(m, lme4_reference):
    res = lr_test(m["m2"], m["m3"])
    expected = 2 * (lme4_reference["exam_m3"]["logLik"] - lme4_reference["exam_m2"]["logLik"])
    assert res.statistic == pytest.approx(expected, abs=2e-3)
    assert res.df == 2
    assert res.pvalue_boundary == res.pvalue  # no variance parameter is tested


def test_lr_test_logistic_glms(lme4_reference):
    contra = load_dataset("contraception")
    fam = sm.families.Binomial()
    g0 = smf.glm("use ~ 1", data=contra, family=fam).fit()
    g1 = smf.glm("use ~ age + urban", data=contra, family=fam).fit()
    assert g0.llf == pytest.approx(lme4_reference["contra_single_logLik"], abs=1e-3)
    res = lr_test(g0, g1)
    assert res.df == 2
    assert res.statistic == pytest.approx(2 * (g1.llf - g0.llf))
    logit = smf.logit("use ~ 1", data=contra).fit(disp=0)
    assert lr_test(logit, g1).statistic == pytest.approx(res.statistic, rel=1e-8)


def test_lr_test_and_compare_models_take_a_logistic_mixed_model(lme4_reference):
    contra = load_dataset("contraception")
    g0 = smf.glm("use ~ 1", data=contra, family=sm.families.Binomial()).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-0/all-1 districts
        mixed = mlmhelpers.fit_logit_mixed("use ~ 1", contra, groups="district")
    res = lr_test(g0, mixed)
    expected = 2 * (lme4_reference["contra_g0"]["logLik"] - lme4_reference["contra_single_logLik"])
    assert res.statistic == pytest.approx(expected, abs=2e-3)
    assert res.df == 1 and res.pvalue_boundary == pytest.approx(res.pvalue / 2)
    table = compare_models(g0, mixed, names=["glm", "glmer"])
    assert table.loc["glmer", "AIC"] == pytest.approx(lme4_reference["contra_g0"]["AIC"], abs=0.01)
    with pytest.raises(ValueError, match=r"different response families"):
        lr_test(smf.ols("use ~ 1", data=contra).fit(), mixed)


def test_lr_test_refuses_reml(exam, m):
    reml = fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school", reml=True)
    with pytest.raises(ValueError, match=r"fitted by REML.*refit it with "
                                         r"fit_mixedlm\(\.\.\., reml=False\)"):
        lr_test(reml, m["m4"])


def test_lr_test_refuses_different_rows(exam, m):
    fewer = exam.drop(index=[0, 1, 2])
    with pytest.raises(ValueError, match=r"different rows of the data \(4056 vs 4059 "
                                         r"observations\).*refit both"):
        lr_test(fit_mixedlm("normexam ~ standlrt", fewer, groups="school"), m["m3"])
    shifted = exam.set_axis(exam.index + 1000)
    with pytest.raises(ValueError, match=r"not the same rows"):
        lr_test(fit_mixedlm("normexam ~ standlrt", shifted, groups="school"), m["m3"])


def test_lr_test_refuses_wrong_order_and_equal_size(m):
    with pytest.raises(ValueError, match=r"restricted \(simpler\) model must come first.*Swap"):
        lr_test(m["m4"], m["m3"])
    with pytest.raises(ValueError, match=r"both models have 3 parameters.*neither is nested.*"
                                         r"compare_models\(\)"):
        lr_test(m["m1"], m["m1"])


def test_lr_test_refuses_unknown_objects(m):
    with pytest.raises(TypeError, match=r"lr_test\(\) compares models fitted with"):
        lr_test([1, 2], m["m1"])


# --- compare_models ---------------------------------------------------------------

def test_compare_models_like_anova(m, lme4_reference):
    table = compare_models(m["m3"], m["ols"], m["m1"], m["m4"],
                           names=["m3", "single", "m1", "m4"])
    assert list(table.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df",
                                   "Pr(>Chisq)"]
    assert list(table.index) == ["single", "m1", "m3", "m4"]  # ordered by npar, as R
    assert table["npar"].tolist() == [2, 3, 6, 8]
    for key in ("m1", "m3", "m4"):
        ref = lme4_reference[f"exam_{key}"]
        assert table.loc[key, "AIC"] == pytest.approx(ref["AIC"], abs=0.05)
        assert table.loc[key, "BIC"] == pytest.approx(ref["BIC"], abs=0.05)
        assert table.loc[key, "logLik"] == pytest.approx(ref["logLik"], abs=1e-3)
        assert table.loc[key, "deviance"] == pytest.approx(-2 * ref["logLik"], abs=2e-3)
    assert table.loc["single", ["Chisq", "Df", "Pr(>Chisq)"]].isna().all()
    assert f"{table.loc['m4', 'Chisq']:.3f}" == "43.643"
    assert table.loc["m4", "Df"] == 2
    assert f"{table.loc['m4', 'Pr(>Chisq)']:.3e}" == "3.335e-10"


def test_compare_models_default_names_and_errors(m, exam):
    table = compare_models(m["m1"], m["m2"])
    assert list(table.index) == ["model 1", "model 2"]
    with pytest.raises(ValueError, match=r"2 models but 1 names"):
        compare_models(m["m1"], m["m2"], names=["a"])
    with pytest.raises(ValueError, match=r"fitted by REML"):
        compare_models(m["m1"], fit_mixedlm("normexam ~ 1", exam, groups="school", reml=True))
    with pytest.raises(ValueError, match=r"at least one"):
        compare_models()


# --- group_effects ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["exam_m1", "exam_m4"])
def test_group_effects_match_lme4_condvar(key, m, ranef_ref):
    ge = group_effects(m[key.split("_")[1]])
    assert list(ge.columns) == ["group", "term", "effect", "se", "lower", "upper", "rank"]
    terms = {"(Intercept)": "(Intercept)", "standLRT": "standlrt"}
    for row in ranef_ref[key]:
        ours = ge[(ge["group"] == int(row["group"])) & (ge["term"] == terms[row["term"]])]
        assert len(ours) == 1
        assert ours["effect"].item() == pytest.approx(row["effect"], rel=REL, abs=1e-5)
        assert ours["se"].item() == pytest.approx(row["se"], rel=REL)


def test_group_effects_intervals_and_ranks(m):
    ge = group_effects(m["m4"])
    assert len(ge) == 2 * 65
    z = stats.norm.ppf(0.975)
    assert (ge["lower"] - (ge["effect"] - z * ge["se"])).abs().max() < 1e-12
    assert (ge["upper"] - (ge["effect"] + z * ge["se"])).abs().max() < 1e-12
    for _, sub in ge.groupby("term"):
        assert sorted(sub["rank"]) == list(range(1, 66))
        assert sub.loc[sub["effect"].idxmin(), "rank"] == 1
        assert sub.loc[sub["effect"].idxmax(), "rank"] == 65


def test_group_effects_refuses_single_level(m):
    with pytest.raises(TypeError, match=r"group_effects\(\) needs a multilevel model"):
        group_effects(m["ols"])


# --- effective_sample_size -------------------------------------------------------------

def test_effective_sample_size_value():
    assert effective_sample_size(1000, 10, 0.1) == pytest.approx(1000 / 1.9)
    assert effective_sample_size(1000, 10, 0.0) == 1000
    assert effective_sample_size(1000, 10, 1.0) == pytest.approx(100)


def test_effective_sample_size_weights_unequal_clusters_by_size():
    """Kish: with unequal clusters the size-weighted mean sum(n_j^2)/n replaces the mean."""
    assert effective_sample_size(30, [10, 10, 10], 0.2) == pytest.approx(effective_sample_size(30, 10, 0.2))
    # sizes 5, 10, 15: m = (25 + 100 + 225) / 30 = 11.667, not the plain mean 10
    assert effective_sample_size(30, [5, 10, 15], 0.2) == pytest.approx(30 / (1 + (350 / 30 - 1) * 0.2))
    exam = load_dataset("tutorial")
    sizes = exam.groupby("school").size()
    # the tutorial data's design effect at ICC 0.166 is about 13.5 (not 11.2 from the mean size)
    ess = effective_sample_size(len(exam), sizes, 0.166)
    assert len(exam) / ess == pytest.approx(13.52, abs=0.01)
    with pytest.raises(ValueError, match="add up to"):
        effective_sample_size(100, sizes, 0.166)
    with pytest.raises(TypeError, match="must be a number or the sizes"):
        effective_sample_size(100, ["a", "b"], 0.1)


@pytest.mark.parametrize(
    "args, exc, pattern",
    [
        ((0, 10, 0.1), ValueError, r"`n` .* must be positive"),
        ((100, 0.5, 0.1), ValueError, r"`cluster_size` .* at least 1"),
        ((100, 200, 0.1), ValueError, r"cannot exceed `n`"),
        ((100, 10, 1.5), ValueError, r"`icc` .* between 0 and 1"),
        ((100, 10, -0.1), ValueError, r"`icc` .* between 0 and 1"),
        (("100", 10, 0.1), TypeError, r"`n` must be a number"),
        ((100, 10, float("nan")), ValueError, r"`icc` must be finite"),
    ],
)
def test_effective_sample_size_validation(args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        effective_sample_size(*args)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(tables_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_public_api_is_exported():
    for name in ("fixed_effects", "random_effects", "summary", "vpc", "lr_test",
                 "compare_models", "group_effects", "effective_sample_size"):
        assert callable(getattr(mlmhelpers, name))
