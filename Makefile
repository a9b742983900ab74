# Two commands set everything up from a fresh clone:
#   make demo   - install into .venv, then run the whole chain on the built-in demo dataset
#   make test   - install into .venv, then run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test grocery bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: setup
	@git rev-parse --verify HEAD >/dev/null 2>&1 || { echo "dvc and dvclive need a git repository with at least one commit"; exit 1; }
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

test: setup
	$(BIN)/python -m pytest -q

# The same chain on the real grocery photos beside the project (../shared/data/grocery).
grocery: setup
	$(BIN)/python -m pipeline.params_override configs/grocery.params.yaml
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done
