# Two commands do all the set-up on a fresh machine (Python 3.11 with pip):
#   make lab   - create .venv, install everything, start JupyterLab here
#   make test  - create the same .venv and run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8888
# Two workers: the suite is dominated by notebook execution.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: lab test venv slides grade bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e tools
	touch $(STAMP)

# Wheels of every pinned requirement (and hatchling, the build backend), so
# tests/test_binder.py can install a fresh environment the way Binder does
# without any network at test time.
WHEELHOUSE := $(VENV)/wheelhouse/.complete
$(WHEELHOUSE): requirements.txt $(STAMP)
	$(PY) -m pip download --quiet -r requirements.txt -d $(VENV)/wheelhouse
	touch $(WHEELHOUSE)

lab: $(STAMP)
	$(PY) -m coursetools.lab --port $(PORT)

# One BLAS thread per process: two pytest workers (and their notebook kernels)
# share two cores, and competing BLAS threads slow the fits several-fold.
test: export OPENBLAS_NUM_THREADS = 1
test: export OMP_NUM_THREADS = 1
test: $(STAMP) $(WHEELHOUSE)
	$(PY) -m pytest $(PYTEST_ARGS) tests course solutions \
		--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg $(ARGS)

slides: $(STAMP)
	$(PY) -m coursetools.slides course build/slides

grade: $(STAMP)
	$(PY) -m coursetools.grading $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build .pytest_cache

# A JupyterHub for a whole class on this machine (run as root): installs the
# hub into /opt/mlm-hub, creates the roster's accounts, prints the login page's
# address.  See README, "Running a class".
.PHONY: hub
HUB_PORT ?= 8000
hub:
	$(PYTHON) hub/classhub.py start --port $(HUB_PORT) $(ARGS)
