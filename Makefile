# The two commands: `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medlib-installed
# Data, caches and trained models stay inside the checkout, reused between builds.
export MEDLIB_HOME ?= $(CURDIR)/.cache/medlib

.PHONY: book book-full test test-fast bench gpu-check venv assets browser clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

# The book's pinned JavaScript (MathJax, widgets), downloaded once into $(MEDLIB_HOME)/npm and
# verified: book builds, and the tests that build the book, need no network after this.
assets: $(STAMP)
	$(BIN)/medlib book --fetch-assets

book: assets
	$(BIN)/medlib book --profile smoke

book-full: assets
	$(BIN)/medlib book --profile full

# Headless Chromium + ChromeDriver for tests/test_browser.py (Debian packages; sudo when not root).
browser:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; }

# Two runs: the fast tests spread over every core (one test file per worker), then the slow ones
# (book builds, nbval) in one process, where each already runs its notebooks side by side.
test: assets browser
	$(BIN)/python -m pytest tests -m "not slow" -n auto --dist loadfile
	$(BIN)/python -m pytest tests -m slow

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python benches/bench_data.py
	$(BIN)/python benches/bench_merge.py
	$(BIN)/python benches/bench_checkpoint.py

# On a GPU machine as researchers find one (Colab-like: torch, torchvision and timm preinstalled,
# no internet, no book stack): medlib from this working tree, nothing created in .venv. The full
# profile's dry run on CUDA, images/s, model-FLOPs utilisation, peak memory with the CUDA context,
# host syncs and real epochs' overhead (exit 1 over 10 %); numbers in benches/results/. Without
# CUDA it says so and exits 0 (`--require-cuda` makes that exit 3).
gpu-check:
	mkdir -p benches/results
	PYTHONPATH=$(CURDIR) $(PYTHON) benches/gpu_check.py --json benches/results/gpu_check.json

clean:
	rm -rf _build
