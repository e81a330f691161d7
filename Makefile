# traft: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
# Hypothesis profile (tests/conftest.py): ci is derandomized, so make test is
# reproducible; HYPOTHESIS_PROFILE=explore make test hunts with many more examples.
HYPOTHESIS_PROFILE ?= ci
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
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/pytest --cov=traft.core --cov-branch --cov-report=term:skip-covered

test: lint typecheck pytest

# traft against PySyncObj side by side; BENCH_ARGS=--quick for the 2-minute version.
bench: $(STAMP)
	$(BIN)/python scripts/bench $(BENCH_ARGS)

bench-core: $(STAMP)
	$(BIN)/python scripts/bench_core.py

clean:
	rm -rf $(VENV) .venv-pysyncobj build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
