# Each target installs what it needs into .venv first: a fresh machine needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= smoke
# pytest-xdist workers, one per core; tests/conftest.py gives each the cores / workers as its thread count and
# hands out the longest tests first, one at a time (--maxschedchunk=1)
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: setup run test lab bench clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test,notebooks]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import sbu, torch, transformers, peft, rdflib, oxrdflib, bm25s"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/sbu run --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/ruff check sbu tests benchmarks
	$(BIN)/python -m pytest -q --durations=20 -n $(TEST_WORKERS) --maxschedchunk=1

bench: $(STAMP)
	$(BIN)/python benchmarks/memory_forget.py
	$(BIN)/python benchmarks/parameter_cost.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-results:
	rm -rf results/
