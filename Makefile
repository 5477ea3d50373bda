# `make run` and `make test` are the only two set-up commands a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chromium wrk clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/paylinks serve

# The browser test needs Debian's chromium; install it when we can (root), otherwise that test skips
# with its reason (and fails under CI=true).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will skip"; }

wrk:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null); }

lint: $(STAMP)
	$(BIN)/ruff check core adapters bots tests bench migrations

test: $(STAMP) chromium lint
	$(BIN)/python -m pytest -q

bench: $(STAMP) wrk
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.lock

clean:
	rm -rf $(VENV) paylinks.db paylinks.db-wal paylinks.db-shm
