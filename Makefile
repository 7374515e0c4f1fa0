# Each target installs what it needs into .venv first: a fresh machine needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BASE := $(VENV)/.installed-base
PROFILE ?= smoke
# pytest-xdist workers, one per core; tests/conftest.py gives each the cores / workers as its thread count and
# hands out the longest tests first, one at a time (--maxschedchunk=1)
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: setup run test lab bench clean-results browser

# make run needs the package only; make test and make lab add the test tools and JupyterLab
$(BASE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e . 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import sbu, torch, transformers, peft, rdflib, oxrdflib, bm25s, papermill, ipykernel"
	touch $(BASE)

$(STAMP): $(BASE)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test,notebooks]' 2>&1 | grep -v "is ignored" || true
	touch $(STAMP)

setup: $(STAMP)

run: $(BASE)
	$(BIN)/sbu run --profile $(PROFILE)

# the Lab's browser test drives Debian's headless Chromium through ChromeDriver; installed here where missing
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the Lab's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no chromium or chromedriver, and no root apt-get to install them: the Lab's browser test is skipped"; fi

test: $(STAMP) browser
	$(BIN)/ruff check sbu tests benchmarks tools
	$(BIN)/python -m pytest -q --durations=20 -n $(TEST_WORKERS) --maxschedchunk=1

bench: $(STAMP)
	$(BIN)/python benchmarks/memory_forget.py
	$(BIN)/python benchmarks/parameter_cost.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

clean-results:
	rm -rf results/
