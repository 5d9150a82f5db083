# newsflow developer commands. `make test` is the one command CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STACK := deploy/local/stack
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Precompiled bytecode: Prefect's temporary API server starts ~10 s faster the first time.
export UV_COMPILE_BYTECODE := 1

.PHONY: help install system-deps lint fmt types unit integration test stack-up stack-down stack-status demo bench hostile clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.synced  ## create .venv with the locked dependencies and newsflow itself

# kcat (Debian package kafkacat) is the non-Python Kafka client the contract test uses.
system-deps:  ## install kcat when missing (needs root or sudo and Debian's apt)
	@command -v kcat >/dev/null || command -v kafkacat >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq kafkacat; }

lint: install  ## ruff check and ruff format --check
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check .

fmt: install  ## fix what ruff can (ruff check --fix), then ruff format
	$(VENV)/bin/ruff check --no-cache --fix .
	$(VENV)/bin/ruff format .

types: install  ## mypy (strict; tests, bench and examples too)
	$(VENV)/bin/mypy

unit: install  ## tests that need no Kafka or Elasticsearch
	$(VENV)/bin/pytest -m "not integration"

stack-up:  ## start Kafka and Elasticsearch on 127.0.0.1 (fetches jars from Maven Central once)
	$(STACK) up

stack-down:  ## stop them
	$(STACK) down

stack-status:  ## print NEWSFLOW_* lines for the running stack
	$(STACK) status

# The README's test command: set-up, real stack, lint, types, every test, stack down.
test: install system-deps  ## everything CI runs, from a fresh clone
	$(STACK) up
	trap '$(STACK) down' EXIT; \
	  $(VENV)/bin/ruff check --no-cache . && \
	  $(VENV)/bin/ruff format --check . && \
	  $(VENV)/bin/mypy && \
	  $(VENV)/bin/pytest
	@echo "--- the README's first command, with no JVM running"
	! $(STACK) status >/dev/null 2>&1
	demo_dir=$$(mktemp -d); trap 'rm -rf "$$demo_dir"' EXIT; \
	  env -u NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS -u NEWSFLOW_ELASTICSEARCH_URL \
	  $(VENV)/bin/newsflow demo --data-dir "$$demo_dir"

# Issue 11's benchmark on the running stack: figures, chart and docs/performance.md.
BENCH_ARGS ?= --articles 2000 --hosts 20
bench: install  ## benchmark the pipeline on the running stack (bench/out/, docs/performance.md)
	$(VENV)/bin/python -m bench.pipeline $(BENCH_ARGS) --out bench/out/ --write-docs

# Issue 10's bad-input suite (SSRF, bombs, slow servers, XML, HTML, odd feeds); in CI too.
hostile: install  ## the bad-input suite (docs/reliability.md, "Bad input")
	$(VENV)/bin/pytest tests/newsflow/hostile -p no:cacheprovider

# The README's first command: set-up and an offline demo on the embedded backends.
demo: install  ## install, then run newsflow on a bundled offline news site (no Java needed)
	env -u NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS -u NEWSFLOW_ELASTICSEARCH_URL $(VENV)/bin/newsflow demo

clean:  ## remove the environments (the stack's jar cache stays in ~/.cache/newsflow)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
