"""The fitting pipeline, stage by stage (issue #18): lme4's modular design.

formula -> model frame -> deviance function -> optimiser -> convergence check
-> results, each a named function of :mod:`mlmhelpers.modular`.  Reference
values: tests/fixtures/sweep/sweep_reference.json (lme4 1.1-31, the best of
bobyqa and Nelder_Mead) and tests/fixtures/lme4_reference.json.
"""

from __future__ import annotations

import ast
import doctest
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlmhelpers as mlm
from mlmhelpers import _checks, _frame, modular
from mlmhelpers._lmm import DenseDeviance
from mlmhelpers._sparse import SparseDeviance

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "helpers" / "mlmhelpers"
SWEEP = json.loads((HERE / "fixtures" / "sweep" / "sweep_reference.json").read_text())
BEST = {m["key"]: m for m in SWEEP["models"]}


def _sweep_data(name):
    return pd.read_csv(HERE / "fixtures" / "sweep" / "data" / name)


def test_stages_are_named_and_exported():
    for name in ("model_spec", "model_frame", "deviance_model", "optimize_deviance",
                 "check_convergence", "make_results"):
        assert name in modular.__all__ and callable(getattr(modular, name))
    failures, tried = doctest.testmod(modular)
    assert tried > 0 and failures == 0


def test_the_stages_in_a_row_are_fit_mixedlm(lme4_reference):
    exam = mlm.load_dataset("tutorial")
    spec = modular.model_spec("normexam ~ standlrt + schgend", groups="school",
                              re_formula="1 + standlrt")
    assert spec == modular.model_spec("normexam ~ standlrt + schgend + (1 + standlrt | school)")
    frame = modular.model_frame(spec, exam)
    devfun = modular.deviance_model(frame)
    assert isinstance(devfun, DenseDeviance)
    record = modular.optimize_deviance(devfun)
    verdict = modular.check_convergence(record, devfun, frame)
    m = modular.make_results(frame, devfun, record, verdict)
    assert m.llf == pytest.approx(lme4_reference["exam_m4"]["logLik"], abs=1e-3)
    assert m.llf == mlm.fit_mixedlm("normexam ~ standlrt + schgend", exam, groups="school",
                                    re_formula="1 + standlrt").llf


# --- stage 2: lme4's order and names of the random terms ---------------------------------

class _Term:
    def __init__(self, factor, m):
        self.factor, self.m, self.name = factor, m, ""


@pytest.mark.parametrize("levels, order, names", [
    ([("a", 9), ("b", 5), ("c", 2)], [0, 1, 2], ["a", "b", "c"]),   # decreasing: as written
    ([("a", 5), ("b", 5), ("c", 2)], [0, 1, 2], ["a", "b", "c"]),   # never increasing
    ([("a", 5), ("a", 5), ("s", 90)], [2, 1, 0], ["s", "a", "a.1"]),  # rev(order(nl))
    ([("a", 3), ("b", 9), ("c", 3)], [1, 2, 0], ["b", "c", "a"]),     # ties reversed
])
def test_terms_are_ordered_and_named_as_lme4_does(levels, order, names):
    terms = [_Term(f, m) for f, m in levels]
    ordered = _frame.lme4_order(list(terms))
    assert [terms.index(t) for t in ordered] == order
    assert [t.name for t in ordered] == names


def test_uncorrelated_terms_of_a_smaller_factor_are_named_as_lme4_names_them():
    ref = BEST["chem_uncorr_lea"]  # (gcsecnt || lea) + (1 | school)
    chem = mlm.load_dataset("chem97")
    m = mlm.fit_mixedlm(ref["formula"], chem)
    table = mlm.random_effects(m)
    ours = list(zip(table["Groups"], table["Name"]))[:-1]
    lme4 = [(r["grp"], r["var1"]) for r in ref["best"]["varcorr"]
            if "var2" not in r and r["grp"] != "Residual"]
    assert ours == lme4


# --- stage 3: the two engines compute one deviance ---------------------------------------

