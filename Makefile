# Two commands: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-all bench lint clean venv docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/jaxopt-lab demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 -q

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 -q -m ""

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

# Builds the documentation site into site/ in strict mode (warnings, broken links and
# missing references fail); the notebooks are executed during the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.installed-test
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check jaxopt_lab tests benchmarks notebooks

clean:
	rm -rf $(VENV) jaxopt_lab_out .pytest_cache site
