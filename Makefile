# Set-up and the two everyday commands. Everything is idempotent: run it as often as you like.
SHELL := /bin/bash
PY ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
# System packages (Debian names): what the product runs with, and what only its tests need.
RUN_PKGS := python3 python3-venv python3-dev gcc mosquitto mosquitto-clients snmp snmpd \
            openssh-server fonts-noto-cjk poppler-utils tzdata curl ca-certificates
# chrony is the real NTP server the clock-offset tests query (run with -x: it never sets
# this machine's clock). prometheus provides promtool, which checks and unit-tests deploy/prometheus.
# chromium and chromium-driver run the web console's browser tests (tests/test_web.py).
TEST_PKGS := $(RUN_PKGS) chrony prometheus chromium chromium-driver
# The benchmarks compare against these, measured in the same run.
BENCH_PKGS := $(TEST_PKGS) prometheus-node-exporter prometheus-snmp-exporter

.PHONY: run test bench system system-test system-bench venv clean

run: system venv
	$(BIN)/fieldmon up --demo

test: system-test venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: system-bench venv
	$(BIN)/python -m bench.run_all

# Installs only what is missing, so a second run does no network work.
system: PKGS = $(RUN_PKGS)
system-test: PKGS = $(TEST_PKGS)
system-bench: PKGS = $(BENCH_PKGS)
system system-test system-bench:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# The venv is rebuilt when pyproject.toml changes (the stamp is older than it).
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