@pytest.mark.parametrize("reml", [False, True])
def test_sparse_engine_on_one_term_is_the_dense_engine(reml):
    exam = mlm.load_dataset("tutorial")
    frame = modular.model_frame(modular.model_spec("normexam ~ standlrt + (standlrt | school)"),
                                exam)
    dense = modular.deviance_model(frame, reml=reml)
    sparse = SparseDeviance(frame.y, frame.X, frame.terms, reml=reml)
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = rng.uniform(-1, 1, 3)
        fd, gd = dense.deviance_and_gradient(theta)
        fs, gs = sparse.deviance_and_gradient(theta)
        assert fs == pytest.approx(fd, abs=1e-8)
        np.testing.assert_allclose(gs, gd, rtol=1e-7, atol=1e-7)
    est_d, est_s = dense.estimates([0.4, 0.08, 0.14]), sparse.estimates([0.4, 0.08, 0.14])
    np.testing.assert_allclose(est_s.condvar()[0], est_d.condvar()[0], rtol=1e-8)


@pytest.mark.parametrize("key", ["sim_three_terms", "chem_uncorr_lea", "scots_two_slopes"])
@pytest.mark.parametrize("reml", [False, True])
def test_block_elimination_agrees_with_a_sparse_lu_and_its_gradient_is_exact(key, reml,
                                                                            monkeypatch):
    ref = BEST[key]
    data = (mlm.load_dataset(ref["data"].split(":")[1]) if ref["data"].startswith("course:")
            else _sweep_data(ref["data"]))
    frame = modular.model_frame(modular.model_spec(ref["formula"]), data)
    model = modular.deviance_model(frame, reml=reml)
    assert model.schur
    import mlmhelpers._sparse as engine

    monkeypatch.setattr(engine, "SCHUR_MAX", -1)
    lu = SparseDeviance(frame.y, frame.X, frame.terms, reml=reml)
    assert not lu.schur
    theta = model.start() * 0.7 + np.random.default_rng(1).uniform(-0.2, 0.2, model.ntheta)
    f, g = model.deviance_and_gradient(theta)
    assert f == pytest.approx(lu.deviance(theta), abs=1e-7)
    h = 1e-6
    numeric = [(model.deviance(theta + e) - model.deviance(theta - e)) / (2 * h)
               for e in np.eye(len(theta)) * h]
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-3)
    for ours, theirs in zip(model.conditional_variances(theta, 1.0),
                            lu.conditional_variances(theta, 1.0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-12)


# --- stage 4: the optimiser leaves a saddle on the boundary ------------------------------

def test_a_saddle_on_the_boundary_is_left_for_lme4s_optimum():
    """Where a bounded gradient optimiser stopped on Hsb82 (Var(cses) 0, Corr 1), the
    derivative in the slope's entry is zero: the boundary check must leave it."""
    ref = BEST["hsb_cses"]
    frame = modular.model_frame(modular.model_spec(ref["formula"]),
                                _sweep_data(ref["data"]))
    devfun = modular.deviance_model(frame)
    saddle = np.array([0.48241943, 0.00329352, 0.0])
    _, grad = devfun.deviance_and_gradient(saddle)
    assert grad[2] == 0.0  # even in the entry: a stationary point on the boundary
    record = modular.optimize_deviance(devfun, start=saddle)
    assert -record.deviance / 2 == pytest.approx(ref["best"]["logLik"], abs=1e-3)
    assert record.attempts[0].deviance > record.deviance + 9  # stuck there at first
    assert record.boundary_checked and not record.boundary
    assert any(a.deviance == pytest.approx(record.deviance, abs=1e-6)
               for a in record.restarts)
    verdict = modular.check_convergence(record, devfun, frame)
    assert verdict.converged and not verdict.singular


def test_from_lme4s_start_no_restart_is_needed_away_from_the_boundary():
    m = mlm.fit_mixedlm(BEST["hsb_cses"]["formula"], _sweep_data("hsb82.csv.gz"))
    assert m.llf == pytest.approx(BEST["hsb_cses"]["best"]["logLik"], abs=1e-3)
    assert not m.singular and not m.warnings
    assert not m.optinfo.boundary_checked and m.optinfo.restarts == []
    assert m.optinfo.evaluations < 60 and m.optinfo.gradient < 1e-3
    assert "lme4's start" in str(m.optinfo)


# --- stage 5: the convergence check -------------------------------------------------------

def test_a_point_that_is_not_an_optimum_fails_the_convergence_check():
    exam = mlm.load_dataset("tutorial")
    frame = modular.model_frame(modular.model_spec("normexam ~ standlrt + (standlrt | school)"),
                                exam)
    devfun = modular.deviance_model(frame)
    good = modular.optimize_deviance(devfun)
    bad = type(good)(theta=good.theta * 1.3, deviance=devfun.deviance(good.theta * 1.3),
                     evaluations=1, gradient=np.nan)
    verdict = modular.check_convergence(bad, devfun, frame)
    assert not verdict.converged and verdict.scaled_gradient > _checks.GRAD_TOL
    (category, text), = verdict.messages
    assert category is mlm.ConvergenceWarning
    assert text.startswith("Model failed to converge with max|grad| = ")
    assert modular.check_convergence(good, devfun, frame).converged


def test_singular_message_is_a_fact_with_the_check_to_run():
    ref = BEST["sim_zero_slope"]
    assert ref["best"]["singular"]
    with pytest.warns(mlm.SingularFitWarning) as caught:
        m = mlm.fit_mixedlm(ref["formula"], _sweep_data(ref["data"]))
    text = str(caught[0].message)
    assert text.startswith("boundary (singular) fit: the estimated covariance matrix of the "
                           "random effects of g is singular (Var(g: (Intercept)) = ")
    assert "lr_test()" in text and "not proof that the variance is zero" in text
    assert "no evidence" not in text and "drop the random slope" not in text
    assert m.optinfo.boundary_checked and m.optinfo.boundary == [2]
    assert "boundary check" in str(m.optinfo)


# --- stage 6 and the design ---------------------------------------------------------------

def test_one_results_class_with_a_list_of_random_terms():
    chem = mlm.load_dataset("chem97")
    one = mlm.fit_mixedlm("score ~ gcsecnt", chem, groups="school")
    two = mlm.fit_mixedlm("score ~ gcsecnt + (1 | lea/school)", chem)
    assert type(one) is type(two) is mlm.LinearMixedResults
    assert [t.name for t in one.random_terms] == ["school"]
    assert two.random_terms.names == ["school:lea", "lea"]
    # the single-term conveniences are the first term's
    assert one.cov_re is one.random_terms[0].cov
    assert one.ranef.equals(one.random_terms["school"].ranef)
    assert one.ngroups == one.ngrps["school"] == len(one.group_sizes) == 2410
    assert one.cov_re_unscaled.iloc[0, 0] == pytest.approx(one.cov_re.iloc[0, 0] / one.scale)
    for name in ("cov_re", "ranef", "ngroups", "groups", "group_sizes"):
        with pytest.raises(AttributeError, match=r"random_terms\['lea'\]"):
            getattr(two, name)
    assert two.ngrps.to_dict() == {"school:lea": 2410, "lea": 131}


def test_reml_cannot_be_given_by_position():
    """fit_mixedlm(f, d, "school", None, True) used to fit REML silently."""
    exam = mlm.load_dataset("tutorial")
    with pytest.raises(TypeError, match=r"groups='school', re_formula=None, reml=True"):
        mlm.fit_mixedlm("normexam ~ 1", exam, "school", None, True)
    with pytest.raises(TypeError, match=r"groups='district', nagq=25"):
        mlm.fit_logit_mixed("use ~ 1", mlm.load_dataset("contraception"), "district", 25)


def _imports(path):
    """The package modules a module imports (at any depth of its code)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_cycle_in_the_package():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for nxt in graph.get(node, ()):
            visit(nxt, path + [node])
        state[node] = "done"

    for module in graph:
        visit(module, [])


def test_tables_and_plots_do_not_dispatch_on_result_types():
    for name in ("tables.py", "plots.py", "_format.py", "results.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "hasattr":
                target = ast.unparse(node.args[0])
                assert target == "ax", f"{name}: hasattr({target}, ...)"
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                text = ast.unparse(node)
                assert not any(w in text for w in (
                    "cov_re", "ngroups", "ranef", "LinearMixedResults", "LogitMixedResults",
                    "MultiLinear")), f"{name}: {text}"


def test_the_statsmodels_bridge_writes_no_private_state():
    source = (PACKAGE / "_statsmodels.py").read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute):
                    raise AssertionError(f"attribute assignment: {ast.unparse(target)}")
    exam = mlm.load_dataset("tutorial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mlm.fit_mixedlm("normexam ~ standlrt", exam.assign(cohort=exam["student"] % 6),
                            groups="cohort")
    assert m.singular
    sm = m.statsmodels  # a singular fit: statsmodels still evaluates it
    assert sm.llf == pytest.approx(m.llf, abs=1e-6)
    np.testing.assert_allclose(np.asarray(sm.bse_fe), m.bse, rtol=1e-8)
    assert mlm.from_statsmodels(sm).llf == pytest.approx(m.llf, abs=1e-6)
