"""Run every benchmark script in this folder and print its timings.

Each ``benchmarks/bench_*.py`` defines ``main()``, which prints its own
table.  Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py            # all benchmarks
    .venv/bin/python benchmarks/run.py linear     # only bench_linear.py

Benchmarks are scripts, not timed tests: the figures depend on the machine.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(selected=None):
    scripts = sorted(HERE.glob("bench_*.py"))
    if selected:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in selected
                   or s.stem in selected]
    return scripts


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    scripts = discover(argv)
    if not scripts:
        print(f"No benchmark matches {argv}; available: "
              f"{', '.join(s.stem for s in discover())}")
        return 1
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()}")
    failed = 0
    for path in scripts:
        print(f"\n=== {path.name} ===", flush=True)
        start = time.perf_counter()
        try:
            module = load(path)
            if not hasattr(module, "main"):
                raise AttributeError(f"{path.name} defines no main()")
            saved_argv = sys.argv
            sys.argv = [str(path)]  # each benchmark sees no command-line options
            try:
                rc = module.main()
            finally:
                sys.argv = saved_argv
            if rc not in (None, 0):
                failed += 1
                print(f"{path.name}: main() returned {rc!r}")
        except Exception:  # noqa: BLE001 - report and go on with the others
            failed += 1
            traceback.print_exc()
        print(f"--- {path.name}: {time.perf_counter() - start:.1f} s in total", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
