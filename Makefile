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

.PHONY: help install system-deps lint fmt types unit integration test stack-up stack-down stack-status demo bench dates hostile faults cluster-faults workers scaling clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.synced  ## create .venv with the locked dependencies and newsflow itself

# kcat (Debian package kafkacat) is the non-Python Kafka client the contract test uses;
# prometheus (with promtool) and prometheus-pushgateway are what tests/deploy/test_prometheus.py
# scrapes with and validates the alert rules with.
system-deps:  ## install kcat, prometheus and the pushgateway when missing (root or sudo, apt)
	@missing=""; \
	  command -v kcat >/dev/null || command -v kafkacat >/dev/null || missing="kafkacat"; \
	  command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	  fi

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

# The README's test command: set-up, real stack, lint, types, the test suite, stack down.
# The 3+3 cluster's fault tests take ~10 minutes on 2 cores: `make cluster-faults` runs
# them (the cluster's start and stop are tested here, in tests/deploy/test_stack.py).
TEST_MARKERS ?= not cluster
test: install system-deps  ## everything CI runs, from a fresh clone
	$(STACK) up
	trap '$(STACK) down' EXIT; \
	  $(VENV)/bin/ruff check --no-cache . && \
	  $(VENV)/bin/ruff format --check . && \
	  $(VENV)/bin/mypy && \
	  $(VENV)/bin/pytest -m "$(TEST_MARKERS)"
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

# Issue 10's fault suite at a larger N than CI's 200 (its own stack instance, ports
# NEWSFLOW_FAULTS_KAFKA_PORT / NEWSFLOW_FAULTS_ES_PORT, 29092 / 29200 by default).
# N: articles per fault test (make faults N=5000, make cluster-faults N=2000); CI runs fewer.
N ?= 1000
faults: install  ## kill, stop and throttle Kafka and Elasticsearch with N articles (make faults N=5000)
	NEWSFLOW_FAULTS_N=$(N) $(VENV)/bin/pytest tests/faults -m faults -p no:cacheprovider -s -q

# Issue 12: faults on a 3-broker / 3-node cluster of its own (ports 24092-24097, 24200-24202).
cluster-faults: install  ## kill brokers, ES nodes and indexers on a 3+3 cluster, N articles per phase
	NEWSFLOW_TEST_CLUSTER_N=$(N) NEWSFLOW_TEST_CLUSTER_LEADER_KILLS=3 \
	  $(VENV)/bin/pytest tests/cluster -m cluster -p no:cacheprovider -s

# Issue 12, fault 4: two Prefect workers and a server of its own (any free port, or
# NEWSFLOW_TEST_PREFECT_PORT) on the running stack; ~3 min; in CI too (make test).
workers: install  ## two Prefect workers share runs and the fetch limit; one is killed mid-run
	$(VENV)/bin/pytest tests/flows/test_workers.py -m workers -p no:cacheprovider -s

SCALING_ARGS ?= --articles 3000
scaling: install  ## indexer and publish throughput on a 3+3 cluster (bench/out/scaling.json)
	$(VENV)/bin/python -m bench.scaling $(SCALING_ARGS) --out bench/out/scaling.json

# Issue 13's published-date benchmark (docs/dates.md): the synthetic set, and with
# HTMLDATE=<a clone of github.com/adbar/htmldate> its real evaluation pages too.
HTMLDATE ?=
dates: install  ## published-date coverage and correctness (make dates HTMLDATE=/path/to/htmldate)
	$(VENV)/bin/python -m bench.dates --write-docs
	@if [ -n "$(HTMLDATE)" ]; then \
	  $(VENV)/bin/python -m bench.dates --write-docs \
	    --labels $(HTMLDATE)/tests/eval_default.json --labels $(HTMLDATE)/tests/eval_mediacloud_2020.json \
	    --pages $(HTMLDATE)/tests/cache --pages $(HTMLDATE)/tests/eval --pages $(HTMLDATE)/tests/test_set; \
	fi

# The README's first command: set-up and an offline demo on the embedded backends.
demo: install  ## install, then run newsflow on a bundled offline news site (no Java needed)
	env -u NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS -u NEWSFLOW_ELASTICSEARCH_URL $(VENV)/bin/newsflow demo

clean:  ## remove the environments (the stack's jar cache stays in ~/.cache/newsflow)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
