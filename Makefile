# One entry point for newcomers and CI. Every target installs what it needs first.
#   make dev     the whole stack: Temporal (UI http://localhost:8233), PostgreSQL, worker
#   make test    ruff, mypy and pytest, as CI runs them (.ci/run)
#   make eval    the classifier's accuracy on held-out English and Chinese text
#   make worker  a worker against an existing cluster (TEMPORAL_ADDRESS, DATABASE_URL, ...)

VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
# Reinstall only when the dependency list changed, not on every run.
STAMP   := $(VENV)/.installed

.PHONY: install browser bytecode dev test lint format worker demo bench eval catalogues clean

$(PYTHON):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install -e '.[dev,bench]'
	touch $(STAMP)

# Installed as production installs it: with bytecode (a wheel or `pip install .` compiles
# at install; an editable install does not, hence `bytecode`).
install: bytecode

# Headless Chromium and CJK fonts for the page tests: Debian's packages, installed once
# (CI runs as root). Playwright drives this binary; it never downloads a browser.
browser:
	@dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }

# The workflow sandbox (the tests', and a worker's with TICKETFLOW_WORKFLOW_SANDBOX=true)
# imports workflows/ afresh for every ticket it starts. An editable
# install under PYTHONDONTWRITEBYTECODE=1 has no bytecode, so each import would compile
# workflows/ticket.py again (docs/benchmarks.md, "Bytecode"); compileall writes it anyway.
bytecode: $(STAMP)
	$(PYTHON) -m compileall -q workflows activities stores api cli workers

dev: bytecode
	$(BIN)/ticketflow dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: lint bytecode browser
	$(BIN)/pytest -q

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

worker: bytecode
	$(BIN)/ticketflow worker

demo: bytecode
	$(PYTHON) -m workers.demo

# The learned classifier on held-out data: per-field accuracy against today's rules, and
# the category confusion matrix (activities/classifier.py).
eval: $(STAMP)
	$(PYTHON) -m activities.classifier eval

bench: $(STAMP)
	$(PYTHON) -m bench

# The workspace's Babel catalogues in step with its templates and code: new strings added
# empty, unused ones dropped, the untranslated listed (api/workspace/catalogues.py).
catalogues: $(STAMP)
	$(PYTHON) -m api.workspace.catalogues

# Forgets every ticket: the dev server's SQLite file and the embedded PostgreSQL.
clean:
	rm -rf .data
