# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The lock: exact versions and hashes of the runtime deps and the `test` extra, so CI and a new
# user install what the tests passed with. uv reads and writes it; uv is pinned and lives in its
# own folder under the venv (by version, so a new pin installs afresh) where syncing the venv
# to the lock cannot remove it.
LOCK       := requirements.lock
UV_VERSION := 0.13.9
UV         := $(VENV)/uv-$(UV_VERSION)/bin/uv
# Linux x86_64 is what CI runs; --universal resolves for the other platforms too.
LOCK_FLAGS := --extra test --universal --python-version 3.11 --generate-hashes \
              --custom-compile-command "make lock"

.PHONY: install lock run test lint bench soak browser oidc screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) | $(UV)
	@echo "install: the locked dependencies from $(LOCK) into $(VENV)"
	@$(UV) pip sync --quiet --require-hashes --python $(BIN)/python $(LOCK)
	@echo "install: footage-gateway itself, editable"
	@$(UV) pip install --quiet --no-deps --python $(BIN)/python -e .
	@touch $(STAMP)
	@echo "install: done; the command is $(BIN)/footage-gateway"

# pip (from the standard library's venv) only ever installs uv; uv installs everything else.
# --isolated: the machine's pip configuration has no say in which uv we get.
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "install: $(PYTHON) is older than Python 3.11 (try make PYTHON=python3.11)"; exit 1; }
	@echo "install: $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@echo "install: uv $(UV_VERSION) into $(VENV)/uv-$(UV_VERSION)"
	@$(BIN)/python -m pip install --isolated --quiet --disable-pip-version-check \
	  --target $(VENV)/uv-$(UV_VERSION) uv==$(UV_VERSION)

# Regenerate the lock from pyproject.toml, keeping every pin that still fits;
# `make lock UPGRADE=1` moves every package to its newest allowed version.
lock: | $(UV)
	@echo "lock: $(LOCK) from pyproject.toml"
	@$(UV) pip compile --quiet $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o $(LOCK) pyproject.toml

run: install
	FOOTGW_DEV_MODE=1 $(BIN)/footage-gateway demo

# Debian's chromium (Playwright) and firefox-esr (WebDriver BiDi) for the console's browser
# tests, nginx for tests/test_accel.py (FOOTGW_DELIVERY=accel), curl for tests/test_demo.py and
# strace for tests/test_audit_durability.py (each acknowledged append follows its fsync), and
# ffmpeg (ffprobe; also the system H.264 decoder firefox-esr plays the demo clip with).
# Without them their tests skip and say why; under CI=true they fail instead
# (tests/support/skips.py). nginx lives in /usr/sbin, off a normal user's PATH.
BROWSERS := chromium firefox-esr
TEST_TOOLS := $(BROWSERS) nginx curl strace ffmpeg
browser:
	@missing=""; for b in $(TEST_TOOLS); do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "$$missing could not be installed: their tests will skip (fail under CI=true)"; \
	  else echo "no$$missing and no root apt: their tests will skip (fail under CI=true)"; fi; }

# The OpenID Connect provider the sign-in tests run (tests/oidc/: panva/node-oidc-provider,
# pinned by its package-lock.json): Node.js 20.19 or later and npm, then `npm ci` there.
# Without them the sign-in tests skip and say why; under CI=true they fail instead.
OIDC_DIR := tests/oidc
oidc: $(OIDC_DIR)/node_modules/.package-lock.json

$(OIDC_DIR)/node_modules/.package-lock.json: $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
	  || { echo "oidc: node and npm are needed (Node.js 20.19 or later): install them (apt install nodejs npm, or NodeSource's nodejs 20+); the sign-in tests skip without them (fail under CI=true)"; exit 0; }; \
	node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
	  || { echo "oidc: node $$(node --version) is older than 20.19: the sign-in tests need a newer Node.js"; exit 0; }; \
	echo "oidc: npm ci in $(OIDC_DIR) (oidc-provider, from its lock file)"; \
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --silent

test: install browser oidc
	$(BIN)/ruff check gateway tests $(wildcard bench)
	$(BIN)/ruff format --check gateway tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not soak"

lint: install
	$(BIN)/ruff check gateway tests $(wildcard bench)
	$(BIN)/ruff format --check gateway tests $(wildcard bench)
	$(BIN)/mypy

# Refresh the console screenshots in docs/ (the tests write theirs to tests/artifacts/).
screenshots: install browser
	FOOTGW_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/test_console_browser.py \
	  tests/test_console_playback.py tests/test_console_requests.py

# nginx (the sendfile baseline) and wrk (the load client) from apt where we are root; without
# them the bench says nginx's baseline is missing and drives the load from Python instead.
bench: install
	@missing=""; for tool in nginx wrk; do \
	  command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing: the bench runs without it"; \
	  else echo "no$$missing and no root apt: the bench runs without it"; fi; fi
	$(BIN)/python bench/run.py

# Ten minutes of mixed load (FOOTGW_SOAK_SECONDS=120 make soak for a short one); RSS must stay flat.
FOOTGW_SOAK_SECONDS ?= 600
soak: install
	FOOTGW_SOAK_SECONDS=$(FOOTGW_SOAK_SECONDS) $(BIN)/pytest -q -m soak -s

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
