# Two commands: `make demo` runs the main job on bundled real data; `make test` runs the test suite.
# Both create a local virtual environment (.venv) with the CPU build of torch (pinned in the same pip
# call, so pip never pulls a CUDA build). `make demo` installs only torch and sxdiff's own dependencies;
# `make test` (and `make install`) adds the test, docs, pertpy and cell-eval extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: demo test install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What the demo needs: torch and the core dependencies (no extras); nothing to do after a full install.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	if [ ! $(VENV)/.installed -nt pyproject.toml ]; then $(BIN)/python -m pip install "$(TORCH)" -e .; fi
	touch $@

# Everything: the demo's dependencies plus the test, docs, pertpy and cell-eval extras.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install "$(TORCH)" -e ".[test,pertpy,eval,docs]"
	touch $@ $(VENV)/.installed-demo

install: $(VENV)/.installed

demo: $(VENV)/.installed-demo
	$(BIN)/sxdiff demo --out sxdiff_demo

test: install
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) sxdiff_demo dist build .pytest_cache
