# The two set-up commands of the README. Each builds its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench

$(BIN)/.installed: pyproject.toml setup.py routes/_scorer.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/hybrid-gateway serve --host 127.0.0.1 --port 8080

lint: $(BIN)/.installed
	$(BIN)/ruff check gateway routes retrieval policies tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -p no:cacheprovider tests/system/test_import_direction.py

test: $(BIN)/.installed lint
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/overhead.py
