# Kabootar: `make run` starts everything on this box, `make ha` the local high-availability
# topology (Redis + replicas + Sentinels, two web processes behind HAProxy), `make test` runs the tests.
# Only Python 3.11+ is needed: the first run creates .venv and installs into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: run ha test lint style typecheck bench install chromium haproxy

run: $(STAMP)
	$(BIN)/kabootar run

ha: $(STAMP) haproxy
	$(BIN)/kabootar run --ha

test: $(STAMP) chromium haproxy
	$(BIN)/pytest

lint: style typecheck

style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy  # --strict, over gateway and workers (pyproject.toml)

# The benchmarks (bench/): wrk is installed by the bench itself; py-spy and granian come with the `bench` extra.
bench: $(STAMP)
	@if [ -d bench ]; then \
	  [ -x $(BIN)/py-spy ] && [ -x $(BIN)/granian ] || $(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,bench]'; \
	  $(BIN)/python -m bench; \
	else echo "No benchmarks in this checkout yet (bench/ is missing)."; fi

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Kabootar needs Python 3.11 or newer, but '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)." >&2; \
	  echo "Install one and point make at it, e.g.: make run PYTHON=python3.12" >&2; exit 1; }
	@echo "Creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "Could not create $(VENV). On Debian or Ubuntu: apt-get install python3-venv" >&2; exit 1; }

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing Kabootar and its dependencies into $(VENV)..."
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test]'
	@touch $(STAMP)

# The browser tests drive Debian's chromium through Playwright.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing chromium for the browser tests..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium' (Debian/Ubuntu)." >&2; \
	  fi; \
	fi

# `make ha` and its tests put Debian's HAProxy in front of the web processes.
haproxy:
	@if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing haproxy for make ha and its tests..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	  else \
	    echo "make ha needs HAProxy: run 'sudo apt-get install haproxy' (Debian/Ubuntu)." >&2; \
	  fi; \
	fi
