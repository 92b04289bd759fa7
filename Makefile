# Every target creates what it needs: a virtual environment in .venv with the
# project installed in editable mode, its extras and the development tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The second SQS server of the test suite: ministack pins its own botocore, so it gets a
# virtual environment of its own.
MINISTACK_VENV ?= .venv-ministack
MINISTACK_VERSION ?= 1.5.33
MINISTACK_STAMP := $(MINISTACK_VENV)/.installed-stamp
MINISTACK_ENV := AIOSQSWORKER_MINISTACK_VENV=$(abspath $(MINISTACK_VENV))
# What `make test` runs against ministack too (the full pass, about as long as moto's, is
# `make test-ministack`): the happy path, the fault scenarios where servers differ most, a
# stalled extension and a rolling restart.
MINISTACK_SUBSET ?= tests/test_happy_path.py tests/test_faults.py tests/test_robustness.py -k "happy_path or stale_receipt or lost_lease or partly_failed or queue_deleted or cut_short or stalled_extension or rolling_restart"

.PHONY: help install test lint typecheck pytest demo bench docs clean test-ministack soak \
	pytest-ministack-subset redis-server

help:
	@echo "make demo   - run demo consumers against a local SQS server it starts itself"
	@echo "make test   - lint, type-check and run the test suite (starts its own SQS server)"
	@echo "make test-ministack - run the test suite against ministack instead of moto"
	@echo "make soak   - 10,000 messages through faults and a kill -9 (ministack), with a ledger"
	@echo "make bench  - run the benchmarks"
	@echo "make docs   - build the documentation site into build/site"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(MINISTACK_STAMP):
	$(PYTHON) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MINISTACK_VENV)/bin/python -m pip install --quiet 'ministack==$(MINISTACK_VERSION)'
	touch $(MINISTACK_STAMP)

$(MINISTACK_VENV): $(MINISTACK_STAMP)

lint: $(STAMP)
	$(PY) -m ruff check aiosqsworker tests benchmarks
	$(PY) -m ruff format --check aiosqsworker tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

# Two pytest processes: most scenarios wait on a server, so two share the two cores well.
PYTEST_WORKERS ?= 2

pytest: $(STAMP) redis-server
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The idempotency tests start their own Redis server (Debian's package) on 127.0.0.1.
redis-server:
	command -v redis-server || (apt-get update && apt-get install -y redis-server)

test: lint typecheck pytest pytest-ministack-subset

pytest-ministack-subset: $(STAMP) $(MINISTACK_STAMP)
	AIOSQSWORKER_TEST_SERVER=ministack $(MINISTACK_ENV) $(PY) -m pytest $(MINISTACK_SUBSET)

test-ministack: $(STAMP) $(MINISTACK_STAMP)
	AIOSQSWORKER_TEST_SERVER=ministack $(MINISTACK_ENV) $(PY) -m pytest $(PYTEST_ARGS)

soak: $(STAMP) $(MINISTACK_STAMP)
	$(MINISTACK_ENV) $(PY) -m pytest -m soak -s tests/test_soak.py $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m aiosqsworker demo $(DEMO_ARGS)

docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MINISTACK_VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
