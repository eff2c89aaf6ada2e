"""The random-slope sweep: our fit_mixedlm against lme4's best optimum, model by model.

Reads tests/fixtures/sweep/sweep_reference.json (made by
tests/fixtures/sweep/sweep_reference.R; R is not needed here) and fits every model of the
sweep with ``mlmhelpers.fit_mixedlm``.  One line per model:

    key, ours - best (logLik), lme4 default - best, singular ours/best, our time, lme4's time

where ``best`` is the highest logLik lme4 reached (bobyqa and Nelder_Mead from several starts)
and "lme4 default" is a plain ``lmer()`` (nloptwrap).  The last lines count the models where
we stop short of the best by more than 1e-3 and the wrong singular verdicts.

Usage (from the repository root)::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/sweep.py            # all models
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/sweep.py hsb_cses   # some of them

(one BLAS thread, as ``make test``: with several, small fits are slower on a shared machine.)
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "tests" / "fixtures" / "sweep"
SHORT = 1e-3  # a fit "stops short" when its logLik is below the best by more than this


def _test_module():
    """tests/test_sweep.py, whose data loader this script shares."""
    spec = importlib.util.spec_from_file_location("test_sweep", REPO / "tests" / "test_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_data(name, _loader=[]):
    if not _loader:
        _loader.append(_test_module().load_data)
    return _loader[0](name)


def main(argv=None):
    import mlmhelpers as mlm

    argv = sys.argv[1:] if argv is None else argv
    ref = json.loads((SWEEP / "sweep_reference.json").read_text())
    models = [m for m in ref["models"] if not argv or m["key"] in argv]
    if not models:
        print(f"No sweep model matches {argv}")
        return 1
    src = ref["_source"]
    print(f"lme4 {src['lme4']} ({src['R']}); {len(models)} models; "
          f"logLik differences to lme4's best, '!' = short by more than {SHORT:g}")
    head = (f"{'key':26s} {'ours-best':>11s} {'lme4dflt-best':>13s}  {'singular':>11s}  "
            f"{'ours s':>7s} {'lme4 s':>7s}")
    print(head)
    print("-" * len(head))
    short, wrong, errors, total = [], [], [], 0.0
    for spec in models:
        best = spec["best"]
        default = spec["fits"]["default"]
        data = load_data(spec["data"])
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = mlm.fit_mixedlm(spec["formula"], data)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
            errors.append(spec["key"])
            print(f"{spec['key']:26s} ERROR {type(exc).__name__}: {exc}")
            continue
        seconds = time.perf_counter() - start
        total += seconds
        diff = m.llf - best["logLik"]
        ddiff = default["logLik"] - best["logLik"]
        mark = "!" if diff < -SHORT else " "
        verdict = f"{str(bool(m.singular)):>5s}/{str(best['singular']):5s}"
        bad = bool(m.singular) != best["singular"]
        if diff < -SHORT:
            short.append(spec["key"])
        if bad:
            wrong.append(spec["key"])
        flag = "*" if bad else " "
        print(f"{spec['key']:26s} {diff:+11.3e}{mark}{ddiff:+13.3e}  {verdict}{flag}"
              f" {seconds:7.2f} {default['time']:7.2f}", flush=True)
    print("-" * len(head))
    n_default = sum(m["best"]["default_stops_short"] for m in models)
    print(f"our fits: {total:.1f} s in all")
    print(f"stop short of lme4's best by more than {SHORT:g}: {len(short)} of {len(models)}"
          + (f" ({', '.join(short)})" if short else ""))
    print(f"wrong singular verdicts (*): {len(wrong)}"
          + (f" ({', '.join(wrong)})" if wrong else ""))
    print(f"(lme4's default lmer() stops short on {n_default})")
    if errors:
        print(f"errors: {len(errors)} ({', '.join(errors)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
