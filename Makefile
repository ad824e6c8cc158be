# One entry point for chores: `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install run test bench

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/library: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/library ## create .venv and install the service with its test tools

run: install ## set up and run the service on the embedded default (SQLite + tantivy) with the demo data
	$(BIN)/library init --demo
	$(BIN)/library serve --host $(HOST) --port $(PORT)

test: install ## set up and run the whole test suite (PostgreSQL on 127.0.0.1:5432 for the store tests)
	$(BIN)/python -m pytest

bench: install ## print the core benchmark figures (ingest rate, search latency, memory)
	$(BIN)/python benchmarks/core.py
