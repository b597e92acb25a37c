# lsci developer commands. Each target creates or reuses the project's virtual environment
# (.venv) and installs what it needs, so a fresh clone needs only Python 3.11 and make.
#   make demo   - the main job on the simulated camera (no camera, no display needed)
#   make test   - lint, types, the whole test suite with coverage, and a wheel check
#   make bench  - kernel benchmarks (table on stdout, JSON in bench/results/)
#   make lint   - ruff (lint + format check) and mypy

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
CONSTRAINTS := requirements/constraints.txt

.PHONY: demo test lint format bench screenshots system-deps clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lsci needs Python 3.11 or newer, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

# Stamps record what is installed; they are redone when pyproject.toml or the constraints change.
$(VENV)/.core: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	@touch $@

$(VENV)/.all: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[all,test]'
	@touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/lsci demo --overwrite

system-deps:
	@bash .ci/system-deps.sh

# mypy finds drivers/ as lsci.drivers through the link .ci/mypy_path/lsci/drivers (see
# pyproject.toml); a checkout without symlinks would silently lose the drivers' types.
lint: $(VENV)/.all
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@test -f .ci/mypy_path/lsci/drivers/base.py || \
		{ echo "lint: .ci/mypy_path/lsci/drivers must link to drivers/ (git config core.symlinks true)"; exit 1; }
	$(BIN)/mypy

format: $(VENV)/.all
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The tests that need no display and no real time run first, on two processes: on a fresh
# clone numba compiles its kernels there, on both cores (more than half of that run's time),
# and the napari and serial tests, which run alone, find them compiled instead of compiling
# on one core, some of them during real-time acquisition. The napari tests run in a process of
# their own: Qt objects they leave behind are then never garbage-collected in the middle of
# another test. The other runs leave out the napari and Qt pytest plugins, whose fixtures
# would otherwise import Qt and wrap each of their tests. Tests marked serial (real time,
# signals, other processes, a database server) run alone, last. Coverage adds up over the
# three runs.
NO_QT := -p no:napari -p no:pytest-qt
test: lint system-deps
	$(BIN)/python -m pytest --ignore=tests/napari -m "not serial" -n 2 $(NO_QT) \
		--cov --cov-report= --cov-fail-under=0 $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/napari --cov --cov-append --cov-report= --cov-fail-under=0 \
		$(PYTEST_ARGS)
	$(BIN)/python -m pytest --ignore=tests/napari -m serial $(NO_QT) \
		--cov --cov-append --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

# pylsci pins numpy~=1.23 but runs on numpy 2: installed without its dependencies so it cannot
# downgrade numpy. It is only a baseline to compare against.
$(VENV)/.bench: $(VENV)/.all
	$(PIP) install -q --no-deps pylsci==1.1.1
	@touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench $(BENCH_ARGS)

# The README's pictures: the demo's figures and the napari compare view from the test suite.
screenshots: $(VENV)/.all system-deps
	$(BIN)/lsci demo --out build/demo --overwrite
	cp build/demo/comparison.png build/demo/timecourse.png docs/images/
	LSCI_SCREENSHOT_DIR=docs/images $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/napari/test_compare_widget.py -k recovers_the_known_factor
	LSCI_SCREENSHOT_DIR=docs/images $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_study_followup.py -k "recovers_the_simulated_recovery and sqlite"
	LSCI_SCREENSHOT_DIR=docs/images $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/napari/test_bedside.py -k ten_actions

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
