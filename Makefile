# Two commands do all the set-up: `make run` and `make test`. Each builds .venv from the lock first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast test-props lint bench lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Build .venv from requirements.lock

run: $(STAMP) ## Run the whole local platform (Dagster, API stand-in, Gradio app)
	$(BIN)/python -m fraud_assets.platform

FAST := not integration and not e2e
PYTEST := $(BIN)/python -m pytest -n 2
# The second tier mostly waits on servers and child processes (about 60 % of two cores with two
# workers), so it runs three.
PYTEST_SLOW := $(BIN)/python -m pytest -n 3

test: $(STAMP) ## Everything: the fast tier first (stops on a failure), then servers and processes
	$(BIN)/ruff check .
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.ops.yml
	$(PYTEST) -m "$(FAST)" -x
	.ci/ensure-chromium
	$(PYTEST_SLOW) --dist loadfile -m "not ($(FAST))" --durations=25

test-fast: $(STAMP) ## The tests that need no server, no dagster dev and no trained platform (< 2 min)
	$(BIN)/ruff check .
	$(PYTEST) -m "$(FAST)"

test-props: $(STAMP) ## The long property-based run: 100,000 hostile batches through the parser
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -p no:cacheprovider \
	  fraud_assets_tests/lib/test_parse_properties.py -k "escapes" -q

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) ## Run the benchmarks (BENCH="app model_quality ..." picks some; see benchmarks/)
	$(BIN)/python -m benchmarks $(BENCH)

lock: ## Re-resolve requirements.lock (dev) and requirements.runtime.lock (image) from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11
	$(BIN)/uv pip compile pyproject.toml --extra k8s -c requirements.lock -o requirements.runtime.lock --python-version 3.11 --generate-hashes

clean: ## Remove the venv and local state
	rm -rf $(VENV) .fraud_data
