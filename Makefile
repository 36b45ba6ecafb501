# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench soak browser screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "make install: footage-gateway and its test tools into $(VENV)/ (pip is quiet; minutes on a fresh machine)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)
	@echo "make install: done; the command is $(BIN)/footage-gateway"

run: install
	FOOTGW_DEV_MODE=1 $(BIN)/footage-gateway demo

# Debian's chromium (Playwright) and firefox-esr (WebDriver BiDi) for the console's browser
# tests, and nginx for tests/test_accel.py (FOOTGW_DELIVERY=accel); skipped (the tests say why)
# where apt is unavailable. nginx lives in /usr/sbin, off a normal user's PATH.
BROWSERS := chromium firefox-esr
TEST_TOOLS := $(BROWSERS) nginx
browser:
	@missing=""; for b in $(TEST_TOOLS); do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "$$missing could not be installed: their tests will skip"; \
	  else echo "no$$missing and no root apt: their tests will skip"; fi; }

test: install browser
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
	FOOTGW_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/test_console_browser.py

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

soak: install
	$(BIN)/pytest -q -m soak -s

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
