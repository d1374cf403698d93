# Two commands on a fresh machine: `make run` (set up + serve) and `make test` (set up + test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup web lint typecheck pytest webtest

run: setup web
	$(BIN)/inkstep serve

test: setup web lint typecheck webtest pytest

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

web: web/dist/index.html

web/dist/index.html: web/package.json web/package-lock.json $(shell find web/src -type f 2>/dev/null) web/index.html
	cd web && npm ci --no-audit --no-fund && npm run build

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

webtest: web
	cd web && npm test && npm run typecheck

pytest: setup
	$(BIN)/pytest
