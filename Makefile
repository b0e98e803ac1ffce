# The README's two commands: `make demo` (the main job) and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-all test-gpu bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments run --all --quick
	$(BIN)/python -m experiments report

# CI's suite (under 10 minutes on 2 cores); tests marked `slow` (longer statistical and end-to-end runs) are
# left to `make test-all`
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto -m "not slow"

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto

# the accelerator subset on a GPU machine (install jax[cuda12] first, see README "Running on a GPU"): no
# preallocation (pytest-xdist workers share the GPU), no autotuning (it compiles every small program slowly)
test-gpu: $(STAMP)
	XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS="--xla_gpu_autotune_level=0 $$XLA_FLAGS" \
		$(BIN)/python -m pytest -n 4 -m gpu

# peer libraries for `python -m experiments bench NAME` (torch 2.13.0 CPU, diffusers, ppi-python, doubleml)
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
