"""fit_mixedlm beside R's lmer (when installed) and statsmodels' MixedLM, in one run.

The models of issue #14, all by maximum likelihood with ``groups="school"``
(or ``"g"``):

* chem97 ``score ~ 1`` (31,022 pupils, 2,410 schools), random intercept;
* chem97 ``score ~ gcse_z``, random intercept;
* chem97 ``score ~ gcse_z``, random intercept and slope of ``gcse_z``;
* chem97 ``score ~ gcse_z + (1 | lea) + (1 | school)``: two random factors
  (schools nested in LEAs), lme4's formula syntax, the sparse engine;
* chem97 ``score ~ gcse_z + (gcse_z | school) + (gcse_z | lea)``: random slopes
  at two levels; the LEA slope variance is zero (a singular fit), so the
  optimiser's boundary check runs (its restarts are in the time);
* mlmRev's Hsb82 ``mAch ~ cses + (1 + cses | school)`` (issue #18's example:
  a bounded optimiser stops on the boundary here, 4.7 log-likelihood units
  short), from ``tests/fixtures/sweep/data/hsb82.csv.gz``;
* simulated, 400,000 rows in 20,000 groups, random intercept and slope;
* simulated, 1,000,000 rows in 100,000 groups, random intercept and slope.

The simulated data are drawn with a fixed seed; every data set is written
to CSV in a temporary folder, and, where ``Rscript`` with lme4 is installed
(Debian's ``r-cran-lme4``), one R process fits the same models with
``lmer(..., REML = FALSE)`` and reports its times (data reading excluded)
and log-likelihoods.  Each time is the best of ``repeat`` runs in a warm
process, for R and Python alike.  The ratio column is ours / lmer's: at most
1 means at least as fast.  statsmodels' ``MixedLM.fit(reml=False)`` is
timed once on the chem97 models (on the simulated ones it takes minutes).

Usage: ``.venv/bin/python benchmarks/bench_linear.py [--quick]`` (``--quick``
leaves out the 1,000,000-row model), or ``make bench``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rscript import run_rscript  # noqa: E402

from mlmhelpers import fit_mixedlm, load_dataset

# key -> (data set, formula, re_formula, groups, statsmodels too?)
MODELS = {
    "chem_null": ("chem97", "score ~ 1", None, "school", True),
    "chem_ri": ("chem97", "score ~ gcse_z", None, "school", True),
    "chem_rs": ("chem97", "score ~ gcse_z", "1 + gcse_z", "school", True),
    "chem_lea": ("chem97", "score ~ gcse_z + (1 | lea) + (1 | school)", None, None, False),
    "chem_rs2": ("chem97", "score ~ gcse_z + (gcse_z | school) + (gcse_z | lea)", None, None,
                 False),
    "hsb_cses": ("hsb82", "mAch ~ cses", "1 + cses", "school", True),
    "sim_400k": ("sim_400k", "y ~ x", "1 + x", "g", False),
    "sim_1m": ("sim_1m", "y ~ x", "1 + x", "g", False),
}
SIZES = {"sim_400k": (400_000, 20_000), "sim_1m": (1_000_000, 100_000)}
HSB82 = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "sweep" / "data" / "hsb82.csv.gz"

# how R fits one model (benchmarks/_rscript.py times it)
R_FIT = """lmer(form, data = d, REML = FALSE)"""


def simulate(n, m, seed=20260101):
    """Two-level data with a random intercept and slope (seeded)."""
    rng = np.random.default_rng(seed)
    g = np.sort(rng.integers(0, m, size=n))
    x = rng.normal(size=n)
    cov = np.array([[0.5, 0.1], [0.1, 0.2]])
    u = rng.multivariate_normal([0.0, 0.0], cov, size=m)
    y = 1.0 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def lme4_formula(formula, re_formula, groups):
    if groups is None:  # already lme4's syntax
        return formula
    return f"{formula} + ({re_formula or '1'} | {groups})"


def _best_time(func, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_lmer(jobs, folder, repeat):
    """{key: (seconds, logLik)} from one Rscript process, or None without R + lme4."""
    lines = [f"{k}\t{csv}\t{form}" for k, csv, form in jobs]
    return run_rscript(R_FIT, lines, repeat, folder, "lmer")


def peak_memory(func):
    """Peak memory (MiB) Python and numpy allocate while ``func`` runs (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def statsmodels_time(d, formula, re_formula, groups):
    from statsmodels.regression.mixed_linear_model import MixedLM

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MixedLM.from_formula(
                formula, d, groups=groups,
                re_formula=None if re_formula is None else "~" + re_formula).fit(reml=False)
    try:
        secs, res = _best_time(fit, 1)
        return secs, float(res.llf)
    except Exception:  # noqa: BLE001 - statsmodels failing is a finding too
        return float("nan"), float("nan")


def main(argv=None, repeat=3):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    chem = load_dataset("chem97")
    # as R's as.vector(scale(gcsescore)): sample standard deviation
    chem["gcse_z"] = (chem["gcsescore"] - chem["gcsescore"].mean()) / chem["gcsescore"].std()
    data = {"chem97": chem[["score", "gcse_z", "school", "lea"]],
            "hsb82": pd.read_csv(HSB82)}
    models = {k: v for k, v in MODELS.items() if not (quick and k == "sim_1m")}
    for key, (n, m) in SIZES.items():
        if key in models:
            data[key] = simulate(n, m)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs = []
        for key, (name, formula, re_formula, groups, _) in models.items():
            csv = folder / f"{name}.csv"
            if not csv.exists():
                data[name].to_csv(csv, index=False)
            jobs.append((key, str(csv), lme4_formula(formula, re_formula, groups)))
        print("lmer: fitting in R ...", flush=True)
        lmer, note = run_lmer(jobs, folder, repeat)

    head = (f"{'model':<10} {'rows':>9} {'groups':>7} {'ours s':>8} {'lmer s':>8} "
            f"{'ratio':>6} {'llf - lmer':>11} {'evals':>5} {'check':>5} {'statsmodels s':>13} "
            f"{'sm llf - ours':>13} {'peak MiB':>8}")
    print(head)
    print("-" * len(head))
    ratios = []
    for key, (name, formula, re_formula, groups, with_sm) in models.items():
        d = data[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            secs, res = _best_time(
                lambda: fit_mixedlm(formula, d, groups=groups, re_formula=re_formula), repeat)
        r_secs, r_llf = (lmer or {}).get(key, (float("nan"), float("nan")))
        ratio = secs / r_secs if lmer else float("nan")
        if lmer:
            ratios.append(ratio)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peak = peak_memory(
                lambda: fit_mixedlm(formula, d, groups=groups, re_formula=re_formula))
        sm_secs, sm_llf = (statsmodels_time(d, formula, re_formula, groups) if with_sm
                           else (float("nan"), float("nan")))
        ngroups = int(res.ngrps.sum())
        print(f"{key:<10} {res.nobs:>9} {ngroups:>7} {secs:>8.3f} {r_secs:>8.3f} "
              f"{ratio:>6.2f} {res.llf - r_llf:>11.2e} {res.optinfo.evaluations:>5} "
              f"{'yes' if res.optinfo.boundary_checked else '':>5} "
              f"{sm_secs:>13.3f} {sm_llf - res.llf:>13.3f} {peak:>8.0f}", flush=True)
    print(f"\nBest of {repeat} runs each (ours and lmer, data reading excluded); "
          "statsmodels: MixedLM.fit(reml=False), one run, the chem97 random-part models and Hsb82. "
          "peak MiB: memory allocated during one fit_mixedlm call (data excluded). "
          "check: the optimiser's boundary check ran (a variance near zero).")
    if lmer is None:
        print(f"lmer not timed: {note}.")
    else:
        print(f"lmer: {note}, lmer(..., REML = FALSE) with its default optimiser. "
              f"Largest ratio ours / lmer: {max(ratios):.2f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
