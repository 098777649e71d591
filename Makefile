# make test  - build .venv from requirements.txt if missing or stale, lint, run the unit tests
# make book  - check the data, run the alpha sweep for PROFILE (default: default), then build
#              the HTML book into _build/html (open _build/html/index.html)
# Data: KDUTILS_DATA_DIR (e.g. make book KDUTILS_DATA_DIR=../shared/data), Debian's
# dataset-fashion-mnist, or the internet; each target checks first, in seconds, that what it
# needs can be found (python -m kdutils.sweep --check-data; see kdutils/preflight.py).
# make pdf   - build the book as one PDF, _build/latex/kdbook.pdf (TeX from `make pdf-deps`)
PROFILE ?= default
# Processes at a time for the tests (pytest-xdist, a file per worker) and the sweep's
# notebooks: 2 overlaps kernel start-up, imports and subprocesses on a 2-core machine.
JOBS ?= 2
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-stamp

export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2
export KDUTILS_PROFILE := $(PROFILE)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Where the datasets are, passed on when given to make (KDUTILS_DATA_DIR=... make or make ...
# KDUTILS_DATA_DIR=...); unset, kdutils looks in the user cache and /usr/share/datasets.
ifdef KDUTILS_DATA_DIR
export KDUTILS_DATA_DIR
endif

.PHONY: venv test lint format book sweep html check-data clean-book check-book benchmark \
	mathjax check-offline pdf-deps pdf check-pdf

$(STAMP): requirements.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP)

# Committed notebooks that must have no outputs: all but the executed run pages (book/runs/).
CLEAN_NOTEBOOKS = $(wildcard $(or $(shell git ls-files -co --exclude-standard -- '*.ipynb' \
	':!:book/runs/*' 2>/dev/null),notebooks/*.ipynb))

# The checks of .pre-commit-config.yaml, changing no file.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/nbstripout --verify --keep-id $(CLEAN_NOTEBOOKS)
	@tmp=$$(mktemp -d) && cp notebooks/*.md notebooks/*.ipynb $$tmp && \
	$(VENV)/bin/jupytext --quiet --to ipynb --update $$tmp/*.md && \
	for nb in $$tmp/*.ipynb; do cmp -s $$nb notebooks/$${nb##*/} || { rm -rf $$tmp; \
	echo "notebooks/$${nb##*/} is missing or not what jupytext makes of its .md:" \
	"run $(VENV)/bin/jupytext --to ipynb --update notebooks/*.md (or pre-commit)"; exit 1; }; \
	done; rm -rf $$tmp; echo "jupytext: every notebooks/*.ipynb matches its .md"
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.citation-file-format \
	  --force-filetype yaml CITATION.cff
	$(VENV)/bin/pre-commit validate-config .pre-commit-config.yaml

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venv lint
	$(PY) -m pytest -n $(JOBS) --dist loadfile

# Stops within a minute, naming where it looked and how to provide the data, when a dataset
# that a run still to train (sweep), a chapter (chapters) or either (book) needs is missing.
CHECK_DATA = $(PY) -m kdutils.sweep --profile $(PROFILE) --check-data

define run-sweep
	$(PY) -m kdutils.sweep --profile $(PROFILE)
	$(PY) -m kdutils.sweep --profile $(PROFILE) --study all
endef

# Reports of an earlier build's failed notebooks are removed first: only this build's remain.
define build-html
	rm -rf _build/html/reports
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going
endef

check-data: venv
	$(CHECK_DATA) book

sweep: venv
	$(CHECK_DATA) sweep
	$(run-sweep)

# The pinned MathJax the book serves itself (fetched once with npm into .cache/): pages read offline.
mathjax: venv
	$(PY) -m kdutils.offline fetch

html: venv mathjax
	$(CHECK_DATA) chapters
	$(build-html)

book: venv mathjax
	$(CHECK_DATA) book
	$(run-sweep)
	$(build-html)

check-book: venv
	$(PY) -m kdutils.bookcheck _build/html --profile $(PROFILE)

# Headless Chromium with networking off renders a page with equations; no page loads a CDN.
check-offline: venv
	$(PY) -m kdutils.offline check _build/html --screenshot _build/screenshots/preliminaries-offline.png

# Debian's TeX for the PDF (XeLaTeX: the book's text has Greek and math symbols), fonts,
# xindy for the index, poppler-utils for check-pdf. Needs root or sudo.
PDF_DEBS := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
	texlive-xetex xindy fonts-freefont-otf poppler-utils
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

pdf-deps:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  $(PDF_DEBS)

# Executes the chapters again (like html) and typesets them with LaTeX.
pdf: venv
	$(CHECK_DATA) chapters
	$(VENV)/bin/jupyter-book build . --builder pdflatex -W -n --keep-going

check-pdf: venv
	$(PY) -m kdutils.pdfcheck _build/latex/kdbook.pdf

benchmark: venv
	$(PY) benchmarks/speed.py --output results/benchmarks/cpu.json

clean-book:
	rm -rf _build
