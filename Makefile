# make test  - build .venv from requirements.txt if missing or stale, lint, run the unit tests
# make book  - run the alpha sweep for PROFILE (default: default), then build the HTML book
PROFILE ?= default
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-stamp

export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2
export KDUTILS_PROFILE := $(PROFILE)
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: venv test lint format book sweep html clean-book check-book benchmark

$(STAMP): requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venv lint
	$(PY) -m pytest

sweep: venv
	$(PY) -m kdutils.sweep --profile $(PROFILE) --fused
	$(PY) -m kdutils.sweep --profile $(PROFILE) --study all

html: venv
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going

book: sweep html

check-book: venv
	$(PY) -m kdutils.bookcheck _build/html --profile $(PROFILE)

benchmark: venv
	$(PY) benchmarks/speed.py --output results/benchmarks/cpu.json

clean-book:
	rm -rf _build
