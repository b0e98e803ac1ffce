# The README's two commands: `make demo` (the main job) and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-all test-gpu test-min docs bench-deps clean

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

# the lowest versions pyproject.toml allows (each lower bound, exactly) in .venv-min, then a smoke subset: what
# "pins = tested versions" means in practice (today the lower bounds are the versions `make test` installs)
MIN := .venv-min
test-min:
	$(PYTHON) -m venv $(MIN)
	$(PYTHON) -c "import re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	deps = p['dependencies'] + p['optional-dependencies']['experiments'] + p['optional-dependencies']['dev']; \
	print('\n'.join(re.sub(r'>=([^,]+),.*', r'==\1', d) for d in deps if '>=' in d))" > $(MIN)/constraints.txt
	$(MIN)/bin/python -m pip install --quiet --disable-pip-version-check -c $(MIN)/constraints.txt -e '.[dev]'
	$(MIN)/bin/python -m pytest -n auto -m "not slow" tests/test_packaging.py tests/test_docs.py tests/test_readme.py

# the API reference (docs/api/*.md, one page per package) from the docstrings; a public function or class without
# a docstring, or an __all__ name that does not resolve, is an error (tests/test_docs.py checks the same in CI)
docs: $(STAMP)
	$(BIN)/python docs/gen_api.py

# the accelerator subset on a GPU machine (install jax[cuda12] first, see README "Running on a GPU"): no
# preallocation (pytest-xdist workers share the GPU), no autotuning (it compiles every small program slowly)
test-gpu: $(STAMP)
	XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_FLAGS="--xla_gpu_autotune_level=0 $$XLA_FLAGS" \
		$(BIN)/python -m pytest -n 4 -m gpu

# peer libraries for `python -m experiments bench NAME` (torch 2.13.0 CPU, diffusers, ppi-python, doubleml)
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'

clean:
	rm -rf $(VENV) $(MIN) results docs/api .pytest_cache .ruff_cache
