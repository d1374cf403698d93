# Two commands on a fresh machine: `make run` (set up + serve) and `make test` (set up + test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lock web lint typecheck pytest webtest

run: setup web
	$(BIN)/inkstep serve

test: setup web lint typecheck webtest pytest

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The newest versions pyproject.toml allows, written to constraints.txt for every later setup.
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	{ head -n 2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v -e '^-e' -e '^#'; } > constraints.new
	mv constraints.new constraints.txt
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
