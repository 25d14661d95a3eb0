# The two commands the README opens with, and the checks CI runs.
# Each target creates the virtualenv and installs the project first, so they work on a
# fresh clone with nothing but Python 3.11+, Java 21+ and Maven on the machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-compat lint bench bench-all bench-compiled clean-node ecs-schema image compose-env test-testcontainers es-plugin

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Run the main job on the embedded default: a local Elasticsearch, setup, logs, ship, search.
demo: $(STAMP)
	$(BIN)/appmixer-audit demo

## Run the test suite against a real Elasticsearch node (provisioned when ES_URL is unset).
test: $(STAMP) ecs-schema
	$(BIN)/python -m pytest

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
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-all: $(STAMP) $(RUNTIME_STAMP)
	@missing=""; for pkg in $(RSYSLOG_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## The normalizer benchmark on the optional mypyc-compiled build (needs a C compiler).
bench-compiled: $(STAMP)
	$(PYTHON) -m venv .venv-compiled
	.venv-compiled/bin/python -m pip install --quiet --upgrade pip
	.venv-compiled/bin/python -m pip install --quiet "setuptools>=77" wheel ".[dev]"
	APPMIXER_AUDIT_COMPILE=1 .venv-compiled/bin/python -m pip install --quiet --no-build-isolation --no-deps --force-reinstall .
	.venv-compiled/bin/python bench/normalize.py

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
