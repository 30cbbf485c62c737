# Two commands: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install what they need from the locked dependency set
# (requirements/lock.txt, exact versions for Python 3.11 on Linux), so a fresh machine
# gets the versions the suite was last green on. `make lock` regenerates the lock from
# pyproject.toml's ranges; `make test-latest` runs the suite against the newest releases.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
PIP_INSTALL := $(PY) -m pip install --quiet -c $(LOCK)
UV_VERSION := 0.13.9
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-all test-latest bench lint clean venv docs lock

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==26.3"

$(VENV)/.installed: pyproject.toml $(LOCK) | $(PY)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(LOCK) | $(PY)
	$(PIP_INSTALL) -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/jaxopt-lab demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 -q

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 -q -m ""

$(VENV)/.installed-docs: pyproject.toml $(LOCK) | $(PY)
	$(PIP_INSTALL) -e ".[docs]"
	touch $@

# Builds the documentation site into site/ in strict mode (warnings, broken links and
# missing references fail); the notebooks are executed during the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict

# Exact versions (transitive included) for the test, docs and sweep extras; the
# package itself keeps version ranges in pyproject.toml for library users.
lock: | $(PY)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra docs --extra sweep \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --no-header --annotation-style line -o $(LOCK)

# The suite against the newest releases allowed by pyproject.toml (not run by CI): a
# separate environment, so .venv keeps the locked set.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet --upgrade -e ".[test]"
	.venv-latest/bin/python -m pip freeze --exclude-editable > .venv-latest/versions.txt
	.venv-latest/bin/python -m pytest -n 2 -q -p no:cacheprovider

bench: $(VENV)/.installed-test
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check jaxopt_lab tests benchmarks notebooks

clean:
	rm -rf $(VENV) .venv-latest jaxopt_lab_out .pytest_cache site
