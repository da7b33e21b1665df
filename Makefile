# Two commands: `make demo` runs the main job on bundled real data; `make test` runs the test suite.
# Both create a local virtual environment (.venv) with the CPU build of torch (pinned in the same pip
# call, so pip never pulls a CUDA build).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: demo test install lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)" -e ".[test,pertpy,eval,docs]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/sxdiff demo --out sxdiff_demo

test: install
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) sxdiff_demo dist build .pytest_cache
