# The README's two commands: `make demo` (the main job) and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments run --all --quick
	$(BIN)/python -m experiments report

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto

# peer libraries for `python -m experiments bench NAME` (torch 2.13.0 CPU, diffusers, ppi-python, doubleml)
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
