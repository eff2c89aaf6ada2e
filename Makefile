# The tutor's (maintainer's) source of the course.  Two commands do all the
# set-up on a fresh machine (Python 3.11 with pip):
#   make lab   - create .venv, install everything, start JupyterLab here (tutor mode)
#   make test  - install the Debian packages the tests need if missing, create
#                the same .venv and run the whole test suite
# and
#   make release      - write the student edition to build/student
#                       (MODE=assessed: practicals with form checks only)
#   make lab-student  - build it and start JupyterLab on it as students see it
#   make slides       - render the lectures as slides that open offline (build/slides)
#   make worked       - the practicals' worked solutions, to publish after the deadline (build/worked)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8888
RELEASE := build/student
# Two workers: the suite is dominated by notebook execution.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: lab lab-student release test system-packages venv slides slides-js grade bench clean worked

venv: $(STAMP)

# Runtime pins + test and build tools (requirements-dev.txt), the helper
# library and the tutor tools, both editable.
$(STAMP): requirements.txt requirements-dev.txt tools/requirements-grading.txt pyproject.toml tools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e tools
	# Formgrader's guard: student HTML sanitised, a Content-Security-Policy on its pages
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	echo '{"ServerApp": {"jpserver_extensions": {"coursetools.grading.web": true}}}' \
		> $(VENV)/etc/jupyter/jupyter_server_config.d/coursetools.json
	touch $(STAMP)

# Wheels of every runtime requirement and of hatchling (the build backend
# postBuild's `pip install .` needs), so tests/test_binder.py can install a
# fresh environment the way Binder does without any network at test time.
WHEELHOUSE := $(VENV)/wheelhouse/.complete
$(WHEELHOUSE): requirements.txt requirements-dev.txt $(STAMP)
	$(PY) -m pip download --quiet -r requirements.txt \
		"$$(grep -E '^hatchling==' requirements-dev.txt)" -d $(VENV)/wheelhouse
	touch $(WHEELHOUSE)

# The JavaScript the slides load (reveal.js, MathJax 2, require.js, jQuery),
# pinned in tools/slides/package-lock.json and installed with npm, so that
# build/slides opens without network (coursetools.slides copies it there).
SLIDES_JS := tools/slides/node_modules/.package-lock.json
$(SLIDES_JS): tools/slides/package.json tools/slides/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "the slides need Node.js and npm to install reveal.js and MathJax: apt-get install nodejs npm" >&2; exit 1; }
	cd tools/slides && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(SLIDES_JS)

lab: $(STAMP)
	$(PY) -m coursetools.lab --port $(PORT)

# MODE=practice|assessed generates the practicals in that mode (default: the
# committed ones, practice mode); see README, "Feedback in the practicals".
release: $(STAMP)
	$(PY) -m coursetools.release --out $(RELEASE) $(if $(MODE),--mode $(MODE))

lab-student: release
	$(PY) -m coursetools.lab --student --root $(RELEASE) --port $(PORT)

# Debian packages the tests need (tools/system-packages.txt): installed when
# missing if we may, else a message saying what to install.
system-packages:
	tools/install-system-packages.sh

# One BLAS thread per process: two pytest workers (and their notebook kernels)
# share two cores, and competing BLAS threads slow the fits several-fold.
test: export OPENBLAS_NUM_THREADS = 1
test: export OMP_NUM_THREADS = 1
test: system-packages $(STAMP) $(WHEELHOUSE) $(SLIDES_JS)
	$(PY) -m pytest $(PYTEST_ARGS) tests course solutions \
		--nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg $(ARGS)

slides-js: $(SLIDES_JS)

worked: $(STAMP)
	$(PY) -m coursetools.worked --out build/worked

slides: $(STAMP) $(SLIDES_JS)
	$(PY) -m coursetools.slides course build/slides

grade: $(STAMP)
	$(PY) -m coursetools.grading $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Keeps build/student when it is a git worktree of the student branch.
clean:
	rm -rf $(VENV) .pytest_cache build/slides build/worked tools/slides/node_modules
	if [ ! -e $(RELEASE)/.git ]; then rm -rf $(RELEASE); fi

# A JupyterHub for a whole class on this machine (run as root): installs the
# hub into /opt/mlm-hub, creates the roster's accounts, prints the login page's
# address.  See README, "Running a class".
.PHONY: hub
HUB_PORT ?= 8000
hub:
	$(PYTHON) hub/classhub.py start --port $(HUB_PORT) $(ARGS)
