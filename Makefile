# Two commands matter: `make run` (install and serve) and `make test` (install and test).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test dev demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

# Fills a fresh database with fictional visits (skipped when visits exist), then serves.
demo: install
	-$(BIN)/flask --app app demo
	$(BIN)/flask --app app serve --host $(HOST) --port $(PORT)

dev: install
	$(BIN)/flask --app app run --debug

test: install-test
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
