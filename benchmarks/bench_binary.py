"""fit_glmm / fit_logit_mixed beside R's glmer (when installed), in one run.

The models (maximum likelihood, glmer's default Laplace approximation unless
``nagq`` is given):

* contraception ``use ~ age + urban + (1 | district)``, Laplace and ``nagq=25``;
* contraception ``use ~ age + urban + (urban | district)``: a random slope;
* guimmun ``immun ~ kid2p + mom25p + ethn + momEd + rural + pcInd81 + (1 | comm)``
  and the same with ``(1 | comm/mom)``: children in mothers in communities;
* mmmec ``deaths ~ uvb + offset(log(expected)) + (1 | nation/region)``: Poisson
  counts with an offset, three levels;
* simulated, 100,000 rows in 2,000 groups, Poisson with an offset ``log(expo)``
  and a random intercept.

Every data set is written to CSV in a temporary folder and, where ``Rscript``
with lme4 is installed (Debian's ``r-cran-lme4``), one R process fits the same
models with ``glmer`` (its default control) and reports its times (data reading
excluded) and log-likelihoods.  Each time is the best of ``repeat`` runs in a
warm process, for R and Python alike.  The ratio column is ours / glmer's: at
most 1 means at least as fast.

Usage: ``.venv/bin/python benchmarks/bench_binary.py``, or ``make bench``.
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

from mlmhelpers import fit_glmm, load_dataset

GU = "immun ~ kid2p + mom25p + ethn + momEd + rural + pcInd81"
# key -> (data set, formula, family, nagq)
MODELS = {
    "contra_ri": ("contraception", "use ~ age + urban + (1 | district)", "binomial", 1),
    "contra_q25": ("contraception", "use ~ age + urban + (1 | district)", "binomial", 25),
    "contra_rs": ("contraception", "use ~ age + urban + (urban | district)", "binomial", 1),
    "immun_2lev": ("guimmun", GU + " + (1 | comm)", "binomial", 1),
    "immun_3lev": ("guimmun", GU + " + (1 | comm/mom)", "binomial", 1),
    "mmmec_3lev": ("mmmec", "deaths ~ uvb + offset(log(expected)) + (1 | nation/region)",
                   "poisson", 1),
    "pois_100k": ("pois_100k", "y ~ x + offset(log(expo)) + (1 | g)", "poisson", 1),
}

# how R fits one model (benchmarks/_rscript.py times it)
R_FIT = """suppressMessages(suppressWarnings(
    glmer(form, data = d, family = f[4], nAGQ = as.integer(f[5]))))"""


def simulate(n=100_000, m=2_000, seed=20261207):
    """Poisson counts with an exposure and a random intercept (seeded)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x = np.round(rng.normal(size=n), 6)
    expo = np.round(rng.uniform(0.5, 2.0, n), 6)
    u = rng.normal(0, 0.5, m)
    y = rng.poisson(expo * np.exp(0.2 + 0.3 * x + u[g]))
    return pd.DataFrame({"y": y, "x": x, "expo": expo, "g": g})


def run_glmer(jobs, folder, repeat):
    """{key: (seconds, logLik)} from one Rscript process, or None without R + lme4."""
    lines = ["\t".join(map(str, job)) for job in jobs]
    return run_rscript(R_FIT, lines, repeat, folder, "glmer")


def _fit(formula, data, family, nagq):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # groups with all 0 / all 1 outcomes
        return fit_glmm(formula, data, family=family, nagq=nagq)


def main(repeat=3):
    data = {name: load_dataset(name) for name in ("contraception", "guimmun", "mmmec")}
    data["pois_100k"] = simulate()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs = []
        for key, (name, formula, family, nagq) in MODELS.items():
            csv = folder / f"{name}.csv"
            if not csv.exists():
                data[name].to_csv(csv, index=False)
            jobs.append((key, csv, formula, family, nagq))
        print("glmer: fitting in R ...", flush=True)
        glmer, note = run_glmer(jobs, folder, repeat)

    _fit(MODELS["contra_ri"][1], data["contraception"], "binomial", 1)  # warm up
    head = (f"{'model':<11} {'rows':>7} {'groups':>14} {'nagq':>4} {'ours s':>8} "
            f"{'glmer s':>8} {'ratio':>6} {'llf - glmer':>11} {'evals':>6}")
    print(head)
    print("-" * len(head))
    ratios = []
    for key, (name, formula, family, nagq) in MODELS.items():
        best, res = np.inf, None
        for _ in range(repeat):
            start = time.perf_counter()
            res = _fit(formula, data[name], family, nagq)
            best = min(best, time.perf_counter() - start)
        r_secs, r_llf = (glmer or {}).get(key, (float("nan"), float("nan")))
        ratio = best / r_secs if glmer else float("nan")
        if glmer:
            ratios.append(ratio)
        groups = "+".join(str(v) for v in res.ngrps.to_numpy())
        print(f"{key:<11} {res.nobs:>7} {groups:>14} {nagq:>4} {best:>8.3f} {r_secs:>8.3f} "
              f"{ratio:>6.2f} {res.llf - r_llf:>11.2e} {res.optinfo.evaluations:>6}",
              flush=True)
    print(f"\nBest of {repeat} runs each (ours and glmer, data reading excluded); evals: "
          "PIRLS iterations of the whole fit.")
    if glmer is None:
        print(f"glmer not timed: {note}.")
    else:
        print(f"glmer: {note}, glmer(..., family, nAGQ) with its default optimisers. "
              f"Largest ratio ours / glmer: {max(ratios):.2f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
