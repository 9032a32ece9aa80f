# Two commands matter: `make run` (install and serve) and `make test` (install and test).
# Both install the exact, hash-checked versions in the lock files, never a fresh resolve.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PIP_INSTALL = $(BIN)/python -m pip install --quiet --require-hashes --no-deps
LOCK = uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--quiet --custom-compile-command "make lock"

.PHONY: run test lint format install install-test dev demo bench bench-smoke lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(PIP_INSTALL) -r requirements.lock
	touch $@

$(VENV)/.installed-test: requirements-test.lock | $(BIN)/python
	$(PIP_INSTALL) -r requirements-test.lock
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

# Fictional accounts and visits in a folder of their own (never a clinic's instance/),
# filled once (skipped when visits exist), then served.
DEMO_INSTANCE ?= demo-instance
demo: install
	-PATIENTAPP_INSTANCE=$(DEMO_INSTANCE) PATIENTAPP_HOST=$(HOST) PATIENTAPP_PORT=$(PORT) $(BIN)/flask --app app demo
	PATIENTAPP_INSTANCE=$(DEMO_INSTANCE) $(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

dev: install
	$(BIN)/flask --app app run --debug

# Line and branch coverage of patientapp/ is measured on every run; below the floor fails.
COVERAGE_FLOOR ?= 96

test: install-test
	$(BIN)/python -m pytest --cov-fail-under=$(COVERAGE_FLOOR)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-test
	$(BIN)/python bench/run.py

bench-smoke: install-test
	$(BIN)/python bench/run.py --smoke

# Refresh both lock files from pyproject.toml (needs uv: pipx install uv, or pip install uv).
# Add --upgrade to move every pin to the newest version the ranges allow.
lock:
	$(LOCK) -o requirements.lock $(ARGS)
	$(LOCK) --extra test -o requirements-test.lock $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
