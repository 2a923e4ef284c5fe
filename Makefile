# The two commands: `make run` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check fmt install bench clean

run: install
	$(BIN)/conveyor run

test: check
	$(BIN)/pytest

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Conveyor needs Python 3.11+; set PYTHON=python3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The bench extra too: its baselines (FastAPI, Celery) are type-checked with the rest.
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded,bench]'
	touch $(STAMP)

# `make bench SUITE=gateway` (see README, Performance); never part of `make test`.
SUITE ?= processing
bench: install
	$(BIN)/conveyor bench $(SUITE)

clean:
	rm -rf $(VENV) .conveyor .mypy_cache .ruff_cache .pytest_cache
