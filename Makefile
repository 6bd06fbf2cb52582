# The interpreter that builds .venv: python3.11 where it is on PATH, else python3 (checked to be
# >= 3.11 before use). Choose another with `make demo PY=python3.13` or `make test PY=/path/to/python`.
PY ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/python:
	@$(SHELL) scripts/check_python.sh $(PY)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,mpi]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/convnet train

# The whole suite on the default (fastest available) backend, then the oracle suites again on
# the NumPy reference backend, so both stay proven against torch (tests/backends compare the
# compiled kernels with the NumPy ones and torch themselves).
ORACLE_SUITES := tests/foundation tests/conv tests/pool_norm

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest
	CONVNET_BACKEND=numpy $(BIN)/python -m pytest -q $(ORACLE_SUITES)

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run_all.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check convnet tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info
