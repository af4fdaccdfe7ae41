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

# The install compiles the native HMAC (hatch_build.py): it needs OpenSSL's headers.
$(STAMP): pyproject.toml hatch_build.py engine/pseudonym/native/hmac_tokens.c | $(BIN)/python
	test -e /usr/include/openssl/sha.h || (apt-get update && apt-get install -y libssl-dev) || \
		echo "libssl-dev could not be installed: kv tokens fall back to polars-hash"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Real Go OPA (v1.20, c-shared) for `pgov policy test --engine opa` and the differential
	# test; its metadata claims Python >= 3.12 but it works on 3.11, hence the flags.
	$(BIN)/python -m pip install --quiet --ignore-requires-python --no-deps opa-golib-python-bindings==0.4.4
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
	PGOV_REQUIRE_OPA=1 PGOV_REQUIRE_NATIVE=1 $(BIN)/python -m pytest

# Report tests load pages in a real browser: Debian's chromium, installed once if missing
# (the tests skip with a message only when it cannot be installed).
test: lint typecheck
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
		echo "chromium could not be installed: browser tests will skip"
	$(BIN)/pgov policy test --engine regorus
	$(BIN)/pgov policy test --engine opa
	PGOV_REQUIRE_OPA=1 PGOV_REQUIRE_NATIVE=1 $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
