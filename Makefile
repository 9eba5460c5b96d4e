# Set-up and the two everyday commands. Everything is idempotent: run it as often as you like.
SHELL := /bin/bash
PY ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
# System packages the product and its tests use (Debian names).
SYS_PKGS := python3 python3-venv python3-dev gcc mosquitto mosquitto-clients snmp snmpd \
            openssh-server fonts-noto-cjk poppler-utils tzdata curl ca-certificates

.PHONY: run test setup system venv lint clean

run: setup
	$(BIN)/fieldmon run

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

setup: system venv

# Installs only what is missing, so a second run does no network work.
system:
	@missing=""; for p in $(SYS_PKGS); do \
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
