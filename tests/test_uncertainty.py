"""Profile-likelihood intervals, VPC intervals and the parametric bootstrap against lme4.

Fixtures: tests/fixtures/confint/confint_reference.R (R 4.2, lme4 1.1-31): lme4's
``confint(m, method = "profile")``, the VPC's profile on lme4's own deviance function,
``bootMer`` percentile intervals and a simulated null distribution of the slope-variance test.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mlmhelpers as mlm

REF = json.loads((Path(__file__).parent / "fixtures" / "confint" / "confint_reference.json")
                 .read_text())
PROFILE_TOL = 1e-3   # the tolerance on profile bounds
MODELS = [k for k, v in REF.items() if isinstance(v, dict) and "profile" in v]
FAST = {"exam_empty", "exam_ri", "exam_rs", "chem_empty", "exam_ri_reml", "scot_crossed"}


def _data(name):
    return {"exam": "tutorial", "chem": "chem97", "scot": "scotssec"}[name]


def _r_name(ours):
    """Our parameter name as lme4 writes it (gender[T.F] -> genderF, Intercept -> (Intercept))."""
    if ours == "Intercept":
        return "(Intercept)"
    return re.sub(r"(\w+)\[T\.(.+?)\]", r"\1\2", ours)


@pytest.fixture(scope="module")
def fits():
    cache = {}

    def get(key):
        if key not in cache:
            spec = REF[key]
            cache[key] = mlm.fit_mixedlm(spec["formula"], mlm.load_dataset(_data(spec["data"])),
                                         reml=spec["reml"])
        return cache[key]
    return get


@pytest.mark.parametrize("key", [pytest.param(k, marks=() if k in FAST else pytest.mark.slow)
                                 for k in MODELS])
def test_profile_intervals_match_lme4(fits, key):
    spec = REF[key]
    m = fits(key)
    assert m.llf == pytest.approx(-spec["deviance"] / 2, abs=1e-4)
    ci = mlm.confint(m, parm="theta_" if spec["reml"] else None)
    if spec["reml"]:
        # lme4 profiles a REML fit on the likelihood: the intervals of the ML fit
        assert ci.loc["sigma", "estimate"] < np.sqrt(m.scale)
    assert list(ci.columns) == ["estimate", "lower", "upper"]
    ours = {_r_name(name): row for name, row in ci.iterrows()}
    assert set(ours) == set(spec["profile"]), (sorted(ours), sorted(spec["profile"]))
    for name, r in spec["profile"].items():
        row = ours[name]
        assert row["lower"] <= row["estimate"] <= row["upper"]
        assert row["lower"] == pytest.approx(r["lower"], abs=PROFILE_TOL), (name, "lower")
        assert row["upper"] == pytest.approx(r["upper"], abs=PROFILE_TOL), (name, "upper")


@pytest.mark.parametrize("key", [k for k in MODELS if "vpc" in REF[k]])
def test_vpc_profile_interval_matches_lme4_deviance(fits, key):
    out = mlm.vpc_confint(fits(key))
    assert list(out.columns) == ["vpc", "lower", "upper"]
    for group, r in REF[key]["vpc"].items():
        row = out.loc[group]
        assert row["vpc"] == pytest.approx(r["vpc"], abs=1e-5)
        assert row["lower"] == pytest.approx(r["lower"], abs=PROFILE_TOL)
        assert row["upper"] == pytest.approx(r["upper"], abs=PROFILE_TOL)


def test_vpc_interval_is_the_likelihood_ratio_inversion(fits):
    """At each end of the interval the LR test of 'VPC = that value' has p = 0.05."""
    m = fits("exam_empty")
    row = mlm.vpc_confint(m).loc["school"]
    from mlmhelpers.modular import deviance_model
    model = deviance_model(m._model_frame)
    for v in (row["lower"], row["upper"]):
        theta = np.sqrt(v / (1 - v))
        lr = model.deviance([theta]) - (-2 * m.llf)
        assert stats.chi2.sf(lr, 1) == pytest.approx(0.05, abs=1e-4)


def test_wald_intervals_are_fixed_effects_only(fits):
    m = fits("exam_ri")
    ci = mlm.confint(m, method="wald")
    assert ci.loc["sigma"].isna()[["lower", "upper"]].all()
    z = stats.norm.ppf(0.975)
    b, se = m.fe_params["standlrt"], m.bse_fe["standlrt"]
    assert ci.loc["standlrt", "lower"] == pytest.approx(b - z * se)
    # for a fixed effect in a large sample the profile and the Wald interval nearly agree
    prof = mlm.confint(m, parm="standlrt")
    assert prof.loc["standlrt", "lower"] == pytest.approx(b - z * se, abs=2e-3)


def test_bootstrap_agrees_with_bootmer(fits):
    ref = REF["exam_ri_boot"]
    m = fits("exam_ri")
    boot = mlm.bootstrap(m, nsim=300, seed=7)
    ci = boot.ci()
    assert boot.nsim == 300 and boot.replicates.shape == (300, 4)
    for k, name in enumerate(ref["names"]):
        ours = {"sd_school": "sd_(Intercept)|school", "(Intercept)": "Intercept"}.get(name, name)
        sd = ref["sd"][k]
        # Monte Carlo error of a 2.5% quantile from 300 draws is about 0.3 SD
        assert ci.loc[ours, "lower"] == pytest.approx(ref["lower"][k], abs=0.6 * sd), name
        assert ci.loc[ours, "upper"] == pytest.approx(ref["upper"][k], abs=0.6 * sd), name
        assert boot.se[ours] == pytest.approx(sd, rel=0.2), name


def test_bootstrap_confint_method(fits):
    m = fits("exam_ri")
    ci = mlm.confint(m, method="boot", nsim=40, seed=3, parm=["sigma"])
    assert list(ci.index) == ["sigma"]
    assert ci.loc["sigma", "lower"] < m.scale ** 0.5 < ci.loc["sigma", "upper"]


def test_bootstrap_with_a_statistic(fits):
    boot = mlm.bootstrap(fits("exam_empty"), statistic=mlm.vpc, nsim=30, seed=1)
    assert list(boot.replicates.columns) == ["vpc"]
    assert boot.estimate["vpc"] == pytest.approx(mlm.vpc(fits("exam_empty")))
    assert 0.08 < boot.replicates["vpc"].mean() < 0.25


def test_simulate_reproduces_the_fitted_variances(fits):
    m = fits("exam_ri")
    sims = mlm.simulate(m, nsim=3, seed=11)
    assert sims.shape == (m.nobs, 3) and sims.index.equals(m.rows)
    again = mlm.simulate(m, nsim=3, seed=11)
    pd.testing.assert_frame_equal(sims, again)
    # the total variance of the simulated responses is near sd_school^2 + sigma^2 + fixed part's
    total = float(sims.var().mean())
    expected = float(np.var(m._model_frame.X @ m.fe_params.to_numpy()) + m.scale
                     + m.random_terms[0].cov.iloc[0, 0])
    assert total == pytest.approx(expected, rel=0.1)


def test_bootstrap_lr_test_of_a_slope_variance(fits):
    """The simulated null distribution of the slope-variance test, against lme4's."""
    ref = REF["slope_test_boot"]
    exam = mlm.load_dataset("tutorial")
    m0 = mlm.fit_mixedlm("normexam ~ standlrt + (1 | school)", exam)
    m1 = mlm.fit_mixedlm("normexam ~ standlrt + (standlrt | school)", exam)
    test = mlm.bootstrap_lr_test(m0, m1, nsim=200, seed=5)
    assert test.statistic == pytest.approx(ref["lr_observed"], abs=1e-3)
    assert test.df == 2
    null = test.null_distribution
    # chi-square(2) is conservative: the simulated 90% quantile lies below its 4.61
    assert np.quantile(null, 0.9) == pytest.approx(ref["q90"], abs=1.0)
    assert null.mean() == pytest.approx(ref["mean"], abs=0.35)
    assert test.p_value == pytest.approx(1 / 201)
    frame = test.to_frame()
    assert list(frame.columns) == ["statistic", "df", "p_chisq", "p_bootstrap", "nsim"]
    import matplotlib
    matplotlib.use("Agg")
    ax = test.plot()
    assert ax.get_xlabel() and ax.get_title()


