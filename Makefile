# Consilium: `make run` serves a demo on http://127.0.0.1:8080, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CONSILIUM_DATA_DIR ?= var

.PHONY: run test install lint typecheck pytest jstest migrate seed clean ui-assets

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

ui-assets: $(STAMP)
	@if [ -f ui/package.json ]; then cd ui && npm ci --no-audit --no-fund --silent && npm run --silent build; fi

migrate: install
	$(BIN)/consilium migrate

seed: migrate
	$(BIN)/consilium seed-demo

# Development mode for the demo: the outbox page shows the one-time codes.
run: export CONSILIUM_DEV := 1
run: ui-assets seed
	$(BIN)/consilium serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install ui-assets
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser client's pure modules (the room page's reducer, tile keys, pause sync) under
# Node's own test runner: no browser, no npm package needed.
jstest:
	node --test ui/tests/*.test.mjs

test: lint typecheck jstest pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
