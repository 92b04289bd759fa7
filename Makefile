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
# stalled extension, a rolling restart, and the quick stop's and --burst's scenarios.
MINISTACK_SUBSET ?= tests/test_happy_path.py tests/test_faults.py tests/test_page_failures_and_retries.py tests/test_robustness.py tests/test_quick_stop.py -k "happy_path or stale_receipt or lost_lease or partly_failed or queue_deleted or cut_short or stalled_extension or rolling_restart or exits_within_3_s or sent_just_after or burst_exits"

# The other Pythons the classifiers name: `make test` runs a smoke subset on each one found
# (the whole suite runs on the one of $(VENV)). It is the engine's unit tests, the in-memory
# SQS scenarios and a FIFO app with a dead-letter queue in memory: no server to install, a few
# seconds a version. The first run makes a virtual environment per version ($(VENV)-3.12, ...).
SMOKE_VERSIONS ?= 3.12 3.13
SMOKE_SUBSET ?= tests/units tests/test_memory_sqs.py \
	tests/test_testing_helpers.py::test_in_memory_runs_the_services_own_fifo_app_with_a_dead_letter_queue_until_settled \
	--deselect tests/test_memory_sqs.py::test_digests_match_what_the_server_computes
# python3.X on PATH when it runs, else pyenv's (its shim on PATH answers only when selected).
python_for = $(or $(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null),$(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1))))

.PHONY: help install test lint typecheck pytest demo bench docs clean test-ministack soak \
	pytest-ministack-subset pytest-smoke redis-server

help:
	@echo "make demo   - run demo consumers against a local SQS server it starts itself"
	@echo "make test   - lint, type-check and run the test suite (starts its own SQS server),"
	@echo "              and a smoke subset on each other Python found (3.12, 3.13)"
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

# Four pytest processes on two cores: most scenarios wait on a server or a timer (the suite
# uses about 40 % of two cores with two processes), so four halve the wall time.
PYTEST_WORKERS ?= 4

pytest: $(STAMP) redis-server
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

# The idempotency tests start their own Redis server (Debian's package) on 127.0.0.1.
redis-server:
	command -v redis-server || (apt-get update && apt-get install -y redis-server)

test: lint typecheck pytest pytest-ministack-subset pytest-smoke

# The versions in parallel: most of a first run is pip, waiting on the package index.
pytest-smoke:
	@$(MAKE) --no-print-directory -j2 $(addprefix smoke-,$(SMOKE_VERSIONS))

smoke-%:
	@python="$(call python_for,$*)"; \
	if [ -z "$$python" ]; then \
		echo "make test: no python$* on this machine: the $* smoke run is skipped (install Python $*, or put python$* on PATH)"; \
	else \
		$(MAKE) --no-print-directory $(VENV)-$*/.installed-stamp SMOKE_PYTHON="$$python" && \
		echo "make test: smoke run on Python $* ($$python)" && \
		$(VENV)-$*/bin/python -m pytest -q -p no:cacheprovider $(SMOKE_SUBSET); \
	fi

$(VENV)-%/.installed-stamp: pyproject.toml
	$(SMOKE_PYTHON) -m venv $(VENV)-$*
	$(VENV)-$*/bin/python -m pip install --quiet -e '.[pydantic]' 'pytest>=8' \
		'pytest-asyncio>=0.23' 'pytest-timeout>=2.2'
	touch $@

# Each pytest process starts a ministack server of its own: in four, the subset takes about
# 30 s instead of 85.
pytest-ministack-subset: $(STAMP) $(MINISTACK_STAMP)
	AIOSQSWORKER_TEST_SERVER=ministack $(MINISTACK_ENV) $(PY) -m pytest -n $(PYTEST_WORKERS) $(MINISTACK_SUBSET)

test-ministack: $(STAMP) $(MINISTACK_STAMP)
	AIOSQSWORKER_TEST_SERVER=ministack $(MINISTACK_ENV) $(PY) -m pytest $(PYTEST_ARGS)

soak: $(STAMP) $(MINISTACK_STAMP)
	$(MINISTACK_ENV) $(PY) -m pytest -m soak -s tests/test_soak.py $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m aiosqsworker demo $(DEMO_ARGS)

docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# valgrind (Debian's package) counts the no-op cost in instructions; without it (no root,
# no apt) that table says so and the rest runs.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	command -v valgrind || (apt-get update && apt-get install -y valgrind) || true
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MINISTACK_VENV) $(addprefix $(VENV)-,$(SMOKE_VERSIONS)) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