def test_clear_errors(fits):
    m = fits("exam_ri")
    with pytest.raises(ValueError, match="'profile', 'wald' or 'boot'"):
        mlm.confint(m, method="bayes")
    with pytest.raises(ValueError, match="no parameter named"):
        mlm.confint(m, parm="sd_x")
    with pytest.raises(ValueError, match="between 0 and 1"):
        mlm.confint(m, level=95)
    with pytest.raises(TypeError, match="fit_mixedlm"):
        mlm.confint("normexam ~ 1")
    with pytest.raises(ValueError, match="random-slope"):
        mlm.vpc_confint(fits("exam_rs"))
    with pytest.raises(ValueError, match="positive whole number"):
        mlm.simulate(m, nsim=0)
    with pytest.raises(ValueError, match="more parameters"):
        mlm.bootstrap_lr_test(m, fits("exam_empty"), nsim=5)
    contra = mlm.load_dataset("contraception")
    g = mlm.fit_glmm("use ~ urban + (1 | district)", contra, family="binomial")
    with pytest.raises(NotImplementedError, match="linear mixed models"):
        mlm.confint(g)
    with pytest.raises(NotImplementedError, match="method='wald'"):
        mlm.bootstrap(g, nsim=2)
    wald = mlm.confint(g, method="wald")
    assert wald.loc["urban[T.Y]", "lower"] == pytest.approx(
        g.fe_params["urban[T.Y]"] - stats.norm.ppf(0.975) * g.bse_fe["urban[T.Y]"])
    assert np.isnan(wald.loc["sd_(Intercept)|district", "lower"]) and "sigma" not in wald.index


def test_docstring_examples_run():
    import doctest
    from mlmhelpers import uncertainty
    failures, tried = doctest.testmod(uncertainty, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried >= 8 and failures == 0


def test_vpc_interval_of_a_reml_fit_is_that_of_the_likelihood():
    """As confint (and lme4's profile), vpc_confint profiles a REML fit by maximum likelihood:
    lme4's VPC interval of the ML fit of the same model."""
    exam = mlm.load_dataset("tutorial")
    reml = mlm.fit_mixedlm("normexam ~ 1 + (1 | school)", exam, reml=True)
    row = mlm.vpc_confint(reml).loc["school"]
    r = REF["exam_empty"]["vpc"]["school"]
    assert row["lower"] == pytest.approx(r["lower"], abs=PROFILE_TOL)
    assert row["upper"] == pytest.approx(r["upper"], abs=PROFILE_TOL)
