# traft: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-core clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check traft storage net scripts tests
	$(BIN)/ruff format --check traft storage net scripts tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict traft storage net

pytest: $(STAMP)
	$(BIN)/pytest --cov=traft.core --cov-branch --cov-report=term:skip-covered

test: lint typecheck pytest

bench-core: $(STAMP)
	$(BIN)/python scripts/bench_core.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
