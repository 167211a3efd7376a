# The two commands: `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medlib-installed
# Data, caches and trained models stay inside the checkout, reused between builds.
export MEDLIB_HOME ?= $(CURDIR)/.cache/medlib

.PHONY: book book-full test test-fast bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

book: $(STAMP)
	$(BIN)/medlib book --profile smoke

book-full: $(STAMP)
	$(BIN)/medlib book --profile full

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

bench: $(STAMP)
	$(BIN)/python benches/bench_data.py
	$(BIN)/python benches/bench_merge.py

clean:
	rm -rf _build
