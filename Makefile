# hpsearch: `make run` runs the xgamma study end to end, `make test` runs the tests.
# Both create .venv/ and install hpsearch into it first (`make setup`, a no-op when up to date).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STUDY  ?= studies/xgamma_resnet.yaml
PYTEST_ARGS ?=
SUDO   := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: setup run test test-slow lint bench clean lock

setup: $(STAMP)

# Debian packages, installed when missing (and apt exists):
# - chromium: kaleido draws the report's PNG/PDF figures with it, and the dashboard test renders
#   optuna-dashboard in it;
# - postgresql: the storage tests start a throwaway PostgreSQL server (tests/postgres.py).
APT_MISSING = $(shell command -v chromium >/dev/null || echo chromium) \
	$(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql)

$(STAMP): pyproject.toml constraints.txt
	@test -z "$(strip $(APT_MISSING))" || ! command -v apt-get >/dev/null || \
		{ $(SUDO) apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_MISSING) >/dev/null; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,gp]'
	@touch $@

# Re-pin constraints.txt: the newest releases pyproject.toml allows, in a throwaway venv.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev,gp]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | \
		sed 's/+cpu$$//'; } > constraints.new && mv constraints.new constraints.txt
	rm -rf .lock-venv

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

# Search efficiency on the recorded learning curves (docs/search_efficiency.md): hpsearch's
# strategies through its replay, and Syne Tune's ASHA/MOASHA through Syne Tune's own simulator
# backend, in a venv of their own (Syne Tune's dependencies stay out of .venv/).
SEEDS  ?= 20
TRIALS ?= 200
TABLE  ?= benchmarks/curves/xgamma_families_16k.h5
SYNE   := benchmarks/.syne-venv
bench: setup $(SYNE)/.installed
	$(SYNE)/bin/python benchmarks/syne_tune_peer.py --table $(TABLE) --seeds $(SEEDS) \
		--trials $(TRIALS) --jobs 2 --strategies syne-asha syne-moasha syne-moasha-rankfix \
		--out results/bench/syne_traces.json
	$(BIN)/python benchmarks/search_efficiency.py --table $(TABLE) --seeds $(SEEDS) \
		--trials $(TRIALS) --peers results/bench/syne_traces.json

$(SYNE)/.installed:
	@test -x $(SYNE)/bin/python || $(PYTHON) -m venv $(SYNE)
	$(SYNE)/bin/python -m pip install --quiet syne-tune==0.16.0 huggingface_hub==2.4.0 h5py==3.16.0
	@touch $@

clean:
	rm -rf $(VENV) $(SYNE) results data .pytest_cache .mypy_cache .ruff_cache
