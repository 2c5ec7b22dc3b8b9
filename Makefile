# The two commands: `make run` (app + worker) and `make test` (the whole suite).
# Both build .venv from the pinned requirements first; nothing else is needed on the machine.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

# The embedded PostgreSQL/Redis ship wheels for CPython 3.10-3.12 only.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,10) <= sys.version_info[:2] <= (3,12))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: help setup run test chaos migrate clean

help:
	@echo "make run    start the web app and the worker (embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set)"
	@echo "make test   run the whole test suite"
	@echo "make chaos  play every fault (worker kills, Redis/Postgres restarts, Payday outages, lost webhooks...) and count (CHAOS_ARGS=--short: the quick one)"

# The marker is written last, so a setup cut short (Ctrl-C, a lost connection) is made again
# from scratch instead of leaving a virtualenv without pip.
$(VENV)/.created:
	@if [ -z "$(PYTHON)" ]; then \
		echo "Skilvís needs CPython 3.10, 3.11 or 3.12 (the embedded PostgreSQL and Redis ship wheels for those only)."; \
		echo "Install one (e.g. 'apt-get install python3.11 python3.11-venv' or 'pyenv install 3.11') or run: make PYTHON=/path/to/python3.11 ..."; \
		exit 1; fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed: requirements.txt $(VENV)/.created
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m shopify_app.launcher

# axe-core, which the browser tests inject into the pages (package.json); without npm the
# accessibility check skips and says why, as the browser tests do without Chromium.
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "no npm: the browser tests' accessibility check (axe-core) will be skipped"; fi

test: $(VENV)/.installed-dev node_modules/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# Not part of `make test` (tests/test_chaos.py runs its short version there): each fault through
# the real web, long-lived workers, Postgres, Redis and the stand-ins; last line RESULT {json}.
chaos: $(VENV)/.installed-dev
	$(PY) bench/chaos.py $(CHAOS_ARGS)

migrate: setup
	$(PY) -m flask --app shopify_app migrate

clean:
	rm -rf $(VENV) .data node_modules
