# cijobs — two commands matter: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench soak package clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,deploy,cmq-api]'
	@touch $(STAMP)

## Run the main job against the built-in local emulator (no cloud account needed).
## make run ARGS="--verbose --keep": also print the full JSON, keep the temporary directory.
run: $(STAMP)
	$(BIN)/python -m cijobs_tools.demo $(ARGS)

## Lint, type-check and run the whole test suite.
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check lib handler tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

## Benchmarks (figures and ratios against a baseline measured in the same run; see README).
bench: $(STAMP)
	$(BIN)/python bench/query.py
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/sinks.py
	$(BIN)/python bench/coldstart.py
	$(BIN)/python bench/emulator.py 200
	$(BIN)/python bench/hostile.py

## 10,000-job soak under faults (about 4 minutes); last line: soak: jobs=... lost=0 duplicated=0 ...
soak: $(STAMP)
	$(BIN)/python bench/soak.py

## Build the SCF code package dist/cijobs.zip, unpack it into dist/cijobs/ and generate dist/serverless.yml.
## CMQ_MODE=api make package adds the Tencent Cloud SDK needed by that mode.
package: $(STAMP)
	$(BIN)/python -m cijobs_tools.packaging --output dist/cijobs.zip --unpack dist/cijobs
	$(BIN)/python -m cijobs_tools.deploy.serverless --output dist/serverless.yml

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
