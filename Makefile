# jobcontrol: `make run` installs and serves, `make test` installs and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run run-pg test lint gen check-gen breaking contract-baseline ci bench-tools bench bench-full bench-rest bench-auth bench-observability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/jobctl serve

# the scale-out store, locally: an embedded PostgreSQL 18 in data/pg (unix socket only),
# `jobctl serve` on it; stopping serve (Ctrl-C) stops the PostgreSQL
run-pg: install
	$(BIN)/jobctl dev-postgres data/pg -- $(BIN)/jobctl serve

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/genproto.py --deps-only
	$(BIN)/buf lint

gen: install
	$(BIN)/python scripts/genproto.py

# The contract only grows: buf breaking (FILE rules) against the last released contract,
# .ci/contract-baseline.binpb (a buf image; `make contract-baseline` refreshes it at a release).
breaking: install
	$(BIN)/python scripts/genproto.py --deps-only
	$(BIN)/buf build --exclude-source-info -o build/contract.binpb
	$(BIN)/buf breaking build/contract.binpb --against .ci/contract-baseline.binpb

contract-baseline: install
	$(BIN)/python scripts/genproto.py --deps-only
	$(BIN)/buf build --exclude-source-info -o .ci/contract-baseline.binpb

# Regenerating must not change the committed package.
check-gen: gen
	git diff --exit-code --stat -- jobcontrol
	test -z "$$(git status --porcelain -- jobcontrol)"

ci: test lint breaking check-gen

# h2load (nghttp2-client) and wrk, the C load generators bench/run.py uses when present
bench-tools:
	@command -v h2load >/dev/null && command -v wrk >/dev/null || \
	  { apt-get install -y nghttp2-client wrk || \
	    { apt-get update && apt-get install -y nghttp2-client wrk; }; }

bench: install bench-tools
	$(BIN)/python -m bench.run --short

bench-full: install bench-tools
	$(BIN)/python -m bench.run

bench-auth: install
	$(BIN)/python -m bench.auth

bench-observability: install
	$(BIN)/python -m bench.observability

bench-rest: install
	$(BIN)/python scripts/rest_bench.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
