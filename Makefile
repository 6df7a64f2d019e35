# Two commands set everything up from a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
MANAGE := $(BIN)/python manage.py
# The charting library, from the npm registry by its lockfile, served as static files.
ASSETS := node_modules/.installed
# Headless Chromium from Debian's packages for the browser tests and screenshots (never a
# browser downloaded by a test tool). Installing needs root, as CI has; sudo otherwise.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint format bench screenshots db-stop clean

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e ./client
	touch $(STAMP)

$(ASSETS): package.json package-lock.json
	command -v npm >/dev/null || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm)
	npm ci --no-audit --no-fund --loglevel=error
	touch $(ASSETS)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

run: $(STAMP) $(ASSETS)
	$(MANAGE) prepare_site
	PORT=$(PORT) $(BIN)/python -m qvp_site.serve

# The suite and the benchmarks write gigabytes of WAL: a server they start does not archive it
# (QVP_WAL_ARCHIVE_DIR=off; a server already running keeps what it was started with).
test: $(STAMP) $(ASSETS) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --strict client/qvp_client
	QVP_WAL_ARCHIVE_DIR=off $(BIN)/pytest

# A screenshot of each dashboard page with the demo data, into docs/screenshots/.
screenshots: $(STAMP) $(ASSETS) $(CHROMIUM)
	$(MANAGE) prepare_site
	$(MANAGE) screenshots --out docs/screenshots

# The type check's configuration, files and exceptions: [tool.mypy] in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict client/qvp_client

# ArcticDB, for bench/peers.py, in an environment of its own: it declares pandas < 3.
ARCTICDB := .venv-arcticdb/.installed
$(ARCTICDB): bench/arcticdb/requirements.txt
	test -x .venv-arcticdb/bin/python || $(PYTHON) -m venv .venv-arcticdb
	.venv-arcticdb/bin/pip install --quiet -r bench/arcticdb/requirements.txt
	touch $@

bench: $(STAMP) $(ARCTICDB)
	@for b in bench/*.py; do echo "== $$b"; QVP_WAL_ARCHIVE_DIR=off $(BIN)/python $$b || exit 1; done

db-stop: $(STAMP)
	$(MANAGE) embedded_db stop

clean:
	rm -rf $(VENV) var node_modules
