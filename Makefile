# The two commands the README opens with, and the checks CI runs.
# Each target creates the virtualenv and installs the project first, so they work on a
# fresh clone with nothing but Python 3.11+, Java 21+ and Maven on the machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-compat test-compiled lint bench bench-all bench-compiled compiled clean-node ecs-schema image compose-env test-testcontainers es-plugin

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The compiled per-line path (agent/build.py): the package compiled with mypyc into a tree of
## its own, build/compiled, beside the source it is compiled from, so both builds stay at hand:
## the source is the reference, the tree is what `demo`, `bench` and the image run. Needs a C
## compiler and Python's headers; about three minutes on two busy cores.
COMPILED := build/compiled
COMPILED_STAMP := $(COMPILED)/.built
COMPILED_ENV := PYTHONPATH=$(CURDIR)/$(COMPILED) PYTHONSAFEPATH=1
SOURCES := $(shell find cli agent chain common indexer devtools mappings dashboards -name '*.py' -o -name '*.json' -o -name '*.ndjson' 2>/dev/null) setup.py pyproject.toml

## setuptools' staging folders (build/lib.*, build/bdist.*) go first: a module renamed or
## removed in the source would otherwise stay there and be installed into the tree again.
$(COMPILED_STAMP): $(STAMP) $(SOURCES)
	rm -rf $(COMPILED) build/lib.* build/bdist.*
	APPMIXER_AUDIT_COMPILE=1 $(BIN)/python -m pip install --quiet --no-build-isolation --no-deps --target $(COMPILED) .
	rm -rf $(COMPILED)/bin
	$(COMPILED_ENV) $(BIN)/python -c 'import sys, agent.build as b; sys.exit(b.builds() != {True})'
	touch $(COMPILED_STAMP)

compiled: $(COMPILED_STAMP)

## Run the main job on the embedded default: a local Elasticsearch, setup, logs, ship, search.
## It runs the compiled path when it can be built, else the source (the agent says which).
demo: $(STAMP)
	@$(MAKE) --no-print-directory compiled || echo "demo: no compiled build here; the pure-Python path runs"
	@if [ -f $(COMPILED_STAMP) ]; then $(COMPILED_ENV) $(BIN)/python -m cli demo; else $(BIN)/appmixer-audit demo; fi

## Run the test suite against a real Elasticsearch node (provisioned when ES_URL is unset).
test: $(STAMP) ecs-schema
	$(BIN)/python -m pytest

## The delivery suites with agents that run the compiled path; the differential test in
## `make test` holds it to the source's bytes. kill -9, rotation, chain, outage, cluster and
## backlog (17 tests, about seven minutes; CI runs them all); DELIVERY_SUITES='...' picks some.
DELIVERY_SUITES ?= $(addprefix tests/system/test_,crash.py rotation.py chain.py outage.py cluster.py backlog_memory.py)
test-compiled: $(STAMP) $(COMPILED_STAMP)
	APPMIXER_AUDIT_TEST_BUILD=compiled $(BIN)/python -m pytest -p no:cacheprovider $(DELIVERY_SUITES)

## The compatibility suite: the tests marked compat (setup, search, show, verify, kill -9 and
## rotation, least privilege on a secured node) on each older supported Elasticsearch, one
## version after the other, each on dev nodes of that version (docs/dev-es.md).
COMPAT_VERSIONS ?= 8.19.8 8.12.2
test-compat: $(STAMP)
	@for version in $(COMPAT_VERSIONS); do \
		echo "== compatibility suite on Elasticsearch $$version"; \
		$(BIN)/appmixer-audit dev-es build-plugin --version $$version >/dev/null || exit 1; \
		APPMIXER_AUDIT_TEST_ES_VERSION=$$version $(BIN)/python -m pytest -m compat -p no:cacheprovider || exit 1; \
	done

## The official ECS definitions (npm @elastic/ecs, pinned in tests/ecs/package-lock.json),
## installed with npm ci into the cache outside the repo; the conformance tests read them.
## Without Node.js this says so and the tests skip, except under CI=true where it fails.
ecs-schema: $(STAMP)
	$(BIN)/python -m tests.ecs.schema

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (figures, never pass/fail): every figure in one run on a node of its own,
## bench/run.py (docs/performance.md). BENCH_ARGS passes options, e.g. BENCH_ARGS=--quick.
## bench runs what the machine has (rsyslog rows read n/a without rsyslog); bench-all first
## installs Debian's rsyslog and rsyslog-elasticsearch when missing (root, apt-get).
## The agent under test runs from .venv-runtime: the project (editable, so it is the code in
## this tree) with its runtime dependencies only, as a deployment has it; the development
## tools in .venv pull in packages (rich, via import-linter) that the agent would import.
RSYSLOG_PACKAGES := rsyslog rsyslog-elasticsearch
BENCH_ARGS ?= --json bench-results.json
RUNTIME_STAMP := .venv-runtime/.installed

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv .venv-runtime
	.venv-runtime/bin/python -m pip install --quiet --upgrade pip
	.venv-runtime/bin/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

bench: $(STAMP) $(RUNTIME_STAMP)
	@$(MAKE) --no-print-directory compiled || echo "bench: no compiled build here; the pure path only"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-all: $(STAMP) $(RUNTIME_STAMP)
	@$(MAKE) --no-print-directory compiled || echo "bench: no compiled build here; the pure path only"
	@missing=""; for pkg in $(RSYSLOG_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## The normalizer benchmark on the compiled per-line path (needs a C compiler).
bench-compiled: $(STAMP) $(COMPILED_STAMP)
	$(COMPILED_ENV) $(BIN)/python -P bench/normalize.py

## The sidecar image, appmixer-audit:<version>, with docker or podman; prints its reference last.
image:
	@deploy/image.sh

## The integration suite on an Elasticsearch container from testcontainers, through podman.
test-testcontainers: $(STAMP)
	tests/container/testcontainers.sh -q

## The analysis plugin a secured dev node needs (built once with Maven, cached outside the repo).
es-plugin: $(STAMP)
	$(BIN)/appmixer-audit dev-es build-plugin

clean-node: $(STAMP)
	$(BIN)/appmixer-audit dev-es stop

## .env for docker-compose.yml with generated passwords and the chain key; an existing .env
## is kept, and given a CHAIN_KEY when it has none.
compose-env:
	@test -f .env && echo ".env exists; kept" || { umask 077; python3 -c 'import secrets; t = secrets.token_urlsafe; print(f"ELASTIC_PASSWORD={t(18)}\nKIBANA_PASSWORD={t(18)}\nKIBANA_ENCRYPTION_KEY={t(32)}")' > .env && echo "wrote .env"; }
	@grep -q '^CHAIN_KEY=' .env || { python3 -c 'import secrets; print(f"CHAIN_KEY={secrets.token_urlsafe(32)}")' >> .env && echo "added CHAIN_KEY to .env (the chain key: give a copy to auditors)"; }
