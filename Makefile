# hpsearch: `make run` runs the xgamma study end to end, `make test` runs the tests.
# Both create .venv/ and install hpsearch into it first (`make setup`, a no-op when up to date).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STUDY  ?= studies/xgamma_resnet.yaml
PYTEST_ARGS ?=
SUDO   := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: setup run test test-slow lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@# Chromium: kaleido draws the report's PNG/PDF figures with it, and the dashboard test
	@# renders optuna-dashboard in it. Debian's package, installed when missing and apt exists.
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gp]'
	@touch $@

run: setup
	$(BIN)/hpsearch run $(STUDY)

test: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src objectives tests benchmarks
	$(BIN)/ruff format --check src objectives tests benchmarks
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/calibrate_xgamma.py

clean:
	rm -rf $(VENV) results data .pytest_cache .mypy_cache .ruff_cache
