# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench soak browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	FOOTGW_DEV_MODE=1 $(BIN)/footage-gateway demo

# Debian's chromium for the console's browser tests; skipped (the tests say why) where apt is unavailable.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: browser tests will skip"; \
	  else echo "no chromium and no root apt: browser tests will skip"; fi; }

test: install browser
	$(BIN)/ruff check gateway tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not soak"

lint: install
	$(BIN)/ruff check gateway tests $(wildcard bench)
	$(BIN)/ruff format --check gateway tests $(wildcard bench) || true
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run.py

soak: install
	$(BIN)/pytest -q -m soak -s

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
