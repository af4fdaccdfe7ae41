# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install the project with its dev extras once (re-installing only when
# pyproject.toml changes), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo workspace is rebuilt each time and left in demo-workspace/ to explore afterwards
# (e.g. .venv/bin/pgov lineage verify --all -w demo-workspace).
demo: $(STAMP)
	rm -rf demo-workspace
	$(BIN)/pgov demo -w demo-workspace

lint: $(STAMP)
	$(BIN)/ruff check engine lineage tests bench
	$(BIN)/ruff format --check engine lineage tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck
	$(BIN)/pgov policy test
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
