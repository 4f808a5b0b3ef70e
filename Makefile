# Kabootar: `make run` starts everything on this box, `make ha` the local high-availability
# topology (Redis + replicas + Sentinels, two web processes behind HAProxy), `make test` runs the tests.
# Only Python 3.11+ is needed: the first run creates .venv and installs into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: run ha test lint style typecheck bench install chromium haproxy prometheus rules

run: $(STAMP)
	$(BIN)/kabootar run

ha: $(STAMP) haproxy
	$(BIN)/kabootar run --ha

test: $(STAMP) chromium haproxy prometheus
	$(BIN)/pytest

lint: style typecheck

# The Prometheus alerting rules are valid and fire as their tests expect (promtool); CI runs
# it right after lint.
rules: prometheus
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

style: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy  # --strict, over gateway and workers (pyproject.toml)

# The benchmarks (bench/): wrk is installed by the bench itself; py-spy comes with the `bench` extra.
bench: $(STAMP)
	@if [ -d bench ]; then \
	  [ -x $(BIN)/py-spy ] || $(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,bench]'; \
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

# Debian packages the project needs, installed by the project itself on a fresh machine:
# $(call apt_need,<present-when>,<package>,<what for>)
apt_need = @if ! ( $(1) ); then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(2) for $(3)..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2); \
	  else \
	    echo "$(3) need $(2): run 'sudo apt-get install $(2)' (Debian/Ubuntu)." >&2; \
	  fi; \
	fi

# The browser tests drive Debian's chromium through Playwright.
chromium:
	$(call apt_need,[ -x $(CHROMIUM) ],chromium,the browser tests)

# `make ha` and its tests put Debian's HAProxy in front of the web processes.
haproxy:
	$(call apt_need,command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ],haproxy,make ha and its tests)

# promtool (Debian's prometheus package) checks the alerting rules and what /metrics serves.
prometheus:
	$(call apt_need,command -v promtool >/dev/null,prometheus,the Prometheus rules and their tests)
