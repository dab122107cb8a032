# jobcontrol: `make run` installs and serves, `make test` installs and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint gen check-gen ci bench bench-full bench-rest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/jobctl serve

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

# Regenerating must not change the committed package.
check-gen: gen
	git diff --exit-code --stat -- jobcontrol
	test -z "$$(git status --porcelain -- jobcontrol)"

ci: test lint check-gen

bench: install
	$(BIN)/python bench/run.py --short

bench-full: install
	$(BIN)/python bench/run.py

bench-rest: install
	$(BIN)/python scripts/rest_bench.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
