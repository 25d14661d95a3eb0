# The two commands the README opens with, and the checks CI runs.
# Each target creates the virtualenv and installs the project first, so they work on a
# fresh clone with nothing but Python 3.11+, Java 21+ and Maven on the machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-compiled clean-node ecs-schema

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

## Benchmarks (figures, never pass/fail): normalizing on one core, then file to the local node.
bench: $(STAMP)
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/ship.py --es-url $$($(BIN)/appmixer-audit dev-es start 2>/dev/null | tail -1)

## The normalizer benchmark on the optional mypyc-compiled build (needs a C compiler).
bench-compiled: $(STAMP)
	$(PYTHON) -m venv .venv-compiled
	.venv-compiled/bin/python -m pip install --quiet --upgrade pip
	.venv-compiled/bin/python -m pip install --quiet "setuptools>=69" wheel ".[dev]"
	APPMIXER_AUDIT_COMPILE=1 .venv-compiled/bin/python -m pip install --quiet --no-build-isolation --no-deps --force-reinstall .
	.venv-compiled/bin/python bench/normalize.py

clean-node: $(STAMP)
	$(BIN)/appmixer-audit dev-es stop
