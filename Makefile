# Every target creates what it needs: a virtual environment in .venv with the
# project installed in editable mode, its extras and the development tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install test lint typecheck pytest demo bench clean

help:
	@echo "make demo   - run demo consumers against a local SQS server it starts itself"
	@echo "make test   - lint, type-check and run the test suite (starts its own SQS server)"
	@echo "make bench  - run the benchmarks"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check aiosqsworker tests benchmarks
	$(PY) -m ruff format --check aiosqsworker tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(STAMP)
	$(PY) -m aiosqsworker demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
